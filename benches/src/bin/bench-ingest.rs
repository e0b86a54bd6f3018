//! Ingest benchmark: trailhouse's end-to-end ingest of a trail against single-core `gzip -dc` of
//! the same files. Reports events/s, MB/s of JSON, peak memory (VmHWM) and the ratio.
//!
//! Both are measured with the trail in the page cache (it is read once first), or, with `--cold`,
//! after dropping the page cache before each (needs root): the two differ by a factor of several
//! on storage with latency, and a machine's cache state between runs is otherwise a coin toss.
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
    #[arg(long, default_value_t = 512)]
    memory: u64,
    /// Skip the `gzip -dc` comparison.
    #[arg(long)]
    no_gzip: bool,
    /// Drop the page cache before ingest and before `gzip -dc` (root only) instead of warming it.
    #[arg(long)]
    cold: bool,
}

/// Puts the trail's files in the page cache (`warm`) or drops the whole page cache.
fn cache(trail: &std::path::Path, warm: bool) -> anyhow::Result<()> {
    if !warm {
        let synced = Command::new("sync").status()?;
        anyhow::ensure!(synced.success(), "sync failed");
        std::fs::write("/proc/sys/vm/drop_caches", "1")
            .map_err(|e| anyhow::anyhow!("cannot drop the page cache (--cold needs root): {e}"))?;
        return Ok(());
    }
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("find \"$1\" -type f -print0 | xargs -0 -P 16 -n 256 cat > /dev/null")
        .arg("sh")
        .arg(trail)
        .status()?;
    anyhow::ensure!(status.success(), "reading the trail failed");
    println!(
        "page cache: trail read in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
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
    let mut opts = Options::new(trailhouse_lake::Lake::new(&lake), vec![a.trail.clone()]);
    opts.memory_budget = a.memory << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    cache(&a.trail, !a.cold)?;
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
        "ingest{}: {:.2} s, {:.0} events/s, {:.1} MB/s JSON ({:.1} MB), peak RSS {:.0} MiB",
        if a.cold { " (cold cache)" } else { "" },
        secs,
        report.records_read as f64 / secs,
        report.bytes_json as f64 / 1e6 / secs,
        report.bytes_json as f64 / 1e6,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    let st = &report.stage_seconds;
    println!(
        "stages: discover {:.2} s, wait for storage {:.2} s, read {:.2} s, partition and write {:.2} s, commit {:.2} s",
        st.discover, st.wait, st.read, st.write, st.commit
    );
    if !a.no_gzip {
        // Single-core decompression of the same bytes: concatenated gzip members are one stream.
        cache(&a.trail, !a.cold)?;
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
            "gzip -dc{}: {:.2} s ({}); ingest / gzip = {:.2}x",
            if a.cold { " (cold cache)" } else { "" },
            gz,
            if status.success() { "ok" } else { "failed" },
            secs / gz
        );
    }
    Ok(())
}
