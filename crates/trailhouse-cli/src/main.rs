//! The `trailhouse` command: parses arguments, runs the subcommand, maps the outcome to an exit
//! code (0 ok, 1 partial failure, 2 usage or fatal error). The work is in the library crates.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod export;
mod ingest;
mod maintenance;
mod output;
mod report;
mod run;
mod shell;
mod sql;

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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once (library errors often repeat their source's text).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

async fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let lake = cli.lake;
    match cli.command {
        cli::Command::Ingest(args) => ingest::run(&lake, args).await,
        cli::Command::Sql(args) => sql::run(&lake, args).await,
        cli::Command::Export(args) => export::run(&lake, args).await,
        cli::Command::Queries(args) => run::list(&lake, args).await,
        cli::Command::Run(args) => run::run(&lake, args).await,
        cli::Command::Report(args) => report::run(&lake, args).await,
        cli::Command::Compact(args) => maintenance::compact(&lake, args).await,
        cli::Command::Vacuum(args) => maintenance::vacuum(&lake, args).await,
    }
}
