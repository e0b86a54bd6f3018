//! A trail ingested from S3 beside the same trail on local disk, into a local lake and into a
//! lake in S3: the generated trail (`gen-trail`) is served by an in-process S3 endpoint
//! (s3s-fs, answering each GET and LIST after `--latency-ms`), and the `trailhouse` binary runs
//!
//! 1. `ingest TRAIL` (local disk → local lake), the baseline;
//! 2. `ingest s3://trail` → a local lake;
//! 3. `ingest s3://trail --lake s3://lake/trail` → a lake in S3;
//! 4. the same again: the no-op rerun of a cron job (LIST requests and keys, from the server);
//! 5. a question on each lake (`sql`, top event names).
//!
//! Each line: wall time, trailhouse's CPU (user + system) and peak RSS (through `/usr/bin/time`
//! when it is there), and the CPU the S3 server used meanwhile (it shares the machine).
//!
//! `target/release/s3-ingest --bin target/release/trailhouse --trail /data/trail-2m`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use trailhouse_benches::cpu::own_cpu;
use trailhouse_benches::s3_server::S3Server;

#[derive(Parser)]
struct Args {
    /// The trailhouse binary to run.
    #[arg(long)]
    bin: PathBuf,
    /// A trail folder (as `gen-trail --out` writes it).
    #[arg(long)]
    trail: PathBuf,
    /// Where the bucket (hard links to the trail's files) and the lakes go (default: a
    /// temporary directory on the trail's file system, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Milliseconds the server waits before answering each GET and LIST (S3's latency).
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
}

/// What one run cost.
struct Cost {
    wall: f64,
    cpu: Option<f64>,
    peak_mib: Option<f64>,
    server_cpu: f64,
    report: Option<serde_json::Value>,
}

fn run(args: &Args, server: &S3Server, lake: &Path, rest: &[&str]) -> anyhow::Result<Cost> {
    let timed = Path::new("/usr/bin/time").exists();
    let times = tempfile::NamedTempFile::new()?;
    let mut command = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-o")
            .arg(times.path())
            .args(["-f", "%U %S %M"])
            .arg(&args.bin);
        c
    } else {
        Command::new(&args.bin)
    };
    command
        .arg("--lake")
        .arg(lake)
        .args(rest)
        .envs(server.env());
    let (cpu0, t) = (own_cpu(), Instant::now());
    let out = command.output().context("run trailhouse")?;
    let wall = t.elapsed().as_secs_f64();
    let server_cpu = own_cpu() - cpu0;
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "trailhouse {rest:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (mut cpu, mut peak_mib) = (None, None);
    if timed {
        let text = std::fs::read_to_string(times.path())?;
        let v: Vec<f64> = text
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if let [user, system, kib] = v[..] {
            cpu = Some(user + system);
            peak_mib = Some(kib / 1024.0);
        }
    }
    let report = out
        .stdout
        .split(|b| *b == b'\n')
        .rfind(|l| !l.is_empty())
        .and_then(|l| serde_json::from_slice(l).ok());
    Ok(Cost {
        wall,
        cpu,
        peak_mib,
        server_cpu,
        report,
    })
}

fn print(label: &str, c: &Cost, server: &S3Server) {
    let (lists, keys, gets) = server.counts.take();
    let puts = server.counts.puts.swap(0, Ordering::SeqCst);
    let written = c
        .report
        .as_ref()
        .and_then(|r| r["records_written"].as_u64());
    let rate = written
        .filter(|&n| n > 0)
        .map(|n| format!("{:>8.0} events/s", n as f64 / c.wall))
        .unwrap_or_else(|| format!("{:>17}", ""));
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1}{unit}"));
    println!(
        "{label:<34} {:>7.2} s {rate}  trailhouse CPU {:>7}  peak {:>9}  server CPU {:>6.1} s  {lists:>4} LISTs {keys:>7} keys {gets:>7} GETs {puts:>5} PUTs",
        c.wall,
        opt(c.cpu, " s"),
        opt(c.peak_mib, " MiB"),
        c.server_cpu,
    );
}

/// Hard links of every file under `from` at the same places under `to`.
fn link_tree(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(from).with_context(|| from.display().to_string())? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            n += link_tree(&entry.path(), &target)?;
        } else {
            std::fs::hard_link(entry.path(), &target)
                .or_else(|_| std::fs::copy(entry.path(), &target).map(|_| ()))?;
            n += 1;
        }
    }
    Ok(n)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let parent = args.trail.parent().unwrap_or(Path::new("."));
            temp = tempfile::tempdir_in(parent)?;
            temp.path().to_path_buf()
        }
    };
    let objects = link_tree(&args.trail, &dir.join("s3/trail"))?;
    std::fs::create_dir_all(dir.join("s3/lake"))?;
    let server = S3Server::start(&dir.join("s3"));
    server
        .counts
        .latency_ms
        .store(args.latency_ms, Ordering::Relaxed);
    println!(
        "{} ({objects} objects) served with {} ms a request",
        args.trail.display(),
        args.latency_ms
    );
    let trail = args.trail.to_string_lossy().into_owned();
    let local = |name: &str| dir.join(name);
    let s3_lake = Path::new("s3://lake/trail");
    let ingest = ["ingest", "--json"];
    let question = [
        "sql",
        "SELECT eventname, count(*) FROM cloudtrail GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    ];
    for (label, lake, source) in [
        (
            "local disk -> local lake",
            local("lake-disk"),
            trail.as_str(),
        ),
        ("S3 -> local lake", local("lake-from-s3"), "s3://trail"),
        ("S3 -> S3 lake", s3_lake.to_path_buf(), "s3://trail"),
        (
            "S3 -> S3 lake, no-op rerun",
            s3_lake.to_path_buf(),
            "s3://trail",
        ),
    ] {
        let mut rest = ingest.to_vec();
        rest.push(source);
        let cost = run(&args, &server, &lake, &rest)?;
        print(label, &cost, &server);
    }
    for (label, lake) in [
        ("question, local lake", local("lake-disk")),
        ("question, S3 lake", s3_lake.to_path_buf()),
    ] {
        let cost = run(&args, &server, &lake, &question)?;
        print(label, &cost, &server);
    }
    Ok(())
}
