//! Ingest benchmark: trailhouse's end-to-end ingest of a trail against single-core `gzip -dc` of
//! the same files. Reports events/s, MB/s of JSON, peak memory (VmHWM) and the ratio.
//!
//! `cargo run --release -p trailhouse-benches --bin bench-ingest -- --trail /tmp/trail`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Parser;
use trailhouse_ingest::{NoProgress, Options, ingest};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure ingest throughput and memory.
#[derive(Parser)]
struct Args {
    /// The trail to ingest (see gen-trail).
    #[arg(long)]
    trail: PathBuf,
    /// Lake directory (default: a fresh temporary one).
    #[arg(long)]
    lake: Option<PathBuf>,
    /// Memory budget in MiB (the CLI's default).
    #[arg(long, default_value_t = 768)]
    memory: u64,
    /// Skip the `gzip -dc` comparison.
    #[arg(long)]
    no_gzip: bool,
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir()?;
    let lake = a.lake.clone().unwrap_or_else(|| tmp.path().join("lake"));
    let mut opts = Options::new(&lake, vec![a.trail.clone()]);
    opts.memory_budget = a.memory << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let t = Instant::now();
    let report = rt.block_on(ingest(&opts, &NoProgress))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingest: {} files, {} events read, {} written, {} duplicate, {} quarantined, {} partitions",
        report.files_loaded,
        report.records_read,
        report.records_written,
        report.records_duplicate,
        report.records_quarantined,
        report.partitions
    );
    println!(
        "ingest: {:.2} s, {:.0} events/s, {:.1} MB/s JSON ({:.1} MB), peak RSS {:.0} MiB",
        secs,
        report.records_read as f64 / secs,
        report.bytes_json as f64 / 1e6 / secs,
        report.bytes_json as f64 / 1e6,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    let st = &report.stage_seconds;
    println!(
        "stages: read {:.2} s, partition {:.2} s, write {:.2} s, commit {:.2} s",
        st.read, st.partition, st.write, st.commit
    );
    if !a.no_gzip {
        // Single-core decompression of the same bytes: concatenated gzip members are one stream.
        let t = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg("find \"$1\" -type f -name '*.gz' -print0 | xargs -0 cat | gzip -dc > /dev/null")
            .arg("sh")
            .arg(&a.trail)
            .stdout(Stdio::null())
            .status()?;
        let gz = t.elapsed().as_secs_f64();
        println!(
            "gzip -dc: {:.2} s ({}); ingest / gzip = {:.2}x",
            gz,
            if status.success() { "ok" } else { "failed" },
            secs / gz
        );
    }
    Ok(())
}
