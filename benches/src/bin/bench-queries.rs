//! Saved-query benchmark: runs the investigation pack over a lake (e.g. the one bench-ingest
//! built from the 2-million-event trail) and reports each query's wall time (median of runs).
//!
//! `cargo run --release -p trailhouse-benches --bin bench-queries -- --lake /tmp/lake`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use futures::StreamExt;
use trailhouse_lake::Lake;
use trailhouse_query::Session;
use trailhouse_query::saved::{Catalog, Window};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time the saved queries.
#[derive(Parser)]
struct Args {
    #[arg(long)]
    lake: PathBuf,
    /// Runs per query (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

async fn first_value(session: &Session, sql: &str) -> anyhow::Result<String> {
    let mut s = session.sql(sql).await?;
    while let Some(b) = s.next().await {
        let b = b?;
        if b.num_rows() > 0 {
            let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
            return Ok(arrow::array::AsArray::as_string::<i32>(col.as_ref())
                .value(0)
                .to_string());
        }
    }
    anyhow::bail!("no value for `{sql}`")
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let t = Instant::now();
        let session = Session::open(&Lake::new(&a.lake)).await?;
        println!("open: {:.3} s", t.elapsed().as_secs_f64());
        let bucket = first_value(&session, "SELECT json_get_str(requestparameters, 'bucketName') FROM cloudtrail WHERE eventname = 'DeleteBucket' LIMIT 1").await?;
        let key = first_value(&session, "SELECT useridentity.accesskeyid FROM cloudtrail WHERE useridentity.type = 'AssumedRole' AND eventname = 'DeleteBucket' LIMIT 1").await?;
        let ip = first_value(&session, "SELECT sourceipaddress FROM cloudtrail WHERE errorcode IS NOT NULL LIMIT 1").await?;
        // new-behaviour: the last 7 days of the data against the 90 before (as duckdb_queries.py).
        let last = first_value(&session, "SELECT max(eventtime) FROM cloudtrail").await?;
        let last = chrono::DateTime::parse_from_rfc3339(&last)
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(&last, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc().fixed_offset()))?
            .with_timezone(&chrono::Utc);
        let recent = last - chrono::Duration::days(7);
        let baseline = (last - chrono::Duration::days(97)).to_rfc3339();
        let cases: Vec<(&str, Vec<(String, String)>)> = vec![
            ("who-deleted", vec![("resource".into(), bucket.clone())]),
            ("resource-history", vec![("resource".into(), bucket.clone())]),
            ("session-origin", vec![("key".into(), key.clone())]),
            ("access-key", vec![("key".into(), key.clone())]),
            ("principal-activity", vec![("principal".into(), "alice".into())]),
            ("principal-summary", vec![("principal".into(), "alice".into())]),
            ("ip-activity", vec![("ip".into(), ip.clone())]),
            ("errors", vec![]),
            ("console-logins", vec![]),
            ("new-behaviour", vec![("baseline".into(), baseline.clone())]),
        ];
        let catalog = Catalog::builtin()?;
        let now = chrono::Utc::now();
        for (name, params) in cases {
            let q = catalog.get(name)?;
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..a.runs.max(1) {
                let window = match name {
                    "new-behaviour" => Window {
                        since: Some(recent.timestamp_micros()),
                        until: None,
                    },
                    _ => Window::default(),
                };
                let bound = q.bind(&params, window, now)?;
                let t = Instant::now();
                let mut s = session.run_saved(q, bound, false).await?;
                rows = 0;
                while let Some(b) = s.next().await {
                    rows += b?.num_rows();
                }
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{:<20} {:>8.3} s  {:>7} rows  ({})",
                name,
                times[times.len() / 2],
                rows,
                params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            );
        }
        Ok(())
    })
}
