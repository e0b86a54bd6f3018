//! `trailhouse sql`: one read-only statement, results to stdout or a file (the shell on a
//! terminal).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context;
use trailhouse_lake::Lake;
use trailhouse_query::Format;

use crate::cli::{OutputFormat, SqlArgs};
use crate::shell;
use crate::watch::watched;

pub async fn run(lake: &Lake, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let session = args.engine.session(lake).await?;
    let interactive = std::io::stdin().is_terminal();
    let statement = match args.statement {
        Some(s) => s,
        None if interactive && args.output.is_some() => anyhow::bail!(
            "`trailhouse sql --output` writes one statement's result: give the statement as an \
             argument or on standard input (the shell writes to the terminal)"
        ),
        None if interactive => {
            let format = args.format.unwrap_or(OutputFormat::Table);
            let catalog = trailhouse_query::saved::Catalog::builtin()?;
            shell::run(
                &session,
                &catalog,
                format.into(),
                args.engine.progress(),
                shell::history_path(),
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("failed to read the statement from standard input")?;
            s
        }
    };
    // DataFusion plans one statement; several (a script piped in) are refused with what to do.
    if let Ok(statements) = datafusion::sql::parser::DFParser::parse_sql(&statement)
        && statements.len() > 1
    {
        anyhow::bail!(
            "`trailhouse sql` runs one statement, and this holds {}: give each its own \
             `trailhouse sql`, or type them in the shell (`trailhouse sql` on a terminal)",
            statements.len()
        );
    }
    let format = crate::output::result_format(args.format, args.output.as_deref());
    let (session, output) = (&session, args.output.as_deref());
    let rows = watched(session, args.engine.progress(), |watch| async move {
        let stream = session.sql(statement.trim().trim_end_matches(';')).await?;
        crate::output::write_result(watch.until_output(stream), format, output).await
    })
    .await?;
    if let Some(path) = output {
        eprintln!("{rows} rows written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Table => Format::Table,
            OutputFormat::Csv => Format::Csv,
            OutputFormat::Json => Format::Json,
            OutputFormat::Ndjson => Format::Ndjson,
            OutputFormat::Markdown => Format::Markdown,
            OutputFormat::Parquet => Format::Parquet,
        }
    }
}
