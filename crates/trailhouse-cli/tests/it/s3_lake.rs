//! The lake in S3 (`--lake s3://bucket/prefix`), against a real S3 endpoint on 127.0.0.1
//! (s3s-fs): every command works on it as on a local lake, commits are conditional creates the
//! store refuses twice, and the writer's lease keeps a second writer out until it is stale.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use trailhouse_benches::s3_server::{S3Server, SECRET_KEY};

use crate::s3::sample_bucket;
use crate::support::*;

const LAKE: &str = "s3://lake-bucket/team/trail";

/// The sample trail in bucket `trail-bucket`, an empty bucket `lake-bucket` for the lake.
fn buckets() -> (tempfile::TempDir, S3Server) {
    let (dir, server, _) = sample_bucket();
    std::fs::create_dir_all(dir.path().join("s3/lake-bucket")).expect("lake bucket");
    (dir, server)
}

/// The lake's folder inside the server's root.
fn lake_folder(dir: &Path) -> PathBuf {
    dir.join("s3/lake-bucket/team/trail")
}

fn run_in(lake: &Path, server: &S3Server, args: &[&str]) -> Run {
    trailhouse_env(lake, args, &server.env())
}

/// The control rows of a Markdown report (status, pack, control, query, count, first and last
/// seen): what two lakes holding the same records must agree on.
fn control_rows(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| {
            l.starts_with("| ") && (l.contains("| cis-v6.0 |") || l.contains("| security |"))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn a_lake_in_s3_answers_every_command_as_a_local_lake() {
    let (dir, server) = buckets();
    let local = dir.path().join("local-lake");
    let (_, from_disk) = ingest_json(&local, &[&repo_root().join("sample-logs")], &[]);
    let lake = Path::new(LAKE);

    let run = run_in(lake, &server, &["ingest", "--json", "s3://trail-bucket"]);
    assert_eq!(
        run.code,
        Some(1),
        "the sample's broken file: {}",
        run.stderr
    );
    let r = run.json();
    reconciles(&r);
    for k in [
        "files_loaded",
        "files_failed",
        "records_read",
        "records_written",
        "records_duplicate",
        "records_quarantined",
    ] {
        assert_eq!(r[k], from_disk[k], "{k}: {r} vs {from_disk}");
    }
    assert!(
        run.stderr.contains(&format!("ingested into {LAKE}")),
        "{}",
        run.stderr
    );

    // The lake is in the bucket: tables, data files, the ledger; the lease is gone.
    let folder = lake_folder(dir.path());
    let commits: Vec<PathBuf> = files_under(&folder.join("cloudtrail/_delta_log"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(commits.len() >= 2, "{commits:?}");
    assert!(
        files_under(&folder.join("cloudtrail"))
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".parquet"))
    );
    assert!(!files_under(&folder.join("_trailhouse/ledger")).is_empty());
    assert!(!folder.join("_trailhouse/writer.lock").exists());
    // Every commit was written by a PUT that creates only if absent.
    let created = server.counts.created.lock().expect("lock").clone();
    for commit in &commits {
        let key = commit
            .strip_prefix(dir.path().join("s3"))
            .expect("in the server's root")
            .to_string_lossy()
            .into_owned();
        assert!(
            created.contains(&key),
            "{key} was not a conditional create: {created:?}"
        );
    }

    // Readers: export, sql, a saved query with its credentials lookup, the report.
    assert_eq!(
        export_sorted_env(lake, &server.env()),
        export_sorted(&local)
    );
    for sql in [
        "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail",
        "SELECT count(*) FROM credentials",
        "SELECT count(*) FROM quarantine",
        "SELECT principal, eventsource, eventname, sum(calls), min(first_seen), max(last_seen) \
         FROM call_summary GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    ] {
        let ours = run_in(lake, &server, &["sql", sql]);
        assert_eq!(ours.code, Some(0), "{sql}: {}", ours.stderr);
        assert_eq!(
            ours.stdout,
            trailhouse(&local, &["sql", sql]).stdout,
            "{sql}"
        );
    }
    let who = [
        "run",
        "who-deleted",
        "--param",
        "resource=a",
        "--since",
        "2026-11-01",
    ];
    let ours = run_in(lake, &server, &who);
    assert_eq!(ours.code, Some(0), "{}", ours.stderr);
    assert!(ours.stdout.contains("DeleteBucket"), "{}", ours.stdout);
    assert_eq!(ours.stdout, trailhouse(&local, &who).stdout);
    // new-behaviour's baseline from the call summaries, which the first query kept in the
    // lake's bucket.
    let new = [
        "run",
        "new-behaviour",
        "--param",
        "baseline=2026-10-01",
        "--since",
        "2026-11-03",
    ];
    let ours = run_in(lake, &server, &new);
    assert_eq!(ours.code, Some(0), "{}", ours.stderr);
    assert_eq!(ours.stdout, trailhouse(&local, &new).stdout);
    assert!(
        files_under(&folder.join("_trailhouse/call-summary/v1"))
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".parquet"))
    );
    let report = [
        "report",
        "--format",
        "markdown",
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
    ];
    let ours = run_in(lake, &server, &report);
    assert_eq!(ours.code, Some(0), "{}", ours.stderr);
    let rows = control_rows(&ours.stdout);
    assert!(rows.len() > 20, "{}", ours.stdout);
    assert_eq!(rows, control_rows(&trailhouse(&local, &report).stdout));
    assert!(ours.stdout.contains(LAKE), "the report names the lake");

    // A rerun reads nothing new; maintenance works on the lake in place.
    let again = run_in(lake, &server, &["ingest", "--json", "s3://trail-bucket"]).json();
    assert_eq!(again["files_loaded"], 0, "{again}");
    assert_eq!(again["records_written"], 0, "{again}");
    // The same records from another place (local copies): all duplicates of what the lake in
    // S3 holds, found by reading its files' record identities.
    let sample = repo_root().join("sample-logs");
    let copies = run_in(
        lake,
        &server,
        &["ingest", "--json", sample.to_str().expect("utf-8")],
    );
    let copies = copies.json();
    assert_eq!(copies["records_written"], 0, "{copies}");
    assert_eq!(
        copies["records_duplicate"], copies["records_read"],
        "{copies}"
    );
    let compact = run_in(lake, &server, &["compact"]);
    assert_eq!(compact.code, Some(0), "{}", compact.stderr);
    let vacuum = run_in(lake, &server, &["vacuum", "--dry-run"]);
    assert_eq!(vacuum.code, Some(0), "{}", vacuum.stderr);
    // Readers on other machines cannot be seen: a short retention is refused, saying why.
    let short = run_in(lake, &server, &["vacuum", "--retention-hours", "0"]);
    assert_eq!(short.code, Some(2));
    assert!(short.stderr.contains("other machines"), "{}", short.stderr);
    assert_eq!(
        export_sorted_env(lake, &server.env()),
        export_sorted(&local)
    );
}

#[test]
fn the_store_refuses_a_second_create_of_one_key() {
    let (_dir, server) = buckets();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store: Arc<dyn ObjectStore> = Arc::new(s3_client(&server, "lake-bucket"));
    let key = Key::from("t/_delta_log/00000000000000000001.json");
    let create = || PutOptions::from(PutMode::Create);
    runtime.block_on(async {
        store
            .put_opts(&key, PutPayload::from_static(b"first"), create())
            .await
            .expect("the first create");
        let second = store
            .put_opts(&key, PutPayload::from_static(b"second"), create())
            .await;
        assert!(
            matches!(second, Err(object_store::Error::AlreadyExists { .. })),
            "{second:?}"
        );
        let kept = store
            .get(&key)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&kept[..], b"first");
    });
    assert_eq!(
        server
            .counts
            .refused
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn a_second_writer_waits_for_a_live_lease_and_takes_over_a_stale_one() {
    let (dir, server) = buckets();
    let lake = Path::new(LAKE);
    let lock = lake_folder(dir.path()).join("_trailhouse/writer.lock");
    std::fs::create_dir_all(lock.parent().expect("folder")).expect("mkdir");
    std::fs::write(&lock, r#"{"pid":4242,"host":"elsewhere"}"#).expect("lease");

    let run = run_in(
        lake,
        &server,
        &["ingest", "--wait", "1", "s3://trail-bucket"],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("s3://lake-bucket/team/trail/_trailhouse/writer.lock"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("elsewhere"),
        "names the holder: {}",
        run.stderr
    );
    assert!(
        !lake_folder(dir.path()).join("cloudtrail").exists(),
        "nothing written"
    );

    // Not renewed for longer than a lease lives: its holder is gone; the next writer takes it.
    let stale = std::time::SystemTime::now() - std::time::Duration::from_secs(11 * 60);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .and_then(|f| f.set_modified(stale))
        .expect("age the lease");
    let run = run_in(lake, &server, &["ingest", "--json", "s3://trail-bucket"]);
    assert_eq!(
        run.code,
        Some(1),
        "the sample's broken file: {}",
        run.stderr
    );
    assert!(run.json()["records_written"].as_u64() > Some(0));
    assert!(!lock.exists(), "the lease is released");
}

#[test]
fn a_lake_that_cannot_be_written_or_read_is_one_clear_error_without_secrets() {
    let (_dir, server) = buckets();
    let lake = Path::new(LAKE);

    server.counts.deny("team/trail");
    let run = run_in(lake, &server, &["ingest", "s3://trail-bucket"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("s3://lake-bucket/team/trail"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("s3:PutObject"),
        "says what is needed: {}",
        run.stderr
    );
    server.counts.allow_all();

    let missing = run_in(lake, &server, &["sql", "SELECT 1"]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing
            .stderr
            .contains("no lake at `s3://lake-bucket/team/trail`"),
        "{}",
        missing.stderr
    );

    let env = server.env_with("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let refused = trailhouse_env(lake, &["sql", "SELECT 1"], &env);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("credentials were refused"),
        "{}",
        refused.stderr
    );

    let env = server.env_with("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let nobody = trailhouse_env(lake, &["sql", "SELECT 1"], &env);
    assert_eq!(nobody.code, Some(2));
    assert!(
        nobody.stderr.contains("does not answer"),
        "{}",
        nobody.stderr
    );
    let named = run_in(
        Path::new("s3://Lake_Bucket/x"),
        &server,
        &["sql", "SELECT 1"],
    );
    assert_eq!(named.code, Some(2));
    assert!(
        named.stderr.contains("lake `s3://Lake_Bucket/x`") && named.stderr.contains("bucket name"),
        "{}",
        named.stderr
    );
    for run in [&run, &missing, &refused, &nobody, &named] {
        assert!(!run.stderr.contains(SECRET_KEY) && !run.stderr.contains("not-the-secret"));
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{}",
            run.stderr
        );
    }
}
