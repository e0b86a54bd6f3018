//! The lake directory: the Delta tables `cloudtrail` and `quarantine`, their data files and
//! commits, and the writer lock.
//!
//! Layout under the lake root:
//! ```text
//! cloudtrail/    Delta table, partitioned day=YYYY-MM-DD, rows ordered by call, region, source IP, time
//! quarantine/    Delta table of records that could not be placed
//! _trailhouse/   ingest state (ledger of source files, writer lock)
//! ```
//!
//! The root is a local folder, or a prefix in an S3 bucket (see [`crate::remote`]).

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use deltalake_core::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, StructType, Transaction};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use object_store::ObjectStore;
use url::Url;

use crate::error::LakeError;
use crate::remote::{Lease, Remote};
use crate::schema;

/// Held by the one process writing the lake (ingest, compact, vacuum, check --repair); shared
/// by the shards of a sharded ingest, each of which also holds its own ([`shard_lock`]).
const WRITER_LOCK: &str = "writer.lock";

/// The lock of one shard of a sharded ingest.
fn shard_lock(shard: &str) -> String {
    format!("writer.{shard}.lock")
}
/// Held shared by every process reading the lake; exclusively by a vacuum that may delete what
/// they read.
const READERS_LOCK: &str = "readers.lock";

/// Which of the lake's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    CloudTrail,
    Quarantine,
    /// Verdicts of `trailhouse verify --record` on the log files (present once recorded).
    Integrity,
}

impl TableKind {
    /// Every table of a lake.
    pub const ALL: [TableKind; 3] = [
        TableKind::CloudTrail,
        TableKind::Quarantine,
        TableKind::Integrity,
    ];

    /// Whether a lake may lack it: a lake written before the quarantine existed, or never
    /// verified.
    pub fn optional(self) -> bool {
        self != TableKind::CloudTrail
    }

    /// Its name in SQL and its folder in the lake.
    pub fn name(self) -> &'static str {
        self.dir()
    }

    fn dir(self) -> &'static str {
        match self {
            TableKind::CloudTrail => schema::TABLE_NAME,
            TableKind::Quarantine => schema::QUARANTINE_TABLE_NAME,
            TableKind::Integrity => schema::INTEGRITY_TABLE_NAME,
        }
    }
}

/// Whether a path from the Delta log names a file inside the table: relative, no `..`, no
/// scheme or drive, also once percent-decoded (the log stores paths URL-encoded).
pub fn is_contained(path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    [path, decoded.as_ref()].iter().all(|p| {
        !p.is_empty()
            && !p.starts_with(['/', '\\'])
            && !p.contains(':')
            && !p.contains('\0')
            && p.split(['/', '\\'])
                .all(|segment| segment != ".." && segment != ".")
    })
}

/// A partition of table `cloudtrail`: one UTC day of `eventTime`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub day: NaiveDate,
}

/// A committed data file of table `cloudtrail`.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub partition: Partition,
    pub path: PathBuf,
    pub size: u64,
}

impl Partition {
    /// The partition's directory, relative to the table root.
    pub fn dir(&self) -> String {
        format!("{}={}", schema::DAY, self.day.format("%Y-%m-%d"))
    }
}

/// A trailhouse lake: a local folder, or a prefix in an S3 bucket.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The folder; for a lake in S3, its URL (`s3://bucket/prefix`), for messages.
    root: PathBuf,
    remote: Option<Arc<Remote>>,
}

/// Held while a process reads the lake (shared), or while a vacuum deletes files readers may
/// still need (exclusive); dropping it releases the lock.
#[derive(Debug)]
pub struct ReaderLock {
    _file: File,
}

/// Held while an ingest writes; dropping it releases the lock.
#[derive(Debug)]
pub enum WriterLock {
    /// Locks on files of a local lake (released by the system if the process dies).
    File(Vec<File>),
    /// The lease of a lake in S3.
    Lease(Lease),
}

impl Lake {
    /// A lake in the local folder `root` (nothing is created until [`Lake::open_or_create`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            remote: None,
        }
    }

    /// A lake under `url` (`s3://bucket[/prefix]`), reached through `store`, the bucket's
    /// client. Must be called within a tokio runtime.
    pub fn remote(url: &Url, store: Arc<dyn ObjectStore>) -> Result<Self, LakeError> {
        crate::remote::register_log_store(url.scheme());
        let remote = Remote::new(url, store)?;
        Ok(Self {
            root: PathBuf::from(remote.url.as_str().trim_end_matches('/')),
            remote: Some(Arc::new(remote)),
        })
    }

    /// For a lake in an object store: the URL its client answers for (`s3://bucket/`) and the
    /// client, for a query engine to read the data files through.
    pub fn object_store(&self) -> Option<(&Url, Arc<dyn ObjectStore>)> {
        self.remote
            .as_ref()
            .map(|r| (&r.bucket_url, Arc::clone(&r.store)))
    }

    pub(crate) fn remote_ref(&self) -> Option<&Arc<Remote>> {
        self.remote.as_ref()
    }

    /// The folder of a local lake; the URL of a remote one.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a table's data files are written: its folder in a local lake; a local staging
    /// folder (uploaded at commit) for a remote one.
    pub fn table_dir(&self, kind: TableKind) -> PathBuf {
        match &self.remote {
            Some(r) => r.staging.join(kind.dir()),
            None => self.root.join(kind.dir()),
        }
    }

    /// A table's location, for messages: its folder, or its URL.
    pub fn table_location(&self, kind: TableKind) -> PathBuf {
        self.root.join(kind.dir())
    }

    /// Directory of the ingest's own state (local lakes).
    fn state_dir(&self) -> PathBuf {
        self.root.join("_trailhouse")
    }

    /// Whether the lake is in an object store (its data files are staged here, then uploaded).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Whether the lake has been created (a remote lake is taken to exist until it is opened).
    pub fn exists(&self) -> bool {
        self.remote.is_some()
            || self
                .table_dir(TableKind::CloudTrail)
                .join("_delta_log")
                .is_dir()
    }

    /// Takes the single-writer lock, failing at once if another process holds it.
    pub async fn lock_for_writing(&self) -> Result<WriterLock, LakeError> {
        self.lock_for_writing_within(std::time::Duration::ZERO, &|| {})
            .await
    }

    /// Takes the single-writer lock, waiting up to `wait` for another writer (or any shard of
    /// a sharded ingest) to finish; `waiting` is called once if it must wait.
    pub async fn lock_for_writing_within(
        &self,
        wait: std::time::Duration,
        waiting: &dyn Fn(),
    ) -> Result<WriterLock, LakeError> {
        self.lock_as(None, wait, waiting).await
    }

    /// Takes the lock of shard `shard` of a sharded ingest: shards write at once, each alone
    /// with its name, none beside the single writer of [`Lake::lock_for_writing_within`].
    pub async fn lock_shard_for_writing(
        &self,
        shard: &str,
        wait: std::time::Duration,
        waiting: &dyn Fn(),
    ) -> Result<WriterLock, LakeError> {
        self.lock_as(Some(shard), wait, waiting).await
    }

    async fn lock_as(
        &self,
        shard: Option<&str>,
        wait: std::time::Duration,
        waiting: &dyn Fn(),
    ) -> Result<WriterLock, LakeError> {
        let own = shard.map_or_else(|| WRITER_LOCK.to_string(), shard_lock);
        if let Some(remote) = &self.remote {
            let conflicts = |name: &str| match shard {
                None => name.starts_with("writer.") && name.ends_with(".lock"),
                Some(_) => name == WRITER_LOCK,
            };
            let lease = remote.lease(&own, &conflicts, wait, waiting).await?;
            return Ok(WriterLock::Lease(lease));
        }
        // Locally: the single writer holds `writer.lock` exclusively; each shard holds its own
        // file exclusively and `writer.lock` shared.
        let mut files = vec![self.lock_file(&own)?];
        if shard.is_some() {
            files.push(self.lock_file(WRITER_LOCK)?);
        }
        let deadline = std::time::Instant::now() + wait;
        let mut told = false;
        let mut held = 0;
        while held < files.len() {
            let (file, path) = &files[held];
            let tried = if held == 0 {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match tried {
                Ok(()) => held += 1,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    if !told {
                        waiting();
                        told = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(LakeError::Locked(self.root.clone()));
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(LakeError::Io {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(WriterLock::File(
            files.into_iter().map(|(f, _)| f).collect(),
        ))
    }

    /// Marks this process as reading the lake until the lock is dropped (many readers at once).
    /// `None` when the lake's state folder cannot be written (a read-only copy of a lake: no
    /// vacuum runs there either), and for a lake in S3 (readers on other machines cannot be
    /// seen: a vacuum there keeps the default retention).
    pub fn lock_for_reading(&self) -> Option<ReaderLock> {
        if self.remote.is_some() {
            return None;
        }
        let (file, _) = self.lock_file(READERS_LOCK).ok()?;
        file.lock_shared().ok()?;
        Some(ReaderLock { _file: file })
    }

    /// Holds off readers: fails at once, saying so, while any process reads the lake.
    pub(crate) fn lock_out_readers(&self) -> Result<ReaderLock, LakeError> {
        if self.remote.is_some() {
            return Err(LakeError::Unsupported(format!(
                "a vacuum with a retention under 168 hours could delete files that queries on \
                 other machines are reading from `{}`: keep the default retention",
                self.root.display()
            )));
        }
        let (file, path) = self.lock_file(READERS_LOCK)?;
        match file.try_lock() {
            Ok(()) => Ok(ReaderLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(LakeError::Read(self.root.clone())),
            Err(fs::TryLockError::Error(source)) => Err(LakeError::Io { path, source }),
        }
    }

    /// Opens (creating it and the state folder if need be) the lock file `name`.
    fn lock_file(&self, name: &str) -> Result<(File, PathBuf), LakeError> {
        let dir = self.state_dir();
        fs::create_dir_all(&dir).map_err(LakeError::io(&dir))?;
        let path = dir.join(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(LakeError::io(&path))?;
        Ok((file, path))
    }

    fn table_url(&self, kind: TableKind) -> Result<Url, LakeError> {
        if let Some(remote) = &self.remote {
            return remote
                .url
                .join(&format!("{}/", kind.dir()))
                .map_err(|e| LakeError::Schema(format!("lake URL `{}`: {e}", remote.url)));
        }
        let dir = self.table_dir(kind);
        fs::create_dir_all(&dir).map_err(LakeError::io(&dir))?;
        let abs = fs::canonicalize(&dir).map_err(LakeError::io(&dir))?;
        Url::from_directory_path(&abs)
            .map_err(|()| LakeError::Schema(format!("not a usable path: `{}`", abs.display())))
    }

    pub(crate) fn delta_err(&self, kind: TableKind) -> impl Fn(DeltaTableError) -> LakeError + '_ {
        move |source| match self.damaged_log_entry(kind) {
            Some((file, why)) => LakeError::DamagedLog { file, why },
            None => LakeError::Delta {
                table: self.table_location(kind).display().to_string(),
                source: Box::new(source),
            },
        }
    }

    /// After a failure to load a table: the first commit file of its log that is not JSON lines
    /// (cut short, overwritten), so the error names it rather than the reader's symptom.
    fn damaged_log_entry(&self, kind: TableKind) -> Option<(PathBuf, String)> {
        if self.remote.is_some() {
            return None;
        }
        let log = self.table_dir(kind).join("_delta_log");
        let mut commits: Vec<PathBuf> = fs::read_dir(&log)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        commits.sort();
        commits.into_iter().find_map(|path| {
            let text = match fs::read(&path) {
                Ok(t) => t,
                Err(e) => return Some((path, e.to_string())),
            };
            text.split(|b| *b == b'\n')
                .enumerate()
                .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
                .find_map(|(n, line)| {
                    serde_json::from_slice::<serde::de::IgnoredAny>(line)
                        .err()
                        .map(|e| (path.clone(), format!("line {}: {e}", n + 1)))
                })
        })
    }

    /// Opens a table for reading; fails when the lake has not been created, or was written by an
    /// earlier trailhouse whose layout this one does not read.
    pub async fn open(&self, kind: TableKind) -> Result<DeltaTable, LakeError> {
        self.open_at(kind, None).await
    }

    /// Opens a table as it was at `version` (the newest when `None`), as [`Lake::open`] does:
    /// what a process reading a snapshot another process chose (a cluster's nodes) opens.
    pub async fn open_at(
        &self,
        kind: TableKind,
        version: Option<u64>,
    ) -> Result<DeltaTable, LakeError> {
        let table = match &self.remote {
            Some(remote) => {
                // One LIST first: it tells a missing lake apart, and its error (refused
                // credentials, no answer) keeps the store's words, which delta-rs's loading
                // flattens.
                let log = format!("{}/_delta_log/", kind.dir());
                if !remote.has_any(&log).await? {
                    return Err(LakeError::Missing(self.root.clone()));
                }
                let mut builder = self.builder(kind)?;
                if let Some(v) = version {
                    builder = builder.with_version(v);
                }
                builder.load().await.map_err(self.delta_err(kind))?
            }
            None => {
                if !self.table_dir(kind).join("_delta_log").is_dir() {
                    return Err(LakeError::Missing(self.root.clone()));
                }
                let url = self.table_url(kind)?;
                match version {
                    Some(v) => deltalake_core::open_table_with_version(url, v).await,
                    None => deltalake_core::open_table(url).await,
                }
                .map_err(self.delta_err(kind))?
            }
        };
        self.check_layout(&table, kind)?;
        Ok(table)
    }

    /// A table of a remote lake, reached through the lake's client.
    fn builder(&self, kind: TableKind) -> Result<DeltaTableBuilder, LakeError> {
        let url = self.table_url(kind)?;
        let mut builder = DeltaTableBuilder::from_url(url.clone()).map_err(self.delta_err(kind))?;
        if let Some(remote) = &self.remote {
            builder = builder.with_storage_backend(Arc::clone(&remote.store), url);
        }
        Ok(builder)
    }

    /// Refuses a table partitioned otherwise or missing columns of this version's schema (a lake
    /// of an earlier trailhouse): reading it would give wrong answers, adding to it mixed files.
    /// The derived columns added since ([`schema::ADDED_COLUMNS`]) may be missing: a file without
    /// them is answered from the columns they derive from.
    fn check_layout(&self, table: &DeltaTable, kind: TableKind) -> Result<(), LakeError> {
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
        // The log names the data files; a name that leaves the table's folder (`..`, an absolute
        // path, another URL) would have a query read, or maintenance delete, files elsewhere.
        for file in snapshot.log_data().iter() {
            let path = file.path();
            if !is_contained(&path) {
                return Err(LakeError::Unsafe {
                    table: self.table_location(kind),
                    what: format!("data file `{path}`, which is outside the table"),
                });
            }
        }
        if kind != TableKind::CloudTrail {
            return Ok(());
        }
        let metadata = snapshot.metadata();
        let partitions: Vec<String> = metadata
            .partition_columns()
            .iter()
            .map(|c| c.to_string())
            .collect();
        if partitions != schema::PARTITION_COLUMNS {
            return Err(LakeError::OldLayout(
                self.root.clone(),
                format!("partitioned by {}", partitions.join(", ")),
            ));
        }
        let columns: Vec<String> = snapshot
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        let missing: Vec<String> = schema::table_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| {
                !columns.contains(name) && !schema::ADDED_COLUMNS.contains(&name.as_str())
            })
            .collect();
        if !missing.is_empty() {
            return Err(LakeError::OldLayout(
                self.root.clone(),
                format!("no column {}", missing.join(", ")),
            ));
        }
        Ok(())
    }

    /// Opens a table, creating it (empty, with its schema) when absent.
    pub async fn open_or_create(&self, kind: TableKind) -> Result<DeltaTable, LakeError> {
        let table = if self.remote.is_some() {
            let mut table = self.builder(kind)?.build().map_err(self.delta_err(kind))?;
            match table.load().await {
                Ok(()) | Err(DeltaTableError::NotATable(_)) => table,
                Err(e) => return Err(self.delta_err(kind)(e)),
            }
        } else {
            let url = self.table_url(kind)?;
            DeltaTable::try_from_url(url)
                .await
                .map_err(self.delta_err(kind))?
        };
        if table.version().is_some() {
            self.check_layout(&table, kind)?;
            return Ok(table);
        }
        let (arrow_schema, partitions): (_, &[&str]) = match kind {
            TableKind::CloudTrail => (schema::table_schema(), &schema::PARTITION_COLUMNS),
            TableKind::Quarantine => (schema::quarantine_schema(), &[]),
            TableKind::Integrity => (schema::integrity_schema(), &[]),
        };
        let delta_schema = StructType::try_from_arrow(arrow_schema.as_ref())?;
        let mut create = table
            .create()
            .with_table_name(kind.dir())
            .with_columns(delta_schema.fields().cloned())
            .with_partition_columns(partitions.iter().copied());
        if kind == TableKind::CloudTrail {
            // Readers keep statistics of the first 32 columns unless told which: ours are
            // `eventtime` and `region` (the 37th), and a file's are in its `add` action.
            create = create.with_configuration_property(
                TableProperty::DataSkippingStatsColumns,
                Some(crate::datafile::STATS_COLUMNS.join(",")),
            );
        }
        // Never retried on a later version: a second creation there would replace the first's
        // metadata (another table id) under the rows it has committed since.
        let create = create.with_commit_properties(CommitProperties::default().with_max_retries(0));
        match create.with_save_mode(SaveMode::Ignore).await {
            Ok(table) => Ok(table),
            // Another writer created it first (its version 0 was committed before ours).
            Err(e) => match self.open(kind).await {
                Ok(table) => Ok(table),
                Err(_) => Err(self.delta_err(kind)(e)),
            },
        }
    }

    /// The last batch sequence number committed by `app_id` (0 when none).
    pub async fn committed_seq(&self, table: &DeltaTable, app_id: &str) -> Result<i64, LakeError> {
        let err = |source| LakeError::Delta {
            table: table.table_url().to_string(),
            source: Box::new(source),
        };
        let snapshot = table.snapshot().map_err(err)?;
        let v = snapshot
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(err)?;
        Ok(v.unwrap_or(0))
    }

    /// Commits `adds` in one transaction carrying the idempotency marker `(app_id, seq)`.
    /// Readers see all of the files or none.
    pub async fn commit(
        &self,
        table: &mut DeltaTable,
        kind: TableKind,
        adds: Vec<Add>,
        app_id: &str,
        seq: i64,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<u64, LakeError> {
        let partition_by = match kind {
            TableKind::CloudTrail => Some(
                schema::PARTITION_COLUMNS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            TableKind::Quarantine | TableKind::Integrity => None,
        };
        let props = CommitProperties::default()
            .with_application_transaction(Transaction::new(app_id, seq))
            .with_metadata(metadata);
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
        if let Some(remote) = &self.remote {
            remote.upload_all(kind.dir(), &adds).await?;
        }
        let done = CommitBuilder::from(props)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(
                Some(snapshot),
                table.log_store(),
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by,
                    predicate: None,
                },
            )
            .await
            .map_err(self.delta_err(kind))?;
        let version = done.version();
        table.update_state().await.map_err(self.delta_err(kind))?;
        Ok(version)
    }

    /// `columns` of the data file `path` (as [`Lake::files_by_partition`] names it).
    pub fn read_columns(
        &self,
        path: &Path,
        columns: &[&str],
    ) -> Result<Vec<arrow::array::RecordBatch>, LakeError> {
        let remote = self
            .remote
            .as_ref()
            .and_then(|r| r.relative(path).map(|rel| (r, rel)));
        match remote {
            Some((remote, rel)) => remote.block(remote.read_columns(rel, path, columns)),
            None => crate::datafile::read_columns(path, columns),
        }
    }

    /// The committed data files of table `cloudtrail`, by partition (paths absolute; URLs in
    /// a remote lake: read them with [`Lake::read_columns`]).
    pub fn files_by_partition(
        &self,
        table: &DeltaTable,
    ) -> Result<HashMap<Partition, Vec<PathBuf>>, LakeError> {
        let mut out: HashMap<Partition, Vec<PathBuf>> = HashMap::new();
        for file in self.data_files(table)? {
            out.entry(file.partition).or_default().push(file.path);
        }
        Ok(out)
    }

    /// The committed data files of table `cloudtrail`: partition, path (as in
    /// [`Lake::files_by_partition`]) and size.
    pub fn data_files(&self, table: &DeltaTable) -> Result<Vec<DataFile>, LakeError> {
        let kind = TableKind::CloudTrail;
        let root = self.table_location(kind);
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
        let mut out = Vec::new();
        for file in snapshot.log_data().iter() {
            let values = file.partition_values_map();
            let day = values
                .get(schema::DAY)
                .and_then(|d| d.as_deref())
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let Some(day) = day else {
                return Err(LakeError::Schema(format!(
                    "file `{}` has no day partition value",
                    file.path()
                )));
            };
            out.push(DataFile {
                partition: Partition { day },
                path: root.join(file.path().as_ref()),
                size: u64::try_from(file.size()).unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::is_contained;

    #[test]
    fn only_paths_inside_the_table_are_contained() {
        for ok in [
            "day=2026-11-01/part-1.zstd.parquet",
            "part-0.parquet",
            "day=2026-11-01/a%20b.parquet",
            "x..y/z.parquet",
        ] {
            assert!(is_contained(ok), "{ok}");
        }
        for bad in [
            "../x.parquet",
            "day=2026-11-01/../../x.parquet",
            "%2e%2e/x.parquet",
            "/etc/passwd",
            "\\\\server\\share\\x.parquet",
            "..\\x.parquet",
            "s3://bucket/x.parquet",
            "file:///etc/passwd",
            "C:/x.parquet",
            "./x.parquet",
            "",
        ] {
            assert!(!is_contained(bad), "{bad}");
        }
    }
}
