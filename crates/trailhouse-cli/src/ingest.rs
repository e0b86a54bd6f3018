//! `trailhouse ingest`: runs the pipeline, shows progress on a terminal, prints the report.

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use trailhouse_ingest::verify::early::Ask;
use trailhouse_ingest::verify::keys::PublicKeys;
use trailhouse_ingest::{Options, Progress, Report, ingest};
use trailhouse_lake::Lake;

use crate::cli::IngestArgs;

struct Bar(ProgressBar);

impl Progress for Bar {
    fn begin(&self, _files: u64, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn end(&self) {
        self.0.finish_and_clear();
    }
    fn waiting(&self) {
        self.0.println(WAITING);
    }
}

/// No bar (standard error is not a terminal): only the message that the run waits.
struct Plain;

impl Progress for Plain {
    fn waiting(&self) {
        eprintln!("{WAITING}");
    }
}

pub const WAITING: &str = "another process is writing the lake; waiting for it (--wait)";

pub async fn run(
    lake: &Lake,
    s3_endpoint: Option<String>,
    args: IngestArgs,
) -> anyhow::Result<ExitCode> {
    let keys = PublicKeys::load(&args.public_keys)?;
    let sources = args.sources.clone();
    let mut opts = Options::new(lake.clone(), args.sources);
    opts.hash_files = args.verify;
    // Read before the run: the files pending their digest widen the window it judges digests
    // for as it reads.
    opts.early_digests = if args.verify {
        Some(Ask {
            keys,
            pending: crate::ingest_verify::pending(lake).await?,
        })
    } else {
        None
    };
    opts.since = args.since;
    opts.shard = args.shard;
    opts.s3.endpoint = s3_endpoint;
    opts.s3.requests = args.s3_requests.max(1);
    opts.jobs = args.jobs;
    opts.io_threads = args.io_threads;
    opts.memory_budget = args.memory.max(1) << 20;
    opts.max_batch_files = args.batch_files;
    opts.max_file_size = args.max_file_size.max(1) << 20;
    opts.max_record_size = args.max_record_size.max(1) << 20;
    opts.wait = std::time::Duration::from_secs(args.wait);
    opts.compact = !args.no_compact;
    #[cfg(debug_assertions)]
    {
        opts.fail_point = args.fail_point;
    }

    let mut report = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} ingesting [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )?
            .progress_chars("=> "),
        );
        ingest(&opts, &Bar(bar)).await?
    } else {
        ingest(&opts, &Plain).await?
    };

    print_summary(lake.root(), &report);
    let verified = match &opts.early_digests {
        Some(ask) => Some(
            crate::ingest_verify::after_ingest(lake, &sources, &opts.s3, ask, &mut report).await?,
        ),
        None => None,
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(v) = &verified {
            value["verify"] = serde_json::json!({
                "digests": v.digests,
                "log_files": v.log_files,
                "all_valid": v.all_valid,
                "recorded": v.recorded,
            });
        }
        println!("{}", serde_json::to_string(&value)?);
    }
    let problems = verified.as_ref().is_some_and(|v| !v.all_valid);
    Ok(if report.files_failed > 0 || problems {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(lake: &std::path::Path, r: &Report) {
    let version = r
        .table_version
        .map_or_else(|| "-".to_string(), |v| v.to_string());
    eprintln!(
        "ingested into {} (table version {version}) in {:.2} s",
        lake.display(),
        r.seconds
    );
    eprintln!(
        "  files:      {} seen = {} skipped ({} already ingested, {} digest, {} not CloudTrail) + {} loaded + {} failed",
        r.files_seen,
        r.files_skipped,
        r.files_skipped_ingested,
        r.files_skipped_digest,
        r.files_skipped_other,
        r.files_loaded,
        r.files_failed
    );
    eprintln!(
        "  records:    {} read = {} written + {} duplicate + {} quarantined ({} written share an eventID with a different record)",
        r.records_read,
        r.records_written,
        r.records_duplicate,
        r.records_quarantined,
        r.records_collision
    );
    eprintln!("  partitions: {} days received rows", r.partitions);
    if r.partitions_compacted > 0 {
        eprintln!(
            "  compacted:  {} files of {} days in {:.2} s",
            r.files_compacted, r.partitions_compacted, r.stage_seconds.compact
        );
    }
    if let Some(e) = &r.compact_error {
        eprintln!(
            "  warning: the compaction after the batches failed (the batches are committed; \
             `trailhouse compact` retries it): {e}"
        );
    }
    if let Some(e) = &r.checkpoint_error {
        eprintln!(
            "  warning: no checkpoint of this run's commits (they are committed; readers read \
             them one by one until the next run writes one): {e}"
        );
    }
    if r.s3_list_requests > 0 {
        eprintln!(
            "  S3:         {} LIST requests returned {} object keys",
            r.s3_list_requests, r.s3_keys_listed
        );
    }
    if r.seconds > 0.0 && r.records_read > 0 {
        eprintln!(
            "  throughput: {:.0} events/s, {:.1} MB/s of JSON",
            r.events_per_second(),
            r.bytes_json as f64 / 1e6 / r.seconds
        );
    }
    if !r.quarantine_reasons.is_empty() {
        eprintln!("quarantined (query them: SELECT * FROM quarantine):");
        for (reason, n) in &r.quarantine_reasons {
            eprintln!("  {n:>6}  {reason}");
        }
    }
    if !r.failures.is_empty() {
        eprintln!("failed files:");
        for f in &r.failures {
            let recovered = if f.records_recovered > 0 {
                format!(
                    " ({} records before the break were read)",
                    f.records_recovered
                )
            } else {
                String::new()
            };
            eprintln!("  `{}`: {}{recovered}", f.file.display(), f.error);
        }
    }
}
