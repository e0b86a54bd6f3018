//! `trailhouse queries` and `trailhouse run`: the saved queries.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use trailhouse_lake::Lake;
use trailhouse_query::saved::{Catalog, Window, parse_time};

use crate::cli::{QueriesArgs, RunArgs};
use crate::watch::watched;

/// The window `--since` and `--until` give (each a date, a date-time or a duration before
/// `now`).
pub fn window(
    since: &Option<String>,
    until: &Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Window> {
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|t| {
                parse_time(t, now).with_context(|| {
                    format!("{flag} `{t}` is not a date (2026-10-01), a date-time or a duration ago (7d, 12h)")
                })
            })
            .transpose()
    };
    Ok(Window {
        since: time("--since", since)?,
        until: time("--until", until)?,
    })
}

pub fn catalog(dir: Option<&Path>) -> anyhow::Result<Catalog> {
    let mut c = Catalog::builtin()?;
    if let Some(dir) = dir {
        c.add_dir(dir)?;
    }
    Ok(c)
}

pub async fn list(lake: &Lake, args: QueriesArgs) -> anyhow::Result<ExitCode> {
    let c = catalog(args.queries.as_deref())?;
    if args.check {
        let session = args.engine.session(lake).await?;
        let mut failed = 0;
        for q in c.iter() {
            match session.check_saved(q).await {
                Ok(()) => println!("ok      {}", q.name),
                Err(e) => {
                    failed += 1;
                    println!("FAILED  {}: {e}", q.name);
                }
            }
        }
        return Ok(if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for q in c.iter() {
        writeln!(out, "{}\n    {}", q.name, q.summary)?;
        for p in q.describe_params() {
            writeln!(out, "    --param {p}")?;
        }
        if !q.controls.is_empty() {
            let controls: Vec<String> = q
                .controls
                .iter()
                .map(|c| format!("{} {}", c.pack, c.id))
                .chain(q.security_hub.iter().map(|s| format!("Security Hub {s}")))
                .collect();
            writeln!(out, "    report controls: {}", controls.join(", "))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(lake: &Lake, args: RunArgs) -> anyhow::Result<ExitCode> {
    let c = catalog(args.queries.as_deref())?;
    let query = c.get(&args.name)?;
    let now = chrono::Utc::now();
    let window = window(&args.since, &args.until, now)?;
    let params = query.bind(&args.params, window, now)?;
    let session = args.engine.session(lake).await?;
    let format = crate::output::result_format(args.format, args.output.as_deref());
    let (session, output, explain) = (&session, args.output.as_deref(), args.explain);
    let rows = watched(session, args.engine.progress(), |watch| async move {
        let stream = session.run_saved(query, params, explain).await?;
        crate::output::write_result(watch.until_output(stream), format, output).await
    })
    .await?;
    if args.output.is_some() || !std::io::stdout().is_terminal() {
        eprintln!("{} rows from {}", rows, query.name);
    }
    Ok(ExitCode::SUCCESS)
}
