//! Command-line arguments. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A CloudTrail lakehouse on one machine: ingest CloudTrail logs into a Delta table, ask it
/// questions in SQL.
#[derive(Debug, Parser)]
#[command(name = "trailhouse", version, about, max_term_width = 100)]
pub struct Cli {
    /// The lake directory.
    #[arg(
        long,
        global = true,
        env = "TRAILHOUSE_LAKE",
        default_value = "./trailhouse-lake"
    )]
    pub lake: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load CloudTrail log files (directories are walked) into the lake; files already loaded are
    /// skipped, records already stored are not stored twice.
    Ingest(IngestArgs),
    /// Run one read-only SQL statement over tables `cloudtrail` and `quarantine`; with no
    /// statement, an interactive shell on a terminal, or the statement from standard input.
    Sql(SqlArgs),
    /// Write the stored records back as CloudTrail JSON, one per line.
    Export(ExportArgs),
    /// Rewrite each partition's small files into a few large ones (one atomic commit).
    Compact(CompactArgs),
    /// Delete data files the tables no longer reference (compacted away, or left by a crash).
    Vacuum(VacuumArgs),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Target size of compacted files, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub target_size: u64,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Keep unreferenced files younger than this many hours: a query that started before a
    /// compaction may still read them.
    #[arg(long, default_value_t = 168, value_name = "HOURS")]
    pub retention_hours: u64,

    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories: trail log files (gzip or plain), NDJSON, EventBridge events,
    /// lookup-events output.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub jobs: usize,

    /// Memory for data in flight, in MiB (batches and the deduplication index).
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub memory: u64,

    /// Largest decompressed file accepted, in MiB (protects against gzip bombs).
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub max_file_size: u64,

    /// Most source files per batch; each batch is one atomic commit.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub batch_files: usize,

    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Testing only: abort at a point of the commit protocol (e.g. `after-plan:1`).
    #[arg(long, hide = true)]
    pub fail_point: Option<trailhouse_ingest::FailPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (the default on a terminal).
    Table,
    /// CSV with a header (the default otherwise).
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement, e.g. "SELECT eventName, count(*) FROM cloudtrail GROUP BY 1 ORDER BY 2 DESC".
    pub statement: Option<String>,

    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One CloudTrail record per line.
    Ndjson,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::Ndjson)]
    pub format: ExportFormat,

    /// Also write the quarantined records (as they were read).
    #[arg(long)]
    pub quarantine: bool,

    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}
