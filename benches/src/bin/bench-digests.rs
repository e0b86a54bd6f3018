//! Digest benchmark: what judging a trail's digests costs, one digest at a time, on one
//! thread, without its log files: each digest read, decompressed, parsed, hashed and judged
//! against its chain (`ingest --verify` does this beside the run, on the time the run leaves
//! idle, so its cost per digest decides how much of it the run hides). A trail delivers a
//! digest per account, region and hour whether or not it logged anything: a 90-day trail of
//! 3 accounts and 17 regions has 110,000, whatever its events.
//!
//! Reports the process's CPU time (user and system, from `/proc/self/stat`) per digest judged,
//! for the listing and for the judging.
//!
//! `cargo run --release -p trailhouse-benches --bin bench-digests -- --trail /tmp/trail
//!  --public-keys /tmp/trail.keys.json`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use trailhouse_benches::cpu::own_cpu;
use trailhouse_ingest::discover::discover_all;
use trailhouse_ingest::verify::keys::PublicKeys;
use trailhouse_ingest::verify::objects::{Listing, Sources, Which};
use trailhouse_ingest::verify::{DigestVerdict, Judging, Window};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure the cost of judging a trail's digests.
#[derive(Parser)]
struct Args {
    /// The signed trail (see gen-trail and sign-trail).
    #[arg(long)]
    trail: PathBuf,
    /// Its public keys, as sign-trail wrote them.
    #[arg(long)]
    public_keys: PathBuf,
    /// Rounds over the same digests (the first warms the page cache).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys = PublicKeys::load(&[&args.public_keys]).context("reading the public keys")?;
    let found = discover_all(std::slice::from_ref(&args.trail)).context("walking the trail")?;
    let digests: Vec<(Box<std::path::Path>, u64)> = found
        .files
        .iter()
        .filter(|f| f.is_digest())
        .map(|f| (f.path.as_path().into(), f.size))
        .collect();
    anyhow::ensure!(
        !digests.is_empty(),
        "no digests under {}",
        args.trail.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()?;
    // One thread does it all, as `ingest --verify`'s background thread does.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    println!(
        "{} digest files (digests and their sidecars)",
        digests.len()
    );
    for round in 1..=args.rounds {
        let (list, listed) = cpu(|| {
            pool.install(|| {
                let Listing { objects, .. } =
                    Sources::listing_of_paths(&digests, &[], Which::Digests);
                Judging::new(objects, &keys, Window::default())
            })
        });
        let (judge, drained) = cpu(|| {
            runtime.block_on(listed.drain(&Sources::local_files(), 1))?;
            anyhow::Ok(listed.take_findings())
        });
        let findings = drained?;
        let judged = findings.checks().len().max(1);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / judged as f64;
        println!(
            "round {round}: listing {:.2} us/digest, judging {:.2} us/digest ({:.2} s); \
             {} judged, {} valid, {} log files listed",
            per(list),
            per(judge),
            judge.as_secs_f64(),
            findings.checks().len(),
            findings
                .checks()
                .iter()
                .filter(|c| c.verdict == DigestVerdict::Valid)
                .count(),
            findings.listed_count(),
        );
    }
    Ok(())
}

/// The process's CPU time (user and system) `work` takes, with what it returns: the judging
/// runs on the blocking pool's thread, so the whole process is counted (nothing else runs).
fn cpu<T>(work: impl FnOnce() -> T) -> (Duration, T) {
    let before = own_cpu();
    let wall = Instant::now();
    let out = work();
    let spent = (own_cpu() - before).max(0.0);
    // Where `/proc` cannot be read, the wall time (one thread works: about the same).
    let spent = if spent > 0.0 {
        Duration::from_secs_f64(spent)
    } else {
        wall.elapsed()
    };
    (spent, out)
}
