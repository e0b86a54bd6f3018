//! What an ingest from S3 asks of the server, counted on the server's side: a bucket of N objects
//! in CloudTrail's layout (accounts × regions, a file every 5 minutes per folder) served by an
//! in-process S3 endpoint, ingested by the `trailhouse` binary three times: the first run, a no-op
//! rerun (what a cron job every 5 minutes does most of the time), and a rerun after one new
//! delivery per region folder.
//!
//! `target/release/s3-listing --bin target/release/trailhouse --objects 100000`
//! (`--latency-ms 20 --requests N` to see what requests in flight buy against S3's latency)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use clap::Parser;
use flate2::Compression;
use flate2::write::GzEncoder;
use trailhouse_benches::s3_server::S3Server;

#[derive(Parser)]
struct Args {
    /// The trailhouse binary to run.
    #[arg(long)]
    bin: PathBuf,
    /// Objects in the bucket.
    #[arg(long, default_value_t = 100_000)]
    objects: usize,
    /// Accounts of the organization trail.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Regions per account.
    #[arg(long, default_value_t = 10)]
    regions: usize,
    /// Where the bucket and the lake go (default: a temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Milliseconds the server waits before answering each GET and LIST (S3's latency).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Requests in flight (trailhouse's --s3-requests).
    #[arg(long, default_value_t = 256)]
    requests: usize,
}

const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
    "me-south-1",
];

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// Writes the `n`th delivery of one account and region; returns its path.
fn deliver(bucket: &Path, account: &str, region: &str, n: usize) -> anyhow::Result<PathBuf> {
    let t = start() + Duration::minutes(5 * n as i64);
    let folder = bucket
        .join("AWSLogs/o-benchorg01")
        .join(account)
        .join("CloudTrail")
        .join(region)
        .join(t.format("%Y/%m/%d").to_string());
    std::fs::create_dir_all(&folder)?;
    let unique = format!("{:016x}", (n as u64) ^ 0x5eed_0000_0000_0000);
    let path = folder.join(format!(
        "{account}_CloudTrail_{region}_{}_{}.json.gz",
        t.format("%Y%m%dT%H%MZ"),
        &unique[..16]
    ));
    let records: Vec<serde_json::Value> = (0..2)
        .map(|i| {
            serde_json::json!({
                "eventVersion": "1.11",
                "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
                "eventTime": (t - Duration::minutes(2)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "awsRegion": region,
                "sourceIPAddress": "ec2.amazonaws.com", "userAgent": "ec2.amazonaws.com",
                "eventID": format!("{account}-{region}-{n}-{i}"), "eventType": "AwsApiCall",
                "readOnly": true, "managementEvent": true, "recipientAccountId": account,
                "eventCategory": "Management"
            })
        })
        .collect();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&serde_json::to_vec(
        &serde_json::json!({ "Records": records }),
    )?)?;
    std::fs::write(&path, gz.finish()?)?;
    Ok(path)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.regions > REGIONS.len() {
        bail!("at most {} regions", REGIONS.len());
    }
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let bucket = dir.join("s3/bench-trail");
    let lake = dir.join("lake");
    let folders = args.accounts * args.regions;
    let per_folder = args.objects.div_ceil(folders);
    let accounts: Vec<String> = (0..args.accounts)
        .map(|a| format!("{:012}", 100_000_000_000u64 + a as u64))
        .collect();
    let t = Instant::now();
    for account in &accounts {
        for region in &REGIONS[..args.regions] {
            for n in 0..per_folder {
                deliver(&bucket, account, region, n)?;
            }
        }
    }
    let objects = folders * per_folder;
    eprintln!(
        "bucket: {objects} objects ({} accounts × {} regions × {per_folder} deliveries, {:.1} days), written in {:.1} s",
        args.accounts,
        args.regions,
        per_folder as f64 * 5.0 / 1440.0,
        t.elapsed().as_secs_f64()
    );

    let server = S3Server::start(&dir.join("s3"));
    server
        .counts
        .latency_ms
        .store(args.latency_ms, std::sync::atomic::Ordering::Relaxed);
    let requests = args.requests.to_string();
    let run = |label: &str| -> anyhow::Result<()> {
        let t = Instant::now();
        let out = Command::new(&args.bin)
            .args(["--lake"])
            .arg(&lake)
            .args([
                "ingest",
                "--json",
                "--s3-requests",
                &requests,
                "s3://bench-trail",
            ])
            .envs(server.env())
            .output()
            .context("run trailhouse")?;
        let seconds = t.elapsed().as_secs_f64();
        let report: serde_json::Value = serde_json::from_slice(
            out.stdout
                .split(|b| *b == b'\n')
                .rfind(|l| !l.is_empty())
                .unwrap_or_default(),
        )
        .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        let folders = server
            .counts
            .prefixes
            .load(std::sync::atomic::Ordering::SeqCst);
        let server_listing = server
            .counts
            .list_micros
            .load(std::sync::atomic::Ordering::SeqCst) as f64
            / 1e6;
        let (lists, keys, gets) = server.counts.take();
        println!(
            "{label:<24} {seconds:>7.2} s  {lists:>6} LISTs  {folders:>5} folders and {keys:>7} keys listed ({:>6.2} % of the objects)  {gets:>6} GETs  {:>6} files loaded  (discover {:.2} s, of which the server's LISTs {server_listing:.2} s)",
            100.0 * keys as f64 / objects as f64,
            report["files_loaded"],
            report["stage_seconds"]["discover"]
                .as_f64()
                .unwrap_or_default()
        );
        Ok(())
    };
    run("first run")?;
    run("no-op rerun")?;
    for account in &accounts {
        for region in &REGIONS[..args.regions] {
            deliver(&bucket, account, region, per_folder)?;
        }
    }
    run("one new file per folder")?;
    Ok(())
}
