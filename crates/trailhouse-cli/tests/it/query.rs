//! `trailhouse sql` and `export`: read-only SQL, formats, partition pruning.

use std::path::Path;

use serde_json::json;

use crate::support::*;

fn small_lake() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, src, lake) = scratch();
    for (d, region) in [
        (1, "us-east-1"),
        (1, "eu-west-1"),
        (2, "us-east-1"),
        (3, "eu-west-1"),
    ] {
        write_trail_file(
            &src,
            region,
            d,
            &format!("{region}-{d}.json.gz"),
            &[event(
                &format!("{region}-{d}"),
                &format!("2026-11-{d:02}T12:00:00Z"),
                "DeleteBucket",
                region,
            )],
        );
    }
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    (dir, lake)
}

#[test]
fn writing_statements_are_refused() {
    let (_dir, lake) = small_lake();
    for sql in [
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO cloudtrail SELECT * FROM cloudtrail",
        "DROP TABLE cloudtrail",
    ] {
        let r = trailhouse(&lake, &["sql", sql]);
        assert_eq!(r.code, Some(2), "{sql}: {}", r.stdout);
        assert!(
            r.stderr.contains("only queries are allowed"),
            "{sql}: {}",
            r.stderr
        );
    }
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 4);
}

#[test]
fn a_day_reads_only_its_files_and_a_region_only_the_files_that_hold_it() {
    let (_dir, lake) = small_lake();
    let files = |sql: &str| {
        let plan = sql_csv(&lake, &format!("EXPLAIN {sql}"));
        let days: Vec<&str> = ["day=2026-11-01/", "day=2026-11-02/", "day=2026-11-03/"]
            .into_iter()
            .filter(|d| plan.contains(d))
            .collect();
        days.join(" ")
    };
    // One partition per day: its file holds every region of the day.
    assert_eq!(
        files("SELECT eventid FROM cloudtrail WHERE day = DATE '2026-11-01'"),
        "day=2026-11-01/"
    );
    // A region is pruned by the files' statistics: 2026-11-02 saw only us-east-1.
    assert_eq!(
        files("SELECT eventid FROM cloudtrail WHERE region = 'eu-west-1'"),
        "day=2026-11-01/ day=2026-11-03/"
    );
    let out = sql_csv(
        &lake,
        "SELECT eventid FROM cloudtrail WHERE day = '2026-11-01' AND region = 'eu-west-1'",
    );
    assert_eq!(out, "eventid\neu-west-1-1\n");
}

#[test]
fn formats_and_errors() {
    let (_dir, lake) = small_lake();
    let sql = "SELECT eventid, useridentity.username AS who, readonly FROM cloudtrail WHERE region = 'us-east-1' ORDER BY eventid";
    let r = trailhouse(&lake, &["sql", "--format", "json", sql]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(
        v,
        json!([{"eventid": "us-east-1-1", "who": "alice", "readonly": false},
                         {"eventid": "us-east-1-2", "who": "alice", "readonly": false}])
    );
    let r = trailhouse(&lake, &["sql", "--format", "ndjson", sql]);
    assert_eq!(r.stdout.lines().count(), 2);
    let r = trailhouse(&lake, &["sql", "--format", "table", sql]);
    assert!(r.stdout.contains("| us-east-1-1 | alice"), "{}", r.stdout);
    // Nested values in CSV are written as text.
    let out = sql_csv(&lake, "SELECT useridentity FROM cloudtrail LIMIT 1");
    assert!(out.contains("alice"), "{out}");

    let r = trailhouse(&lake, &["sql", "SELECT nosuchcolumn FROM cloudtrail"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("nosuchcolumn"), "{}", r.stderr);
    // A script of statements is refused with what to do, before any runs; a `;` in a string
    // or after the one statement is no second statement.
    let r = trailhouse(&lake, &["sql", "SELECT 1; SELECT ';' AS semicolon;"]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("runs one statement, and this holds 2"),
        "{}",
        r.stderr
    );
    let r = trailhouse(&lake, &["sql", "--format", "csv", "SELECT ';' AS s;"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "s\n;\n"),
        "{}",
        r.stderr
    );

    let missing = lake.with_file_name("nothing-here");
    let r = trailhouse(&missing, &["sql", "SELECT 1"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("run `trailhouse ingest` first"),
        "{}",
        r.stderr
    );
}

#[test]
fn lake_option_goes_before_or_after_the_subcommand() {
    let (_dir, lake) = small_lake();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhouse"))
        .args([
            "sql",
            "--format",
            "csv",
            "SELECT count(*) FROM cloudtrail",
            "--lake",
        ])
        .arg(&lake)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count(*)\n4\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhouse"))
        .args(["sql", "--format", "csv", "SELECT count(*) FROM cloudtrail"])
        .env("TRAILHOUSE_LAKE", &lake)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count(*)\n4\n");
}

/// `n` deliveries of one event each (`c0`, `c1`, …) on 2026-11-01, an hour apart.
fn deliveries_of_one_day(src: &std::path::Path, n: u32) {
    for f in 0..n {
        write_trail_file(
            src,
            "us-east-1",
            1,
            &format!("{f}.json.gz"),
            &[event(
                &format!("c{f}"),
                &format!("2026-11-01T0{f}:00:00Z"),
                "PutObject",
                "us-east-1",
            )],
        );
    }
}

#[test]
fn compact_and_vacuum_keep_every_record() {
    let (_dir, src, lake) = scratch();
    deliveries_of_one_day(&src, 5);
    // One batch per file: five files in one partition.
    let (run, ingested) = ingest_json(&lake, &[&src], &["--batch-files", "1", "--no-compact"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let before = export_sorted(&lake);
    assert_eq!(files_of_day(&lake, "2026-11-01"), 5);
    let ingested = ingested["table_version"].as_u64();

    let r = trailhouse(&lake, &["compact"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("compacted 5 files into 1"),
        "{}",
        r.stderr
    );
    assert_eq!(files_of_day(&lake, "2026-11-01"), 1);
    assert!(
        checkpointed(&lake) > ingested,
        "the compaction's commit is checkpointed"
    );
    assert_eq!(export_sorted(&lake), before);

    // The compacted-away files are unreferenced; with no retention they go.
    let r = trailhouse(&lake, &["vacuum", "--retention-hours", "0"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 5, "{}", r.stdout);
    assert_eq!(export_sorted(&lake), before);

    // Ingest still deduplicates against the compacted file.
    write_trail_file(
        &src,
        "us-east-1",
        2,
        "again.json.gz",
        &[event(
            "c3",
            "2026-11-01T03:00:00Z",
            "PutObject",
            "us-east-1",
        )],
    );
    let (_, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(r["records_duplicate"], 1, "{r}");
}

#[test]
fn call_summaries_follow_the_files_that_compact_and_vacuum_replace() {
    let (_dir, src, lake) = scratch();
    deliveries_of_one_day(&src, 5);
    write_trail_file(
        &src,
        "eu-west-1",
        1,
        "other-calls.json.gz",
        &[
            event("g1", "2026-11-01T05:00:00Z", "GetObject", "eu-west-1"),
            event("g2", "2026-11-01T07:00:00Z", "GetObject", "eu-west-1"),
            event("d1", "2026-11-01T06:00:00Z", "DeleteObject", "eu-west-1"),
        ],
    );
    let (run, _) = ingest_json(&lake, &[&src], &["--batch-files", "1", "--no-compact"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let summarised = "SELECT principal, eventsource, eventname, sum(calls) AS calls, \
                      min(first_seen) AS first_seen, max(last_seen) AS last_seen \
                      FROM call_summary GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let counted = "SELECT actor(useridentity) AS principal, eventsource, eventname, \
                   count(*) AS calls, min(eventtime) AS first_seen, max(eventtime) AS last_seen \
                   FROM cloudtrail GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let truth = sql_csv(&lake, counted);
    assert_eq!(truth.lines().count(), 4, "{truth}");
    let kept_dir = lake.join("_trailhouse/call-summary/v1/day=2026-11-01");
    let kept = || std::fs::read_dir(&kept_dir).map_or(0, |d| d.count());
    assert_eq!(kept(), 0);
    assert_eq!(sql_csv(&lake, summarised), truth);
    // One summary per data file, read again by the next query (not made again).
    assert_eq!((files_of_day(&lake, "2026-11-01"), kept()), (6, 6));
    let written = || {
        let mut times: Vec<_> = std::fs::read_dir(&kept_dir)
            .expect("kept")
            .map(|e| {
                let e = e.expect("entry");
                (e.file_name(), e.metadata().and_then(|m| m.modified()).ok())
            })
            .collect();
        times.sort();
        times
    };
    let before = written();
    assert_eq!(sql_csv(&lake, summarised), truth);
    assert_eq!(written(), before);

    // The compacted file is summarised in turn; a vacuum removes its inputs' summaries.
    let r = trailhouse(&lake, &["compact"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(sql_csv(&lake, summarised), truth);
    assert_eq!(kept(), 7);
    let r = trailhouse(&lake, &["vacuum", "--retention-hours", "0"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(kept(), 1);
    assert_eq!(sql_csv(&lake, summarised), truth);

    // A summary damaged (cut short, overwritten) is made again.
    let kept_file = std::fs::read_dir(&kept_dir)
        .expect("kept")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    std::fs::write(&kept_file, "not parquet").expect("damage");
    assert_eq!(sql_csv(&lake, summarised), truth);
    assert!(std::fs::metadata(&kept_file).expect("kept").len() > 100);
    assert_eq!(sql_csv(&lake, summarised), truth);

    // Where no summary can be kept, each query makes them in memory, with the same answer.
    std::fs::remove_dir_all(lake.join("_trailhouse/call-summary")).expect("remove");
    std::fs::write(lake.join("_trailhouse/call-summary"), "in the way").expect("write");
    assert_eq!(sql_csv(&lake, summarised), truth);
}

/// The data files a query of `day` reads.
fn files_of_day(lake: &std::path::Path, day: &str) -> usize {
    let plan = sql_csv(
        lake,
        &format!("EXPLAIN SELECT eventid FROM cloudtrail WHERE day = '{day}'"),
    );
    plan.matches(".zstd.parquet").count()
}

#[test]
fn ingest_compacts_the_days_its_batches_left_with_many_files() {
    let (_dir, src, lake) = scratch();
    // Six deliveries of 2026-11-01, read one per batch, and one of the 2nd.
    deliveries_of_one_day(&src, 6);
    write_trail_file(
        &src,
        "us-east-1",
        2,
        "next-day.json.gz",
        &[event(
            "d1",
            "2026-11-02T01:00:00Z",
            "PutObject",
            "us-east-1",
        )],
    );
    let (_odir, osrc, left) = scratch();
    copy_tree(&src, &osrc);
    let (run, r) = ingest_json(&left, &[&osrc], &["--batch-files", "1", "--no-compact"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        (
            r["partitions_compacted"].as_u64(),
            files_of_day(&left, "2026-11-01")
        ),
        (Some(0), 6)
    );

    let (run, r) = ingest_json(&lake, &[&src], &["--batch-files", "1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // The 1st (six files) is compacted; the 2nd (one file) is left as it is.
    assert_eq!(
        (
            r["partitions_compacted"].as_u64(),
            r["files_compacted"].as_u64()
        ),
        (Some(1), Some(6)),
        "{r}"
    );
    assert!(
        run.stderr.contains("compacted:  6 files of 1 days"),
        "{}",
        run.stderr
    );
    assert_eq!(files_of_day(&lake, "2026-11-01"), 1);
    assert_eq!(files_of_day(&lake, "2026-11-02"), 1);
    assert_eq!(export_sorted(&lake), export_sorted(&left));

    // The next run deduplicates against the compacted file, and a day with two files (one
    // compacted, one new) stays as it is.
    write_trail_file(
        &src,
        "us-east-1",
        3,
        "late.json.gz",
        &[
            event("c3", "2026-11-01T03:00:00Z", "PutObject", "us-east-1"),
            event("c9", "2026-11-01T09:00:00Z", "PutObject", "us-east-1"),
        ],
    );
    let (_, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(
        (
            r["records_duplicate"].as_u64(),
            r["records_written"].as_u64(),
            r["partitions_compacted"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{r}"
    );
    assert_eq!(files_of_day(&lake, "2026-11-01"), 2);
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 8);
}

#[test]
fn the_window_of_a_saved_query_prunes_files_by_eventtime() {
    let (_dir, lake) = small_lake();
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "who-deleted",
            "--param",
            "resource=b1",
            "--explain",
            "--format",
            "csv",
        ];
        args.extend_from_slice(extra);
        let r = trailhouse(&lake, &args);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        r.stdout
    };
    let all = plan(&[]);
    assert!(
        all.contains("day=2026-11-01") && all.contains("day=2026-11-03"),
        "{all}"
    );
    let window = plan(&["--since", "2026-11-03", "--until", "2026-11-04"]);
    // The window's scan reads only the files of that day (Delta file statistics on
    // eventtime); who minted a key is looked up as the query runs, not scanned.
    assert!(window.contains("CredentialsLookupJoinExec"), "{window}");
    assert!(!window.contains("CredentialsExec"), "{window}");
    let scans: Vec<&str> = window.split("DataSourceExec").skip(1).collect();
    assert!(!scans.is_empty(), "{window}");
    for scan in scans {
        let files = scan
            .split("file_groups=")
            .nth(1)
            .and_then(|f| f.split("]]}").next())
            .unwrap_or("");
        assert!(files.contains("day=2026-11-03/"), "{scan}");
        assert!(
            !files.contains("day=2026-11-01") && !files.contains("day=2026-11-02"),
            "{scan}"
        );
        // The day's file lies inside the window, so its rows are not compared with it.
        let scan = scan.split('\n').next().unwrap_or("");
        assert!(!scan.contains("eventtime@"), "{scan}");
    }
    let r = trailhouse(
        &lake,
        &[
            "run",
            "who-deleted",
            "--param",
            "resource=b1",
            "--since",
            "2026-11-03",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    let r = trailhouse(
        &lake,
        &[
            "run",
            "who-deleted",
            "--param",
            "resource=b1",
            "--since",
            "last tuesday",
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("--since `last tuesday` is not a date"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_window_compares_the_rows_of_the_files_at_its_edges_only() {
    let (_dir, src, lake) = scratch();
    // One file a day; the first day's times have fractions of a second, its last one finer
    // than the millisecond bounds the Delta log keeps.
    let days: [(u32, &[&str]); 3] = [
        (
            1,
            &[
                "2026-11-01T00:00:00Z",
                "2026-11-01T12:00:00.250Z",
                "2026-11-01T12:00:00.750Z",
                "2026-11-01T23:59:59.999999Z",
            ],
        ),
        (2, &["2026-11-02T06:00:00Z", "2026-11-02T18:00:00Z"]),
        (3, &["2026-11-03T00:00:00Z"]),
    ];
    for (d, times) in days {
        let events: Vec<_> = times
            .iter()
            .map(|t| event(t, t, "DeleteBucket", "us-east-1"))
            .collect();
        write_trail_file(&src, "us-east-1", d, &format!("{d}.json.gz"), &events);
    }
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let ids = |filter: &str| -> Vec<String> {
        sql_csv(
            &lake,
            &format!("SELECT eventid FROM cloudtrail WHERE {filter} ORDER BY eventid"),
        )
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
    };
    let edges = "eventtime >= TIMESTAMP '2026-11-01T12:00:00.5Z' \
                 AND eventtime < TIMESTAMP '2026-11-03T00:00:00Z'";
    for (filter, expected) in [
        (edges, 4),
        (
            "eventtime BETWEEN TIMESTAMP '2026-11-01T12:00:00.25Z' \
             AND TIMESTAMP '2026-11-02T06:00:00Z'",
            4,
        ),
        ("eventtime <= TIMESTAMP '2026-11-01T23:59:59.999999Z'", 4),
        ("eventtime < TIMESTAMP '2026-11-01T23:59:59.999999Z'", 3),
        (
            "eventtime > TIMESTAMP '2026-11-01T00:00:00Z' \
             AND eventtime <> TIMESTAMP '2026-11-02T18:00:00Z'",
            5,
        ),
        ("eventtime = TIMESTAMP '2026-11-03T00:00:00Z'", 1),
    ] {
        let direct = ids(filter);
        assert_eq!(direct.len(), expected, "{filter}: {direct:?}");
        // The same filter over an expression of eventtime, which the scan leaves to DataFusion
        // to compare with every row.
        let compared = ids(&filter.replace("eventtime", "(eventtime + INTERVAL '0 seconds')"));
        assert_eq!(direct, compared, "{filter}");
    }
    // A limit the scan is given stops at rows inside the window.
    let inside = ids(edges);
    let limited = sql_csv(
        &lake,
        &format!("SELECT eventid FROM cloudtrail WHERE {edges} LIMIT 2"),
    );
    let limited: Vec<&str> = limited.lines().skip(1).collect();
    assert_eq!(limited.len(), 2, "{limited:?}");
    assert!(
        limited.iter().all(|id| inside.iter().any(|i| i == id)),
        "{limited:?} not all in {inside:?}"
    );
    // The edge's file is compared with the window, the file inside it is not; each scan
    // reads only the struct field the query names.
    let plan = sql_csv(
        &lake,
        &format!("EXPLAIN SELECT useridentity.arn FROM cloudtrail WHERE {edges}"),
    );
    let scans: Vec<&str> = plan
        .split("DataSourceExec")
        .skip(1)
        .map(|s| s.split('\n').next().unwrap_or(""))
        .collect();
    assert_eq!(scans.len(), 2, "{plan}");
    for scan in scans {
        assert!(scan.contains("get_field(useridentity"), "{scan}");
        if scan.contains("day=2026-11-01") {
            assert!(!scan.contains("day=2026-11-02"), "{scan}");
            assert!(scan.contains("eventtime@"), "{scan}");
        } else {
            assert!(scan.contains("day=2026-11-02"), "{scan}");
            assert!(!scan.contains("eventtime@"), "{scan}");
        }
    }
}

#[test]
fn a_saved_querys_setting_holds_for_that_query_and_a_bad_one_is_refused_by_name() {
    let (dir, lake) = small_lake();
    let mine = dir.path().join("queries/mine");
    std::fs::create_dir_all(&mine).expect("mkdir");
    let body = "SELECT (SELECT value FROM information_schema.df_settings \
                WHERE name = 'datafusion.optimizer.join_reordering') AS reordering, \
                count(*) AS events FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until";
    std::fs::write(
        mine.join("pinned.sql"),
        format!(
            "-- summary: the setting as the query sees it\n\
             -- setting: datafusion.optimizer.join_reordering = false\n{body}\n"
        ),
    )
    .expect("write");
    let queries = dir.path().join("queries").display().to_string();
    let r = trailhouse(
        &lake,
        &[
            "run",
            "mine/pinned",
            "--queries",
            &queries,
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "reordering,events\nfalse,4\n");
    let plain = sql_csv(
        &lake,
        "SELECT value FROM information_schema.df_settings \
         WHERE name = 'datafusion.optimizer.join_reordering'",
    );
    assert_eq!(plain, "value\ntrue\n");

    std::fs::write(
        mine.join("pinned.sql"),
        format!("-- summary: x\n-- setting: datafusion.optimizer.join_order = false\n{body}\n"),
    )
    .expect("write");
    let r = trailhouse(&lake, &["run", "mine/pinned", "--queries", &queries]);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("saved query `mine/pinned`")
            && r.stderr.contains("datafusion.optimizer.join_order"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_saved_querys_parquet_setting_reaches_the_lakes_scan() {
    let (dir, lake) = small_lake();
    let mine = dir.path().join("queries/mine");
    std::fs::create_dir_all(&mine).expect("mkdir");
    let body = "SELECT eventid FROM cloudtrail \
                WHERE eventtime >= $since AND eventtime < $until AND eventname = 'DeleteBucket'";
    let queries = dir.path().join("queries").display().to_string();
    let plan = |setting: &str| {
        std::fs::write(
            mine.join("deletes.sql"),
            format!("-- summary: deletions\n{setting}{body}\n"),
        )
        .expect("write");
        let r = trailhouse(
            &lake,
            &["run", "mine/deletes", "--queries", &queries, "--explain"],
        );
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        r.stdout
    };
    // By default the filter is pushed into the Parquet scan, which filters rows as it decodes.
    let pushed = plan("");
    assert!(!pushed.contains("FilterExec"), "{pushed}");
    assert!(pushed.contains("predicate=eventname@"), "{pushed}");
    // Turned off for this query, the filter stays above the scan.
    let kept = plan("-- setting: datafusion.execution.parquet.pushdown_filters = false\n");
    assert!(kept.contains("FilterExec"), "{kept}");
}

#[test]
fn new_behaviour_reads_the_baseline_from_the_call_summary_not_from_its_calls() {
    let (_dir, lake) = small_lake();
    let r = trailhouse(
        &lake,
        &[
            "run",
            "new-behaviour",
            "--since",
            "2026-11-03",
            "--explain",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // The baseline (the days before the 3rd) is read from the summaries of its two files; the
    // calls themselves are read only for the window (the 3rd): the baseline's first day, read
    // as calls, holds no file.
    let plan = r.stdout.split("HashJoinExec").nth(1).expect("a hash join");
    let summaries = |day: &str| format!("_trailhouse/call-summary/v1/day=2026-11-{day}/");
    let calls = |day: &str| format!("cloudtrail/day=2026-11-{day}/");
    assert!(plan.contains(&summaries("01")), "{plan}");
    assert!(plan.contains(&summaries("02")), "{plan}");
    assert!(!plan.contains(&summaries("03")), "{plan}");
    assert!(
        !plan.contains(&calls("01")) && !plan.contains(&calls("02")),
        "{plan}"
    );
    assert!(plan.contains(&calls("03")), "{plan}");
    // Kept beside the lake for the next query.
    for day in ["01", "02"] {
        let kept = std::fs::read_dir(lake.join(summaries(day)))
            .expect("kept")
            .count();
        assert_eq!(kept, 1, "day {day}");
    }
}

/// An STS call minting `minted` for the caller holding `caller_key`.
fn assume_role(
    id: &str,
    time: &str,
    caller_arn: &str,
    caller_key: &str,
    minted: &str,
) -> serde_json::Value {
    let mut e = event(id, time, "AssumeRole", "us-east-1");
    e["eventSource"] = json!("sts.amazonaws.com");
    e["userIdentity"] = json!({"type": "AssumedRole", "arn": caller_arn, "accessKeyId": caller_key, "accountId": "111122223333"});
    e["requestParameters"] =
        json!({"roleArn": "arn:aws:iam::111122223333:role/Next", "roleSessionName": "s"});
    e["responseElements"] =
        json!({"credentials": {"accessKeyId": minted, "expiration": "Nov 3, 2026, 11:00:00 PM"}});
    e
}

#[test]
fn the_credentials_table_follows_each_ingest_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    let mut first = assume_role(
        "m1",
        "2026-11-01T10:00:00Z",
        "arn:aws:iam::111122223333:user/alice",
        "AKIAALICE",
        "ASIAONE",
    );
    first["userIdentity"]["type"] = json!("IAMUser");
    write_trail_file(&src, "us-east-1", 1, "a.json.gz", &[first]);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let q = "SELECT minted_key, origin, origin_call, hops FROM credentials ORDER BY minted_key";
    assert_eq!(
        sql_csv(&lake, q),
        "minted_key,origin,origin_call,hops\nASIAONE,arn:aws:iam::111122223333:user/alice,AssumeRole,1\n"
    );
    // A later delivery chains a second role from the first session, the next morning.
    let second = assume_role(
        "m2",
        "2026-11-02T09:00:00Z",
        "arn:aws:sts::111122223333:assumed-role/Next/s",
        "ASIAONE",
        "ASIATWO",
    );
    write_trail_file(&src, "us-east-1", 2, "b.json.gz", &[second]);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let expected = "minted_key,origin,origin_call,hops\n\
        ASIAONE,arn:aws:iam::111122223333:user/alice,AssumeRole,1\n\
        ASIATWO,arn:aws:iam::111122223333:user/alice,AssumeRole,2\n";
    assert_eq!(sql_csv(&lake, q), expected);
    // The same rows when only one key is asked for, which looks up just that key.
    assert_eq!(
        sql_csv(
            &lake,
            "SELECT minted_key, origin, origin_call, hops FROM credentials WHERE minted_key = 'ASIATWO'"
        ),
        "minted_key,origin,origin_call,hops\nASIATWO,arn:aws:iam::111122223333:user/alice,AssumeRole,2\n"
    );
    assert!(
        !lake.join("_trailhouse/credentials").exists(),
        "nothing is derived or stored beside the table"
    );
}

/// STS calls over two days: the second chains a role from the first's session and holds the
/// preferred copy (named by ARN) of a call the first had only the role account's copy of.
fn two_deliveries_of_sts_calls(
    src: &std::path::Path,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut one = assume_role(
        "m1",
        "2026-11-01T10:00:00Z",
        "arn:aws:iam::111122223333:user/alice",
        "AKIAALICE",
        "ASIAONE",
    );
    one["userIdentity"]["type"] = json!("IAMUser");
    // Copies of one call in two accounts, delivered a day apart.
    let bob = |id: &str, time: &str, arn: Option<&str>| {
        let mut e = assume_role(id, time, "", "AKIABOB", "ASIATHREE");
        e["userIdentity"] = match arn {
            Some(arn) => json!({"type": "IAMUser", "arn": arn, "accessKeyId": "AKIABOB"}),
            None => {
                json!({"type": "AWSAccount", "principalId": "AIDABOB", "accountId": "444455556666"})
            }
        };
        e
    };
    let two = assume_role(
        "m2",
        "2026-11-02T09:00:00Z",
        "arn:aws:sts::111122223333:assumed-role/Next/s",
        "ASIAONE",
        "ASIATWO",
    );
    let first = vec![one, bob("z3", "2026-11-01T11:00:00Z", None)];
    let second = vec![
        two,
        bob(
            "y3",
            "2026-11-01T11:00:00Z",
            Some("arn:aws:iam::444455556666:user/bob"),
        ),
    ];
    write_trail_file(src, "us-east-1", 1, "a.json.gz", &first);
    (first, second)
}

#[test]
fn the_copy_of_a_call_that_names_its_caller_is_preferred_whenever_it_arrives() {
    let q = "SELECT minted_key, caller, eventid, origin, hops FROM credentials ORDER BY minted_key";
    let expected = "minted_key,caller,eventid,origin,hops\n\
        ASIAONE,arn:aws:iam::111122223333:user/alice,m1,arn:aws:iam::111122223333:user/alice,1\n\
        ASIATHREE,arn:aws:iam::444455556666:user/bob,y3,arn:aws:iam::444455556666:user/bob,1\n\
        ASIATWO,arn:aws:sts::111122223333:assumed-role/Next/s,m2,arn:aws:iam::111122223333:user/alice,2\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    let (_, second) = two_deliveries_of_sts_calls(&src);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(sql_csv(&lake, q).contains("ASIATHREE,AIDABOB,z3,"));
    write_trail_file(&src, "us-east-1", 2, "b.json.gz", &second);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(sql_csv(&lake, q), expected);
    // Compaction rewrites the files: the same rows.
    let r = trailhouse(&lake, &["compact"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(sql_csv(&lake, q), expected);
}

#[test]
fn a_join_on_minted_key_is_a_lookup_and_gives_the_rows_a_plain_join_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    let mut root = assume_role(
        "m1",
        "2026-11-01T10:00:00Z",
        "arn:aws:iam::111122223333:user/alice",
        "AKIAALICE",
        "ASIAONE",
    );
    root["userIdentity"]["type"] = json!("IAMUser");
    let chained = assume_role(
        "m2",
        "2026-11-01T10:30:00Z",
        "arn:aws:sts::111122223333:assumed-role/Next/s",
        "ASIAONE",
        "ASIATWO",
    );
    let early = assume_role(
        "m3",
        "2026-11-01T11:00:00Z",
        "arn:aws:iam::111122223333:user/carol",
        "AKIACAROL",
        "ASIAEARLY",
    );
    let use_of = |id: &str, time: &str, key: &str| {
        let mut e = event(id, time, "DeleteBucket", "us-east-1");
        e["userIdentity"] = json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Next/s", "accessKeyId": key});
        e
    };
    write_trail_file(&src, "us-east-1", 1, "a.json.gz", &[root, chained, early]);
    write_trail_file(
        &src,
        "us-east-1",
        2,
        "b.json.gz",
        &[
            use_of("u1", "2026-11-01T12:00:00Z", "ASIATWO"),
            // Used more than 36 hours after its minting: no STS credential lives that long.
            use_of("u2", "2026-11-03T00:00:01Z", "ASIAEARLY"),
            use_of("u3", "2026-11-01T12:00:00Z", "ASIANEVERMINTED"),
            use_of("u4", "2026-11-02T22:00:00Z", "ASIAEARLY"),
        ],
    );
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let join = |credentials: &str| {
        format!(
            "SELECT h.eventid, c.minted_key, c.origin, c.hops FROM cloudtrail h \
             LEFT JOIN {credentials} c ON c.minted_key = h.useridentity.accesskeyid \
              AND c.eventtime BETWEEN h.eventtime - INTERVAL '36 hours' AND h.eventtime \
             WHERE h.eventname = 'DeleteBucket' ORDER BY h.eventid"
        )
    };
    let looked_up = join("credentials");
    let plan = sql_csv(&lake, &format!("EXPLAIN {looked_up}"));
    assert!(plan.contains("CredentialsLookupJoinExec"), "{plan}");
    assert!(!plan.contains("CredentialsExec"), "{plan}");
    let expected = "eventid,minted_key,origin,hops\n\
        u1,ASIATWO,arn:aws:iam::111122223333:user/alice,2\n\
        u2,,,\n\
        u3,,,\n\
        u4,ASIAEARLY,arn:aws:iam::111122223333:user/carol,1\n";
    assert_eq!(sql_csv(&lake, &looked_up), expected);
    // Over a filtered scan: still a lookup, the filter checked on each match.
    let filtered = join("(SELECT * FROM credentials WHERE hops > 1)");
    assert!(sql_csv(&lake, &format!("EXPLAIN {filtered}")).contains("CredentialsLookupJoinExec"));
    assert_eq!(
        sql_csv(&lake, &filtered),
        "eventid,minted_key,origin,hops\n\
         u1,ASIATWO,arn:aws:iam::111122223333:user/alice,2\nu2,,,\nu3,,,\nu4,,,\n"
    );
    // The same join over a subquery the rule does not recognise (it computes a column) is
    // planned as DataFusion's own join of the whole table: the same rows.
    let plain = join(
        "(SELECT upper(lower(minted_key)) AS minted_key, eventtime, origin, hops FROM credentials)",
    );
    let plan = sql_csv(&lake, &format!("EXPLAIN {plain}"));
    assert!(plan.contains("CredentialsExec"), "{plan}");
    assert_eq!(sql_csv(&lake, &plain), expected);
    // An inner join with credentials on the left keeps only the rows with a match.
    let inner = "SELECT h.eventid, c.minted_key FROM credentials c JOIN cloudtrail h \
                 ON h.useridentity.accesskeyid = c.minted_key WHERE h.eventname = 'DeleteBucket' \
                 ORDER BY h.eventid";
    assert!(sql_csv(&lake, &format!("EXPLAIN {inner}")).contains("CredentialsLookupJoinExec"));
    assert_eq!(
        sql_csv(&lake, inner),
        "eventid,minted_key\nu1,ASIATWO\nu2,ASIAEARLY\nu4,ASIAEARLY\n"
    );
}

#[test]
fn files_without_the_event_name_asked_for_are_skipped_by_their_bloom_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    // Two partitions, each a file of AssumeRole and PutObject: DeleteBucket and GetObject sort
    // between the two, so the min/max statistics cannot rule the files out; the filters can.
    for (d, region) in [(1, "us-east-1"), (2, "eu-west-1")] {
        let events: Vec<_> = ["AssumeRole", "PutObject"]
            .iter()
            .map(|name| {
                event(
                    &format!("{name}-{d}"),
                    &format!("2026-11-0{d}T10:00:00Z"),
                    name,
                    region,
                )
            })
            .collect();
        write_trail_file(&src, region, d, "f.json.gz", &events);
    }
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let metric = |sql: &str| {
        let plan = sql_csv(&lake, &format!("EXPLAIN ANALYZE {sql}"));
        let at = plan
            .find("row_groups_pruned_bloom_filter=")
            .unwrap_or_else(|| panic!("no bloom filter metric: {plan}"));
        plan[at..]
            .split([',', ']'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        metric("SELECT count(*) FROM cloudtrail WHERE eventname IN ('DeleteBucket', 'GetObject')"),
        "row_groups_pruned_bloom_filter=2 total → 0 matched"
    );
    assert_eq!(
        metric("SELECT count(*) FROM cloudtrail WHERE eventname = 'PutObject'"),
        "row_groups_pruned_bloom_filter=2 total → 2 matched"
    );
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM cloudtrail WHERE eventname = 'PutObject'"
        ),
        2
    );
}

#[test]
fn resource_arns_reads_the_arns_of_the_resources_list_and_none_of_its_other_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    // Each resource's type is long, its own and hard to compress, so that reading the types
    // shows in the bytes a scan reads.
    // Decrypt call `e{i}` at `time` on these resources.
    let decrypt = |i: usize, time: &str, resources: serde_json::Value| {
        let mut e = event(&format!("e{i}"), time, "Decrypt", "us-east-1");
        e["resources"] = resources;
        e
    };
    let events: Vec<_> = (0..300)
        .map(|i| {
            decrypt(i, "2026-11-01T10:00:00Z", json!([
                {"ARN": format!("arn:aws:kms:us-east-1:111122223333:key/k{i}"),
                 "accountId": "111122223333", "type": format!("AWS::KMS::Key{}", incompressible(2 * i as u64 + 1, 500))},
                {"ARN": format!("arn:aws:s3:::bucket-{i}"),
                 "accountId": "111122223333", "type": format!("AWS::S3::Bucket{}", incompressible(2 * i as u64 + 2, 500))}
            ]))
        })
        .collect();
    write_trail_file(&src, "us-east-1", 1, "f.json.gz", &events);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let scanned = |sql: &str| bytes_scanned(&lake, sql);
    let arns =
        "SELECT count(*) FROM cloudtrail WHERE strpos(resource_arns(resources), 'key/k7') > 0";
    let whole = "SELECT count(*) FROM cloudtrail WHERE cardinality(resources) = 3";
    let (arns_bytes, whole_bytes) = (scanned(arns), scanned(whole));
    assert!(
        arns_bytes * 4 < whole_bytes,
        "the ARNs alone: {arns_bytes} bytes against {whole_bytes} for the whole list"
    );
    assert_eq!(count(&lake, arns), 11, "k7 and k70 to k79");
    let e3 = "arns\n\"arn:aws:kms:us-east-1:111122223333:key/k3\narn:aws:s3:::bucket-3\"\n";
    assert_eq!(
        sql_csv(
            &lake,
            "SELECT resource_arns(resources) AS arns FROM cloudtrail WHERE eventid = 'e3'"
        ),
        e3
    );
    // Ingest stored them, as resource_arns gives them, in column `resourcearns`.
    assert_eq!(
        sql_csv(
            &lake,
            "SELECT resourcearns AS arns FROM cloudtrail WHERE eventid = 'e3'"
        ),
        e3
    );

    // A lake made before the column was added (its table has no `resourcearns`) opens, answers
    // from the list, and takes more files.
    forget_added_columns(&lake);
    assert_eq!(count(&lake, arns), 11, "k7 and k70 to k79, from the list");
    let refused = trailhouse(&lake, &["sql", "SELECT resourcearns FROM cloudtrail"]);
    assert_ne!(refused.code, Some(0), "the table has no such column");
    let more: Vec<_> = (300..310)
        .map(|i| {
            decrypt(
                i,
                "2026-11-01T11:00:00Z",
                json!([{"ARN": format!("arn:aws:kms:us-east-1:111122223333:key/k{i}")}]),
            )
        })
        .collect();
    write_trail_file(&src, "us-east-1", 1, "g.json.gz", &more);
    let (run_more, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run_more.code, Some(0), "{}", run_more.stderr);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM cloudtrail WHERE strpos(resource_arns(resources), 'key/k30') > 0"
        ),
        11
    );
}

/// The bytes the scan of `sql` read from `lake`'s data files (EXPLAIN ANALYZE's metric).
fn bytes_scanned(lake: &Path, sql: &str) -> u64 {
    let plan = sql_csv(lake, &format!("EXPLAIN ANALYZE {sql}"));
    let at = plan
        .find("bytes_scanned=")
        .unwrap_or_else(|| panic!("no bytes_scanned metric: {plan}"));
    // Written as DataFusion shows it: `1234`, `6.57 K`, `1.20 M`.
    let text = plan[at + "bytes_scanned=".len()..]
        .split([',', ']'])
        .next()
        .unwrap_or_default();
    let (number, unit) = text.split_once(' ').unwrap_or((text, ""));
    let scale = match unit {
        "" => 1.0,
        "K" => 1e3,
        "M" => 1e6,
        "B" => 1e9,
        other => panic!("bytes_scanned in {other}: {plan}"),
    };
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bytes_scanned: {plan}"));
    (number * scale) as u64
}

/// Makes `lake` as a trailhouse before the derived columns added since
/// (`schema::ADDED_COLUMNS`) made it: its table's schema without them.
fn forget_added_columns(lake: &Path) {
    let log = lake.join("cloudtrail/_delta_log/00000000000000000000.json");
    let text = std::fs::read_to_string(&log).expect("first commit");
    let without: Vec<String> = text
        .lines()
        .map(|line| {
            let mut action: serde_json::Value = serde_json::from_str(line).expect("action");
            if let Some(schema) = action["metaData"]["schemaString"].as_str() {
                let mut schema: serde_json::Value = serde_json::from_str(schema).expect("schema");
                let fields = schema["fields"].as_array_mut().expect("fields");
                let before = fields.len();
                fields.retain(|f| {
                    !trailhouse_lake::schema::ADDED_COLUMNS
                        .iter()
                        .any(|c| f["name"] == *c)
                });
                assert_eq!(
                    fields.len() + trailhouse_lake::schema::ADDED_COLUMNS.len(),
                    before,
                    "the columns were in the schema"
                );
                action["metaData"]["schemaString"] = json!(schema.to_string());
            }
            action.to_string()
        })
        .collect();
    std::fs::write(&log, without.join("\n") + "\n").expect("rewrite the first commit");
    // Its checkpoints repeat the schema: the log is read from its commits without them.
    for file in files_under(&lake.join("cloudtrail/_delta_log")) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.contains("checkpoint") {
            std::fs::remove_file(&file).expect("remove a checkpoint");
        }
    }
}

#[test]
fn actor_is_stored_by_ingest_and_a_lake_without_the_column_answers_from_the_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    // Call `e{i}` at `time`: by alice, by a service, or by an identity with only its
    // principal id, in turn. The first two carry a principal id that is long, their own and
    // hard to compress (read only by a scan of the identity's members), so that reading the
    // members shows in the bytes a scan reads.
    let call = |i: usize, time: &str| {
        let mut e = event(&format!("e{i}"), time, "GetObject", "us-east-1");
        let long_id = format!("AIDA{}", incompressible(i as u64 + 1, 500));
        e["userIdentity"] = match i % 3 {
            0 => {
                let mut alice = e["userIdentity"].clone();
                alice["principalId"] = json!(long_id);
                alice
            }
            1 => json!({"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com",
                        "principalId": long_id}),
            _ => json!({"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:s{i}")}),
        };
        e
    };
    let events: Vec<_> = (0..30).map(|i| call(i, "2026-11-01T10:00:00Z")).collect();
    write_trail_file(&src, "us-east-1", 1, "f.json.gz", &events);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // The stored text is the identity's first member, as the function defines it (written out
    // here, so that it is not itself read from the stored column).
    let written_out = "coalesce(useridentity.arn, useridentity.invokedby, \
                       useridentity.principalid, useridentity.type)";
    assert_eq!(
        count(
            &lake,
            &format!(
                "SELECT count(*) FROM cloudtrail WHERE actor IS NOT DISTINCT FROM {written_out}"
            )
        ),
        30
    );
    let by_actor = "SELECT actor(useridentity) AS who, count(*) AS n FROM cloudtrail \
                    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3";
    let top = "who,n\narn:aws:iam::111122223333:user/alice,10\ncloudtrail.amazonaws.com,10\n\
               AROAEXAMPLE:s11,1\n";
    assert_eq!(sql_csv(&lake, by_actor), top);
    let stored_bytes = bytes_scanned(&lake, by_actor);
    // A column a query names `actor` beside the identity is not the stored one.
    assert_eq!(
        sql_csv(
            &lake,
            "WITH x AS (SELECT useridentity, 'not an actor' AS actor FROM cloudtrail) \
             SELECT count(*) AS n FROM x WHERE actor(useridentity) = 'cloudtrail.amazonaws.com'"
        ),
        "n\n10\n"
    );

    // A lake made before the column was added answers from the identity's members (reading
    // them), and takes more files.
    forget_added_columns(&lake);
    let refused = trailhouse(&lake, &["sql", "SELECT actor FROM cloudtrail"]);
    assert_ne!(refused.code, Some(0), "the table has no such column");
    assert_eq!(sql_csv(&lake, by_actor), top);
    let members_bytes = bytes_scanned(&lake, by_actor);
    assert!(
        stored_bytes * 4 < members_bytes,
        "the stored actor: {stored_bytes} bytes against {members_bytes} for the members"
    );
    let more: Vec<_> = (30..33).map(|i| call(i, "2026-11-01T11:00:00Z")).collect();
    write_trail_file(&src, "us-east-1", 1, "g.json.gz", &more);
    let (run_more, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run_more.code, Some(0), "{}", run_more.stderr);
    assert_eq!(
        sql_csv(&lake, by_actor),
        "who,n\narn:aws:iam::111122223333:user/alice,11\ncloudtrail.amazonaws.com,11\n\
         AROAEXAMPLE:s11,1\n"
    );
}

#[test]
fn struct_fields_are_headed_as_they_were_written() {
    let (_dir, lake) = small_lake();
    let out = sql_csv(
        &lake,
        "SELECT useridentity.arn, userIdentity.userName, useridentity.arn AS who, count(*) AS n \
         FROM cloudtrail GROUP BY 1, 2, 3",
    );
    assert_eq!(
        out.lines().next(),
        Some("useridentity.arn,useridentity.username,who,n"),
        "{out}"
    );
    assert!(
        out.contains("arn:aws:iam::111122223333:user/alice,alice,"),
        "{out}"
    );
}

/// `trailhouse sql` on a terminal (`script` gives it one), over a lake of the sample trail:
/// what is typed, and what the screen has shown.
struct ShellOnTerminal {
    _dir: tempfile::TempDir,
    child: std::process::Child,
    terminal: std::process::ChildStdin,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl ShellOnTerminal {
    fn start() -> Self {
        use std::io::Read;
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("lake");
        let (run, _) = ingest_json(&lake, &[&repo_root().join("sample-logs")], &[]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        // `exec`: the shell `script` starts (the user's, or `sh`) must not stay between the pty
        // and trailhouse, or it would take a Ctrl-C too and end with status 130 after the shell
        // quits.
        let command = format!(
            "exec '{}' --lake '{}' sql",
            env!("CARGO_BIN_EXE_trailhouse"),
            lake.display()
        );
        let mut child = Command::new("script")
            .args(["-qefc", &command, "/dev/null"])
            .env("PAGER", "cat")
            .env("SHELL", "/bin/sh")
            .env("TRAILHOUSE_HISTORY", dir.path().join("history"))
            .env_remove("TRAILHOUSE_LAKE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) runs the shell on a terminal");
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let reader = {
            let screen = std::sync::Arc::clone(&screen);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    screen.lock().expect("screen").push_str(&text);
                }
            })
        };
        let terminal = child.stdin.take().expect("stdin");
        let shell = Self {
            _dir: dir,
            child,
            terminal,
            screen,
            reader,
        };
        shell.wait_for("trailhouse> ", "no prompt");
        shell
    }

    /// The screen so far, once it shows `text` (within a minute).
    fn wait_for(&self, text: &str, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let now = self.screen.lock().expect("screen").clone();
            if now.contains(text) {
                return now;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {now}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Sends `keys` to the terminal in one write, as a fast typist's or a paste's arrive.
    fn type_keys(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.terminal.write_all(keys).expect("type");
    }

    /// `\q`, then the exit status and the whole screen.
    fn quit(mut self) -> (std::process::ExitStatus, String) {
        self.type_keys(b"\\q\n");
        let status = exit_within(&mut self.child, 30, "the shell did not quit");
        self.reader.join().expect("reader");
        let screen = self.screen.lock().expect("screen").clone();
        (status, screen)
    }
}

/// The shell on a terminal: Ctrl-C during a long statement stops that statement, says so, and
/// the shell answers the next one.
#[test]
fn ctrl_c_in_the_shell_stops_the_statement_and_the_shell_goes_on() {
    let mut shell = ShellOnTerminal::start();
    // Minutes of work: every combination of four of the trail's events.
    shell.type_keys(
        b"SELECT count(*) FROM cloudtrail a, cloudtrail b, cloudtrail c, cloudtrail d \
          WHERE a.eventid <> d.eventid;\n",
    );
    // The statement is read, planned and running well within this.
    std::thread::sleep(std::time::Duration::from_secs(3));
    shell.type_keys(b"\x03");
    shell.wait_for("interrupted", "Ctrl-C did not stop the statement");
    shell.type_keys(b"SELECT 41 + 1 AS answer;\n");
    let screen_now = shell.wait_for("1 row in", "the shell did not answer after Ctrl-C");
    assert!(screen_now.contains("| 42 "), "{screen_now}");
    assert!(!screen_now.contains("error"), "{screen_now}");
    let (status, screen_now) = shell.quit();
    assert!(status.success(), "{status:?}: {screen_now}");
}

/// Lines that reach the shell together (typed ahead while a statement ran, or pasted where the
/// terminal does not mark pastes) are each read: none is lost between one prompt and the next.
#[test]
fn lines_typed_ahead_in_the_shell_are_all_read() {
    let mut shell = ShellOnTerminal::start();
    shell.type_keys(
        b"SELECT 'first' AS answer_one;\nSELECT count(*) AS answer_two\n  FROM cloudtrail\n  \
          WHERE eventname = 'DeleteBucket';\nSELECT 'third' AS answer_three;\n",
    );
    // The results' cells (the terminal echoes the statements too, quotes and all).
    let screen_now = shell.wait_for("| third", "the third statement was not answered");
    assert!(screen_now.contains("| first"), "{screen_now}");
    assert!(screen_now.contains("| answer_two |"), "{screen_now}");
    assert!(!screen_now.contains("error"), "{screen_now}");
    let (status, screen_now) = shell.quit();
    assert!(status.success(), "{status:?}: {screen_now}");
    assert_eq!(screen_now.matches(" row in ").count(), 3, "{screen_now}");
}

/// Tab in the shell completes a struct member and a table from the lake's own schema.
#[test]
fn tab_completes_columns_and_tables_in_the_shell() {
    let mut shell = ShellOnTerminal::start();
    shell.type_keys(b"SELECT useridentity.accessk\t AS k FROM cloudt\t LIMIT 1;\n");
    let screen_now = shell.wait_for(" row in ", "the completed statement was not answered");
    assert!(!screen_now.contains("error"), "{screen_now}");
    assert!(screen_now.contains("| k "), "{screen_now}");
    let (status, screen_now) = shell.quit();
    assert!(status.success(), "{status:?}: {screen_now}");
}
