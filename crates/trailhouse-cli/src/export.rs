//! `trailhouse export`: the original records back, one per line.

use std::process::ExitCode;

use trailhouse_lake::Lake;
use trailhouse_query::export::export_ndjson;

use crate::cli::{ExportArgs, ExportFormat};

pub async fn run(lake: &Lake, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::Ndjson = args.format;
    let session = args.engine.session(lake).await?;
    let mut out = crate::output::open(args.output.as_deref())?;
    let counts = export_ndjson(&session, args.quarantine, &mut out).await?;
    out.finish()?;
    eprintln!(
        "exported {} records{}",
        counts.records,
        if args.quarantine {
            format!(" and {} quarantined records", counts.quarantined)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
