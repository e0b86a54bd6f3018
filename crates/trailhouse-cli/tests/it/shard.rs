//! Sharded ingest (`--shard K/N`): shards running at once fill one lake, local or in S3, with
//! the table a single ingest of the same sources gives; each reads only its accounts and
//! regions; a single writer and the shards keep out of each other's way.

use std::path::{Path, PathBuf};

use crate::s3::sample_bucket;
use crate::support::*;

/// Runs `trailhouse --lake LAKE ingest --json --shard K/N SOURCES…` for K = 1…N at once.
fn shards_at_once(
    lake: &Path,
    sources: &[&str],
    n: u32,
    env: &[(&str, String)],
) -> Vec<(Run, serde_json::Value)> {
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=n)
            .map(|k| {
                s.spawn(move || {
                    let shard = format!("{k}/{n}");
                    let mut args = vec!["ingest", "--json", "--shard", &shard];
                    args.extend_from_slice(sources);
                    trailhouse_env(lake, &args, env)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("shard run"))
            .collect()
    });
    runs.into_iter()
        .map(|run| {
            assert!(matches!(run.code, Some(0 | 1)), "{}", run.stderr);
            let json = run.json();
            reconciles(&json);
            (run, json)
        })
        .collect()
}

fn sum(reports: &[(Run, serde_json::Value)], key: &str) -> u64 {
    reports
        .iter()
        .map(|(_, r)| r[key].as_u64().unwrap_or_default())
        .sum()
}

#[test]
fn shards_at_once_fill_a_local_lake_as_one_ingest_does() {
    let (dir, single, whole) = scratch();
    let sample = repo_root().join("sample-logs");
    let corpus = corpus_dir();
    let (_, one) = ingest_json(&single, &[&sample, &corpus], &[]);

    let sources = [
        sample.to_str().expect("utf-8"),
        corpus.to_str().expect("utf-8"),
    ];
    let shards = shards_at_once(&whole, &sources, 3, &[]);
    for key in [
        "files_loaded",
        "files_failed",
        "records_read",
        "records_written",
        "records_quarantined",
    ] {
        assert_eq!(
            sum(&shards, key),
            one[key].as_u64().unwrap_or_default(),
            "{key}: {one}"
        );
    }
    // Each shard read a part: none read everything.
    for (_, r) in &shards {
        assert!(
            r["files_loaded"].as_u64() < one["files_loaded"].as_u64(),
            "{r}"
        );
    }
    assert_eq!(export_sorted(&whole), export_sorted(&single));
    assert_eq!(
        sql_csv(&whole, "SELECT count(*) FROM quarantine"),
        sql_csv(&single, "SELECT count(*) FROM quarantine")
    );

    // Each shard resumes from its own ledger: a rerun reads nothing new (the failed file again).
    let again = shards_at_once(&whole, &sources, 3, &[]);
    assert_eq!(sum(&again, "records_written"), 0);
    assert_eq!(sum(&again, "files_loaded"), 0);
    assert_eq!(export_sorted(&whole), export_sorted(&single));
    drop(dir);
}

#[test]
fn shards_at_once_fill_a_lake_in_s3_listing_only_their_regions() {
    let (dir, server, _) = sample_bucket();
    std::fs::create_dir_all(dir.path().join("s3/lake-bucket")).expect("lake bucket");
    let single = dir.path().join("single");
    let (_, one) = ingest_json(&single, &[&repo_root().join("sample-logs")], &[]);
    let lake = Path::new("s3://lake-bucket/sharded");

    let shards = shards_at_once(lake, &["s3://trail-bucket"], 2, &server.env());
    assert_eq!(
        sum(&shards, "records_written"),
        one["records_written"].as_u64().unwrap_or_default()
    );
    assert_eq!(
        sum(&shards, "files_failed"),
        1,
        "the sample's broken file, in one shard"
    );
    assert_eq!(
        export_sorted_env(lake, &server.env()),
        export_sorted(&single)
    );
    // Each shard listed only its region folders: together they listed each key once.
    let keys = trail_keys(&dir.path().join("s3/trail-bucket"));
    assert_eq!(sum(&shards, "s3_keys_listed") as usize, keys);
    for (_, r) in &shards {
        assert!(r["s3_keys_listed"].as_u64() < Some(keys as u64), "{r}");
    }
    let leases: Vec<PathBuf> = files_under(&dir.path().join("s3/lake-bucket/sharded/_trailhouse"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
}

/// Objects of the trail outside digest folders.
fn trail_keys(bucket: &Path) -> usize {
    files_under(bucket)
        .iter()
        .filter(|p| !p.to_string_lossy().contains("CloudTrail-Digest"))
        .count()
}

#[test]
fn a_single_writer_waits_for_live_shards_and_a_shard_for_a_single_writer() {
    let (dir, server, _) = sample_bucket();
    let folder = dir.path().join("s3/lake-bucket/l/_trailhouse");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let lake = Path::new("s3://lake-bucket/l");

    std::fs::write(
        folder.join("writer.shard-2-of-2.lock"),
        r#"{"host":"shard-host"}"#,
    )
    .expect("lease");
    let run = trailhouse_env(lake, &["ingest", "s3://trail-bucket"], &server.env());
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("writer.shard-2-of-2.lock") && run.stderr.contains("shard-host"),
        "{}",
        run.stderr
    );
    // Another shard goes on beside it.
    let run = trailhouse_env(
        lake,
        &["ingest", "--shard", "1/2", "s3://trail-bucket"],
        &server.env(),
    );
    assert!(matches!(run.code, Some(0 | 1)), "{}", run.stderr);
    std::fs::remove_file(folder.join("writer.shard-2-of-2.lock")).expect("release");

    std::fs::write(folder.join("writer.lock"), r#"{"host":"single-host"}"#).expect("lease");
    let run = trailhouse_env(
        lake,
        &["ingest", "--shard", "2/2", "s3://trail-bucket"],
        &server.env(),
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("single-host"), "{}", run.stderr);
    assert!(
        !folder.join("writer.shard-2-of-2.lock").exists(),
        "its own lease was given back"
    );
}

#[test]
fn a_local_single_writer_waits_for_a_running_shard() {
    let (_dir, src, lake) = scratch();
    write_trail_file(
        &src,
        "us-east-1",
        4,
        "a.json.gz",
        &[event(
            "e1",
            "2026-11-04T01:00:00Z",
            "ListBuckets",
            "us-east-1",
        )],
    );
    // While a shard's process runs, it holds the single writer's lock shared.
    let (run, _) = ingest_json(&lake, &[&src], &["--shard", "1/1"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lock = std::fs::File::options()
        .write(true)
        .open(lake.join("_trailhouse/writer.lock"))
        .expect("writer.lock");
    lock.lock_shared()
        .expect("held as a running shard holds it");
    let single = trailhouse(&lake, &["ingest", src.to_str().expect("utf-8")]);
    assert_eq!(single.code, Some(2), "{}", single.stderr);
    assert!(
        single.stderr.contains("being written by another process"),
        "{}",
        single.stderr
    );
    let shard = trailhouse(
        &lake,
        &["ingest", "--shard", "1/1", src.to_str().expect("utf-8")],
    );
    assert_eq!(
        shard.code,
        Some(0),
        "a shard goes on beside another: {}",
        shard.stderr
    );
    drop(lock);
    let single = trailhouse(&lake, &["ingest", src.to_str().expect("utf-8")]);
    assert_eq!(single.code, Some(0), "{}", single.stderr);
    assert_eq!(count(&lake, "SELECT count(*) FROM cloudtrail"), 1);
}
