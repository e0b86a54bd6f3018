//! Ingest: the sample trail, incremental reruns, deduplication, crashes, bad input, envelopes.

use std::fs;
use std::path::Path;

use serde_json::json;

use crate::support::*;

#[test]
fn sample_logs_tell_who_deleted_the_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, r) = ingest_json(&lake, &[&repo_root().join("sample-logs")], &[]);
    assert_eq!(
        run.code,
        Some(1),
        "the truncated file makes it a partial failure: {}",
        run.stderr
    );
    reconciles(&r);
    assert_eq!(r["files_failed"], 1);
    assert_eq!(r["files_skipped_digest"], 1);
    assert_eq!(
        r["records_duplicate"], 1,
        "the DeleteBucket record was delivered twice"
    );
    assert!(
        run.stderr
            .contains("Fg8hJ0kL2mN4pQ6r.json.gz`: failed to decompress"),
        "{}",
        run.stderr
    );

    let out = sql_csv(
        &lake,
        "SELECT eventtime, useridentity.arn AS actor, useridentity.accesskeyid AS key, sourceipaddress, day \
         FROM cloudtrail WHERE eventname = 'DeleteBucket' \
         AND json_get_str(requestparameters, 'bucketName') = 'customer-exports-prod'",
    );
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0].contains("assumed-role/DataAdmin/bob-maintenance"),
        "{out}"
    );
    assert!(rows[0].contains("ASIAEXAMPLETEMPKEY01"), "{out}");
    // 23:58:41 on the 3rd, although delivered in the 4th's folder.
    assert!(rows[0].ends_with(",2026-11-03"), "{out}");

    // The temporary key leads back to the AssumeRole call and to bob.
    let out = sql_csv(
        &lake,
        "SELECT useridentity.username FROM cloudtrail WHERE eventname = 'AssumeRole' \
         AND (responseelements->'credentials'->>'accessKeyId') = 'ASIAEXAMPLETEMPKEY01'",
    );
    assert_eq!(out.lines().nth(1), Some("bob"), "{out}");

    let out = sql_csv(
        &lake,
        "SELECT useridentity.username, additionaleventdata->>'MFAUsed' FROM cloudtrail WHERE eventname = 'ConsoleLogin'",
    );
    assert_eq!(out.lines().nth(1), Some("bob,No"), "{out}");
}

#[test]
fn rerun_is_a_no_op_and_new_files_are_picked_up() {
    let (_dir, src, lake) = scratch();
    write_trail_file(
        &src,
        "us-east-1",
        1,
        "a.json.gz",
        &[
            event("e1", "2026-11-01T10:00:00Z", "PutObject", "us-east-1"),
            event("e2", "2026-11-01T11:00:00Z", "DeleteBucket", "us-east-1"),
        ],
    );
    let (run, first) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(first["records_written"], 2);
    let version = first["table_version"].as_u64().expect("version");
    assert_eq!(
        checkpointed(&lake),
        Some(version),
        "the run's commits are checkpointed"
    );

    let (run, again) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0));
    assert_eq!(again["files_skipped_ingested"], 1);
    assert_eq!(again["records_read"], 0);
    assert_eq!(
        again["table_version"].as_u64(),
        Some(version),
        "nothing was committed"
    );
    reconciles(&again);

    // A later file re-delivers e2 (identical) and brings e3; e1 comes back with other content.
    let mut changed = event("e1", "2026-11-01T10:00:00Z", "PutObject", "us-east-1");
    changed["errorCode"] = json!("AccessDenied");
    write_trail_file(
        &src,
        "us-east-1",
        2,
        "b.json.gz",
        &[
            event("e2", "2026-11-01T11:00:00Z", "DeleteBucket", "us-east-1"),
            event("e3", "2026-11-02T00:00:01Z", "GetObject", "us-east-1"),
            changed,
        ],
    );
    let (run, third) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(third["files_loaded"], 1);
    assert_eq!(third["files_skipped_ingested"], 1);
    assert_eq!(third["records_read"], 3);
    assert_eq!(third["records_duplicate"], 1);
    assert_eq!(third["records_written"], 2);
    assert_eq!(third["records_collision"], 1, "e1 with other content");
    reconciles(&third);
    assert!(third["table_version"].as_u64() > Some(version));
    assert_eq!(checkpointed(&lake), third["table_version"].as_u64());
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 4);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM cloudtrail WHERE eventid = 'e1'"
        ),
        2
    );
}

#[test]
fn identical_records_in_one_run_are_stored_once() {
    let (_dir, src, lake) = scratch();
    let e = event("dup", "2026-11-03T23:59:59Z", "DeleteBucket", "eu-west-1");
    write_trail_file(&src, "eu-west-1", 3, "a.json.gz", &[e.clone(), e.clone()]);
    write_trail_file(&src, "eu-west-1", 4, "b.json.gz", std::slice::from_ref(&e));
    // The same record pretty-printed in NDJSON is still the same record.
    fs::write(
        src.join("again.json"),
        serde_json::to_string_pretty(&e).expect("json"),
    )
    .expect("write");
    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["records_read"], 4);
    assert_eq!(r["records_written"], 1);
    assert_eq!(r["records_duplicate"], 3);
    let out = sql_csv(&lake, "SELECT sourcefile FROM cloudtrail");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.ends_with("a.json.gz")),
        "the first delivery is kept: {out}"
    );
}

fn crash_input(src: &Path) {
    for d in 1..=6u32 {
        let records: Vec<_> = (0..40)
            .map(|i| {
                event(
                    &format!("d{d}-{i}"),
                    &format!("2026-11-{d:02}T{:02}:00:{:02}Z", i % 24, i % 60),
                    "PutObject",
                    if i % 2 == 0 { "us-east-1" } else { "eu-west-1" },
                )
            })
            .chain(std::iter::once(
                json!({"eventName": "NoTime", "eventID": format!("q{d}")}),
            ))
            .collect();
        write_trail_file(src, "us-east-1", d, &format!("f{d}.json.gz"), &records);
    }
    // Re-deliveries across batches.
    write_trail_file(
        src,
        "us-east-1",
        7,
        "redelivery.json.gz",
        &[
            event("d1-0", "2026-11-01T00:00:00Z", "PutObject", "us-east-1"),
            event("d2-1", "2026-11-02T01:00:01Z", "PutObject", "eu-west-1"),
        ],
    );
}

#[test]
fn a_crash_at_any_point_then_a_rerun_gives_the_uninterrupted_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    crash_input(&src);
    let budget = [
        "--memory",
        "1",
        "--max-file-size",
        "4",
        "--batch-files",
        "1",
    ];

    let clean = dir.path().join("clean");
    let (run, r) = ingest_json(&clean, &[&src], &budget);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        r["table_version"].as_u64().expect("version") >= 7,
        "one commit per file: {r}"
    );
    let want = export_sorted(&clean);
    let want_quarantine = count(&clean, "SELECT count(*) FROM quarantine");
    assert_eq!(want.len(), 240);
    assert_eq!(want_quarantine, 6);

    for point in [
        "after-plan",
        "after-data-files",
        "after-quarantine-commit",
        "after-commit",
    ] {
        for batch in [1, 3] {
            let lake = dir.path().join(format!("lake-{point}-{batch}"));
            let fp = format!("{point}:{batch}");
            let mut args = vec!["ingest", "--fail-point", fp.as_str()];
            args.extend_from_slice(&budget);
            let src_s = src.display().to_string();
            args.push(&src_s);
            let crashed = trailhouse(&lake, &args);
            assert_eq!(
                crashed.code, None,
                "{fp}: the process must die: {}",
                crashed.stderr
            );
            if batch > 1 {
                // A reader sees only whole committed batches: never the files of the batch that
                // was being written when the process died.
                let seen = count(&lake, "SELECT count(*) FROM cloudtrail");
                let whole = if point == "after-commit" {
                    3 * 40
                } else {
                    2 * 40
                };
                assert_eq!(seen, whole, "{fp}");
            }
            let (run, r) = ingest_json(&lake, &[&src], &budget);
            assert_eq!(run.code, Some(0), "{fp}: {}", run.stderr);
            reconciles(&r);
            assert_eq!(
                export_sorted(&lake),
                want,
                "{fp}: table differs from the uninterrupted run"
            );
            assert_eq!(
                count(&lake, "SELECT count(*) FROM quarantine"),
                want_quarantine,
                "{fp}: quarantine differs"
            );
        }
    }
}

#[test]
fn bad_files_are_reported_and_do_not_stop_the_run() {
    let (_dir, src, lake) = scratch();
    write_trail_file(
        &src,
        "us-east-1",
        1,
        "good.json.gz",
        &[event(
            "g1",
            "2026-11-01T00:00:00Z",
            "PutObject",
            "us-east-1",
        )],
    );
    // A truncated trail file: the first record survives the break.
    let body = serde_json::to_string(&json!({"Records": [
        event("t1", "2026-11-01T00:00:01Z", "PutObject", "us-east-1"),
        event("t2", "2026-11-01T00:00:02Z", "PutObject", "us-east-1"),
    ]}))
    .expect("json");
    let cut = &body[..body.len() - 200];
    fs::write(src.join("truncated.json.gz"), gz(cut.as_bytes())).expect("write");
    fs::write(
        src.join("invalid.json"),
        b"{\"Records\": [ {\"eventTime\": }",
    )
    .expect("write");
    fs::write(
        src.join("wrong-envelope.json.gz"),
        gz(b"{\"hello\": \"world\"}"),
    )
    .expect("write");
    fs::write(src.join("bomb.json.gz"), gz(&vec![b' '; 3 << 20])).expect("write");
    fs::write(src.join("README.md"), b"# not a log\n").expect("write");
    fs::write(src.join("manifest.json"), b"{\"files\": []}").expect("write");
    fs::write(src.join("notes.tsv"), b"a\tb\n").expect("write");

    let (run, r) = ingest_json(&lake, &[&src], &["--max-file-size", "2"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    reconciles(&r);
    assert_eq!(r["files_loaded"], 1);
    assert_eq!(r["files_failed"], 4);
    assert_eq!(r["files_skipped_other"], 3);
    assert_eq!(r["records_written"], 2, "g1 and t1");
    let failures = r["failures"].as_array().expect("failures");
    let failure = |name: &str| {
        failures
            .iter()
            .find(|f| f["file"].as_str().is_some_and(|p| p.ends_with(name)))
            .unwrap_or_else(|| panic!("no failure for {name}: {r}"))
    };
    assert!(
        failure("truncated.json.gz")["error"]
            .as_str()
            .expect("e")
            .contains("after 1 records")
    );
    assert_eq!(failure("truncated.json.gz")["records_recovered"], 1);
    assert!(
        failure("invalid.json")["error"]
            .as_str()
            .expect("e")
            .contains("invalid JSON")
    );
    assert!(
        failure("wrong-envelope.json.gz")["error"]
            .as_str()
            .expect("e")
            .contains("unrecognised envelope")
    );
    assert!(
        failure("bomb.json.gz")["error"]
            .as_str()
            .expect("e")
            .contains("exceeds the limit")
    );
    assert!(
        run.stderr
            .contains("bomb.json.gz`: decompressed size exceeds"),
        "{}",
        run.stderr
    );

    // Failed files are not marked ingested: once fixed (or still broken) they are read again.
    let (_, again) = ingest_json(&lake, &[&src], &["--max-file-size", "2"]);
    assert_eq!(again["files_failed"], 4);
    assert_eq!(
        again["files_skipped_ingested"], 4,
        "the loaded file and the 3 non-CloudTrail files"
    );
    assert_eq!(again["records_duplicate"], 1, "t1 was stored already");
}

#[test]
fn every_envelope_and_odd_records() {
    let (_dir, src, lake) = scratch();
    fs::create_dir_all(&src).expect("mkdir");
    let e = |id: &str| event(id, "2026-11-05T05:05:05Z", "GetObject", "ap-south-1");
    let ndjson = format!("{}\n{}\n", e("n1"), e("n2"));
    fs::write(src.join("export.ndjson"), ndjson).expect("write");
    fs::write(
        src.join("eventbridge.json"),
        json!({"version": "0", "id": "x", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.s3", "detail": e("eb1")})
        .to_string(),
    )
    .expect("write");
    fs::write(
        src.join("lookup.json"),
        json!({"Events": [{"EventId": "l1", "CloudTrailEvent": e("l1").to_string()}]}).to_string(),
    )
    .expect("write");
    fs::write(src.join("cwl.json.gz"), gz(json!({"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": e("c1").to_string()}]})
        .to_string().as_bytes())).expect("write");
    // Org trail layout, a record without awsRegion (region from the key), and two quarantines.
    let org = src.join("AWSLogs/o-abc123/222233334444/CloudTrail/sa-east-1/2026/11/06");
    fs::create_dir_all(&org).expect("mkdir");
    let mut no_region = e("o1");
    no_region.as_object_mut().expect("obj").remove("awsRegion");
    fs::write(
        org.join("x.json.gz"),
        gz(
            json!({"Records": [no_region, {"eventTime": "redacted"}, "a string"]})
                .to_string()
                .as_bytes(),
        ),
    )
    .expect("write");

    let (run, r) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    reconciles(&r);
    assert_eq!(r["records_written"], 6, "{r}");
    assert_eq!(r["records_quarantined"], 2, "{r}");
    let out = sql_csv(
        &lake,
        "SELECT eventid, region FROM cloudtrail ORDER BY eventid",
    );
    assert_eq!(
        out,
        "eventid,region\nc1,ap-south-1\neb1,ap-south-1\nl1,ap-south-1\nn1,ap-south-1\nn2,ap-south-1\no1,sa-east-1\n"
    );
    let out = sql_csv(
        &lake,
        "SELECT recordindex, reason, record FROM quarantine ORDER BY recordindex",
    );
    assert!(
        out.contains("1,eventTime `redacted` is not a date-time,"),
        "{out}"
    );
    assert!(out.contains("2,record is not a JSON object,"), "{out}");
}

#[test]
fn the_memory_budget_bounds_each_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    // Four files of ~40 KiB of gzip each (request parameters that do not compress).
    for f in 0..4u32 {
        let records: Vec<_> = (0..20u32)
            .map(|i| {
                let mut e = event(
                    &format!("f{f}-{i}"),
                    "2026-11-01T00:00:00Z",
                    "PutObject",
                    "us-east-1",
                );
                let noise = incompressible(u64::from(f) * 1000 + u64::from(i) + 1, 2000);
                e["requestParameters"] = json!({ "key": noise });
                e
            })
            .collect();
        write_trail_file(&src, "us-east-1", 1, &format!("{f}.json.gz"), &records);
    }
    let roomy = dir.path().join("roomy");
    let (_, r) = ingest_json(&roomy, &[&src], &[]);
    assert_eq!(r["table_version"], 1, "one batch, one commit: {r}");
    // 1 MiB of budget: a quarter of it for a batch, which four files' estimate exceeds.
    let tight = dir.path().join("tight");
    let (_, r) = ingest_json(&tight, &[&src], &["--memory", "1"]);
    assert!(
        r["table_version"].as_u64().expect("version") >= 3,
        "batches are cut by the budget: {r}"
    );
    assert_eq!(r["records_written"], 80);
    assert_eq!(export_sorted(&roomy), export_sorted(&tight));
}
