//! The `trailhouse` command: parses arguments, runs the subcommand, maps the outcome to an exit
//! code (0 ok, 1 partial failure, 2 usage or fatal error). The work is in the library crates.

use std::process::ExitCode;

use clap::Parser;
use trailhouse_ingest::IngestError;
use trailhouse_ingest::s3::{self, S3Options, S3Url, is_s3};
use trailhouse_lake::Lake;

mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod ddl;
mod detect;
mod evidence;
mod export;
mod ingest;
mod ingest_verify;
mod maintenance;
mod output;
mod report;
mod run;
mod shell;
mod sql;
mod verify;
mod watch;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Work left behind by an interrupted command is not waited for long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<watch::Interrupted>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        // The reader went away (`trailhouse run … | head`): what it read was complete, and
        // there is no one left to tell; quiet, as any Unix filter.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let text = message(&e);
            eprintln!("error: {text}");
            if let Some(hint) = s3::hint(&text)
                && !text.contains(hint)
                && !text.starts_with("cluster: ")
            {
                eprintln!("hint: {hint}");
            }
            if text.contains("Resources exhausted") {
                eprintln!(
                    "hint: the statement holds more than `--memory` allows (default 512 MiB, \
                     env TRAILHOUSE_MEMORY) in what cannot spill to disk; give it more, or a \
                     shorter window"
                );
            }
            if text.contains("Parquet error") || text.contains("not found: No such file") {
                eprintln!(
                    "hint: `trailhouse check` finds the lake's damaged or missing data files"
                );
            }
            ExitCode::from(2)
        }
    }
}

/// Whether writing the output failed because its reader closed the pipe. Some writers (Arrow's
/// CSV) keep only the text of the I/O error, hence the second test.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.to_string().contains("Broken pipe (os error 32)")
    })
}

/// The error and its causes, each cause once (library errors often repeat their source's text).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        // Some library errors carry a backtrace in their text: the first line is the message,
        // with what it was caused by (DataFusion's context errors, a cluster's job failures).
        let text = cause.to_string();
        let mut lines = text.lines();
        let mut text = lines.next().unwrap_or_default().to_string();
        // A list follows (DataFusion's memory consumers, when its pool refused an allocation).
        if text.ends_with(':') {
            let items: Vec<&str> = lines
                .clone()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && *l != "caused by")
                .map(|l| l.trim_end_matches([',', '.']))
                .collect();
            text.push(' ');
            text.push_str(&items.join("; "));
        }
        while let Some(line) = lines.next() {
            if line.trim() != "caused by" {
                continue;
            }
            if let Some(cause) = lines.next() {
                text.push_str(": ");
                text.push_str(cause.trim());
            }
        }
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// The lake `--lake` names: a local folder, or a prefix in S3 reached with the standard AWS
/// settings (and `endpoint`, for an S3-compatible store).
fn open_lake(path: &std::path::Path, endpoint: Option<String>) -> anyhow::Result<Lake> {
    if !is_s3(path) {
        return Ok(Lake::new(path));
    }
    let url = S3Url::parse(path).map_err(|e| match e {
        IngestError::S3 { url, message } => anyhow::anyhow!("lake `{url}`: {message}"),
        e => e.into(),
    })?;
    let options = S3Options {
        endpoint,
        ..S3Options::default()
    };
    let store = s3::client(&url.bucket, &options)
        .map_err(|e| anyhow::anyhow!("lake `{}`: {e}", url.name()))?;
    let location =
        url::Url::parse(&url.name()).map_err(|e| anyhow::anyhow!("lake `{}`: {e}", url.name()))?;
    Ok(Lake::remote(&location, store)?)
}

async fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    // `verify` reads a trail, not the lake.
    let lake = || open_lake(&cli.lake, cli.s3_endpoint.clone());
    match cli.command {
        cli::Command::Ingest(args) => ingest::run(&lake()?, cli.s3_endpoint, args).await,
        cli::Command::Sql(args) => sql::run(&lake()?, args).await,
        cli::Command::Export(args) => export::run(&lake()?, args).await,
        cli::Command::Evidence(args) => match args.command {
            Some(cli::EvidenceCommand::Check { bundle, json }) => evidence::check(&bundle, json),
            None => evidence::run(&lake()?, args).await,
        },
        cli::Command::Queries(args) => run::list(&lake()?, args).await,
        cli::Command::Run(args) => run::run(&lake()?, args).await,
        cli::Command::Report(args) => report::run(&lake()?, args).await,
        cli::Command::Detect(args) => detect::run(&lake()?, args).await,
        cli::Command::Compact(args) => maintenance::compact(&lake()?, args).await,
        cli::Command::Vacuum(args) => maintenance::vacuum(&lake()?, args).await,
        cli::Command::Check(args) => maintenance::check(&lake()?, args).await,
        cli::Command::Verify(args) => {
            let lake = args.record.then(lake).transpose()?;
            verify::run(lake.as_ref(), cli.s3_endpoint, args).await
        }
        cli::Command::Ddl(args) => ddl::run(&lake()?, cli.s3_endpoint.as_deref(), args).await,
        #[cfg(feature = "cluster")]
        cli::Command::Cluster(command) => cluster::run(&lake()?, command).await,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::sync::Arc;

    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::message;

    /// DataFusion's pool lists its top consumers on the lines after the first: the message
    /// keeps them, on one line.
    #[tokio::test]
    async fn a_refused_allocation_names_what_held_the_memory() {
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(1 << 20),
            NonZeroUsize::new(3).expect("non-zero"),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .build_arc()
            .expect("runtime");
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let failed = async {
            ctx.sql("SELECT array_agg(value) FROM generate_series(1, 1000000)")
                .await?
                .collect()
                .await
        }
        .await
        .expect_err("a list of a million values in a pool of 1 MiB");
        let text = message(&anyhow::Error::from(failed));
        assert!(text.starts_with("Resources exhausted: "), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.contains("as: ") && text.contains("consumed") && !text.ends_with("as:"),
            "{text}"
        );
    }
}
