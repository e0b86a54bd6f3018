//! One ingest run: discover → decompress → parse → normalize → partition → write → commit, batch
//! by batch, each batch bounded in memory and committed atomically.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{Int64Builder, RecordBatch, StringBuilder};
use rayon::prelude::*;
use trailhouse_lake::datafile::write_quarantine_file;
use trailhouse_lake::maintenance::COMPACT_TARGET_BYTES;
use trailhouse_lake::quarantine::{QuarantineKey, quarantine_key};
use trailhouse_lake::schema;
use trailhouse_lake::{Lake, Partition, TableKind};

use crate::decompress;
use crate::discover::{Discovered, Sift, SourceFile, discover, in_reading_order};
use crate::error::{FileError, IngestError};
use crate::fetch::{ReadAhead, Stored};
use crate::ledger::{Ledger, Plan};
use crate::normalize::{Placed, RecordBuilder, Sizes};
use crate::parse::{self, Parsed, RecordText};
use crate::partition::{DedupIndex, FileRows, partition};
use crate::report::{Failure, Report};
use crate::s3::{Buckets, Cursors, S3Options, S3Url, is_s3};
use crate::shard::{Shard, Writer};
use crate::write::write_partition;

/// The `txn` application id of trailhouse's ingest in the Delta log.
pub const APP_ID: &str = "trailhouse-ingest";

/// What to ingest and within which limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// The lake written: a local folder or a prefix in S3.
    pub lake: Lake,
    /// Local files and folders, and `s3://bucket[/prefix]` locations.
    pub sources: Vec<PathBuf>,
    /// How S3 sources are reached.
    pub s3: S3Options,
    /// Only this shard of the sources (by account and region); see [`crate::shard`].
    pub shard: Option<Shard>,
    /// Only files delivered on this day or later (CloudTrail's `YYYY/MM/DD` key folders; files
    /// outside the layout are read whatever their date).
    pub since: Option<chrono::NaiveDate>,
    /// Worker threads; 0 = one per core.
    pub jobs: usize,
    /// Threads reading source files ahead of the workers (reads in flight, for storage latency).
    pub io_threads: usize,
    /// Memory the run may use for data in flight (batches and the dedup index), in bytes.
    pub memory_budget: u64,
    /// Largest decompressed file accepted, in bytes.
    pub max_file_size: u64,
    /// Largest record loaded into the table, in bytes of JSON; a larger one is quarantined
    /// (kept verbatim, with the reason).
    pub max_record_size: usize,
    /// Most source files per batch (one commit each).
    pub max_batch_files: usize,
    /// How long to wait for another process writing the lake before giving up.
    pub wait: std::time::Duration,
    /// Compact the day partitions the run wrote to once they hold many files (see
    /// [`trailhouse_lake::maintenance::COMPACT_MIN_FILES`]); not in a sharded run, where other
    /// shards may be writing the same days.
    pub compact: bool,
    /// Test hook: abort the process at this point, as a crash would.
    pub fail_point: Option<FailPoint>,
    /// Keep each read log file's SHA-256 over its uncompressed bytes in
    /// [`Report::file_hashes`], for checking against CloudTrail's digests without reading the
    /// files again (`ingest --verify`).
    pub hash_files: bool,
    /// `ingest --verify`'s keys and pending files. With `hash_files` over local sources, the
    /// digests among them are judged while the run reads (the check after it then has only the
    /// log files to judge); from S3, after it.
    pub early_digests: Option<crate::verify::early::Ask>,
}

impl Options {
    pub fn new(lake: Lake, sources: Vec<PathBuf>) -> Self {
        Self {
            lake,
            sources,
            s3: S3Options::default(),
            shard: None,
            since: None,
            jobs: 0,
            io_threads: 16,
            memory_budget: 1 << 30,
            max_file_size: 1 << 30,
            max_record_size: 32 << 20,
            max_batch_files: 20_000,
            wait: std::time::Duration::ZERO,
            compact: true,
            fail_point: None,
            hash_files: false,
            early_digests: None,
        }
    }
}

/// Where a test makes the run die (`std::process::abort`, no clean-up), and in which batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After the batch's plan is written.
    AfterPlan(i64),
    /// After its data files are written, before any commit.
    AfterDataFiles(i64),
    /// After the quarantine commit, before the main commit.
    AfterQuarantineCommit(i64),
    /// After the main commit.
    AfterCommit(i64),
}

impl std::str::FromStr for FailPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, seq) = s
            .split_once(':')
            .ok_or_else(|| format!("expected NAME:BATCH, got `{s}`"))?;
        let seq: i64 = seq
            .parse()
            .map_err(|_| format!("bad batch number `{seq}`"))?;
        Ok(match name {
            "after-plan" => FailPoint::AfterPlan(seq),
            "after-data-files" => FailPoint::AfterDataFiles(seq),
            "after-quarantine-commit" => FailPoint::AfterQuarantineCommit(seq),
            "after-commit" => FailPoint::AfterCommit(seq),
            _ => return Err(format!("unknown fail point `{name}`")),
        })
    }
}

/// Progress notifications (the CLI draws a bar on a terminal).
pub trait Progress: Sync {
    /// Another process is writing the lake; the run waits for it (`Options::wait`).
    fn waiting(&self) {}
    fn begin(&self, _files: u64, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn end(&self) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A record that cannot be placed, kept verbatim.
struct QuarantineRow {
    file: Arc<str>,
    index: i64,
    reason: String,
    record: String,
}

/// What reading one file gave.
enum FileResult {
    Events {
        read: u64,
        json_bytes: u64,
        broken: Option<FileError>,
        /// SHA-256 of the uncompressed bytes, when asked for ([`Options::hash_files`]).
        sha256: Option<crate::verify::digest::Sha256>,
    },
    Digest,
    NotCloudTrail,
    Failed(FileError),
    /// Left for a later batch: the batch's decompressed bytes had reached its budget.
    Deferred,
}

struct ChunkOutput {
    rows: Option<FileRows>,
    quarantined: Vec<QuarantineRow>,
    results: Vec<FileResult>,
}

/// Runs one ingest. File-level problems are reported in the [`Report`]; an `Err` means the run
/// itself could not proceed (lake unwritable, a source path missing).
pub async fn ingest(opts: &Options, progress: &dyn Progress) -> Result<Report, IngestError> {
    let started = Instant::now();
    let lake = opts.lake.clone();
    let writer = Writer::new(opts.shard);
    let app_id = writer.app_id();
    let _lock = match writer.shard() {
        Some(shard) => {
            lake.lock_shard_for_writing(shard, opts.wait, &|| progress.waiting())
                .await?
        }
        None => {
            lake.lock_for_writing_within(opts.wait, &|| progress.waiting())
                .await?
        }
    };
    let mut main = lake.open_or_create(TableKind::CloudTrail).await?;
    let mut quarantine = lake.open_or_create(TableKind::Quarantine).await?;
    let versions_before = (main.version(), quarantine.version());
    let committed = lake.committed_seq(&main, &app_id).await?;
    let state = lake.state();
    let mut ledger = Ledger::load(&state, &writer.ledger(), committed).await?;
    let (remote, local): (Vec<PathBuf>, Vec<PathBuf>) =
        opts.sources.iter().cloned().partition(|s| is_s3(s));
    let buckets = if remote.is_empty() {
        None
    } else {
        let runtime = tokio::runtime::Handle::current();
        Some(Arc::new(Buckets::connect(&remote, &opts.s3, runtime)?))
    };
    let mut ahead = ReadAhead::new(opts.io_threads, opts.max_file_size, buckets.clone())?;
    let pending = ledger.pending.take();
    let pending_paths: HashSet<PathBuf> = pending
        .iter()
        .flat_map(|p| p.files.iter().map(|f| f.path.clone()))
        .collect();
    // The files this run is asked about (its shard's, delivered since `--since`); others are
    // neither read nor counted.
    let since = opts.since.map(|s| s.format("%Y%m%d").to_string());
    let in_scope = |f: &SourceFile| {
        opts.shard.is_none_or(|shard| {
            let at = f.account_region();
            shard.holds(at.as_ref().map(|(a, r)| (a.as_str(), r.as_str())))
        }) && since
            .as_ref()
            .is_none_or(|since| f.key_date().is_none_or(|d| d >= *since))
    };
    // The walk leaves out, as it finds them, files outside the run's scope and (counted) files
    // the ledger has: a rerun over a million files would hold them all only to drop them. Not
    // the latter when the check after the run lists every file.
    let sift = |f: &SourceFile| {
        if !in_scope(f) {
            Sift::Outside
        } else if opts.hash_files || pending_paths.contains(&f.path) || !ledger.contains(f) {
            Sift::Keep
        } else {
            Sift::Had
        }
    };
    let mut discovered = if local.is_empty() {
        Discovered::default()
    } else {
        ahead.install(|| discover(&local, lake.root(), &sift))?
    };
    let mut cursors = Cursors::default();
    let mut listings = Vec::new();
    // Objects listed from a region folder's cursor that this run leaves unread: the cursors stop
    // at the first of them. A few (failures), not the listing.
    let mut unread: Vec<PathBuf> = Vec::new();
    if let Some(buckets) = &buckets {
        cursors = Cursors::load(&state, &writer.cursors()).await?;
        for source in &remote {
            let mut listing = buckets
                .list(&S3Url::parse(source)?, &cursors, opts.since, opts.shard)
                .await?;
            // Moved, not appended: the listing's buffer (400,000 files at 20M events) goes.
            let mut files = std::mem::take(&mut listing.files);
            if discovered.files.is_empty() {
                files.shrink_to_fit();
                discovered.files = files;
            } else {
                discovered.files.append(&mut files);
            }
            discovered.unreadable.append(&mut listing.unreadable);
            listings.push(listing);
        }
        // The objects listed beside the walk's files, sifted as the walk sifts.
        if opts.shard.is_some() || since.is_some() {
            discovered.files.retain(|f| {
                let keep = in_scope(f);
                if !keep && is_s3(&f.path) {
                    unread.push(f.path.clone());
                }
                keep
            });
        }
        in_reading_order(&mut discovered.files);
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .build()?;
    let budget_entries = (opts.memory_budget / 4 / 64).max(1 << 16) as usize;
    let mut index = DedupIndex::new(
        lake.clone(),
        lake.files_by_partition(&main)?,
        budget_entries,
    );
    let batch_budget = (opts.memory_budget / 4).max(64 << 10);

    let mut report = Report::default();
    // What the check after the run lists (local sources: the walk just made, digests included).
    if opts.hash_files && remote.is_empty() {
        // The digests judged from here on, for the files the run is to read (those the ledger
        // has are not read again, those of an interrupted batch are).
        let early = opts.early_digests.as_ref().map(|ask| {
            let reading = discovered
                .files
                .iter()
                .filter(|f| !f.is_digest() && !ledger.contains(f))
                .chain(pending.iter().flat_map(|p| &p.files));
            // An eighth of the run's memory (the batches take a quarter, the index another):
            // 64 MiB at the default 512, what the 110,000 digests of a 90-day trail of 51
            // regions and accounts find when they list 84,000 log files (2M events), and about
            // half of it at 400,000 (20M: 123 MB). Beyond it the background stops taking chains
            // and the run's end judges them. A quarter was measured at 20M: 0.9 s less after
            // the run, the same in all, up to 100 MiB more at the peak.
            let budget = usize::try_from(opts.memory_budget / 8).unwrap_or(usize::MAX);
            crate::verify::early::Early::start(&discovered.files, reading, ask, budget)
        });
        report.listed = Some(crate::report::Listed::new(&discovered.files).with_early(early));
    }
    // Left out by the walk: already ingested.
    report.files_seen += discovered.left_out;
    report.files_skipped += discovered.left_out;
    report.files_skipped_ingested += discovered.left_out;
    for (path, error) in discovered.unreadable {
        report.files_seen += 1;
        report.files_failed += 1;
        report.failures.push(Failure {
            file: path,
            error,
            records_recovered: 0,
        });
    }
    // The files to read, left in the listing's own vector (not copied: it can be a million).
    let mut todo = discovered.files;
    todo.retain(|f| {
        if pending_paths.contains(&f.path) {
            return false;
        }
        report.files_seen += 1;
        if ledger.contains(f) {
            report.files_skipped += 1;
            report.files_skipped_ingested += 1;
            false
        } else if f.is_digest() {
            report.files_skipped += 1;
            report.files_skipped_digest += 1;
            false
        } else {
            true
        }
    });
    report.files_seen += pending_paths.len() as u64;
    report.stage_seconds.discover = started.elapsed().as_secs_f64();
    let total_bytes: u64 = todo.iter().map(|f| f.size).sum::<u64>()
        + pending
            .iter()
            .flat_map(|p| &p.files)
            .map(|f| f.size)
            .sum::<u64>();
    progress.begin(todo.len() as u64 + pending_paths.len() as u64, total_bytes);

    // The interrupted batch first, replayed as planned; then batches within the budget.
    let mut batches: Vec<(Arc<[SourceFile]>, Option<Plan>)> = Vec::new();
    if let Some(plan) = pending {
        batches.push((plan.files.as_slice().into(), Some(plan)));
    }
    // Batch sizes first, then the files moved (not copied) into their batches.
    let mut lengths = Vec::new();
    let mut start = 0;
    while start < todo.len() {
        let mut end = start;
        let mut estimate = 0u64;
        // Files are gzip more often than not; 8x is CloudTrail's typical ratio.
        while end < todo.len()
            && (end == start
                || (estimate + todo[end].size * 8 <= batch_budget
                    && end - start < opts.max_batch_files.max(1)))
        {
            estimate += todo[end].size * 8;
            end += 1;
        }
        lengths.push(end - start);
        start = end;
    }
    // The list's own buffer goes once its files are in their batches (an organization trail's
    // 834,000 files: 60 MB held for the whole run otherwise).
    let mut files = todo.into_iter();
    for n in lengths {
        batches.push((files.by_ref().take(n).collect(), None));
    }
    drop(files);

    let retried: HashSet<String> = batches
        .iter()
        .flat_map(|(files, _)| files.iter())
        .filter(|f| ledger.was_tried(&f.path))
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect();
    let known_quarantine = lake.quarantined_from(&quarantine, &retried)?;
    let mut ctx = BatchContext {
        lake: &lake,
        app_id: &app_id,
        opts,
        pool: &pool,
        progress,
        index: &mut index,
        ledger: &mut ledger,
        report: &mut report,
        batch_budget,
        known_quarantine,
        partitions: HashSet::new(),
        sizes: Mutex::default(),
    };
    if let Some((files, _)) = batches.first() {
        ahead.start(Arc::clone(files));
    }
    for i in 0..batches.len() {
        let (files, replay) = (Arc::clone(&batches[i].0), batches[i].1.take());
        let t = Instant::now();
        let stored = ahead.take(&files);
        ctx.report.stage_seconds.wait += t.elapsed().as_secs_f64();
        if let Some((next, _)) = batches.get(i + 1) {
            ahead.start(Arc::clone(next));
        }
        // Files that decompress to more than the batch can hold go on in batches of their own.
        let mut work = Some((files.to_vec(), stored, replay));
        while let Some((files, stored, replay)) = work.take() {
            work = ctx
                .run_batch(&mut main, &mut quarantine, &files, stored, replay)
                .await?
                .map(|(files, stored)| (files, stored, None));
        }
        // Committed, and in the ledger: the batch's list goes (a 20M-event trail lists 400,000
        // files, and the run's memory is highest near its end), less the objects it left unread.
        let done = std::mem::take(&mut batches[i].0);
        if !listings.is_empty() {
            unread.extend(
                done.iter()
                    .filter(|f| is_s3(&f.path) && !ctx.ledger.is_ingested(&f.path))
                    .map(|f| f.path.clone()),
            );
        }
        drop(done);
    }
    let days: BTreeSet<chrono::NaiveDate> = ctx.partitions.iter().map(|p| p.day).collect();
    report.partitions = days.len() as u64;
    // Every batch is committed: the next run lists each S3 region folder from what this one
    // finished (a run that stopped before here lists more next time, never less).
    if !listings.is_empty() {
        for listing in &listings {
            cursors.advance(listing, unread.iter().map(PathBuf::as_path));
        }
        cursors.save(&state, &writer.cursors()).await?;
    }
    // After the cursors: what they have passed is left out of the ledger's next checkpoint.
    ledger.checkpoint(&|path| cursors.behind(path)).await?;
    // Everything is committed and recorded: a compaction that fails or is interrupted loses
    // nothing (its commit is atomic), so its failure is reported, not the run's.
    if opts.compact && opts.shard.is_none() {
        // The batches' state goes first: the compaction's readers and writers take its place.
        drop((index, batches, ahead, pool));
        let t = Instant::now();
        match lake.compact_days(main, &days, COMPACT_TARGET_BYTES).await {
            Ok((table, done)) => {
                main = table;
                report.partitions_compacted = done.partitions;
                report.files_compacted = done.files_removed;
            }
            Err(e) => {
                report.compact_error = Some(e.to_string());
                main = lake.open(TableKind::CloudTrail).await?;
            }
        }
        report.stage_seconds.compact = t.elapsed().as_secs_f64();
    }
    // The run's commits are summarized in a checkpoint, which readers open instead of them.
    // Nothing depends on it: when it cannot be written, readers read the commits.
    for (table, kind, before) in [
        (&main, TableKind::CloudTrail, versions_before.0),
        (&quarantine, TableKind::Quarantine, versions_before.1),
    ] {
        if table.version() != before
            && let Err(e) = lake.checkpoint(table, kind).await
        {
            report.checkpoint_error.get_or_insert(e.to_string());
        }
    }
    if let Some(b) = &buckets {
        report.s3_list_requests = b.lists.load(Ordering::Relaxed);
        report.s3_keys_listed = b.keys.load(Ordering::Relaxed);
    }
    progress.end();
    report.table_version = main.version();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

struct BatchContext<'a> {
    lake: &'a Lake,
    /// The `txn` application id of this writer's commits.
    app_id: &'a str,
    opts: &'a Options,
    pool: &'a rayon::ThreadPool,
    progress: &'a dyn Progress,
    index: &'a mut DedupIndex,
    ledger: &'a mut Ledger,
    report: &'a mut Report,
    /// Decompressed bytes a batch may hold (a replayed batch reads all of its files).
    batch_budget: u64,
    /// What `quarantine` holds of the files read again after a failure.
    known_quarantine: HashSet<QuarantineKey>,
    partitions: HashSet<Partition>,
    /// How large the last chunk's columns grew (the next chunk's builder reserves as much).
    sizes: Mutex<Sizes>,
}

impl BatchContext<'_> {
    fn fail_at(&self, point: FailPoint) {
        if self.opts.fail_point == Some(point) {
            std::process::abort();
        }
    }

    /// Reads, writes and commits one batch. Returns the files left unread (with their stored
    /// bytes) when the batch's decompressed bytes reached its budget first: the caller runs
    /// them as the next batch.
    async fn run_batch(
        &mut self,
        main: &mut deltalake_core::DeltaTable,
        quarantine: &mut deltalake_core::DeltaTable,
        files: &[SourceFile],
        mut stored: Vec<Stored>,
        replay: Option<Plan>,
    ) -> Result<Option<(Vec<SourceFile>, Vec<Stored>)>, IngestError> {
        let seq = self.ledger.committed_seq + 1;
        let limits = Limits {
            file: self.opts.max_file_size,
            record: self.opts.max_record_size,
            hash: self.opts.hash_files,
        };
        let progress = self.progress;
        let sizes = &self.sizes;
        let threads = self.pool.current_num_threads().max(1);
        let chunk = files.len().div_ceil(threads * 8).clamp(1, 256);
        let budget = Budget {
            bytes: if replay.is_some() {
                u64::MAX
            } else {
                self.batch_budget
            },
            used: AtomicU64::new(0),
        };
        let t = Instant::now();
        let outputs: Vec<ChunkOutput> = self.pool.install(|| {
            files
                .par_chunks(chunk)
                .zip(stored.par_chunks_mut(chunk))
                .enumerate()
                .map(|(i, (c, s))| read_chunk(c, s, limits, progress, sizes, &budget, i == 0))
                .collect()
        });

        let mut rows = Vec::new();
        let mut qrows = Vec::new();
        let mut failed = Vec::new();
        let results = outputs.into_iter().flat_map(|o| {
            rows.extend(o.rows);
            qrows.extend(o.quarantined);
            o.results
        });
        let results: Vec<FileResult> = results.collect();
        self.report.stage_seconds.read += t.elapsed().as_secs_f64();
        let mut deferred = (Vec::new(), Vec::new());
        let mut read_files = Vec::with_capacity(files.len());
        for ((file, result), stored) in files.iter().zip(results).zip(stored) {
            if matches!(result, FileResult::Deferred) {
                deferred.0.push(file.clone());
                deferred.1.push(stored);
                continue;
            }
            read_files.push(file.clone());
            let r = &mut *self.report;
            match result {
                FileResult::Events {
                    read,
                    json_bytes,
                    broken,
                    sha256,
                } => {
                    if let Some(hash) = sha256
                        && !r
                            .listed
                            .as_mut()
                            .is_some_and(|l| l.set_hash(&file.path, hash))
                    {
                        r.file_hashes.push((file.path.clone(), hash));
                    }
                    r.records_read += read;
                    r.bytes_read += file.size;
                    r.bytes_json += json_bytes;
                    match broken {
                        None => r.files_loaded += 1,
                        Some(e) => {
                            r.files_failed += 1;
                            failed.push(file.path.clone());
                            r.failures.push(Failure {
                                file: file.path.clone(),
                                error: e.to_string(),
                                records_recovered: read,
                            });
                        }
                    }
                }
                FileResult::Digest => {
                    r.files_skipped += 1;
                    r.files_skipped_digest += 1;
                }
                FileResult::NotCloudTrail => {
                    r.files_skipped += 1;
                    r.files_skipped_other += 1;
                }
                FileResult::Failed(e) => {
                    r.files_failed += 1;
                    r.bytes_read += file.size;
                    failed.push(file.path.clone());
                    r.failures.push(Failure {
                        file: file.path.clone(),
                        error: e.to_string(),
                        records_recovered: 0,
                    });
                }
                FileResult::Deferred => {}
            }
        }
        let files = read_files.as_slice();
        // Records a run before already quarantined from a file read again (it had failed after
        // them) are duplicates, not new quarantine rows.
        if !self.known_quarantine.is_empty() {
            let before = qrows.len();
            qrows.retain(|q| {
                !self
                    .known_quarantine
                    .contains(&quarantine_key(&q.file, q.index, &q.record))
            });
            self.report.records_duplicate += (before - qrows.len()) as u64;
        }
        for q in &qrows {
            self.report.add_quarantine_reason(&q.reason);
        }
        self.report.records_quarantined += qrows.len() as u64;

        // A replayed batch keeps its files (the interrupted run may have written some of their
        // rows), but what failed is what failed now: a file that reads this time is loaded, and
        // one that fails this time (a read error, a lower --max-file-size) must not be counted
        // as ingested on the strength of the earlier reading.
        let plan = match replay {
            Some(mut plan) => {
                if plan.failed != failed {
                    plan.failed = failed;
                    self.ledger.write_plan(&plan).await?;
                }
                plan
            }
            None => {
                let plan = Plan {
                    seq,
                    files: files.to_vec(),
                    failed,
                };
                self.ledger.write_plan(&plan).await?;
                plan
            }
        };
        self.fail_at(FailPoint::AfterPlan(seq));

        // Deduplicate, sort and write each partition's rows, partitions in parallel.
        let main_root = self.lake.table_dir(TableKind::CloudTrail);
        let t = Instant::now();
        let (parts, counts) = self.pool.install(|| {
            partition(&rows, self.index, |p, batch| {
                write_partition(&main_root, p, &batch)
            })
        })?;
        drop(rows);
        self.report.stage_seconds.write += t.elapsed().as_secs_f64();
        self.report.records_duplicate += counts.duplicate;
        self.report.records_collision += counts.collision;
        let written: usize = parts.iter().map(|p| p.rows).sum();
        self.report.records_written += written as u64;
        let t = Instant::now();
        let quarantine_done = self.lake.committed_seq(quarantine, self.app_id).await? >= seq;
        let quarantine_add = if qrows.is_empty() || quarantine_done {
            None
        } else {
            let batch = quarantine_batch(&qrows)?;
            Some(write_quarantine_file(
                &self.lake.table_dir(TableKind::Quarantine),
                &batch,
            )?)
        };
        self.fail_at(FailPoint::AfterDataFiles(seq));

        if let Some(add) = quarantine_add {
            let meta = commit_metadata(seq, files.len(), qrows.len());
            self.lake
                .commit(
                    quarantine,
                    TableKind::Quarantine,
                    vec![add],
                    self.app_id,
                    seq,
                    meta,
                )
                .await?;
        }
        self.fail_at(FailPoint::AfterQuarantineCommit(seq));

        let meta = commit_metadata(seq, files.len(), written);
        let new_files: Vec<(Partition, String)> = parts
            .iter()
            .map(|p| (p.partition.clone(), p.output.path.clone()))
            .collect();
        let adds = parts.into_iter().map(|p| p.output).collect();
        self.lake
            .commit(main, TableKind::CloudTrail, adds, self.app_id, seq, meta)
            .await?;
        self.fail_at(FailPoint::AfterCommit(seq));
        self.report.stage_seconds.commit += t.elapsed().as_secs_f64();

        let committed_root = self.lake.table_location(TableKind::CloudTrail);
        for (partition, path) in new_files {
            self.index.add_files(&partition, committed_root.join(path));
            self.partitions.insert(partition);
        }
        self.ledger.record(&plan);
        Ok((!deferred.0.is_empty()).then_some(deferred))
    }
}

fn commit_metadata(
    seq: i64,
    files: usize,
    records: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "trailhouse".into(),
        serde_json::json!({ "batch": seq, "sourceFiles": files, "records": records }),
    );
    m
}

fn quarantine_batch(rows: &[QuarantineRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut file = StringBuilder::new();
    let mut index = Int64Builder::new();
    let mut reason = StringBuilder::new();
    let mut record = StringBuilder::new();
    for r in rows {
        file.append_value(&r.file);
        index.append_value(r.index);
        reason.append_value(&r.reason);
        record.append_value(&r.record);
    }
    RecordBatch::try_new(
        schema::quarantine_schema(),
        vec![
            Arc::new(file.finish()),
            Arc::new(index.finish()),
            Arc::new(reason.finish()),
            Arc::new(record.finish()),
        ],
    )
}

/// The largest file (decompressed) and record (JSON bytes) accepted.
#[derive(Clone, Copy)]
struct Limits {
    file: u64,
    record: usize,
    /// Hash each file's uncompressed bytes.
    hash: bool,
}

/// How many decompressed bytes a batch may read, and how many its chunks have read so far.
struct Budget {
    bytes: u64,
    used: AtomicU64,
}

/// Reads a run of files (their stored bytes are taken from `stored`) into one set of columns.
/// Once the batch's chunks have read `budget` decompressed bytes, the chunk's remaining files are
/// [`FileResult::Deferred`] (their stored bytes left in place); the batch's `first` chunk reads at
/// least one file, so every batch makes progress.
fn read_chunk(
    files: &[SourceFile],
    stored: &mut [Stored],
    limits: Limits,
    progress: &dyn Progress,
    sizes: &Mutex<Sizes>,
    budget: &Budget,
    first: bool,
) -> ChunkOutput {
    let hint = sizes.lock().map(|s| s.clone()).unwrap_or_default();
    let mut builder = RecordBuilder::with_sizes(Arc::from(""), &hint, files.len());
    let mut placed: Vec<Placed> = Vec::new();
    let mut quarantined = Vec::new();
    let mut results = Vec::with_capacity(files.len());
    let mut scratch = Scratch::default();
    for (i, (file, stored)) in files.iter().zip(stored).enumerate() {
        if !(first && i == 0) && budget.used.load(Ordering::Relaxed) >= budget.bytes {
            results.push(FileResult::Deferred);
            continue;
        }
        let stored = std::mem::replace(stored, Ok(Vec::new()));
        let result = read_file(
            file,
            stored,
            &mut scratch,
            limits,
            &mut builder,
            &mut placed,
            &mut quarantined,
        );
        if let FileResult::Events { json_bytes, .. } = &result {
            budget.used.fetch_add(*json_bytes, Ordering::Relaxed);
        }
        progress.advance(file.size);
        results.push(result);
    }
    let rows = if placed.is_empty() {
        None
    } else {
        if let Ok(mut s) = sizes.lock() {
            *s = builder.sizes(files.len());
        }
        match builder.finish() {
            Ok(batch) => Some(FileRows { batch, placed }),
            Err(e) => {
                // Column lengths are built in lock-step; a mismatch is a bug, not bad input.
                // Account for it on every file of the chunk rather than losing rows silently.
                for r in &mut results {
                    if let FileResult::Events { broken, .. } = r {
                        *broken = Some(FileError::Envelope(format!("internal error: {e}")));
                    }
                }
                None
            }
        }
    };
    ChunkOutput {
        rows,
        quarantined,
        results,
    }
}

/// What reading one file's bytes gave (see [`read_bytes`]).
#[derive(Debug)]
pub struct FileReading {
    /// The normalized rows of the records that were placed, in file order.
    pub rows: Option<RecordBatch>,
    /// Records kept verbatim instead: (index in the file, reason, text).
    pub quarantined: Vec<(i64, String, String)>,
    /// How the file ended: loaded, a digest, not CloudTrail, or why it failed (with what was
    /// recovered before the break still in `rows` and `quarantined`).
    pub outcome: Result<&'static str, String>,
    /// Records the file held (placed and quarantined).
    pub records: u64,
}

/// One file's bytes through decompress → parse → normalize exactly as ingest reads them, for
/// tools that check the read path (the fuzzer in `benches/`).
pub fn read_bytes(
    name: &std::path::Path,
    bytes: Vec<u8>,
    max_file_size: u64,
    max_record_size: usize,
) -> FileReading {
    let file = SourceFile {
        path: name.to_path_buf(),
        size: bytes.len() as u64,
        mtime_ns: 0,
        etag: None,
    };
    let mut builder = RecordBuilder::with_sizes(Arc::from(""), &Sizes::default(), 1);
    let (mut placed, mut quarantined) = (Vec::new(), Vec::new());
    let limits = Limits {
        file: max_file_size,
        record: max_record_size,
        hash: false,
    };
    let result = read_file(
        &file,
        Ok(bytes),
        &mut Scratch::default(),
        limits,
        &mut builder,
        &mut placed,
        &mut quarantined,
    );
    let rows = if placed.is_empty() {
        None
    } else {
        builder.finish().ok()
    };
    let (outcome, records) = match result {
        FileResult::Events { read, broken, .. } => {
            (broken.map_or(Ok("loaded"), |e| Err(e.to_string())), read)
        }
        FileResult::Digest => (Ok("digest"), 0),
        FileResult::NotCloudTrail => (Ok("not CloudTrail"), 0),
        FileResult::Failed(e) => (Err(e.to_string()), 0),
        FileResult::Deferred => (Ok("deferred"), 0),
    };
    FileReading {
        rows,
        quarantined: quarantined
            .into_iter()
            .map(|q| (q.index, q.reason, q.record))
            .collect(),
        outcome,
        records,
    }
}

/// What reading a file reuses from the file before: the decompression buffer and the gzip
/// reader.
#[derive(Default)]
struct Scratch {
    buffer: Vec<u8>,
    gunzip: decompress::Gunzip,
}

/// Reads one file's records into `builder`.
fn read_file(
    file: &SourceFile,
    stored: Stored,
    scratch: &mut Scratch,
    limits: Limits,
    builder: &mut RecordBuilder,
    placed: &mut Vec<Placed>,
    quarantined: &mut Vec<QuarantineRow>,
) -> FileResult {
    let recycled = std::mem::take(&mut scratch.buffer);
    let content = match stored.and_then(|bytes| scratch.gunzip.decode(bytes, limits.file, recycled))
    {
        Ok(c) => c,
        Err(e) => return FileResult::Failed(e),
    };
    // A log file CloudTrail named is held to being one, compressed or not.
    let parsed = match parse::parse(&content.bytes, content.gzip || file.is_log_file()) {
        Ok(p) => p,
        Err(FileError::Envelope(what)) if !content.gzip => {
            return FileResult::Failed(FileError::Envelope(format!(
                "{what}, and not gzip either (CloudTrail delivers its log files gzip-compressed)"
            )));
        }
        Err(e) => return FileResult::Failed(content.broken.unwrap_or(e)),
    };
    let (records, parse_broken) = match parsed {
        Parsed::Events {
            records, broken, ..
        } => (records, broken),
        Parsed::Digest => return FileResult::Digest,
        Parsed::NotCloudTrail(_) => {
            return match content.broken {
                Some(e) => FileResult::Failed(e),
                None => FileResult::NotCloudTrail,
            };
        }
    };
    let name: Arc<str> = Arc::from(file.path.to_string_lossy().as_ref());
    builder.set_source_file(name.clone());
    let region = file.key_region();
    let read = records.len() as u64;
    for (i, record) in records.into_iter().enumerate() {
        let size = record.text().len();
        let outcome = match record {
            _ if size > limits.record => Err((
                record.text().into_owned(),
                format!(
                    "record of {size} bytes is over the limit of {} bytes (--max-record-size)",
                    limits.record
                ),
            )),
            RecordText::Scanned(text, scanned) => builder
                .push_scanned(scanned, region.as_deref())
                .map_err(|why| (text.to_string(), why)),
            RecordText::Borrowed(raw) => builder
                .push(raw, region.as_deref())
                .map_err(|why| (raw.get().to_string(), why)),
            RecordText::Owned(raw) => builder
                .push(&raw, region.as_deref())
                .map_err(|why| (raw.get().to_string(), why)),
            RecordText::Reject(text, why) => Err((text.into_owned(), why)),
        };
        match outcome {
            Ok(p) => placed.push(p),
            Err((text, reason)) => quarantined.push(QuarantineRow {
                file: name.clone(),
                index: i as i64,
                reason,
                record: text,
            }),
        }
    }
    let json_bytes = content.bytes.len() as u64;
    let sha256 = limits
        .hash
        .then(|| crate::verify::digest::sha256(&content.bytes));
    scratch.buffer = content.bytes;
    FileResult::Events {
        read,
        json_bytes,
        broken: content.broken.or(parse_broken),
        sha256,
    }
}
