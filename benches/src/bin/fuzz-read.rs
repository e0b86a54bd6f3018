//! The read-path fuzzer (`trailhouse_benches::fuzz`), for a while: no panic, no hang, every
//! record accounted for, valid trail files rebuilt equal to serde_json's reading.
//!
//! `cargo run --release -p trailhouse-benches --bin fuzz-read -- --minutes 10`

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use trailhouse_benches::fuzz::{FuzzOptions, run};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fuzz the read path for a while.
#[derive(Parser)]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// At most this many inputs (0: no limit).
    #[arg(long, default_value_t = 0)]
    inputs: u64,
    /// Random seed (printed; the same seed replays the same inputs).
    #[arg(long)]
    seed: Option<u64>,
    /// Where inputs that break a rule are written.
    #[arg(long, default_value = "target/fuzz-read")]
    out: PathBuf,
    /// An input taking longer than this many seconds is a hang.
    #[arg(long, default_value_t = 10.0)]
    hang_seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    println!("fuzz-read: --seed {seed}");
    // Panics are findings, reported by the run, not printed as they happen.
    std::panic::set_hook(Box::new(|_| {}));
    let opts = FuzzOptions {
        duration: Duration::from_secs_f64(args.minutes * 60.0),
        inputs: args.inputs,
        seed,
        out: args.out.clone(),
        hang: Duration::from_secs_f64(args.hang_seconds),
        progress_every: 50_000,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let summary = run(&root, &opts)?;
    println!(
        "done: {} inputs, {} findings, {:?}",
        summary.inputs,
        summary.findings.len(),
        summary.tally
    );
    anyhow::ensure!(
        summary.findings.is_empty(),
        "{} inputs broke a rule (see {})",
        summary.findings.len(),
        args.out.display()
    );
    Ok(())
}
