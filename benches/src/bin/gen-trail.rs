//! Writes a realistic CloudTrail trail for benchmarks.
//!
//! `cargo run --release -p trailhouse-benches --bin gen-trail -- --out /tmp/trail --events 2000000 --files 100000`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use trailhouse_benches::{TrailSpec, generate};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Generate a realistic CloudTrail trail in the S3 layout.
#[derive(Parser)]
struct Args {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    #[arg(long, default_value_t = 100_000)]
    files: u64,
    #[arg(long, default_value_t = 90)]
    days: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let spec = TrailSpec {
        events: a.events,
        files: a.files,
        days: a.days,
        seed: a.seed,
        ..TrailSpec::default()
    };
    let t = Instant::now();
    let g = generate(&spec, &a.out)?;
    println!(
        "wrote {} files, {} events ({} delivered twice), {:.1} MB JSON, {:.1} MB gzip in {:.1} s",
        g.files,
        g.events + g.duplicate_events,
        g.duplicate_events,
        g.json_bytes as f64 / 1e6,
        g.gzip_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
