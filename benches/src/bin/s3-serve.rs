//! Serves a directory as S3 (each sub-folder a bucket) on 127.0.0.1 until killed, with an
//! optional latency per request, printing the environment a client needs. For benchmarks of `trailhouse ingest s3://…` against a
//! copy of a generated trail:
//!
//! ```sh
//! mkdir -p /data/s3 && cp -al /data/trail-2m /data/s3/trail-2m
//! target/release/s3-serve --root /data/s3 --latency-ms 20 > s3.env &
//! env $(cat s3.env) target/release/trailhouse --lake /data/lake-s3 ingest s3://trail-2m
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use clap::Parser;
use trailhouse_benches::s3_server::S3Server;

#[derive(Parser)]
struct Args {
    /// The directory whose folders are the buckets.
    #[arg(long)]
    root: PathBuf,
    /// Milliseconds the server waits before answering each GET and LIST.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = S3Server::start(&args.root);
    server
        .counts
        .latency_ms
        .store(args.latency_ms, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    for (key, value) in server.env() {
        writeln!(out, "{key}={value}")?;
    }
    out.flush()?;
    drop(out);
    loop {
        std::thread::park();
    }
}
