//! Writes a CloudTrail trail shaped like a production one, for benchmarks (see the library).
//!
//! `cargo run --release -p trailhouse-benches --bin gen-trail -- --shape trail --events 2000000 --out /data/trail-2m`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use trailhouse_benches::{Shape, Spec, generate};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Generate a realistic CloudTrail trail in the S3 layout.
#[derive(Parser)]
struct Args {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// `trail`: 3 accounts × 17 regions; `org`: an organization trail, 60 accounts × 30 regions.
    #[arg(long, default_value = "trail")]
    shape: Shape,
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Events per delivered file in busy streams.
    #[arg(long, default_value_t = 25)]
    events_per_file: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let spec = Spec {
        days: a.days,
        seed: a.seed,
        events_per_file: a.events_per_file,
        ..Spec::new(a.shape, a.events)
    };
    let t = Instant::now();
    let g = generate(&spec, &a.out)?;
    println!(
        "wrote {} files, {} events ({} delivered twice), {} temporary keys minted, {:.1} MB JSON, {:.1} MB gzip in {:.1} s",
        g.files,
        g.events + g.duplicate_events,
        g.duplicate_events,
        g.minted_keys,
        g.json_bytes as f64 / 1e6,
        g.gzip_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
