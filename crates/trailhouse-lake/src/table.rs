//! The lake directory: the Delta tables `cloudtrail` and `quarantine`, their data files and
//! commits, and the writer lock.
//!
//! Layout under the lake root:
//! ```text
//! cloudtrail/    Delta table, partitioned day=YYYY-MM-DD, rows ordered by region and time
//! quarantine/    Delta table of records that could not be placed
//! _trailhouse/   ingest state (ledger of source files, writer lock)
//! ```

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use deltalake_core::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, StructType, Transaction};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError, TableProperty};
use url::Url;

use crate::error::LakeError;
use crate::schema;

/// Which of the lake's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    CloudTrail,
    Quarantine,
}

impl TableKind {
    fn dir(self) -> &'static str {
        match self {
            TableKind::CloudTrail => schema::TABLE_NAME,
            TableKind::Quarantine => schema::QUARANTINE_TABLE_NAME,
        }
    }
}

/// A partition of table `cloudtrail`: one UTC day of `eventTime`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub day: NaiveDate,
}

impl Partition {
    /// The partition's directory, relative to the table root.
    pub fn dir(&self) -> String {
        format!("{}={}", schema::DAY, self.day.format("%Y-%m-%d"))
    }
}

/// A trailhouse lake on the local file system.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

/// Held while an ingest writes; dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl Lake {
    /// A lake at `root` (nothing is created until [`Lake::open_or_create`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of a table.
    pub fn table_dir(&self, kind: TableKind) -> PathBuf {
        self.root.join(kind.dir())
    }

    /// Directory of the ingest's own state.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("_trailhouse")
    }

    /// Whether the lake has been created.
    pub fn exists(&self) -> bool {
        self.table_dir(TableKind::CloudTrail)
            .join("_delta_log")
            .is_dir()
    }

    /// Takes the single-writer lock, failing at once if another process holds it.
    pub fn lock_for_writing(&self) -> Result<WriterLock, LakeError> {
        let dir = self.state_dir();
        fs::create_dir_all(&dir).map_err(|source| LakeError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("writer.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LakeError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(WriterLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(LakeError::Locked(self.root.clone())),
            Err(fs::TryLockError::Error(source)) => Err(LakeError::Io { path, source }),
        }
    }

    fn table_url(&self, kind: TableKind) -> Result<Url, LakeError> {
        let dir = self.table_dir(kind);
        fs::create_dir_all(&dir).map_err(|source| LakeError::Io {
            path: dir.clone(),
            source,
        })?;
        let abs = fs::canonicalize(&dir).map_err(|source| LakeError::Io {
            path: dir.clone(),
            source,
        })?;
        Url::from_directory_path(&abs)
            .map_err(|()| LakeError::Schema(format!("not a usable path: `{}`", abs.display())))
    }

    fn delta_err(&self, kind: TableKind) -> impl Fn(DeltaTableError) -> LakeError + '_ {
        move |source| LakeError::Delta {
            table: self.table_dir(kind).display().to_string(),
            source: Box::new(source),
        }
    }

    /// Opens a table for reading; fails when the lake has not been created, or was written by an
    /// earlier trailhouse whose layout this one does not read.
    pub async fn open(&self, kind: TableKind) -> Result<DeltaTable, LakeError> {
        if !self.table_dir(kind).join("_delta_log").is_dir() {
            return Err(LakeError::Missing(self.root.clone()));
        }
        let url = self.table_url(kind)?;
        let table = deltalake_core::open_table(url)
            .await
            .map_err(self.delta_err(kind))?;
        self.check_layout(&table, kind)?;
        Ok(table)
    }

    /// Refuses a table partitioned otherwise or missing columns of this version's schema (a lake
    /// of an earlier trailhouse): reading it would give wrong answers, adding to it mixed files.
    fn check_layout(&self, table: &DeltaTable, kind: TableKind) -> Result<(), LakeError> {
        if kind != TableKind::CloudTrail {
            return Ok(());
        }
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
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
            .filter(|name| !columns.contains(name))
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
        let url = self.table_url(kind)?;
        let table = DeltaTable::try_from_url(url)
            .await
            .map_err(self.delta_err(kind))?;
        if table.version().is_some() {
            self.check_layout(&table, kind)?;
            return Ok(table);
        }
        let (arrow_schema, partitions): (_, &[&str]) = match kind {
            TableKind::CloudTrail => (schema::table_schema(), &schema::PARTITION_COLUMNS),
            TableKind::Quarantine => (schema::quarantine_schema(), &[]),
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
        create
            .with_save_mode(SaveMode::Ignore)
            .await
            .map_err(self.delta_err(kind))
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
            TableKind::Quarantine => None,
        };
        let props = CommitProperties::default()
            .with_application_transaction(Transaction::new(app_id, seq))
            .with_metadata(metadata);
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
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

    /// The committed data files of table `cloudtrail`, by partition (paths absolute).
    pub fn files_by_partition(
        &self,
        table: &DeltaTable,
    ) -> Result<HashMap<Partition, Vec<PathBuf>>, LakeError> {
        let kind = TableKind::CloudTrail;
        let root = self.table_dir(kind);
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
        let mut out: HashMap<Partition, Vec<PathBuf>> = HashMap::new();
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
            out.entry(Partition { day })
                .or_default()
                .push(root.join(file.path().as_ref()));
        }
        Ok(out)
    }
}
