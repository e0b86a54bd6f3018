//! `trailhouse export`: the original records back, one per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use trailhouse_lake::Lake;
use trailhouse_query::Session;
use trailhouse_query::export::export_ndjson;

use crate::cli::{ExportArgs, ExportFormat};

pub async fn run(lake: &Path, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::Ndjson = args.format;
    let session = Session::open(&Lake::new(lake)).await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(BufWriter::new(File::create(path).with_context(|| {
                format!("failed to create `{}`", path.display())
            })?))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let counts = export_ndjson(&session, args.quarantine, &mut out).await?;
    out.flush()?;
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
