//! Keeping the lake fast and small: compaction of small files and removal of unreferenced ones.
//!
//! Ingest writes one file per partition per batch, so a partition that received many small
//! batches holds many small files; `compact` rewrites them into few large ones in one atomic
//! commit (readers see the old files or the new, never both). Bin-packing concatenates sorted
//! files without re-sorting them, so compacted files do not claim a sort order.
//!
//! `vacuum` deletes files the table no longer references (compacted-away files, files of a batch
//! that crashed before its commit) once they are older than the retention period: a reader
//! pinned to an older version may still be reading them until then.

use std::num::NonZeroU64;
use std::time::Duration;

use deltalake_core::operations::vacuum::VacuumMode;

use crate::datafile::writer_properties;
use crate::error::LakeError;
use crate::table::{Lake, TableKind};

/// A retention no query outlives (the Delta default, 7 days).
pub const SAFE_RETENTION: Duration = Duration::from_secs(168 * 3600);

/// What a compaction did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Compacted {
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions: u64,
    pub table_version: Option<u64>,
}

/// What a vacuum did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Vacuumed {
    pub dry_run: bool,
    pub files_deleted: Vec<String>,
}

impl Lake {
    /// Rewrites small files of every partition into files of about `target_size` bytes.
    /// `wait`: how long to wait for another writer (see [`Lake::lock_for_writing_within`]).
    pub async fn compact(
        &self,
        target_size: u64,
        wait: Duration,
        waiting: &dyn Fn(),
    ) -> Result<Compacted, LakeError> {
        let _lock = self.lock_for_writing_within(wait, waiting).await?;
        let mut out = Compacted::default();
        for kind in [TableKind::CloudTrail, TableKind::Quarantine] {
            let table = self.open(kind).await?;
            let target = NonZeroU64::new(target_size.max(1 << 20)).unwrap_or(NonZeroU64::MIN);
            let (table, metrics) = table
                .optimize()
                .with_target_size(target)
                .with_writer_properties(writer_properties(false))
                .await
                .map_err(|source| LakeError::Delta {
                    table: self.table_location(kind).display().to_string(),
                    source: Box::new(source),
                })?;
            out.files_removed += metrics.num_files_removed;
            out.files_added += metrics.num_files_added;
            if kind == TableKind::CloudTrail {
                out.partitions = metrics.partitions_optimized;
                out.table_version = table.version();
            }
        }
        Ok(out)
    }

    /// Deletes unreferenced files older than `retention`.
    /// Below [`SAFE_RETENTION`], no process may be reading the lake (a query's snapshot may name
    /// files a compaction has since replaced): the vacuum fails at once if one is.
    pub async fn vacuum(
        &self,
        retention: Duration,
        dry_run: bool,
        wait: Duration,
        waiting: &dyn Fn(),
    ) -> Result<Vacuumed, LakeError> {
        let _lock = self.lock_for_writing_within(wait, waiting).await?;
        let _readers = if retention < SAFE_RETENTION && !dry_run {
            Some(self.lock_out_readers()?)
        } else {
            None
        };
        let mut out = Vacuumed {
            dry_run,
            ..Vacuumed::default()
        };
        for kind in [TableKind::CloudTrail, TableKind::Quarantine] {
            let table = self.open(kind).await?;
            let retention = chrono::Duration::from_std(retention)
                .map_err(|e| LakeError::Schema(format!("retention out of range: {e}")))?;
            let (_, metrics) = table
                .vacuum()
                .with_mode(VacuumMode::Full)
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_dry_run(dry_run)
                .await
                .map_err(|source| LakeError::Delta {
                    table: self.table_location(kind).display().to_string(),
                    source: Box::new(source),
                })?;
            out.files_deleted.extend(metrics.files_deleted);
        }
        Ok(out)
    }
}
