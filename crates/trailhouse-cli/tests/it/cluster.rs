//! `--cluster`: a real DataFusion Ballista cluster (a scheduler and two executors, our binary,
//! on free ports of 127.0.0.1) gives the answers one machine gives: every saved query of the
//! investigation pack with its fixtures' parameters, ad-hoc SQL over the three tables, and the
//! report; a cluster serving another lake refuses the query.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::report::content;
use crate::support::*;

/// A node of the cluster: killed and reaped when dropped, whatever the test did.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// `trailhouse cluster ARGS` serving `lake`, with `env` (an S3 endpoint and its keys) set.
    fn start(lake: &Path, log: PathBuf, args: &[String], env: &[(&str, String)]) -> Node {
        let out = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_trailhouse"));
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("--lake")
            .arg(lake)
            .arg("cluster")
            .args(args)
            .env_remove("TRAILHOUSE_LAKE")
            .env_remove("TRAILHOUSE_CLUSTER")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start a node");
        Node { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for_port(node: &mut Node, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(node.is_running(), "the node stopped: {}", node.log());
        assert!(
            Instant::now() < deadline,
            "port {port} never opened: {}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and two executors serving `lake`; the address clients pass to `--cluster`.
struct Cluster {
    address: String,
    nodes: Vec<Node>,
    /// The environment of the nodes, and of the clients [`Cluster::run`] starts.
    env: Vec<(&'static str, String)>,
}

impl Cluster {
    fn start(lake: &Path, logs: &Path) -> Cluster {
        Cluster::start_with(lake, logs, &[], Vec::new())
    }

    /// A cluster whose scheduler has `scheduler_args` too, its nodes `env`.
    fn start_with(
        lake: &Path,
        logs: &Path,
        scheduler_args: &[&str],
        env: Vec<(&'static str, String)>,
    ) -> Cluster {
        let port = free_port();
        let mut args = vec![
            "scheduler".to_string(),
            "--bind".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(scheduler_args.iter().map(|a| a.to_string()));
        let mut scheduler = Node::start(lake, logs.join("scheduler.log"), &args, &env);
        wait_for_port(&mut scheduler, port);
        let mut nodes = vec![scheduler];
        for i in 0..2 {
            let (flight, grpc) = (free_port(), free_port());
            let mut executor = Node::start(
                lake,
                logs.join(format!("executor-{i}.log")),
                &[
                    "executor".into(),
                    "--scheduler".into(),
                    format!("df://127.0.0.1:{port}"),
                    "--bind".into(),
                    format!("127.0.0.1:{flight}"),
                    "--grpc-port".into(),
                    grpc.to_string(),
                    "--concurrency".into(),
                    "2".into(),
                    "--work-dir".into(),
                    logs.join(format!("work-{i}")).display().to_string(),
                ],
                &env,
            );
            wait_for_port(&mut executor, flight);
            nodes.push(executor);
        }
        Cluster {
            address: format!("df://127.0.0.1:{port}"),
            nodes,
            env,
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(Node::log)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `sql` started on the cluster, its progress always shown: CSV on a pipe, standard error
    /// into the file `stderr`.
    fn spawn_sql(&self, lake: &Path, stderr: &Path, sql: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_trailhouse"))
            .arg("--lake")
            .arg(lake)
            .args(["sql", "--format", "csv", "--progress", "always"])
            .args(["--cluster", &self.address, sql])
            .env_remove("TRAILHOUSE_LAKE")
            .env_remove("TRAILHOUSE_CLUSTER")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("start the statement")
    }

    /// `args` run on the cluster.
    fn run(&self, lake: &Path, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--cluster", self.address.as_str()]);
        trailhouse_env(lake, &all, &self.env)
    }
}

/// Rows of a JSON answer, each as canonical text, sorted (rows tied in a query's order may come
/// in either order).
fn rows(run: &Run, what: &str, logs: &str) -> Vec<String> {
    assert_eq!(run.code, Some(0), "{what}: {}\n{logs}", run.stderr);
    let rows: Vec<Value> =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{what}: {e}: {}", run.stdout));
    let mut rows: Vec<String> = rows.iter().map(canonical).collect();
    rows.sort();
    rows
}

/// The report both ways: the whole sample's time, JSON, every matching row kept (the first
/// rows of a control are a choice among rows tied in its order); the Sigma rules too (their
/// paths into JSON are our functions, run by the executors).
const REPORT: [&str; 15] = [
    "report",
    "--pack",
    "cis-v6.0",
    "--pack",
    "security",
    "--pack",
    "sigma",
    "--since",
    "2000-01-01",
    "--until",
    "2026-11-29",
    "--format",
    "json",
    "--max-events",
    "10000",
];

/// Every case of the investigation pack's fixtures: (query, its arguments).
fn investigation_cases(events: &mut Vec<Value>) -> Vec<(String, Vec<String>)> {
    let dir = repo_root().join("queries/investigate");
    let mut cases = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("queries/investigate")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.json"))
        .collect();
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".test.json"))
            .expect("name")
            .to_string();
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        events.extend(spec["events"].as_array().expect("events").iter().cloned());
        for case in spec["cases"].as_array().expect("cases") {
            cases.push((name.clone(), case_args(&name, case)));
        }
    }
    cases
}

#[test]
fn a_cluster_answers_as_one_machine_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    // The sample trail, the corpus, and every event of the investigation pack's fixtures (its
    // matches and look-alikes), so that each case has rows to give.
    let mut events = Vec::new();
    let cases = investigation_cases(&mut events);
    let fixtures = dir.path().join("fixtures.ndjson");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&fixtures, text).expect("write");
    // Exit 1: the sample trail's one truncated file (its records before the break are read).
    let (run, _) = ingest_json(
        &lake,
        &[&repo_root().join("sample-logs"), &corpus_dir(), &fixtures],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);

    let cluster = Cluster::start(&lake, dir.path());
    let mut non_empty = 0;
    for (name, args) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let local = rows(&trailhouse(&lake, &argv), name, "");
        let distributed = rows(&cluster.run(&lake, &argv), name, &cluster.logs());
        assert_eq!(distributed, local, "{args:?}");
        non_empty += usize::from(!local.is_empty());
    }
    assert!(non_empty >= 10, "only {non_empty} cases had rows");

    // Ad-hoc SQL: aggregates over every partition, the quarantine, a join on `credentials`.
    for sql in [
        "SELECT region, day, count(*) AS n, count(DISTINCT eventname) AS names FROM cloudtrail \
         GROUP BY region, day ORDER BY region, day",
        // Without group keys: CountDistinct nodes, sent to the scheduler and the executors.
        "SELECT count(DISTINCT eventid) AS ids, count(DISTINCT sourceipaddress) AS ips, \
         count(*) AS n FROM cloudtrail",
        "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY reason",
        "SELECT c.minted_key, c.origin, c.hops, count(*) AS calls FROM cloudtrail h \
         JOIN credentials c ON c.minted_key = h.useridentity.accesskeyid \
         GROUP BY c.minted_key, c.origin, c.hops ORDER BY calls DESC, c.minted_key",
        "SELECT minted_key, origin_type FROM credentials ORDER BY minted_key",
    ] {
        let args = ["sql", "--format", "json", sql];
        let local = rows(&trailhouse(&lake, &args), sql, "");
        assert!(!local.is_empty(), "{sql}: no rows");
        let distributed = rows(&cluster.run(&lake, &args), sql, &cluster.logs());
        assert_eq!(distributed, local, "{sql}");
    }

    // Every record back, as exported from one machine.
    let export = ["export", "--format", "ndjson", "--quarantine"];
    let sorted = |run: Run| {
        assert_eq!(
            run.code,
            Some(0),
            "export: {}\n{}",
            run.stderr,
            cluster.logs()
        );
        let mut lines: Vec<String> = run.stdout.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let local = sorted(trailhouse(&lake, &export));
    assert!(local.len() > 900, "{} records", local.len());
    assert_eq!(sorted(cluster.run(&lake, &export)), local);

    // The report: the controls' scans on the cluster, the same document (every matching row
    // kept: the first rows of a control are a choice among rows tied in its order).
    let local = content(&trailhouse(&lake, &REPORT));
    let distributed = cluster.run(&lake, &REPORT);
    assert_eq!(
        distributed.code,
        Some(0),
        "{}\n{}",
        distributed.stderr,
        cluster.logs()
    );
    assert_eq!(content(&distributed), local);

    // An executor lost: its tasks run again on the other one (the same answer), or the query
    // fails saying so; never fewer rows presented as the answer.
    let mut cluster = cluster;
    let lost = cluster.nodes.pop().expect("an executor");
    drop(lost);
    let sql = "SELECT region, day, count(*) AS n FROM cloudtrail GROUP BY region, day";
    let args = ["sql", "--format", "json", sql];
    let local = rows(&trailhouse(&lake, &args), sql, "");
    let after = cluster.run(&lake, &args);
    match after.code {
        Some(0) => assert_eq!(rows(&after, sql, &cluster.logs()), local),
        _ => {
            assert_eq!(after.code, Some(2), "{}", after.stderr);
            assert!(after.stdout.is_empty(), "{}", after.stdout);
            assert!(after.stderr.starts_with("error: "), "{}", after.stderr);
        }
    }

    // Another lake (another table) is refused, not answered from the cluster's files.
    let other = dir.path().join("other");
    let (run, _) = ingest_json(&other, &[&repo_root().join("sample-logs")], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let refused = cluster.run(&other, &["sql", "SELECT count(*) FROM cloudtrail"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("which does not hold the table the query was planned on"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_cluster_that_is_not_there_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, _) = ingest_json(&lake, &[&repo_root().join("sample-logs")], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let port = free_port();
    let address = format!("df://127.0.0.1:{port}");
    let r = trailhouse(
        &lake,
        &[
            "sql",
            "--cluster",
            &address,
            "SELECT count(*) FROM cloudtrail",
        ],
    );
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(
        r.stderr
            .contains(&format!("no scheduler answers at df://127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hint:"), "{}", r.stderr);
    let r = trailhouse(
        &lake,
        &["sql", "--cluster", "df://127.0.0.1:port", "SELECT 1"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(
        r.stderr.contains("the port is not a number"),
        "{}",
        r.stderr
    );
}

/// The scheduler's REST API at `address` (`df://HOST:PORT`): the JSON `path` answers.
fn scheduler_api(address: &str, path: &str) -> Value {
    use std::io::{Read, Write};
    let host = address.trim_start_matches("df://");
    let mut stream = TcpStream::connect(host).expect("connect to the scheduler");
    // HTTP/1.0: the answer is the body up to the end of the connection, never chunked.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200"), "{path}: {head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The jobs the scheduler knows, by id.
fn jobs(address: &str) -> Vec<Value> {
    scheduler_api(address, "/api/jobs")
        .as_array()
        .expect("a list of jobs")
        .clone()
}

#[test]
fn a_cluster_query_shows_its_progress_and_ctrl_c_cancels_its_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, _) = ingest_json(&lake, &[&repo_root().join("sample-logs")], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let cluster = Cluster::start(&lake, dir.path());

    // A statement is cut for the cluster's cores: the scan stage's partitions go to both
    // executors (each takes as many as it has cores), and the answer is the one machine's.
    let sql = "SELECT region, day, count(*) AS n FROM cloudtrail GROUP BY region, day";
    let args = ["sql", "--format", "json", "--progress", "never", sql];
    let local = rows(&trailhouse(&lake, &args), sql, "");
    assert_eq!(
        rows(&cluster.run(&lake, &args), sql, &cluster.logs()),
        local
    );
    let done = jobs(&cluster.address);
    let [job] = done.as_slice() else {
        panic!("one job expected: {done:?}");
    };
    assert!(
        job["job_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("trailhouse ")),
        "{job}"
    );
    let id = job["job_id"].as_str().expect("job id");
    let stages = scheduler_api(&cluster.address, &format!("/api/job/{id}/stages"));
    let widest = stages["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["tasks"].as_array().map_or(0, Vec::len))
        .max();
    assert!(widest >= Some(2), "one task per stage: {stages}");

    // A statement that runs for minutes: its progress is shown, Ctrl-C (SIGINT) cancels it on
    // the cluster and ends the command with status 130.
    let stderr = dir.path().join("stderr.txt");
    let mut child = cluster.spawn_sql(
        &lake,
        &stderr,
        "SELECT count(*) FROM cloudtrail a, cloudtrail b, cloudtrail c, cloudtrail d \
         WHERE a.eventid <> d.eventid",
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let progress = loop {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(" running")) {
            break line.to_string();
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the statement ended: {text}\n{}",
            cluster.logs()
        );
        assert!(Instant::now() < deadline, "no progress shown: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        progress.starts_with("cluster: stages ") && progress.contains(" tasks "),
        "{progress}"
    );
    let running: Vec<Value> = jobs(&cluster.address)
        .into_iter()
        .filter(|j| j["status"] == "Running")
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    let id = running[0]["job_id"].as_str().expect("job id").to_string();

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = exit_within(&mut child, 30, "Ctrl-C did not end the statement");
    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(
        text.contains(&format!("interrupted; job {id} cancelled on the cluster")),
        "{text}"
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("stdout");
    assert!(stdout.is_empty(), "a partial answer: {stdout}");
    let job = jobs(&cluster.address)
        .into_iter()
        .find(|j| j["job_id"] == id.as_str())
        .expect("the job");
    assert_eq!(job["status"], "Failed", "{job}");
    assert!(
        job["job_status"]
            .as_str()
            .is_some_and(|s| s.contains("Cancelled")),
        "{job}"
    );
}

#[test]
fn an_executor_killed_mid_query_gives_the_answer_or_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, _) = ingest_json(&lake, &[&repo_root().join("sample-logs")], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let mut cluster =
        Cluster::start_with(&lake, dir.path(), &["--executor-timeout", "10"], Vec::new());
    // Seconds of work in every executor: all triples of the trail's events.
    let sql = "SELECT sum(length(a.eventid || b.eventid || c.eventid)) AS n \
               FROM cloudtrail a, cloudtrail b, cloudtrail c WHERE a.eventid <> c.eventid";
    let local = trailhouse(&lake, &["sql", "--format", "csv", sql]);
    assert_eq!(local.code, Some(0), "{}", local.stderr);

    let stderr = dir.path().join("stderr.txt");
    let child = cluster.spawn_sql(&lake, &stderr, sql);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&stderr)
        .unwrap_or_default()
        .contains(" running")
    {
        assert!(Instant::now() < deadline, "the statement never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    // An executor gone while its tasks run: killed, as a machine that dies.
    drop(cluster.nodes.pop().expect("an executor"));

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    // A bound on hanging, not a speed target: the lost tasks may be run again on the executor
    // left, which shares two cores with the rest of the suite (150 s was once not enough).
    let out = rx
        .recv_timeout(Duration::from_secs(420))
        .unwrap_or_else(|_| {
            panic!(
                "the statement neither ended nor failed in 420 s\n{}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default(),
                cluster.logs()
            )
        })
        .expect("output");
    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "after the executor was lost: {:?}\n{text}",
        out.status.code()
    );
    match out.status.code() {
        // Ballista ran the lost tasks again: the whole answer.
        Some(0) => assert_eq!(stdout, local.stdout, "{text}"),
        // Or it says what happened, with no rows presented as the answer.
        _ => {
            assert_eq!(out.status.code(), Some(2), "{text}\n{}", cluster.logs());
            assert!(stdout.is_empty(), "a partial answer: {stdout}");
            assert!(text.contains("error: "), "{text}");
            // Not a bare "cancelled": what happened, in our words or Ballista's.
            assert!(
                text.contains("an executor was lost") || text.contains("executors were lost"),
                "{text}"
            );
        }
    }
}

/// A lake in S3 (a real S3 endpoint on 127.0.0.1): the scheduler plans from the table's log in
/// the bucket, the executors read its files and look temporary keys up there, and every answer
/// is the one a single machine reading the same bucket gives.
#[test]
fn a_cluster_serving_a_lake_in_s3_answers_as_one_machine_does() {
    use trailhouse_benches::s3_server::S3Server;

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("s3/lake-bucket")).expect("lake bucket");
    let server = S3Server::start(&dir.path().join("s3"));
    let lake = Path::new("s3://lake-bucket/team/trail");
    let sources = [repo_root().join("sample-logs"), corpus_dir()];
    let mut ingest = vec!["ingest".to_string(), "--json".into()];
    ingest.extend(sources.iter().map(|p| p.display().to_string()));
    let ingest: Vec<&str> = ingest.iter().map(String::as_str).collect();
    let run = trailhouse_env(lake, &ingest, &server.env());
    assert_eq!(
        run.code,
        Some(1),
        "the sample's broken file: {}",
        run.stderr
    );
    assert!(
        dir.path()
            .join("s3/lake-bucket/team/trail/cloudtrail/_delta_log")
            .is_dir(),
        "the lake is in the bucket"
    );

    let cluster = Cluster::start_with(lake, dir.path(), &[], server.env());
    let local = |args: &[&str]| trailhouse_env(lake, args, &server.env());
    let saved = |name| {
        vec![
            "run",
            name,
            "--param",
            "resource=customer-exports-prod",
            "--since",
            "2000-01-01",
            "--format",
            "json",
        ]
    };
    for args in [
        saved("who-deleted"),
        saved("resource-history"),
        vec![
            "sql",
            "--format",
            "json",
            "SELECT region, day, count(*) AS n FROM cloudtrail GROUP BY region, day",
        ],
        vec![
            "sql",
            "--format",
            "json",
            "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason",
        ],
        vec![
            "sql",
            "--format",
            "json",
            "SELECT minted_key, origin, hops FROM credentials",
        ],
    ] {
        let expected = rows(&local(&args), &args.join(" "), "");
        assert!(!expected.is_empty(), "{args:?}: no rows");
        let distributed = rows(&cluster.run(lake, &args), &args.join(" "), &cluster.logs());
        assert_eq!(distributed, expected, "{args:?}");
    }
    let distributed = cluster.run(lake, &REPORT);
    assert_eq!(
        distributed.code,
        Some(0),
        "{}\n{}",
        distributed.stderr,
        cluster.logs()
    );
    assert_eq!(content(&distributed), content(&local(&REPORT)));
}
