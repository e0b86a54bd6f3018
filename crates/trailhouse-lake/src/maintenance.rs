//! Keeping the lake fast and small: compaction of small files and removal of unreferenced ones.
//!
//! Ingest writes one file per partition per batch, so a partition that received many small
//! batches holds many small files; `compact` rewrites them into few large ones in one atomic
//! commit (readers see the old files or the new, never both). Bin-packing concatenates sorted
//! files without re-sorting them, so compacted files do not claim a sort order.
//!
//! Ingest compacts as it goes: after its batches, each day partition it wrote to that
//! [`needs_compaction`] picks is compacted in the same way, under the run's lock
//! (measured on a 20M-event trail: 694 files of 29,000 rows became 90; the plain questions ran
//! 1.2–1.9× faster, as a query opens and reads the footer of every file it may need).
//!
//! `vacuum` deletes files the table no longer references (compacted-away files, files of a batch
//! that crashed before its commit) once they are older than the retention period: a reader
//! pinned to an older version may still be reading them until then.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::DeltaOperation;
use deltalake_core::{FilterLiteral, FilterOp, FilterValue};
use rayon::prelude::*;

use crate::concat;
use crate::datafile::writer_properties;
use crate::error::LakeError;
use crate::schema;
use crate::table::{DataFile, Lake, Partition, TableKind};

/// Data files a day partition holds before ingest compacts it: a partition of one or two runs
/// is left alone.
pub const COMPACT_MIN_FILES: usize = 4;

/// Small files a day may collect beside its largest before ingest compacts it whatever their
/// size (see [`needs_compaction`]).
pub const COMPACT_MAX_FILES: usize = 32;

/// Whether ingest compacts a day whose data files have these sizes: when it holds
/// [`COMPACT_MIN_FILES`] or more and the others add up to a quarter of its largest file, or it
/// holds [`COMPACT_MAX_FILES`]. Compaction rewrites the largest file too (it is below the target
/// size), so a day fed by a cron job every few minutes is rewritten each time its new files
/// reach a quarter of what it holds: every byte is rewritten a few times, not once per run.
pub fn needs_compaction(sizes: &[u64]) -> bool {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let others = sizes.iter().sum::<u64>() - largest;
    sizes.len() >= COMPACT_MAX_FILES
        || (sizes.len() >= COMPACT_MIN_FILES && others.saturating_mul(4) >= largest)
}

/// Target size of compacted files (the `compact` command's default).
pub const COMPACT_TARGET_BYTES: u64 = 256 << 20;

/// A retention no query outlives (the Delta default, 7 days).
pub const SAFE_RETENTION: Duration = Duration::from_secs(168 * 3600);

/// What a compaction did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Compacted {
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions: u64,
    pub table_version: Option<u64>,
    /// Why the checkpoint of the compaction's commit could not be written (readers then read
    /// the commit itself).
    pub checkpoint_error: Option<String>,
}

/// What a vacuum did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Vacuumed {
    pub dry_run: bool,
    pub files_deleted: Vec<String>,
}

/// The files `compact` concatenates: per day, its files below `target_size`, packed (largest
/// first) into bins of up to `target_size` bytes; bins of one file are left as they are.
fn bins(files: Vec<DataFile>, target_size: u64) -> Vec<(NaiveDate, Vec<DataFile>)> {
    let mut by_day: BTreeMap<NaiveDate, Vec<DataFile>> = BTreeMap::new();
    for file in files {
        if file.size < target_size {
            by_day.entry(file.partition.day).or_default().push(file);
        }
    }
    let mut bins = Vec::new();
    for (day, mut files) in by_day {
        files.sort_by_key(|f| std::cmp::Reverse(f.size));
        let mut bin: Vec<DataFile> = Vec::new();
        let mut size = 0;
        for file in files {
            if !bin.is_empty() && size + file.size > target_size {
                bins.push((day, std::mem::take(&mut bin)));
                size = 0;
            }
            size += file.size;
            bin.push(file);
        }
        bins.push((day, bin));
    }
    bins.retain(|(_, bin)| bin.len() > 1);
    bins
}

impl Lake {
    /// Rewrites small files of every partition into files of about `target_size` bytes: in a
    /// local lake, table `cloudtrail`'s by concatenation ([`crate::concat`]), otherwise through
    /// delta-rs.
    /// `wait`: how long to wait for another writer (see [`Lake::lock_for_writing_within`]).
    pub async fn compact(
        &self,
        target_size: u64,
        wait: Duration,
        waiting: &dyn Fn(),
    ) -> Result<Compacted, LakeError> {
        let _lock = self.lock_for_writing_within(wait, waiting).await?;
        let mut out = Compacted::default();
        for kind in TableKind::ALL {
            let table = match self.open(kind).await {
                Ok(t) => t,
                Err(LakeError::Missing(_)) if kind == TableKind::Integrity => continue,
                Err(e) => return Err(e),
            };
            let before = table.version();
            let (table, metrics) = if kind == TableKind::CloudTrail && !self.is_remote() {
                let bins = bins(self.data_files(&table)?, target_size);
                self.concatenate(table, bins, target_size).await?
            } else {
                self.optimize(kind, table, target_size, &[]).await?
            };
            if table.version() != before
                && let Err(e) = self.checkpoint(&table, kind).await
            {
                out.checkpoint_error.get_or_insert(e.to_string());
            }
            out.files_removed += metrics.files_removed;
            out.files_added += metrics.files_added;
            if kind == TableKind::CloudTrail {
                out.partitions = metrics.partitions;
                out.table_version = table.version();
            }
        }
        Ok(out)
    }

    /// Compacts the partitions of `days` in table `cloudtrail` that [`needs_compaction`] picks
    /// (one commit), and returns the table after it. The caller holds the writer lock (an
    /// ingest compacting what it wrote). In a local lake each day's files are concatenated
    /// ([`crate::concat`]: large row groups copied, small ones merged); in an S3 lake they are
    /// rewritten into files of about `target_size` bytes.
    pub async fn compact_days(
        &self,
        table: DeltaTable,
        days: &BTreeSet<NaiveDate>,
        target_size: u64,
    ) -> Result<(DeltaTable, Compacted), LakeError> {
        let mut files: BTreeMap<NaiveDate, Vec<DataFile>> = BTreeMap::new();
        for file in self.data_files(&table)? {
            if days.contains(&file.partition.day) {
                files.entry(file.partition.day).or_default().push(file);
            }
        }
        files
            .retain(|_, files| needs_compaction(&files.iter().map(|f| f.size).collect::<Vec<_>>()));
        if files.is_empty() {
            return Ok((table, Compacted::default()));
        }
        if !self.is_remote() {
            let bins = files.into_iter().collect();
            return self.concatenate(table, bins, target_size).await;
        }
        let values = files
            .keys()
            .map(|day| day.format("%Y-%m-%d").to_string())
            .collect::<Vec<_>>();
        let filter = [(
            schema::DAY,
            FilterOp::In,
            FilterValue::Set(values.iter().map(String::as_str).collect()),
        )];
        self.optimize(TableKind::CloudTrail, table, target_size, &filter)
            .await
    }

    /// Concatenates the files of each bin (files of one day) into one file, and commits the
    /// swap in one commit (nothing when there is no bin).
    async fn concatenate(
        &self,
        mut table: DeltaTable,
        bins: Vec<(NaiveDate, Vec<DataFile>)>,
        target_size: u64,
    ) -> Result<(DeltaTable, Compacted), LakeError> {
        if bins.is_empty() {
            return Ok((table, Compacted::default()));
        }
        let kind = TableKind::CloudTrail;
        let root = self.table_dir(kind);
        let adds: Vec<Add> = bins
            .par_iter()
            .map(|(day, files)| {
                let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
                concat::concatenate(&root, &Partition { day: *day }, &paths)
            })
            .collect::<Result<_, _>>()?;
        let days: BTreeSet<NaiveDate> = bins.iter().map(|(day, _)| *day).collect();
        let inputs: HashSet<&PathBuf> = bins.iter().flat_map(|(_, f)| f).map(|f| &f.path).collect();
        let location = self.table_location(kind);
        let snapshot = table.snapshot().map_err(self.delta_err(kind))?;
        let removes: Vec<Action> = snapshot
            .log_data()
            .iter()
            .filter(|f| inputs.contains(&location.join(f.path().as_ref())))
            .map(|f| Action::Remove(f.remove_action(false)))
            .collect();
        let done = Compacted {
            files_removed: removes.len() as u64,
            files_added: adds.len() as u64,
            partitions: days.len() as u64,
            ..Default::default()
        };
        let actions = removes
            .into_iter()
            .chain(adds.into_iter().map(Action::Add))
            .collect();
        CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .build(
                Some(snapshot),
                table.log_store(),
                DeltaOperation::Optimize {
                    predicate: None,
                    target_size: i64::try_from(target_size).unwrap_or(i64::MAX),
                },
            )
            .await
            .map_err(self.delta_err(kind))?;
        table.update_state().await.map_err(self.delta_err(kind))?;
        let table_version = table.version();
        Ok((
            table,
            Compacted {
                table_version,
                ..done
            },
        ))
    }

    /// Writes a checkpoint of `table` at its current version: a reader then opens the table
    /// from that one file instead of reading every commit since the last checkpoint (Delta
    /// writes one every 100 commits by default, and an ingest makes several commits a run:
    /// opening a 20M-event lake 51 commits past its checkpoint took 60 ms, at one 30 ms, before
    /// every query). A checkpoint only summarizes commits; without one, readers read them.
    pub async fn checkpoint(&self, table: &DeltaTable, kind: TableKind) -> Result<(), LakeError> {
        deltalake_core::checkpoints::create_checkpoint(table, None)
            .await
            .map_err(|source| LakeError::Delta {
                table: self.table_location(kind).display().to_string(),
                source: Box::new(source),
            })
    }

    /// Bin-packs the small files of `table` (of the partitions `filter` names, or all) into
    /// files of about `target_size` bytes, in one commit.
    async fn optimize(
        &self,
        kind: TableKind,
        table: DeltaTable,
        target_size: u64,
        filter: &[FilterLiteral<'_>],
    ) -> Result<(DeltaTable, Compacted), LakeError> {
        let target = NonZeroU64::new(target_size.max(1 << 20)).unwrap_or(NonZeroU64::MIN);
        let (table, metrics) = table
            .optimize()
            .with_filters(filter)
            .with_target_size(target)
            .with_writer_properties(writer_properties(false))
            .await
            .map_err(|source| LakeError::Delta {
                table: self.table_location(kind).display().to_string(),
                source: Box::new(source),
            })?;
        let done = Compacted {
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            partitions: metrics.partitions_optimized,
            table_version: table.version(),
            checkpoint_error: None,
        };
        Ok((table, done))
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
        for kind in TableKind::ALL {
            let table = match self.open(kind).await {
                Ok(t) => t,
                Err(LakeError::Missing(_)) if kind == TableKind::Integrity => continue,
                Err(e) => return Err(e),
            };
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
            if kind == TableKind::CloudTrail && !dry_run {
                // The call summaries of the data files deleted (made by queries; see
                // `state::CALL_SUMMARY_DIR`).
                let state = self.state();
                for path in &metrics.files_deleted {
                    state
                        .remove(&format!("{}/{path}", crate::state::CALL_SUMMARY_DIR))
                        .await?;
                }
            }
            out.files_deleted.extend(metrics.files_deleted);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_packs_each_days_small_files_into_bins_of_the_target_size() {
        let file = |day: u32, name: &str, size: u64| DataFile {
            partition: Partition {
                day: NaiveDate::from_ymd_opt(2026, 11, day).expect("day"),
            },
            path: PathBuf::from(name),
            size,
        };
        let files = vec![
            file(1, "a10", 10),
            file(1, "a300", 300),
            file(1, "a20", 20),
            file(2, "b60", 60),
            file(2, "b50", 50),
            file(2, "b40", 40),
            file(3, "c5", 5),
        ];
        let packed: Vec<(u32, Vec<String>)> = bins(files, 100)
            .into_iter()
            .map(|(day, bin)| {
                let names = bin.iter().map(|f| f.path.display().to_string()).collect();
                (chrono::Datelike::day(&day), names)
            })
            .collect();
        // A file at the target size stays; a bin of one file is left alone.
        assert_eq!(
            packed,
            [
                (1, vec!["a20".to_string(), "a10".to_string()]),
                (2, vec!["b50".to_string(), "b40".to_string()]),
            ]
        );
    }

    #[test]
    fn a_day_is_compacted_when_its_small_files_are_many_or_add_up() {
        const MIB: u64 = 1 << 20;
        // One run's batches: files of like size.
        assert!(needs_compaction(&[3 * MIB; 8]));
        // Too few files to bother.
        assert!(!needs_compaction(&[3 * MIB; 3]));
        // A compacted day and three small deliveries since: not yet a quarter of it.
        assert!(!needs_compaction(&[180 * MIB, MIB, MIB, MIB]));
        // ... until they add up to a quarter of it.
        let mut day = vec![180 * MIB];
        day.extend([MIB; 45]);
        assert!(needs_compaction(&day));
        // ... or are too many to open one by one.
        let mut day = vec![900 * MIB];
        day.extend([MIB; COMPACT_MAX_FILES - 1]);
        assert!(needs_compaction(&day));
        day.pop();
        assert!(!needs_compaction(&day));
        assert!(!needs_compaction(&[]));
    }
}
