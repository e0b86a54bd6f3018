//! Running the binary and building input files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::Compression;
use flate2::write::GzEncoder;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The third-party corpus carried in the repository (`tests/corpus/README.md` says where each
/// record comes from, under which licence).
pub fn corpus_dir() -> PathBuf {
    repo_root().join("tests/corpus")
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("no output; stderr: {}", self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

pub fn trailhouse(lake: &Path, args: &[&str]) -> Run {
    trailhouse_env(lake, args, &[])
}

/// The binary run with these environment variables (and none of the user's AWS settings).
pub fn trailhouse_env(lake: &Path, args: &[&str], env: &[(&str, String)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailhouse"));
    command
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("TRAILHOUSE_LAKE");
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    let out: Output = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run trailhouse");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ingest_json(lake: &Path, sources: &[&Path], extra: &[&str]) -> (Run, serde_json::Value) {
    let mut args = vec!["ingest", "--json"];
    args.extend_from_slice(extra);
    let srcs: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
    args.extend(srcs.iter().map(String::as_str));
    let run = trailhouse(lake, &args);
    let json = run.json();
    (run, json)
}

pub fn sql_csv(lake: &Path, sql: &str) -> String {
    let r = trailhouse(lake, &["sql", "--format", "csv", sql]);
    assert_eq!(r.code, Some(0), "sql failed: {}", r.stderr);
    r.stdout
}

pub fn count(lake: &Path, sql: &str) -> u64 {
    let out = sql_csv(lake, sql);
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a count: {out}"))
}

/// `n` lowercase letters that do not compress (a xorshift sequence from `seed`, not zero), for
/// text whose size must show in what is stored and read.
pub fn incompressible(seed: u64, n: usize) -> String {
    let mut state = seed.max(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A CloudTrail trail file at `dir/AWSLogs/<account>/CloudTrail/<region>/2026/11/<dd>/<name>`.
pub fn write_trail_file(
    dir: &Path,
    region: &str,
    dd: u32,
    name: &str,
    records: &[serde_json::Value],
) -> PathBuf {
    let folder = dir
        .join("AWSLogs/111122223333/CloudTrail")
        .join(region)
        .join(format!("2026/11/{dd:02}"));
    std::fs::create_dir_all(&folder).expect("mkdir");
    let path = folder.join(name);
    let body = serde_json::to_vec(&serde_json::json!({ "Records": records })).expect("json");
    std::fs::write(&path, gz(&body)).expect("write");
    path
}

pub fn event(id: &str, time: &str, name: &str, region: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice", "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE"},
        "eventTime": time, "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": region,
        "sourceIPAddress": "198.51.100.1", "userAgent": "aws-cli/2", "requestParameters": {"bucketName": "b1"},
        "responseElements": null, "requestID": "R", "eventID": id, "readOnly": false, "eventType": "AwsApiCall",
        "managementEvent": true, "recipientAccountId": "111122223333", "eventCategory": "Management"
    })
}

/// Every exported record, parsed, sorted by its canonical text (order-insensitive comparison).
pub fn export_sorted(lake: &Path) -> Vec<String> {
    export_sorted_env(lake, &[])
}

/// [`export_sorted`] with `env` set (a lake in S3: the endpoint and keys).
pub fn export_sorted_env(lake: &Path, env: &[(&str, String)]) -> Vec<String> {
    let r = trailhouse_env(lake, &["export", "--format", "ndjson"], env);
    assert_eq!(r.code, Some(0), "export failed: {}", r.stderr);
    let mut v: Vec<String> = r
        .stdout
        .lines()
        .map(|l| canonical(&serde_json::from_str(l).expect("export line is JSON")))
        .collect();
    v.sort();
    v
}

/// JSON text with object keys sorted, for comparing records regardless of key order.
pub fn canonical(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// The ingest report's first failure names a file ending in `file` and a reason holding
/// `reason`.
pub fn first_failure_is(r: &serde_json::Value, file: &str, reason: &str) {
    let failure = &r["failures"][0];
    assert!(
        failure["file"].as_str().expect("file").ends_with(file)
            && failure["error"].as_str().expect("error").contains(reason),
        "{failure}"
    );
}

/// The ingest report's counts add up (the rule of `Report::reconciles`).
pub fn reconciles(r: &serde_json::Value) {
    let n = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("report has no `{k}`: {r}"))
    };
    assert_eq!(
        n("files_seen"),
        n("files_skipped") + n("files_loaded") + n("files_failed"),
        "{r}"
    );
    assert_eq!(
        n("records_read"),
        n("records_written") + n("records_duplicate") + n("records_quarantined"),
        "{r}"
    );
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs `check --repair` on a damaged lake (exit 1) and returns how many source files it has
/// the next ingest read again.
pub fn check_repair(lake: &Path) -> usize {
    let repaired = trailhouse(lake, &["check", "--repair", "--json"]);
    assert_eq!(repaired.code, Some(1), "{}", repaired.stderr);
    repaired.json()["sources_to_read_again"]
        .as_array()
        .map_or(0, Vec::len)
}

/// A copy of the files under `from` at `to`.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for f in files_under(from) {
        let target = to.join(f.strip_prefix(from).expect("inside"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &target).expect("copy");
    }
}

/// A temporary folder with the usual two places in it: `src` (trail files) and `lake`.
pub fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    (dir, src, lake)
}

/// The version of table `cloudtrail`'s latest checkpoint, as `_last_checkpoint` names it (its
/// file checked to be there).
pub fn checkpointed(lake: &Path) -> Option<u64> {
    let log = lake.join("cloudtrail/_delta_log");
    let last = std::fs::read_to_string(log.join("_last_checkpoint")).ok()?;
    let last: serde_json::Value = serde_json::from_str(&last).expect("_last_checkpoint");
    let version = last["version"].as_u64().expect("a version");
    assert!(
        log.join(format!("{version:020}.checkpoint.parquet"))
            .is_file(),
        "{last}"
    );
    Some(version)
}

/// The arguments of `trailhouse run NAME --format json` for one case of a saved query's
/// fixture (its parameters, `since` and `until`).
pub fn case_args(name: &str, case: &serde_json::Value) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into(), name.into(), "--format".into(), "json".into()];
    for (k, v) in case["params"].as_object().expect("params") {
        args.push("--param".into());
        args.push(format!(
            "{k}={}",
            v.as_str().map_or_else(|| v.to_string(), str::to_string)
        ));
    }
    for flag in ["since", "until"] {
        if let Some(v) = case[flag].as_str() {
            args.push(format!("--{flag}"));
            args.push(v.into());
        }
    }
    args
}

/// `child`'s exit status, waited for up to `seconds`; past that it is killed and the test fails
/// saying `what`.
pub fn exit_within(
    child: &mut std::process::Child,
    seconds: u64,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A client of `bucket` on the test S3 server, signing with its credentials.
pub fn s3_client(
    server: &trailhouse_benches::s3_server::S3Server,
    bucket: &str,
) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(trailhouse_benches::s3_server::ACCESS_KEY)
        .with_secret_access_key(trailhouse_benches::s3_server::SECRET_KEY)
        .build()
        .expect("client")
}
