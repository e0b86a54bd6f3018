//! Ingest straight from an S3 bucket, against a real S3 endpoint on 127.0.0.1 (s3s-fs).

use std::path::{Path, PathBuf};

use crate::support::*;
use trailhouse_benches::s3_server::S3Server;

fn ingest_s3(server: &S3Server, lake: &Path, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["ingest", "--json"];
    all.extend_from_slice(args);
    let run = trailhouse_env(lake, &all, &server.env());
    let json = run.json();
    reconciles(&json);
    (run, json)
}

/// The run's one failure is object `prefix…suffix`, which could not be fetched.
fn assert_failed_fetch(r: &serde_json::Value, prefix: &str, suffix: &str) {
    let failure = &r["failures"][0];
    assert!(
        failure["file"]
            .as_str()
            .is_some_and(|f| f.starts_with(prefix) && f.ends_with(suffix)),
        "{failure}"
    );
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|e| e.contains("failed to fetch")),
        "{failure}"
    );
}

/// The sample trail's truncated gzip file (`sample-logs/README.md`), as a key.
const BROKEN: &str = "444455556666_CloudTrail_us-east-1_20261104T0200Z_Fg8hJ0kL2mN4pQ6r.json.gz";

/// Takes the sample's broken file out of the bucket (for tests about other failures).
fn remove_broken(dir: &Path) {
    let broken = files_under(&dir.join("s3/trail-bucket"))
        .into_iter()
        .find(|p| p.ends_with(BROKEN))
        .expect("the sample's broken file");
    std::fs::remove_file(broken).expect("remove");
}

/// A bucket holding the sample trail (an organization trail: accounts, regions, digests, and a
/// truncated file).
pub fn sample_bucket() -> (tempfile::TempDir, S3Server, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("s3/trail-bucket");
    copy_tree(
        &repo_root().join("sample-logs/AWSLogs"),
        &bucket.join("AWSLogs"),
    );
    let trail_files = files_under(&bucket)
        .iter()
        .filter(|p| !p.to_string_lossy().contains("CloudTrail-Digest"))
        .count();
    let server = S3Server::start(&dir.path().join("s3"));
    (dir, server, trail_files)
}

#[test]
fn a_bucket_ingests_exactly_as_the_same_files_on_disk() {
    let (dir, server, trail_files) = sample_bucket();
    let local = dir.path().join("local-lake");
    let (run, from_disk) = ingest_json(&local, &[&repo_root().join("sample-logs")], &[]);
    assert_eq!(
        run.code,
        Some(1),
        "the sample's broken file: {}",
        run.stderr
    );

    let lake = dir.path().join("lake");
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(r["files_loaded"], trail_files - 1, "{r}");
    assert_eq!(r["files_failed"], 1, "{r}");
    let failure = &r["failures"][0];
    assert_eq!(
        failure["file"],
        format!(
            "s3://trail-bucket/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail/us-east-1/2026/11/04/{BROKEN}"
        )
    );
    assert_eq!(failure["error"], from_disk["failures"][0]["error"]);
    assert_eq!(failure["records_recovered"], 3);
    for k in [
        "records_read",
        "records_written",
        "records_duplicate",
        "records_quarantined",
    ] {
        assert_eq!(r[k], from_disk[k], "{k}: {r} vs {from_disk}");
    }
    assert_eq!(export_sorted(&lake), export_sorted(&local));
    // Digest folders are not listed, let alone read.
    let (lists, _keys, gets) = server.counts.take();
    assert_eq!(gets as usize, trail_files);
    assert!(
        lists > 0 && r["s3_list_requests"].as_u64() == Some(lists),
        "{r}"
    );
    assert!(run.stderr.contains("LIST requests"), "{}", run.stderr);

    // A rerun fetches only the failed object again (its records are duplicates now) and lists
    // only the overlap at the end of each region folder.
    let (run, again) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(again["files_loaded"], 0, "{again}");
    assert_eq!(again["files_failed"], 1, "{again}");
    assert_eq!(again["records_written"], 0, "{again}");
    let (_, keys, gets) = server.counts.take();
    assert_eq!(gets, 1, "only the failed object is fetched again");
    assert!(
        (keys as usize) < trail_files,
        "the rerun listed {keys} keys of {trail_files} files"
    );
    assert_eq!(export_sorted(&lake), export_sorted(&local));
}

#[test]
fn new_late_and_failing_objects_are_found_and_a_failure_is_retried() {
    let (dir, server, _) = sample_bucket();
    remove_broken(dir.path());
    let lake = dir.path().join("lake");
    let (run, _) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    server.counts.take();

    // The newest key of the us-east-1 folder, and one delivered after it and one delivered
    // 30 minutes before it (a late upload within the overlap), and one the server refuses.
    let region = dir
        .path()
        .join("s3/trail-bucket/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1");
    let mut keys: Vec<PathBuf> = files_under(&region);
    keys.sort();
    let newest = keys.last().expect("a file").clone();
    let name = newest
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let fields: Vec<&str> = name.split('_').collect();
    let stamp = chrono::NaiveDateTime::parse_from_str(fields[3], "%Y%m%dT%H%MZ").expect("stamp");
    let folder = newest.parent().expect("folder");
    let named = |t: chrono::NaiveDateTime, unique: &str| {
        folder.join(format!(
            "111122223333_CloudTrail_us-east-1_{}_{unique}.json.gz",
            t.format("%Y%m%dT%H%MZ")
        ))
    };
    let write = |path: &Path, id: &str| {
        // With a record that has no time: quarantined, naming its object.
        let body = serde_json::json!({ "Records": [
            event(id, "2026-11-04T12:00:00Z", "DeleteBucket", "us-east-1"),
            {"eventID": format!("{id}-no-time"), "eventName": "GetObject"},
        ] });
        std::fs::write(path, gz(&serde_json::to_vec(&body).expect("json"))).expect("write");
    };
    write(
        &named(stamp + chrono::Duration::minutes(5), "NewNewNewNewNew1"),
        "new-1",
    );
    write(
        &named(stamp - chrono::Duration::minutes(30), "LateLateLateLat1"),
        "late-1",
    );
    write(
        &named(stamp + chrono::Duration::minutes(10), "DeniedDeniedDen1"),
        "denied-1",
    );
    server.counts.deny("DeniedDeniedDen1");

    let (run, r) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(
        run.code,
        Some(1),
        "a failed object makes the run partial: {}",
        run.stderr
    );
    assert_eq!(r["files_loaded"], 2, "{r}");
    assert_eq!(r["files_failed"], 1, "{r}");
    assert_failed_fetch(&r, "s3://trail-bucket/AWSLogs/", "DeniedDeniedDen1.json.gz");
    assert!(
        run.stderr.contains("s3://trail-bucket/AWSLogs/"),
        "{}",
        run.stderr
    );
    let ids = sql_csv(
        &lake,
        "SELECT eventid FROM cloudtrail WHERE eventid IN ('new-1', 'late-1', 'denied-1') ORDER BY 1",
    );
    assert_eq!(ids, "eventid\nlate-1\nnew-1\n");
    let quarantined = sql_csv(
        &lake,
        "SELECT sourcefile FROM quarantine WHERE record LIKE '%-no-time%' ORDER BY 1",
    );
    let names: Vec<&str> = quarantined.lines().skip(1).collect();
    assert_eq!(names.len(), 2, "{quarantined}");
    assert!(
        names.iter().all(|n| n.starts_with(
            "s3://trail-bucket/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1/"
        )),
        "{quarantined}"
    );

    // The refused object stays ahead of the folder's cursor: once readable, the next run
    // fetches it, and only it.
    assert_eq!(server.counts.take().2, 3, "three GETs: new, late, refused");
    server.counts.allow_all();
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 1, "{r}");
    assert_eq!(server.counts.take().2, 1, "one GET");
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM cloudtrail WHERE eventid = 'denied-1'"
        ),
        1
    );
}

#[test]
fn since_starts_the_listing_at_a_delivery_day() {
    let (dir, server, _) = sample_bucket();
    remove_broken(dir.path());
    let bucket = dir.path().join("s3/trail-bucket");
    let all: Vec<PathBuf> = files_under(&bucket)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("CloudTrail-Digest"))
        .collect();
    let from_day = |p: &PathBuf| {
        let parts: Vec<String> = p
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let at = parts
            .iter()
            .position(|s| s == "CloudTrail")
            .expect("layout");
        parts[at + 2..at + 5].join("-")
    };
    let mut days: Vec<String> = all.iter().map(from_day).collect();
    days.sort();
    days.dedup();
    assert!(
        days.len() >= 2,
        "the sample spans several delivery days: {days:?}"
    );
    let since = days.last().expect("day").clone();
    let expected = all.iter().filter(|p| from_day(p) >= since).count();

    let lake = dir.path().join("lake");
    let (run, r) = ingest_s3(
        &server,
        &lake,
        &["--since", &since, "s3://trail-bucket/AWSLogs"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_seen"], expected, "{r}");
    assert_eq!(r["files_loaded"], expected, "{r}");
    let (_, _, gets) = server.counts.take();
    assert_eq!(gets as usize, expected);
}

#[test]
fn a_source_that_cannot_be_listed_is_a_clear_error() {
    let (dir, server, _) = sample_bucket();
    let lake = dir.path().join("lake");

    let env = server.env_with("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let run = trailhouse_env(&lake, &["ingest", "s3://trail-bucket"], &env);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("source `s3://trail-bucket` cannot be read")
            && run.stderr.contains("the credentials were refused"),
        "{}",
        run.stderr
    );

    let run = trailhouse_env(&lake, &["ingest", "s3://no-such-bucket"], &server.env());
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("`s3://no-such-bucket` cannot be read: no such bucket"),
        "{}",
        run.stderr
    );

    let run = trailhouse_env(&lake, &["ingest", "s3://Bad_Bucket/x"], &server.env());
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("bucket name"), "{}", run.stderr);
}

#[test]
fn the_corpus_and_sample_trail_in_a_bucket_read_as_they_do_on_disk() {
    let (dir, server, _) = sample_bucket();
    copy_tree(&corpus_dir(), &dir.path().join("s3/trail-bucket/corpus"));
    let local = dir.path().join("local-lake");
    let sample = repo_root().join("sample-logs");
    let (_, from_disk) = ingest_json(&local, &[&sample, &corpus_dir()], &[]);
    let lake = dir.path().join("lake");
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for k in [
        "files_loaded",
        "files_failed",
        "records_read",
        "records_written",
        "records_duplicate",
        "records_collision",
        "records_quarantined",
        "quarantine_reasons",
    ] {
        assert_eq!(r[k], from_disk[k], "{k}: {r} vs {from_disk}");
    }
    // The same files failed, for the same reasons, named by their keys.
    let as_key = |name: &str| {
        let sample = format!("{}/", sample.display());
        let corpus = format!("{}/", corpus_dir().display());
        name.replace(&sample, "s3://trail-bucket/")
            .replace(&corpus, "s3://trail-bucket/corpus/")
    };
    let failures = |report: &serde_json::Value, rename: &dyn Fn(&str) -> String| {
        let mut v: Vec<(String, String)> = report["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .map(|f| {
                (
                    rename(f["file"].as_str().expect("file")),
                    f["error"].as_str().expect("error").to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        failures(&r, &|s| s.to_string()),
        failures(&from_disk, &as_key)
    );
    assert_eq!(export_sorted(&lake), export_sorted(&local));
    let outside = count(
        &lake,
        "SELECT count(*) FROM quarantine WHERE sourcefile NOT LIKE 's3://trail-bucket/%'",
    );
    assert_eq!(outside, 0);
}

#[test]
fn an_object_removed_between_list_and_get_fails_alone_and_a_rerun_loads_it_once_back() {
    let (dir, server, trail_files) = sample_bucket();
    remove_broken(dir.path());
    let local = dir.path().join("local-lake");
    let sample = dir.path().join("s3/trail-bucket");
    let (_, whole) = ingest_json(&local, &[&sample], &[]);

    // Listed, then gone when its GET arrives.
    let victim = files_under(&sample)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/eu-west-1/"))
        .expect("an eu-west-1 delivery");
    let kept = std::fs::read(&victim).expect("read");
    let name = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    server.counts.vanish(&name);
    let lake = dir.path().join("lake");
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(r["files_failed"], 1, "{r}");
    assert_eq!(
        r["files_loaded"].as_u64(),
        Some(trail_files as u64 - 2),
        "{r}"
    );
    assert_failed_fetch(&r, "s3://trail-bucket/", &name);
    assert!(
        count(&lake, "SELECT count(*) FROM cloudtrail") > 0,
        "the other objects are committed"
    );

    // Uploaded again: the next run reads it (and only it); the table is the whole trail's.
    server.counts.vanishing.lock().expect("lock").clear();
    std::fs::write(&victim, kept).expect("restore");
    server.counts.take();
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail-bucket"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 1, "{r}");
    assert_eq!(server.counts.take().2, 1, "one GET");
    assert_eq!(
        count(&lake, "SELECT count(*) FROM cloudtrail"),
        whole["records_written"].as_u64().unwrap_or_default()
    );
    assert_eq!(export_sorted(&lake), export_sorted(&local));
}

/// Writes one delivery of one event into `bucket`'s us-east-1 folder of account 111122223333,
/// named as CloudTrail names it, delivered at `minute` minutes past 2026-11-04T00:00Z.
fn deliver(bucket: &Path, minute: u32) {
    let time = chrono::NaiveDate::from_ymd_opt(2026, 11, 4)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("time")
        + chrono::Duration::minutes(i64::from(minute));
    let folder = bucket.join(format!(
        "AWSLogs/111122223333/CloudTrail/us-east-1/{}",
        time.format("%Y/%m/%d")
    ));
    std::fs::create_dir_all(&folder).expect("mkdir");
    let stamp = time.format("%Y%m%dT%H%MZ");
    let record = event(
        &format!("ev-{minute}"),
        &time.format("%Y-%m-%dT%H:%M:00Z").to_string(),
        "ListBuckets",
        "us-east-1",
    );
    let body = serde_json::to_vec(&serde_json::json!({ "Records": [record] })).expect("json");
    std::fs::write(
        folder.join(format!(
            "111122223333_CloudTrail_us-east-1_{stamp}_Abc{minute:05}.json.gz"
        )),
        gz(&body),
    )
    .expect("write");
}

/// Bucket `trail` holding 80 deliveries five minutes apart (six and a half hours of one region
/// folder), ingested into a local lake in batches of `batch_files`: the folder, the server, the
/// bucket's folder and the lake. The run does not compact the day its batches wrote (the tests
/// look at each batch's file).
fn long_read_bucket(batch_files: &str) -> (tempfile::TempDir, S3Server, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("s3/trail");
    for i in 0..80 {
        deliver(&bucket, i * 5);
    }
    let server = S3Server::start(&dir.path().join("s3"));
    let lake = dir.path().join("lake");
    let (run, r) = ingest_s3(
        &server,
        &lake,
        &["s3://trail", "--batch-files", batch_files, "--no-compact"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 80, "{r}");
    (dir, server, bucket, lake)
}

#[test]
fn the_ledger_of_a_bucket_read_for_long_keeps_only_what_can_be_listed_again() {
    let (_dir, server, bucket, lake) = long_read_bucket("1");

    // 80 batches: a checkpoint replaced them; it holds only the keys of the last hour (the
    // overlap the next run lists again), not the 80.
    let checkpoint = lake.join("_trailhouse/ledger/checkpoint.json");
    let text = std::fs::read_to_string(&checkpoint).expect("a checkpoint");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("json");
    let files = saved["files"].as_array().expect("files");
    assert!(
        (12..=14).contains(&files.len()),
        "{} files kept",
        files.len()
    );
    assert!(files.iter().all(|f| {
        f["path"]
            .as_str()
            .is_some_and(|p| p.contains("T05") || p.contains("T06"))
    }));

    // A rerun fetches nothing; a new delivery is fetched alone; every event is stored once.
    server.counts.take();
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        (r["files_loaded"].as_u64(), server.counts.take().2),
        (Some(0), 0),
        "{r}"
    );
    deliver(&bucket, 80 * 5);
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        (r["files_loaded"].as_u64(), server.counts.take().2),
        (Some(1), 1),
        "{r}"
    );
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT eventid) FROM cloudtrail"),
        81
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 81);
}

#[test]
fn a_repaired_batch_of_objects_behind_the_cursor_is_read_again() {
    let (_dir, server, _, lake) = long_read_bucket("10");

    // The first batch's data file (the first hour of deliveries, long behind the cursor) is lost.
    let commit =
        std::fs::read_to_string(lake.join("cloudtrail/_delta_log/00000000000000000001.json"))
            .expect("commit");
    let added: Vec<String> = commit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|a| a["add"]["path"].as_str().map(str::to_string))
        .collect();
    assert_eq!(added.len(), 1, "{commit}");
    std::fs::remove_file(lake.join("cloudtrail").join(&added[0])).expect("lose it");
    assert_eq!(check_repair(&lake), 10);
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 70);

    server.counts.take();
    let (run, r) = ingest_s3(&server, &lake, &["s3://trail"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["records_written"], 10, "{r}");
    assert_eq!(
        server.counts.take().2,
        10,
        "only the lost batch's objects are fetched"
    );
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT eventid) FROM cloudtrail"),
        80
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 80);
}
