//! `trailhouse export`: the original records back, one per line.

use std::io::IsTerminal;
use std::process::ExitCode;

use trailhouse_lake::Lake;
use trailhouse_query::export::export_ndjson;

use crate::cli::{ExportArgs, ExportFormat, ProgressMode};
use crate::watch::watched;

pub async fn run(lake: &Lake, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::Ndjson = args.format;
    let session = args.engine.session(lake).await?;
    // Records are written as they arrive: a progress line is drawn only where they do not go.
    let progress = if args.output.is_none() && std::io::stdout().is_terminal() {
        ProgressMode::Never
    } else {
        args.engine.progress()
    };
    let counts = watched(&session, progress, |_| async {
        let mut out = crate::output::open(args.output.as_deref())?;
        let counts = export_ndjson(&session, args.quarantine, &mut out).await?;
        out.finish()?;
        Ok(counts)
    })
    .await?;
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
