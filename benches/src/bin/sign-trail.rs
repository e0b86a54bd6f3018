//! Signs a trail on disk with a key of its own: hourly digests chained and signed as CloudTrail's
//! log file integrity validation makes them, and the key as `aws cloudtrail list-public-keys`
//! prints it, for trying `trailhouse verify` (and its benchmark) without AWS.
//!
//! `cargo run -p trailhouse-benches --bin sign-trail -- --trail DIR --keys DIR/public-keys.json`

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use trailhouse_benches::signed::{Sidecars, SignSpec, TestKey, sign_trail};

/// Write signed digests for every log file under a trail folder.
#[derive(Parser)]
struct Args {
    /// The folder holding the trail's `AWSLogs/`.
    #[arg(long)]
    trail: PathBuf,
    /// Where to write the public key (the shape `list-public-keys` prints).
    #[arg(long)]
    keys: PathBuf,
    /// Which digests keep their signature beside them as `<digest>.metadata.json`.
    #[arg(long, value_enum, default_value = "newest")]
    sidecars: Kept,
    /// A log file name to list in a backfill digest rather than in its hour's.
    #[arg(long)]
    backfill: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kept {
    All,
    Newest,
    None,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let started = Instant::now();
    let key = TestKey::generate();
    let spec = SignSpec {
        sidecars: match a.sidecars {
            Kept::All => Sidecars::All,
            Kept::Newest => Sidecars::Newest,
            Kept::None => Sidecars::None,
        },
        backfill: a.backfill,
        ..SignSpec::default()
    };
    let signed = sign_trail(&a.trail, &key, &spec)?;
    std::fs::write(&a.keys, key.public_keys_json())?;
    for (path, why) in &signed.skipped {
        eprintln!("not listed by any digest: {} ({why})", path.display());
    }
    let logs: usize = signed.digests.iter().map(|w| w.logs.len()).sum();
    eprintln!(
        "{} digests listing {logs} log files in {:.1} s; public key in {}",
        signed.digests.len(),
        started.elapsed().as_secs_f64(),
        a.keys.display()
    );
    Ok(())
}
