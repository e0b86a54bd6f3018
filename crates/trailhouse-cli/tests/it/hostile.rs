//! Hostile input, crashes and faults: nothing lost, nothing let in.

use std::fs;

use serde_json::json;

use crate::support::*;

/// `n` records of one day whose JSON takes about `n * 300` bytes.
fn padded_records(prefix: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let mut e = event(
                &format!("{prefix}-{i}"),
                &format!(
                    "2026-11-01T{:02}:{:02}:{:02}Z",
                    i / 3600 % 24,
                    i / 60 % 60,
                    i % 60
                ),
                "GetObject",
                "us-east-1",
            );
            e["requestParameters"] = json!({ "bucketName": "b1", "key": "k".repeat(200) });
            e
        })
        .collect()
}

#[test]
fn a_file_that_fails_when_its_batch_is_replayed_is_not_taken_as_ingested() {
    let (_dir, src, lake) = scratch();
    // About 1.3 MB of JSON: over a 1 MiB --max-file-size.
    write_trail_file(
        &src,
        "us-east-1",
        1,
        "big.json.gz",
        &padded_records("big", 4000),
    );

    let crashed = trailhouse(
        &lake,
        &[
            "ingest",
            "--fail-point",
            "after-plan:1",
            &src.display().to_string(),
        ],
    );
    assert_eq!(
        crashed.code, None,
        "the process must die: {}",
        crashed.stderr
    );

    // The replay reads the batch again, and this time the file fails.
    let (run, r) = ingest_json(&lake, &[&src], &["--max-file-size", "1"]);
    assert_eq!(run.code, Some(1), "a failed file is exit 1: {}", run.stderr);
    assert_eq!(r["files_failed"], 1, "{r}");
    assert_eq!(r["records_written"], 0, "{r}");

    // So the next run tries it again and loads it.
    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 1, "the file is retried: {r}");
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 4000);
    assert!(
        fs::read_dir(lake.join("_trailhouse/ledger"))
            .expect("ledger")
            .all(|e| !e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")),
        "no half-written plan is left behind"
    );
}

#[test]
fn the_memory_budget_counts_decompressed_bytes_not_compressed_ones() {
    let (_dir, src, lake) = scratch();
    // Twelve files of ~20 KB gzip that each decompress to ~1.5 MB: by their compressed size the
    // whole lot fits one batch of a 4 MiB budget (1 MiB of data in flight), by what they hold it
    // does not.
    for f in 0..12 {
        let records = padded_records(&format!("f{f}"), 5000);
        let path = write_trail_file(&src, "us-east-1", 1, &format!("f{f}.json.gz"), &records);
        assert!(fs::metadata(&path).expect("stat").len() < 64 << 10);
    }
    let (run, r) = ingest_json(&lake, &[&src], &["--memory", "4"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 12, "{r}");
    assert_eq!(r["records_written"], 60_000, "{r}");
    assert!(
        r["table_version"].as_u64().expect("version") >= 6,
        "batches are cut by decompressed bytes (at most two files of 1.5 MB each): {r}"
    );
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT eventid) FROM cloudtrail"),
        60_000
    );
}

#[test]
fn hostile_region_values_are_stored_intact_and_never_become_paths() {
    let (dir, src, lake) = scratch();
    let hostile = [
        format!("{}{}", "区".repeat(28), "A".repeat(90)),
        "../../../escaped".to_string(),
        "a/b\\c\u{0}d".to_string(),
        "x".repeat(5000),
    ];
    let records: Vec<_> = hostile
        .iter()
        .enumerate()
        .map(|(i, r)| event(&format!("h{i}"), "2026-11-01T00:00:00Z", "GetObject", r))
        .collect();
    write_trail_file(&src, "us-east-1", 1, "hostile.json.gz", &records);
    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["records_written"], 4, "{r}");

    let out = trailhouse(
        &lake,
        &[
            "sql",
            "--format",
            "json",
            "SELECT awsregion, region FROM cloudtrail ORDER BY eventid",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
    for (row, want) in rows.iter().zip(&hostile) {
        assert_eq!(row["awsregion"], json!(want));
        assert_eq!(row["region"], json!(want));
    }
    assert!(!dir.path().join("escaped").exists());
    for f in files_under(&lake.join("cloudtrail")) {
        let rel = f.strip_prefix(lake.join("cloudtrail")).expect("inside");
        let first = rel.components().next().expect("component");
        let first = first.as_os_str().to_string_lossy();
        assert!(
            first == "_delta_log" || (first.starts_with("day=2026-") && first.len() == 14),
            "a file outside the day folders: {}",
            f.display()
        );
    }

    // And the lake takes other files afterwards.
    write_trail_file(
        &src,
        "us-east-1",
        2,
        "next.json.gz",
        &[event(
            "n1",
            "2026-11-02T00:00:00Z",
            "GetObject",
            "us-east-1",
        )],
    );
    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["records_written"], 1, "{r}");
}

#[test]
fn a_record_without_region_delivered_under_two_region_folders_is_stored_once() {
    let (_dir, src, lake) = scratch();
    let mut record = event("r1", "2026-11-01T00:00:00Z", "GetObject", "unused");
    record.as_object_mut().expect("object").remove("awsRegion");
    write_trail_file(
        &src,
        "us-east-1",
        1,
        "a.json.gz",
        std::slice::from_ref(&record),
    );
    write_trail_file(&src, "eu-west-1", 1, "b.json.gz", &[record]);
    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["records_written"], 1, "{r}");
    assert_eq!(r["records_duplicate"], 1, "{r}");
}

#[test]
fn a_delta_log_that_names_files_outside_the_table_is_refused() {
    let (dir, src, lake) = scratch();
    write_trail_file(
        &src,
        "us-east-1",
        1,
        "a.json.gz",
        &[event(
            "a1",
            "2026-11-01T00:00:00Z",
            "GetObject",
            "us-east-1",
        )],
    );
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let data = lake.join("cloudtrail").join(
        data_files(&lake.join("cloudtrail"))
            .first()
            .expect("a data file"),
    );
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).expect("mkdir");
    fs::copy(&data, outside.join("x.parquet")).expect("copy");
    let size = fs::metadata(&data).expect("stat").len();

    for (table, name, path) in [
        ("cloudtrail", "dotdot", "../../outside/x.parquet"),
        ("cloudtrail", "encoded", "%2E%2E/%2E%2E/outside/x.parquet"),
        ("quarantine", "absolute", "/etc/hostname"),
    ] {
        let copy = dir.path().join(format!("lake-{name}"));
        copy_tree(&lake, &copy);
        let log = copy.join(table).join("_delta_log");
        let next = files_under(&log)
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
            .count();
        let partition = if table == "cloudtrail" {
            json!({"day": "2026-11-01"})
        } else {
            json!({})
        };
        let add = json!({"add": {"path": path, "partitionValues": partition, "size": size,
                                  "modificationTime": 0, "dataChange": true}});
        fs::write(log.join(format!("{next:020}.json")), format!("{add}\n")).expect("commit");
        let out = trailhouse(
            &copy,
            &["sql", "--format", "csv", "SELECT count(*) FROM cloudtrail"],
        );
        assert_eq!(out.code, Some(2), "{name}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("outside the table")
                && out.stderr.contains(path.rsplit('/').next().expect("name")),
            "{name}: the error names the file: {}",
            out.stderr
        );
        let out = trailhouse(&copy, &["ingest", &src.display().to_string()]);
        assert_eq!(
            out.code,
            Some(2),
            "{name}: ingest refuses too: {}",
            out.stderr
        );
    }
}

/// What an attacker writes into the fields trailhouse shows.
const HOSTILE_AGENT: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J <img src=x onerror=alert(1)> ![t](http://evil.example/p.png) \u{202E}gnp.exe";
const HOSTILE_IP: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";

fn hostile_lake() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, src, lake) = scratch();
    let mut e = event("h1", "2026-11-01T00:00:00Z", "ConsoleLogin", "us-east-1");
    e["eventSource"] = json!("signin.amazonaws.com");
    e["userAgent"] = json!(HOSTILE_AGENT);
    e["sourceIPAddress"] = json!(HOSTILE_IP);
    e["userIdentity"]["arn"] = json!("arn:aws:iam::111122223333:user/@SUM(1)|x`y`");
    e["additionalEventData"] = json!({"MFAUsed": "No"});
    e["responseElements"] = json!({"ConsoleLogin": "Success"});
    write_trail_file(&src, "us-east-1", 1, "h.json.gz", &[e]);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    (dir, lake)
}

/// No byte of `text` acts on a terminal: no C0/C1 control but line breaks, no bidi override.
fn inert_on_a_terminal(what: &str, text: &str) {
    let bad = text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    });
    assert_eq!(
        bad, None,
        "{what}: a control or bidi character reaches the output:\n{text}"
    );
}

/// No link, image or HTML tag can form in `markdown`, and no attacker pipe splits a cell:
/// checked on what Markdown treats as active, the text without its backslash-escaped characters.
fn inert_markdown(what: &str, markdown: &str) {
    inert_on_a_terminal(what, markdown);
    let mut active = String::new();
    let mut chars = markdown.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
        } else {
            active.push(c);
        }
    }
    for formed in ["<img", "![", "](http", "http://evil", "user/@SUM(1)|"] {
        assert!(
            !active.contains(formed),
            "{what}: `{formed}` in\n{markdown}"
        );
    }
}

#[test]
fn attacker_text_is_inert_in_every_text_output() {
    let (dir, lake) = hostile_lake();
    let q = "SELECT useragent, sourceipaddress, useridentity.arn FROM cloudtrail";

    let table = trailhouse(&lake, &["sql", "--format", "table", q]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    inert_on_a_terminal("sql table", &table.stdout);
    assert!(
        table.stdout.contains("\\u{1b}]0;owned\\u{7}"),
        "{}",
        table.stdout
    );

    let md = trailhouse(&lake, &["sql", "--format", "markdown", q]);
    assert_eq!(md.code, Some(0), "{}", md.stderr);
    inert_markdown("sql markdown", &md.stdout);

    for args in [
        vec!["sql", "--format", "csv", q],
        vec![
            "run",
            "console-logins",
            "--since",
            "2026-10-01",
            "--until",
            "2026-12-01",
            "--format",
            "csv",
        ],
    ] {
        let csv = trailhouse(&lake, &args);
        assert_eq!(csv.code, Some(0), "{}", csv.stderr);
        let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
        let headers = reader.headers().expect("header").clone();
        let row = reader.records().next().expect("a row").expect("csv");
        for (name, value) in headers.iter().zip(row.iter()) {
            assert!(
                !value.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{args:?}: column {name} is a formula: {value}"
            );
        }
        let ip = headers
            .iter()
            .position(|h| h == "sourceipaddress")
            .expect("ip column");
        assert_eq!(
            &row[ip],
            format!("'{HOSTILE_IP}"),
            "the value is kept, made text"
        );
    }

    let run = trailhouse(
        &lake,
        &[
            "run",
            "console-logins",
            "--since",
            "2026-10-01",
            "--until",
            "2026-12-01",
            "--format",
            "table",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    inert_on_a_terminal("run table", &run.stdout);

    let report_md = dir.path().join("report.md");
    let report = trailhouse(
        &lake,
        &[
            "report",
            "--since",
            "2026-10-01",
            "--until",
            "2026-12-01",
            "--format",
            "markdown",
            "-o",
            &report_md.display().to_string(),
        ],
    );
    assert_eq!(report.code, Some(0), "{}", report.stderr);
    let text = fs::read_to_string(&report_md).expect("report");
    assert!(
        text.contains("Source IPs: "),
        "the finding is in the report: {text}"
    );
    inert_markdown("report markdown", &text);

    let html = trailhouse(
        &lake,
        &[
            "report",
            "--since",
            "2026-10-01",
            "--until",
            "2026-12-01",
            "--format",
            "html",
        ],
    );
    assert_eq!(html.code, Some(0), "{}", html.stderr);
    assert!(
        !html.stdout.contains("<img src=x"),
        "HTML escapes the agent"
    );
    assert!(html.stdout.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[test]
fn odd_names_and_broken_links_in_a_source_do_not_stop_the_run() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, src, lake) = scratch();
    let good = write_trail_file(
        &src,
        "us-east-1",
        1,
        "a.json.gz",
        &[event(
            "a1",
            "2026-11-01T00:00:00Z",
            "GetObject",
            "us-east-1",
        )],
    );
    let folder = good.parent().expect("folder");
    let odd = folder.join(std::ffi::OsStr::from_bytes(b"b\xff\xfe.json.gz"));
    let body = json!({"Records": [event("b1", "2026-11-01T00:00:01Z", "GetObject", "us-east-1")]});
    fs::write(&odd, gz(body.to_string().as_bytes())).expect("write");
    std::os::unix::fs::symlink(
        folder.join("missing.json.gz"),
        folder.join("dangling.json.gz"),
    )
    .expect("link");
    std::os::unix::fs::symlink(&src, folder.join("loop")).expect("link");

    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(
        run.code,
        Some(1),
        "a broken link is a failed file: {}",
        run.stderr
    );
    reconciles(&r);
    assert_eq!(r["files_loaded"], 2, "{r}");
    assert_eq!(r["files_failed"], 1, "{r}");
    first_failure_is(&r, "dangling.json.gz", "missing.json.gz");
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 2);

    // The odd name is remembered exactly: the rerun skips it.
    let (_, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(r["files_skipped_ingested"], 2, "{r}");
    assert_eq!(r["records_read"], 0, "{r}");
}

#[test]
fn export_writes_one_record_per_line_whatever_the_input_layout() {
    let (_dir, src, lake) = scratch();
    let mut e = event("p1", "2026-11-01T00:00:00Z", "PutObject", "us-east-1");
    e["requestParameters"] = json!({"bucketName": "b1", "tags": {"a": ["x\ny", 1.50]}});
    e["customUnknownField"] = json!({"nested": {"deep": [1, 2]}});
    let quarantined = json!({"eventName": "NoTime", "detail": {"multi": "line\r\ntext"}});
    let folder = src.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01");
    fs::create_dir_all(&folder).expect("mkdir");
    let pretty = serde_json::to_string_pretty(&json!({"Records": [e, quarantined]})).expect("json");
    let pretty = pretty.replace('\n', "\r\n");
    fs::write(folder.join("pretty.json"), pretty).expect("write");
    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        (
            r["records_written"].as_u64(),
            r["records_quarantined"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );

    let out = trailhouse(&lake, &["export", "--format", "ndjson", "--quarantine"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per record:\n{}", out.stdout);
    let got: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is a record"))
        .collect();
    assert_eq!(got[0]["requestParameters"], e["requestParameters"]);
    assert_eq!(got[0]["customUnknownField"], e["customUnknownField"]);
    assert_eq!(got[1], quarantined);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let (_dir, lake) = hostile_lake();
    for format in ["csv", "table", "ndjson"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trailhouse"))
            .arg("--lake")
            .arg(&lake)
            .args(["sql", "--format", format, "SELECT * FROM range(500000)"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut head = [0u8; 16];
        child
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut head)
            .expect("first bytes");
        // stdout is closed here, as `| head` does.
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
}

#[test]
fn an_output_file_is_replaced_whole_or_left_as_it_was() {
    let (dir, lake) = hostile_lake();
    let queries = dir.path().join("queries/mine");
    fs::create_dir_all(&queries).expect("mkdir");
    fs::write(
        queries.join("broken.sql"),
        "-- summary: fails while it runs\nSELECT CAST(eventname AS INT) AS n FROM cloudtrail \
         WHERE eventtime >= $since AND eventtime < $until\n",
    )
    .expect("query");
    let out_dir = dir.path().join("out");
    fs::create_dir_all(&out_dir).expect("mkdir");
    let out = out_dir.join("result.csv");
    fs::write(&out, "yesterday's result\n").expect("write");
    let o = out.display().to_string();
    let q = dir.path().join("queries").display().to_string();
    let window = ["--since", "2026-10-01", "--until", "2026-12-01"];

    let mut args = vec!["run", "mine/broken", "--queries", &q, "-o", &o];
    args.extend(window);
    let failed = trailhouse(&lake, &args);
    assert_eq!(failed.code, Some(2), "{}", failed.stderr);
    assert_eq!(
        fs::read_to_string(&out).expect("read"),
        "yesterday's result\n"
    );

    let mut args = vec!["run", "console-logins", "--format", "csv", "-o", &o];
    args.extend(window);
    let ok = trailhouse(&lake, &args);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(
        fs::read_to_string(&out)
            .expect("read")
            .starts_with("eventtime,")
    );
    let names: Vec<String> = fs::read_dir(&out_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["result.csv"], "no temporary file is left behind");
}

#[test]
fn sql_writes_its_result_to_a_file_whole_as_run_does() {
    let (dir, lake) = hostile_lake();
    let out = dir.path().join("names.csv");
    let o = out.display().to_string();
    let statement = "SELECT eventname, count(*) AS n FROM cloudtrail GROUP BY 1 ORDER BY 2 DESC, 1";
    // CSV unless told otherwise, the same bytes as on standard output; the count on stderr.
    let r = trailhouse(&lake, &["sql", "-o", &o, statement]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let written = fs::read_to_string(&out).expect("read");
    assert_eq!(written, sql_csv(&lake, statement));
    let rows = written.lines().count() - 1;
    assert!(rows > 0, "{written}");
    assert!(
        r.stderr.contains(&format!("{rows} rows written to {o}")),
        "{}",
        r.stderr
    );
    // Parquet, as its help says, needs a file.
    let parquet = dir.path().join("names.parquet");
    let p = parquet.display().to_string();
    let r = trailhouse(&lake, &["sql", "-f", "parquet", "--output", &p, statement]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let bytes = fs::read(&parquet).expect("read");
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    // A statement that fails leaves the previous file as it was.
    let failed = trailhouse(
        &lake,
        &[
            "sql",
            "-o",
            &o,
            "SELECT CAST(eventname AS INT) FROM cloudtrail",
        ],
    );
    assert_eq!(failed.code, Some(2), "{}", failed.stderr);
    assert_eq!(fs::read_to_string(&out).expect("read"), written);
}

#[test]
fn an_output_that_is_a_pipe_or_device_is_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let (dir, lake) = hostile_lake();
    let fifo = dir.path().join("results.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // The other end of the pipe: what a consumer (a shell's `<(…)`, a log shipper) reads.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).expect("read the pipe"))
    };
    let o = fifo.display().to_string();
    let args = [
        "run",
        "console-logins",
        "--format",
        "csv",
        "--since",
        "2026-10-01",
        "--until",
        "2026-12-01",
        "-o",
        &o,
    ];
    let r = trailhouse(&lake, &args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Checked before waiting for the reader: had the pipe been replaced, it would wait forever.
    assert!(
        fs::symlink_metadata(&fifo)
            .expect("still there")
            .file_type()
            .is_fifo(),
        "the pipe was replaced by a file"
    );
    assert!(reader.join().expect("reader").starts_with("eventtime,"));
    let left: Vec<String> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".trailhouse-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_vacuum_that_could_delete_what_a_query_reads_is_refused_while_it_reads() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let (_dir, lake) = hostile_lake();
    // A reader: `sql` with its statement still to come on standard input holds its session.
    let mut reader = Command::new(env!("CARGO_BIN_EXE_trailhouse"))
        .arg("--lake")
        .arg(&lake)
        .args(["sql", "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Until the reader has its session, a vacuum may still get through; wait for it to hold.
    let mut refused = None;
    for _ in 0..100 {
        let v = trailhouse(&lake, &["vacuum", "--retention-hours", "0"]);
        if v.code == Some(2) {
            refused = Some(v);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let refused = refused.expect("the vacuum is refused while a query reads");
    assert!(
        refused.stderr.contains("queries are reading the lake"),
        "{}",
        refused.stderr
    );
    // A dry run, and the default retention, delete nothing a reader needs: they go ahead.
    assert_eq!(
        trailhouse(&lake, &["vacuum", "--retention-hours", "0", "--dry-run"]).code,
        Some(0)
    );
    assert_eq!(trailhouse(&lake, &["vacuum"]).code, Some(0));

    let mut stdin = reader.stdin.take().expect("stdin");
    stdin
        .write_all(b"SELECT count(*) FROM cloudtrail")
        .expect("statement");
    drop(stdin);
    let out = reader.wait_with_output().expect("reader");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().nth(1),
        Some("1")
    );
    let v = trailhouse(&lake, &["vacuum", "--retention-hours", "0"]);
    assert_eq!(v.code, Some(0), "with no reader left: {}", v.stderr);
}

#[test]
fn overlapping_writers_wait_for_each_other_and_the_table_is_one_ingest() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let lake = dir.path().join("lake");
    for f in 0..12 {
        write_trail_file(
            &src,
            "us-east-1",
            1,
            &format!("f{f}.json.gz"),
            &padded_records(&format!("f{f}"), 5000),
        );
    }
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trailhouse"))
            .arg("--lake")
            .arg(&lake)
            .args(["ingest", "--json", "--memory", "4"])
            .args(extra)
            .arg(&src)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    // (With --wait too: the probes below may take the lock before it starts.)
    let first = spawn(&["--wait", "300"]);
    // Wait until the first ingest holds the lake: a writer without --wait is then refused.
    let e = empty.display().to_string();
    let mut refused = None;
    for _ in 0..200 {
        let probe = trailhouse(&lake, &["ingest", &e]);
        if probe.code == Some(2) {
            refused = Some(probe.stderr);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let refused = refused.expect("a second writer without --wait is refused");
    assert!(
        refused.contains("being written by another process") && refused.contains("--wait"),
        "{refused}"
    );

    let second = spawn(&["--wait", "300"]);
    let compact = trailhouse(&lake, &["compact", "--wait", "300"]);
    assert_eq!(compact.code, Some(0), "{}", compact.stderr);
    let (first, second) = (
        first.wait_with_output().expect("first"),
        second.wait_with_output().expect("second"),
    );
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{second_err}");
    assert!(
        second_err.contains("waiting for it"),
        "the waiting writer says so: {second_err}"
    );
    let r: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&second.stdout)
            .lines()
            .last()
            .expect("report"),
    )
    .expect("json");
    reconciles(&r);
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 60_000);
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT eventid) FROM cloudtrail"),
        60_000
    );
}

#[test]
fn oversized_and_deeply_nested_records_are_kept_not_crashed_on() {
    let (_dir, src, lake) = scratch();
    let mut big = event("big", "2026-11-01T00:00:01Z", "PutObject", "us-east-1");
    big["requestParameters"] = json!({"policy": "p".repeat(1_500_000)});
    let small = event("small", "2026-11-01T00:00:02Z", "PutObject", "us-east-1");
    // 100,000 levels of nesting: more than any recursive reader's stack takes.
    let deep_value = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep = event("deep", "2026-11-01T00:00:03Z", "PutObject", "us-east-1").to_string();
    let deep = deep.replacen("{", &format!("{{\"nested\":{deep_value},"), 1);
    let body = format!("{{\"Records\":[{big},{small},{deep}]}}");
    let folder = src.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01");
    fs::create_dir_all(&folder).expect("mkdir");
    fs::write(folder.join("odd.json.gz"), gz(body.as_bytes())).expect("write");

    let (run, r) = ingest_json(&lake, &[&src], &["--max-record-size", "1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    reconciles(&r);
    assert_eq!(r["records_written"], 2, "{r}");
    assert_eq!(r["records_quarantined"], 1, "{r}");
    let out = sql_csv(
        &lake,
        "SELECT reason, length(record) > 1500000 AS whole FROM quarantine",
    );
    assert!(
        out.contains("over the limit of 1048576 bytes (--max-record-size)"),
        "{out}"
    );
    assert!(out.contains(",true"), "the record is kept whole: {out}");
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM cloudtrail WHERE length(extra) > 200000"
        ),
        1,
        "the deep record is stored, its unknown member intact"
    );
    let out = trailhouse(&lake, &["export"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2);
    assert!(out.stdout.contains(&format!("\"nested\":{deep_value}")));
}

/// The data files the Delta log of `table` references (adds less removes, over every commit:
/// a checkpoint only summarizes commits, and none is cleaned up).
fn referenced_files(table: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut live = std::collections::BTreeSet::new();
    let mut logs: Vec<_> = files_under(&table.join("_delta_log"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    logs.sort();
    for log in logs {
        for line in fs::read_to_string(&log).expect("log").lines() {
            let action: serde_json::Value = serde_json::from_str(line).expect("action");
            if let Some(p) = action["add"]["path"].as_str() {
                live.insert(p.to_string());
            }
            if let Some(p) = action["remove"]["path"].as_str() {
                live.remove(p);
            }
        }
    }
    live
}

/// Data files on disk under `table`, relative to it.
fn data_files(table: &std::path::Path) -> std::collections::BTreeSet<String> {
    files_under(table)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| !p.starts_with(table.join("_delta_log")))
        .map(|p| p.strip_prefix(table).expect("inside").display().to_string())
        .collect()
}

/// SIGKILL at random moments of an ingest, then a rerun: the table equals an uninterrupted
/// ingest's, and after a vacuum no file is left that the table does not reference. Rounds:
/// `TRAILHOUSE_KILL_ROUNDS` (default 6; the README's long run takes hundreds), seed:
/// `TRAILHOUSE_KILL_SEED` (printed, to replay a failure).
#[test]
fn a_kill_at_any_moment_then_a_rerun_gives_the_uninterrupted_table() {
    use std::process::{Command, Stdio};
    let rounds: u64 = std::env::var("TRAILHOUSE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut seed: u64 = std::env::var("TRAILHOUSE_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill matrix: {rounds} rounds, TRAILHOUSE_KILL_SEED={seed}");
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    for f in 0..8u32 {
        let mut records = padded_records(&format!("k{f}"), 400);
        for (i, r) in records.iter_mut().enumerate() {
            r["eventTime"] = json!(format!(
                "2026-11-{:02}T00:{:02}:{:02}Z",
                f % 4 + 1,
                i / 60 % 60,
                i % 60
            ));
        }
        records.push(json!({"eventName": "NoTime", "eventID": format!("q{f}")}));
        // A re-delivery of the previous file's first record.
        if f > 0 {
            let mut again = padded_records(&format!("k{}", f - 1), 1).remove(0);
            again["eventTime"] = json!(format!("2026-11-{:02}T00:00:00Z", (f - 1) % 4 + 1));
            records.push(again);
        }
        write_trail_file(&src, "us-east-1", f + 1, &format!("f{f}.json.gz"), &records);
    }
    let args = ["--batch-files", "1", "--memory", "1"];
    let clean = dir.path().join("clean");
    let started = std::time::Instant::now();
    let (run, _) = ingest_json(&clean, &[&src], &args);
    let full = started.elapsed();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let want = export_sorted(&clean);
    let want_quarantine = count(&clean, "SELECT count(*) FROM quarantine");
    assert_eq!((want.len(), want_quarantine), (8 * 400, 8));

    let mut killed_midway = 0;
    for round in 0..rounds {
        let lake = dir.path().join(format!("lake-{round}"));
        // Kill once or twice, at any moment from start-up to a little past the clean run's end.
        for _ in 0..1 + random() % 2 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_trailhouse"))
                .arg("--lake")
                .arg(&lake)
                .arg("ingest")
                .args(args)
                .arg(&src)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            let delay = full.mul_f64((random() % 1200) as f64 / 1000.0);
            std::thread::sleep(delay);
            if child.try_wait().expect("wait").is_none() {
                killed_midway += 1;
            }
            child.kill().ok();
            child.wait().expect("reap");
        }
        let (run, r) = ingest_json(&lake, &[&src], &args);
        assert_eq!(run.code, Some(0), "round {round}: {}", run.stderr);
        reconciles(&r);
        assert_eq!(
            export_sorted(&lake),
            want,
            "round {round}: the table differs"
        );
        assert_eq!(
            count(&lake, "SELECT count(*) FROM quarantine"),
            want_quarantine,
            "round {round}"
        );
        let v = trailhouse(&lake, &["vacuum", "--retention-hours", "0"]);
        assert_eq!(v.code, Some(0), "{}", v.stderr);
        for table in ["cloudtrail", "quarantine"] {
            let t = lake.join(table);
            assert_eq!(
                data_files(&t),
                referenced_files(&t),
                "round {round}: orphans in {table}"
            );
        }
    }
    eprintln!("kill matrix: {killed_midway} kills landed while the ingest ran");
    assert!(
        rounds < 4 || killed_midway > 0,
        "no kill landed during an ingest"
    );
}

#[test]
fn damaged_data_files_are_found_taken_out_and_their_sources_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    for d in 1..=3u32 {
        let records: Vec<_> = (0..300)
            .map(|i| {
                event(
                    &format!("d{d}-{i}"),
                    &format!("2026-11-{d:02}T00:{:02}:{:02}Z", i / 60, i % 60),
                    "PutObject",
                    "us-east-1",
                )
            })
            .chain(std::iter::once(
                json!({"eventName": "NoTime", "eventID": format!("q{d}")}),
            ))
            .collect();
        write_trail_file(&src, "us-east-1", d, &format!("f{d}.json.gz"), &records);
    }
    let args = ["--batch-files", "1"];
    let clean = dir.path().join("clean");
    let (run, _) = ingest_json(&clean, &[&src], &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let want = export_sorted(&clean);
    let lake = dir.path().join("lake");
    copy_tree(&clean, &lake);
    let sound = trailhouse(&lake, &["check"]);
    assert_eq!(sound.code, Some(0), "{}", sound.stderr);

    let table = lake.join("cloudtrail");
    let mut files: Vec<_> = data_files(&table).into_iter().collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    // One file damaged in the middle, one deleted.
    let damaged = table.join(&files[0]);
    let mut bytes = fs::read(&damaged).expect("read");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid - 500..mid + 500] {
        *b ^= 0xA5;
    }
    fs::write(&damaged, bytes).expect("write");
    fs::remove_file(table.join(&files[1])).expect("rm");

    let query = trailhouse(
        &lake,
        &["sql", "--format", "csv", "SELECT * FROM cloudtrail"],
    );
    assert_eq!(query.code, Some(2));
    assert!(
        query.stderr.contains("trailhouse check"),
        "{}",
        query.stderr
    );

    let found = trailhouse(&lake, &["check", "--json"]);
    assert_eq!(found.code, Some(1), "{}", found.stderr);
    let r = found.json();
    let named: Vec<&str> = r["damaged"]
        .as_array()
        .expect("damaged")
        .iter()
        .map(|d| d["path"].as_str().expect("path"))
        .collect();
    assert_eq!(named, [files[0].as_str(), files[1].as_str()], "{r}");
    assert!(found.stderr.contains("No such file"), "{}", found.stderr);

    assert_eq!(check_repair(&lake), 2);
    assert_eq!(
        trailhouse(&lake, &["check"]).code,
        Some(0),
        "the table reads whole again"
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 300);

    let (run, r) = ingest_json(&lake, &[&src], &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["records_written"], 600, "{r}");
    assert_eq!(
        export_sorted(&lake),
        want,
        "the sources restore exactly the lost rows"
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM quarantine"),
        3,
        "the batches read again do not quarantine their records twice"
    );

    // A commit of the log cut short: every command names it. (Readers start from the latest
    // checkpoint and read only the commits after it: without checkpoints they read them all.)
    let cut = dir.path().join("cut");
    copy_tree(&clean, &cut);
    for file in files_under(&cut.join("cloudtrail/_delta_log")) {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "_last_checkpoint" || name.ends_with(".checkpoint.parquet") {
            fs::remove_file(&file).expect("remove checkpoint");
        }
    }
    let commit = cut.join("cloudtrail/_delta_log/00000000000000000002.json");
    let text = fs::read(&commit).expect("commit");
    fs::write(&commit, &text[..text.len() / 2]).expect("cut");
    let s = src.display().to_string();
    for args in [
        &["sql", "SELECT count(*) FROM cloudtrail"][..],
        &["check"],
        &["ingest", &s],
    ] {
        let out = trailhouse(&cut, args);
        assert_eq!(out.code, Some(2), "{args:?}");
        assert!(
            out.stderr.contains("the table's log is damaged")
                && out.stderr.contains("00000000000000000002.json"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "one line, no backtrace: {}",
            out.stderr
        );
    }
}

#[test]
fn a_write_that_fails_for_space_commits_nothing_and_the_rerun_completes() {
    use std::process::Command;
    let (dir, src, lake) = scratch();
    for f in 0..3 {
        write_trail_file(
            &src,
            "us-east-1",
            1,
            &format!("f{f}.json.gz"),
            &padded_records(&format!("f{f}"), 3000),
        );
    }
    let clean = dir.path().join("clean");
    let (run, _) = ingest_json(&clean, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let want = export_sorted(&clean);

    // The lake exists (its tables created); then the file system refuses writes past 8 KB per file (as a full disk refuses any): the
    // shell's `ulimit -f`, with SIGXFSZ ignored so that the write fails instead of the process.
    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).expect("mkdir");
    assert_eq!(ingest_json(&lake, &[&empty], &[]).0.code, Some(0));
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_trailhouse"))
        .arg("--lake")
        .arg(&lake)
        .arg("ingest")
        .arg(&src)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("File too large") && stderr.contains(".parquet"),
        "the file is named: {stderr}"
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM cloudtrail"),
        0,
        "nothing committed half"
    );

    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    reconciles(&r);
    assert_eq!(export_sorted(&lake), want);
    let v = trailhouse(&lake, &["vacuum", "--retention-hours", "0"]);
    assert_eq!(v.code, Some(0), "{}", v.stderr);
    let t = lake.join("cloudtrail");
    assert_eq!(
        data_files(&t),
        referenced_files(&t),
        "the half-written file is vacuumed"
    );
}

#[test]
fn a_failed_file_read_again_does_not_quarantine_its_records_twice() {
    let (_dir, src, lake) = scratch();
    fs::create_dir_all(&src).expect("mkdir");
    // A quarantined record and a good one, then the file breaks.
    let body = json!({"Records": [
        {"eventName": "NoTime", "eventID": "q1"},
        event("e1", "2026-11-01T00:00:00Z", "GetObject", "us-east-1"),
        event("e2", "2026-11-01T00:00:01Z", "GetObject", "us-east-1"),
    ]})
    .to_string();
    fs::write(src.join("cut.json"), &body[..body.len() - 100]).expect("write");
    for run in 0..3 {
        let (out, r) = ingest_json(&lake, &[&src], &[]);
        assert_eq!(
            out.code,
            Some(1),
            "the file fails every time: {}",
            out.stderr
        );
        reconciles(&r);
        assert_eq!(r["records_read"], 2, "{r}");
        let (quarantined, duplicate) = if run == 0 { (1, 0) } else { (0, 2) };
        assert_eq!(r["records_quarantined"], quarantined, "run {run}: {r}");
        assert_eq!(r["records_duplicate"], duplicate, "run {run}: {r}");
    }
    assert_eq!(count(&lake, "SELECT count(*) FROM quarantine"), 1);
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 1);
}

#[test]
fn a_damaged_log_file_fails_by_name_while_other_files_beside_it_are_skipped() {
    let (_dir, src, lake) = scratch();
    let good = write_trail_file(
        &src,
        "us-east-1",
        1,
        "good.json.gz",
        &padded_records("ok", 3),
    );
    let folder = good.parent().expect("folder");
    // Named and placed as CloudTrail delivers a log file, but neither gzip nor JSON.
    let damaged = "111122223333_CloudTrail_us-east-1_20261101T0000Z_AbCdEfGhIjKlMnOp.json.gz";
    fs::write(folder.join(damaged), b"\x00\x01damaged").expect("write");
    // Not a log file's name: other data kept beside the trail.
    fs::write(folder.join("NOTES.txt"), b"kept by the team").expect("write");

    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(
        run.code,
        Some(1),
        "a damaged file is exit 1: {}",
        run.stderr
    );
    reconciles(&r);
    assert_eq!(r["files_loaded"], 1, "{r}");
    assert_eq!(r["files_failed"], 1, "{r}");
    assert_eq!(r["files_skipped_other"], 1, "{r}");
    first_failure_is(&r, damaged, "not gzip");
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 3);
}
