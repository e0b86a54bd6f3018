//! Command-line arguments. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A CloudTrail lakehouse on one machine: ingest CloudTrail logs into a Delta table, ask it
/// questions in SQL.
#[derive(Debug, Parser)]
#[command(name = "trailhouse", version, about, max_term_width = 100)]
pub struct Cli {
    /// The lake: a directory, or `s3://bucket[/prefix]` (a lake in S3, reached with the
    /// standard AWS credentials).
    #[arg(
        long,
        global = true,
        env = "TRAILHOUSE_LAKE",
        default_value = "./trailhouse-lake"
    )]
    pub lake: PathBuf,

    /// Endpoint of an S3-compatible store (MinIO, Ceph, Cloudflare R2), e.g.
    /// http://127.0.0.1:9000, for S3 sources and an S3 lake; default: AWS_ENDPOINT_URL, else
    /// AWS.
    #[arg(long, global = true, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub s3_endpoint: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load CloudTrail log files (directories are walked) into the lake; files already loaded are
    /// skipped, records already stored are not stored twice.
    Ingest(IngestArgs),
    /// Run one read-only SQL statement over tables `cloudtrail`, `quarantine` and `credentials`; with no
    /// statement, an interactive shell on a terminal, or the statement from standard input.
    Sql(SqlArgs),
    /// Write the stored records back as CloudTrail JSON, one per line.
    Export(ExportArgs),
    /// List the saved queries: what each answers and its parameters.
    Queries(QueriesArgs),
    /// Run a saved query, e.g. `trailhouse run who-deleted --param resource=my-bucket --since 30d`.
    Run(RunArgs),
    /// Run report packs (CIS controls, security topics) over a window and write an HTML,
    /// Markdown or JSON report; for cron: exit 1 with --fail-on-findings when a control matched.
    Report(ReportArgs),
    /// Run Sigma detection rules over a window (SigmaHQ's CloudTrail rules are built in; add
    /// your own with --rules) and write the same report as `report`, each finding with its
    /// rule's level and ATT&CK tags; exit 1 with --fail-on-findings when a rule matched.
    Detect(DetectArgs),
    /// Rewrite each partition's small files into a few large ones (one atomic commit).
    Compact(CompactArgs),
    /// Delete data files the tables no longer reference (compacted away, or left by a crash).
    Vacuum(VacuumArgs),
    /// Read every data file of the lake whole and compare it with the table's log; with
    /// --repair, take damaged files out of the table and have the next ingest read their
    /// sources again. Exit status 0 all sound, 1 damage found.
    Check(CheckArgs),
    /// Check the trail's log file integrity offline, as CloudTrail defines it: every digest's
    /// signature and its link to the digest before it, every log file's SHA-256, and log files no
    /// digest lists. Exit status 0 all valid, 1 a problem found.
    Verify(VerifyArgs),
    /// Write the events a saved query (or --sql) matched as evidence: each record as CloudTrail
    /// delivered it with its SHA-256, its source object and that object's integrity verdict, the
    /// query, its parameters, the window and the table version, and a manifest of every file's
    /// SHA-256; `evidence check BUNDLE` recomputes them all.
    Evidence(EvidenceArgs),
    /// Print what registers or reads the lake's table in another engine (Athena, Trino, Spark,
    /// Databricks, DuckDB, polars): they read the Delta log themselves, so the table stays one.
    Ddl(DdlArgs),
    /// Start a node of a DataFusion Ballista cluster serving the lake: a scheduler, then
    /// executors on the machines that see the lake (the same folder, or S3); then `sql`, `run`
    /// and `report` with `--cluster df://HOST:PORT` run there.
    #[cfg(feature = "cluster")]
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// The nodes of a cluster.
#[cfg(feature = "cluster")]
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: plans each query clients send and hands its tasks to the executors.
    Scheduler(SchedulerArgs),
    /// An executor: runs tasks of the scheduler's queries.
    Executor(ExecutorArgs),
}

#[cfg(feature = "cluster")]
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address to listen on for clients and executors (`:PORT` for all interfaces).
    #[arg(long, default_value = "127.0.0.1:50050", value_name = "HOST:PORT")]
    pub bind: String,

    /// The host name executors and clients reach this scheduler by, when not the bound address.
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Seconds without a heartbeat after which an executor is taken as lost (its tasks run
    /// again elsewhere), and after which queries fail when no executor is left.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub executor_timeout: u64,

    #[command(flatten)]
    pub memory: MemoryArgs,
}

#[cfg(feature = "cluster")]
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler's address.
    #[arg(long, value_name = "df://HOST:PORT", env = "TRAILHOUSE_CLUSTER")]
    pub scheduler: String,

    /// Address to serve results on (Arrow Flight); the executor's control port is the next one
    /// unless --grpc-port says otherwise.
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "HOST:PORT")]
    pub bind: String,

    /// The executor's control port (gRPC).
    #[arg(long, value_name = "PORT")]
    pub grpc_port: Option<u16>,

    /// The host name the scheduler and other executors reach this executor by, when not the
    /// bound address.
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Tasks run at once (0: one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub concurrency: usize,

    /// Where shuffle and spill files go (default: a folder in the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Seconds to wait for the scheduler to answer when starting.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub connect_timeout: u16,

    #[command(flatten)]
    pub memory: MemoryArgs,
}

/// The engines `trailhouse ddl` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Amazon Athena (engine version 3): CREATE EXTERNAL TABLE … TBLPROPERTIES ('table_type'='DELTA').
    Athena,
    /// Trino's Delta Lake connector: CALL <catalog>.system.register_table(…).
    Trino,
    /// Apache Spark with Delta Lake: CREATE TABLE … USING DELTA LOCATION ….
    Spark,
    /// Databricks: CREATE TABLE … USING DELTA LOCATION ….
    Databricks,
    /// DuckDB's delta extension: a view over delta_scan(…).
    Duckdb,
    /// Python polars: scan_delta(…).
    Polars,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DdlTable {
    /// The events.
    Cloudtrail,
    /// Records that could not be stored, with the reason.
    Quarantine,
}

#[derive(Debug, Args)]
pub struct DdlArgs {
    /// The engine to write for.
    #[arg(value_enum)]
    pub engine: Engine,

    /// The table's name in that engine: `table`, `schema.table` or (Trino)
    /// `catalog.schema.table`. Default: the table's own name.
    #[arg(long)]
    pub name: Option<String>,

    /// Where the engine finds the table, when not where this machine does (a copy of the lake,
    /// or the bucket a local lake was synced to): the table's folder or URL.
    #[arg(long, value_name = "URL")]
    pub location: Option<String>,

    /// Which of the lake's tables.
    #[arg(long, value_enum, default_value = "cloudtrail")]
    pub table: DdlTable,

    /// Also a saved query in the engine's SQL, over the table by that name (DuckDB, Spark,
    /// Databricks; repeat for several; `all` for every saved query). Its parameters stay named
    /// (`$since` in DuckDB, `:since` in Spark SQL): bind them as the engine binds a statement's.
    #[arg(long = "query", value_name = "NAME")]
    pub queries: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML file with charts.
    Html,
    /// Markdown, for tickets and chat.
    Markdown,
    /// One JSON object (`report_version` 1), for pipelines.
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A pack to run (repeat for several): cis-v1.2, cis-v1.4, cis-v1.5, cis-v2.0 … cis-v6.0
    /// (`cis-v5` = `cis-v5.0`), security, sigma. Default: cis-v6.0 and security.
    #[arg(long = "pack", value_name = "PACK")]
    pub packs: Vec<String>,

    /// Also load the saved queries under this directory (`<pack>/<name>.sql`) and the Sigma
    /// rules there (`.yml`, pack `sigma`).
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,

    #[command(flatten)]
    pub run: ReportRunArgs,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Also run the Sigma rules (`.yml`, `.yaml`) under this directory (repeat for several); a
    /// rule whose file has the name of a built-in one replaces it.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,

    /// Run only rules of this level or above: informational, low, medium, high, critical.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub min_level: Option<Level>,

    /// List the rules (level, name, title, ATT&CK tags) and those that do not compile, with
    /// the reason, instead of running them.
    #[arg(long)]
    pub list: bool,

    #[command(flatten)]
    pub run: ReportRunArgs,
}

/// A Sigma rule's level, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

/// How a report runs and where it goes (`report` and `detect`).
#[derive(Debug, Args)]
pub struct ReportRunArgs {
    /// Start of the window: a date, a date-time, or a duration ago (7d, 24h).
    #[arg(long, default_value = "7d")]
    pub since: String,

    /// End of the window (same forms; default: now).
    #[arg(long)]
    pub until: Option<String>,

    /// Output format (default: html for `report`, markdown for `detect`).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,

    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Exit with status 1 when any control matched (0 when none did; 2 on errors).
    #[arg(long)]
    pub fail_on_findings: bool,

    /// Matching rows kept per control in the report (the count is always the total).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_events: usize,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Testing: each control reads the lake itself instead of sharing one scan (the same
    /// report, more reading).
    #[arg(long, hide = true)]
    pub separate_scans: bool,
}

/// How the query engine may use memory.
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Memory for the query engine's sorts, aggregates and joins, in MiB (at least 64); beyond
    /// it they spill to disk (the system's temporary directory). The process uses somewhat more
    /// (files being read, their metadata, output). An executor's tasks share it.
    #[arg(
        long,
        default_value_t = 512,
        value_name = "MIB",
        env = "TRAILHOUSE_MEMORY"
    )]
    pub memory: u64,
}

impl MemoryArgs {
    pub fn options(&self) -> trailhouse_query::engine::EngineOptions {
        trailhouse_query::engine::EngineOptions {
            memory: usize::try_from(self.bytes()).unwrap_or(usize::MAX),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.memory.saturating_mul(1 << 20)
    }
}

/// How and where queries run.
#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub memory: MemoryArgs,

    /// Plan and run on the DataFusion Ballista cluster whose scheduler is at this address
    /// (`df://HOST:PORT`; see `trailhouse cluster`), which serves the same lake.
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "df://HOST:PORT", env = "TRAILHOUSE_CLUSTER")]
    pub cluster: Option<String>,

    /// Show the progress of the statements' jobs on the cluster (stages and tasks done) on
    /// standard error: `auto` when it is a terminal.
    #[cfg(feature = "cluster")]
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "WHEN")]
    pub progress: ProgressMode,
}

/// When to show a cluster job's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// When standard error is a terminal (one line, redrawn).
    Auto,
    /// Always (a line per change when standard error is not a terminal).
    Always,
    Never,
}

impl EngineArgs {
    /// A session over `lake` set up as these arguments say: on one machine, or on a cluster.
    pub async fn session(
        &self,
        lake: &trailhouse_lake::Lake,
    ) -> Result<trailhouse_query::Session, trailhouse_query::QueryError> {
        let session = trailhouse_query::Session::open_with(lake, self.options()).await?;
        #[cfg(feature = "cluster")]
        if let Some(address) = &self.cluster {
            return session.on_cluster(address).await;
        }
        Ok(session)
    }

    pub fn options(&self) -> trailhouse_query::engine::EngineOptions {
        self.memory.options()
    }

    /// When progress is shown (only cluster jobs have any).
    pub fn progress(&self) -> ProgressMode {
        #[cfg(feature = "cluster")]
        return self.progress;
        #[cfg(not(feature = "cluster"))]
        ProgressMode::Never
    }
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Target size of compacted files, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub target_size: u64,

    /// If another process is writing the lake (an ingest, compact or vacuum), wait up to this
    /// many seconds for it to finish instead of failing at once (overlapping cron jobs).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Where the trail is: folders or `s3://bucket[/prefix]` holding its `AWSLogs/…/CloudTrail/`
    /// and `CloudTrail-Digest/` folders. A digest's signature is its S3 metadata; a copy outside
    /// S3 keeps it as `<digest>.metadata.json` (what `aws s3api head-object` prints), needed only
    /// for the newest digest of each chain (each digest records the one before).
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,

    /// What `aws cloudtrail list-public-keys --region R --start-time … --end-time …` printed,
    /// saved to a file: one per region the trail delivers in, or several lists in one (repeat
    /// the option). Without keys, signatures cannot be checked.
    #[arg(long = "public-keys", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,

    /// Only digests whose hour ends at or after this time, and log files delivered since (a
    /// date, a date-time, or a duration ago: 2026-10-01, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only log files delivered before this time (same forms as --since); digests up to an hour
    /// after it, which list the last hour's logs.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Print every digest and log file with its verdict, not only those with a problem.
    #[arg(long)]
    pub all: bool,

    /// Keep the log files' verdicts in the lake (--lake), in table `integrity`: queries can
    /// then join `cloudtrail.sourcefile` to `integrity.sourcefile`, and reports say what share
    /// of their events came from verified files.
    #[arg(long)]
    pub record: bool,

    /// Print the verdicts as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    pub command: Option<EvidenceCommand>,

    /// The saved query whose events to bundle (`trailhouse queries` lists them); its result must
    /// list events (have an `eventid` column).
    #[arg(value_name = "QUERY", required_unless_present = "sql")]
    pub name: Option<String>,

    /// A statement instead of a saved query (`$since`/`$until` are the window, --param values
    /// bind `$NAME` as text).
    #[arg(long, value_name = "SQL", conflicts_with = "name")]
    pub sql: Option<String>,

    /// A parameter, NAME=VALUE (repeat for several).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Only events at or after this time (a date, a date-time, or a duration ago: 30d).
    #[arg(long)]
    pub since: Option<String>,

    /// Only events before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,

    /// The bundle: a new (or empty) folder, or a new zip archive (a name ending in `.zip`)
    /// holding the same files.
    #[arg(long, short = 'o', value_name = "DIR|FILE.zip", required = true)]
    pub output: Option<PathBuf>,

    /// A folder of saved queries besides the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,

    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Recompute every hash of a bundle: exit 0 intact, 1 changed (each change named); prints
    /// its fingerprint, to compare with the one noted when it was handed over.
    Check {
        /// The bundle: its folder or its zip archive.
        bundle: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove damaged files from the table (one commit) and mark the ingest batches that wrote
    /// them to be read again by the next `trailhouse ingest` of the same sources.
    #[arg(long)]
    pub repair: bool,

    /// Print what was found as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Keep unreferenced files younger than this many hours: a query that started before a
    /// compaction may still read them. Below 168, the vacuum is refused while any trailhouse
    /// process reads the lake (a query, a report, a shell).
    #[arg(long, default_value_t = 168, value_name = "HOURS")]
    pub retention_hours: u64,

    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// If another process is writing the lake (an ingest, compact or vacuum), wait up to this
    /// many seconds for it to finish instead of failing at once (overlapping cron jobs).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories: trail log files (gzip or plain), NDJSON, EventBridge events,
    /// lookup-events output; and S3 locations, `s3://bucket[/prefix]` (a trail bucket, an
    /// organization's or an account's folder), read with the standard AWS credentials.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,

    /// Only log files delivered on or after this day (CloudTrail's YYYY/MM/DD key folders): a
    /// date (2026-10-01) or a duration ago (90d). On an S3 bucket the listing starts there, so
    /// a first run over years of history lists only what it reads.
    #[arg(long, value_name = "DATE", value_parser = parse_day)]
    pub since: Option<chrono::NaiveDate>,

    /// Ingest only this share of the sources, split by account and region (K of N, e.g. 2/4):
    /// N runs with 1/N … N/N, on one machine or several, fill one lake at once and give the
    /// table one run would. Each shard keeps its own progress; files outside CloudTrail's
    /// layout are read by shard 1.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<trailhouse_ingest::shard::Shard>,

    /// S3 requests (GET, LIST) in flight at once: S3 answers each in tens of milliseconds, so
    /// throughput comes from many at a time (measured at 20 ms a request: 10,000 objects in
    /// 71 s with 8, 11 s with 64, 3.4 s with 256, 2.6 s with 512).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub s3_requests: usize,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub jobs: usize,

    /// Source files read at once, ahead of the workers: storage that is not in the page cache
    /// (network disks, EBS, a trail synced a while ago) is latency-bound, not CPU-bound.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub io_threads: usize,

    /// Memory for data in flight, in MiB: a batch's decompressed records and the deduplication
    /// index each take a quarter. The process peaks above it by the list of source files, the
    /// ledger of files taken in and the Parquet writers' buffers (measured at 512: 759 MiB on a
    /// 20-million-event trail of 401,649 files, 807 MiB on one of 834,154 files).
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub memory: u64,

    /// Largest decompressed file accepted, in MiB (protects against gzip bombs).
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub max_file_size: u64,

    /// Largest record loaded into the table, in MiB of JSON; a larger one is quarantined with
    /// its reason (kept verbatim, never dropped).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub max_record_size: usize,

    /// Most source files per batch; each batch is one atomic commit.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub batch_files: usize,

    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Leave the days this run wrote to as they are. By default a day left with many small data
    /// files is compacted into few large ones after the batches (queries open fewer files);
    /// a sharded run never compacts (run `trailhouse compact` once the shards are done).
    #[arg(long)]
    pub no_compact: bool,

    /// Check each log file read against CloudTrail's signed digests in the sources, from its
    /// SHA-256 taken as it is read (not read again), and record the verdicts in table
    /// `integrity` (see `verify`); files newer than their digests are checked by the next run.
    /// Exit status 1 when a digest or file is not valid.
    #[arg(long)]
    pub verify: bool,

    /// With --verify: what `aws cloudtrail list-public-keys` printed (see `verify`).
    #[arg(long = "public-keys", value_name = "FILE", requires = "verify")]
    pub public_keys: Vec<PathBuf>,

    /// If another process is writing the lake (an ingest, compact or vacuum), wait up to this
    /// many seconds for it to finish instead of failing at once (overlapping cron jobs).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub wait: u64,

    /// Testing only: abort at a point of the commit protocol (e.g. `after-plan:1`). Built into
    /// debug builds (the tests' binary), never into a release.
    #[cfg(debug_assertions)]
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
    /// A Markdown table.
    Markdown,
    /// A Parquet file (use with --output).
    Parquet,
}

#[derive(Debug, Args)]
pub struct QueriesArgs {
    /// Also load the saved queries under this directory (`<pack>/<name>.sql`).
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,

    /// Check every query against the lake: one statement, plans against the schema, declared
    /// parameters = placeholders. Exit status 1 when any fails.
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The query: `pack/name`, or `name` when it is unique (see `trailhouse queries`).
    pub name: String,

    /// A parameter, `name=value` (repeat for several).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Only events at or after this time: a date (2026-10-01), a date-time, or a duration ago
    /// (7d, 12h, 30m).
    #[arg(long)]
    pub since: Option<String>,

    /// Only events before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,

    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<OutputFormat>,

    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,

    /// Also load the saved queries under this directory.
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,

    /// Print the query plan (with the files it will read) instead of running it.
    #[arg(long)]
    pub explain: bool,

    #[command(flatten)]
    pub engine: EngineArgs,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement, e.g. "SELECT eventName, count(*) FROM cloudtrail GROUP BY 1 ORDER BY 2 DESC".
    pub statement: Option<String>,

    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<OutputFormat>,

    /// Write to this file instead of standard output (replaced whole once the statement has
    /// run; CSV unless --format says otherwise).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub engine: EngineArgs,
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

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A day, from the forms `--since` takes elsewhere (a date, a date-time, a duration ago).
fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    trailhouse_query::saved::parse_time(text, chrono::Utc::now())
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.date_naive())
        .ok_or_else(|| format!("`{text}` is not a date (2026-10-01) or a duration ago (90d)"))
}
