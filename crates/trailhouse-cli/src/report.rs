//! `trailhouse report`: the packs' controls over a window, as HTML, Markdown or JSON; `detect`
//! runs the same report with pack `sigma`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use trailhouse_lake::Lake;
use trailhouse_query::report::{self, ReportOptions};
use trailhouse_query::saved::{Catalog, parse_time};

use crate::cli::{ReportArgs, ReportFormat, ReportRunArgs};
use crate::watch::watched;

/// The packs a report runs when none is named.
const DEFAULT_PACKS: [&str; 2] = ["cis-v6.0", "security"];

pub async fn run(lake: &Lake, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::run::catalog(args.queries.as_deref())?;
    let packs: Vec<String> = if args.packs.is_empty() {
        DEFAULT_PACKS.iter().map(|p| p.to_string()).collect()
    } else {
        args.packs.clone()
    };
    write(lake, &catalog, packs, args.run, ReportFormat::Html).await
}

/// Runs `packs` of `catalog` over the window of `args` and writes the report in its format
/// (`default` when it names none); the exit status follows `--fail-on-findings`.
pub async fn write(
    lake: &Lake,
    catalog: &Catalog,
    packs: Vec<String>,
    args: ReportRunArgs,
    default: ReportFormat,
) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let time = |flag: &str, t: &str| -> anyhow::Result<i64> {
        parse_time(t, now).with_context(|| {
            format!(
                "{flag} `{t}` is not a date (2026-10-01), a date-time or a duration ago (7d, 12h)"
            )
        })
    };
    let since = time("--since", &args.since)?;
    let until = match &args.until {
        Some(t) => time("--until", t)?,
        None => now.timestamp_micros(),
    };
    anyhow::ensure!(
        since < until,
        "the window is empty: --since is not before --until"
    );
    let opts = ReportOptions {
        packs,
        since,
        until,
        max_events: args.max_events,
        lake: lake.root().display().to_string(),
        share_scan: !args.separate_scans,
    };
    let session = args.engine.session(lake).await?;
    let started = std::time::Instant::now();
    let r = watched(&session, args.engine.progress(), |_| async {
        Ok(report::build(&session, catalog, &opts).await?)
    })
    .await?;
    let text = match args.format.unwrap_or(default) {
        ReportFormat::Html => report::html::render(&r),
        ReportFormat::Markdown => report::markdown::render(&r),
        ReportFormat::Json => serde_json::to_string_pretty(&r)? + "\n",
    };
    let mut out = crate::output::open(args.output.as_deref())?;
    out.write_all(text.as_bytes())?;
    out.finish()?;
    let shared = r
        .shared_scan
        .as_ref()
        .map(|s| {
            format!(
                "; {} of {} queries shared one scan ({} events)",
                s.queries, s.of, s.rows
            )
        })
        .unwrap_or_default();
    eprintln!(
        "{} of {} controls matched ({} events) in {:.2} s{shared}{}",
        r.summary.controls_with_findings,
        r.summary.controls,
        r.summary.findings,
        started.elapsed().as_secs_f64(),
        args.output
            .as_ref()
            .map(|p| format!("; report in {}", p.display()))
            .unwrap_or_default()
    );
    Ok(if args.fail_on_findings && r.has_findings() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
