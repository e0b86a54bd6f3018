//! `trailhouse sql` and `export`: read-only SQL, formats, partition pruning.

use serde_json::json;

use crate::support::*;

fn small_lake() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let lake = dir.path().join("lake");
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
fn a_query_for_one_day_and_region_reads_only_that_partition() {
    let (_dir, lake) = small_lake();
    let plan = sql_csv(
        &lake,
        "EXPLAIN SELECT eventid FROM cloudtrail WHERE day = DATE '2026-11-01' AND region = 'eu-west-1'",
    );
    assert!(plan.contains("day=2026-11-01/region=eu-west-1/"), "{plan}");
    for other in [
        "day=2026-11-01/region=us-east-1",
        "day=2026-11-02",
        "day=2026-11-03",
    ] {
        assert!(!plan.contains(other), "{other} should be pruned: {plan}");
    }
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

#[test]
fn compact_and_vacuum_keep_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let lake = dir.path().join("lake");
    for f in 0..5u32 {
        write_trail_file(
            &src,
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
    // One batch per file: five files in one partition.
    let (run, _) = ingest_json(&lake, &[&src], &["--batch-files", "1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let before = export_sorted(&lake);
    let files = |lake: &std::path::Path| {
        let plan = sql_csv(
            lake,
            "EXPLAIN SELECT eventid FROM cloudtrail WHERE day = '2026-11-01'",
        );
        plan.matches(".zstd.parquet").count()
    };
    assert_eq!(files(&lake), 5);

    let r = trailhouse(&lake, &["compact"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("compacted 5 files into 1"),
        "{}",
        r.stderr
    );
    assert_eq!(files(&lake), 1);
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
    // Every scan bounded below by the window reads only the files of that day (Delta file
    // statistics on eventtime); the look-up of who minted the key reads back in time on purpose.
    let windowed: Vec<&str> = window
        .split("DataSourceExec")
        .filter(|scan| {
            scan.match_indices("eventtime@").any(|(i, m)| {
                scan[i + m.len()..]
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .starts_with(" >= ")
            })
        })
        .collect();
    assert!(!windowed.is_empty(), "{window}");
    for scan in windowed {
        let files = scan
            .split("file_groups=")
            .nth(1)
            .and_then(|f| f.split("]]}").next())
            .unwrap_or("");
        assert!(files.contains("day=2026-11-03/region=eu-west-1"), "{scan}");
        assert!(
            !files.contains("day=2026-11-01") && !files.contains("day=2026-11-02"),
            "{scan}"
        );
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
fn the_credentials_table_follows_each_ingest_and_survives_an_unwritable_cache() {
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

    // Temporary files: one a crashed build left two hours ago, one a concurrent build is writing.
    let cache = lake.join("_trailhouse/credentials");
    let abandoned = cache.join(".tmp-abandoned");
    let fresh = cache.join(".tmp-in-progress");
    std::fs::write(&abandoned, b"x").expect("tmp");
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .and_then(|f| {
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        })
        .expect("age the file");
    std::fs::write(&fresh, b"x").expect("tmp");

    // A later delivery chains a second role from the first session: the derived table follows.
    let second = assume_role(
        "m2",
        "2026-11-02T10:00:00Z",
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
    let files: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    assert_eq!(
        files.len(),
        1,
        "only the current state is cached: {files:?}"
    );
    assert!(
        !abandoned.exists(),
        "an abandoned temporary file is removed"
    );
    assert!(
        fresh.exists(),
        "a temporary file being written is left alone"
    );

    // Where the cache cannot be written, the table is derived in memory, with the same rows.
    std::fs::remove_dir_all(&cache).expect("rm cache");
    std::fs::write(&cache, b"not a directory").expect("block the cache");
    assert_eq!(sql_csv(&lake, q), expected);
}

/// Two deliveries of STS calls: the second chains a role from the first's session and holds
/// the preferred copy (named by ARN) of a call the first had only the role account's copy of.
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
    // Copies of one call in two accounts; in two deliveries (days) here, so that the test can
    // take the first day's files away.
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
        "2026-11-02T10:00:00Z",
        "arn:aws:sts::111122223333:assumed-role/Next/s",
        "ASIAONE",
        "ASIATWO",
    );
    let first = vec![one, bob("z3", "2026-11-01T11:00:00Z", None)];
    let second = vec![
        two,
        bob(
            "y3",
            "2026-11-02T11:00:00Z",
            Some("arn:aws:iam::444455556666:user/bob"),
        ),
    ];
    write_trail_file(src, "us-east-1", 1, "a.json.gz", &first);
    (first, second)
}

#[test]
fn a_later_ingest_merges_its_sts_calls_into_the_cached_credentials() {
    let q = "SELECT minted_key, caller, eventid, origin, hops FROM credentials ORDER BY minted_key";
    let expected = "minted_key,caller,eventid,origin,hops\n\
        ASIAONE,arn:aws:iam::111122223333:user/alice,m1,arn:aws:iam::111122223333:user/alice,1\n\
        ASIATHREE,arn:aws:iam::444455556666:user/bob,y3,arn:aws:iam::444455556666:user/bob,1\n\
        ASIATWO,arn:aws:sts::111122223333:assumed-role/Next/s,m2,arn:aws:iam::111122223333:user/alice,2\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let lakes = [dir.path().join("merged"), dir.path().join("whole")];
    for (n, lake) in lakes.iter().enumerate() {
        let src = dir.path().join(format!("src{n}"));
        let (_, second) = two_deliveries_of_sts_calls(&src);
        let (run, _) = ingest_json(lake, &[&src], &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(sql_csv(lake, q).contains("ASIATHREE,AIDABOB,z3,"));
        if n == 0 {
            // The first delivery's data files are gone from disk (not from the table): only a
            // derivation that merges the cached rows with the new files can still succeed.
            let day = lake.join("cloudtrail/day=2026-11-01");
            std::fs::remove_dir_all(&day).expect("remove the first day's files");
        }
        write_trail_file(&src, "us-east-1", 2, "b.json.gz", &second);
        let (run, _) = ingest_json(lake, &[&src], &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(
            run.stderr.contains("credentials: 3 temporary keys indexed"),
            "{}",
            run.stderr
        );
        assert_eq!(sql_csv(lake, q), expected, "lake {n}");
    }
    // Derived afresh from the whole table: the same rows.
    let whole = &lakes[1];
    std::fs::remove_dir_all(whole.join("_trailhouse/credentials")).expect("rm cache");
    assert_eq!(sql_csv(whole, q), expected);
    // Compaction rewrites files (the table did not only grow): derived from the whole table.
    let r = trailhouse(whole, &["compact"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(sql_csv(whole, q), expected);
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
