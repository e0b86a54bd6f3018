//! Checking the lake's data files against its log, and taking damaged ones out of the table.
//!
//! Every data file the tables reference is read whole (every page of every column decoded) and
//! compared with what the log says of it: present, of its size, holding its row count. A file
//! that fails is reported with the ingest batch that wrote it; [`Lake::remove_damaged`] then
//! commits its removal, so the rest of the table reads again, and the batch's source files can
//! be read again by the next ingest (deduplication keeps the rows other files still hold once).

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::Path;

use deltalake_core::kernel::Action;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::protocol::DeltaOperation;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

use crate::error::LakeError;
use crate::table::{Lake, TableKind};

/// A referenced data file that is missing or does not read as the log says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damaged {
    /// `cloudtrail` or `quarantine`.
    pub table: &'static str,
    /// The file, relative to its table.
    pub path: String,
    pub problem: String,
    /// The ingest batch (the `txn` version of the commit that added the file), if known.
    pub batch: Option<i64>,
    /// The writer of that batch (the `txn` application id: the ingest, or one of its shards).
    pub writer: Option<String>,
}

/// What a check found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Checked {
    pub files: u64,
    pub rows: u64,
    pub damaged: Vec<Damaged>,
}

fn kind_name(kind: TableKind) -> &'static str {
    kind.name()
}

impl Lake {
    /// Reads every data file of both tables whole (files in parallel on the rayon pool).
    pub async fn check(&self) -> Result<Checked, LakeError> {
        if self.object_store().is_some() {
            return Err(LakeError::Unsupported(format!(
                "`check` reads the data files of a lake on this machine; copy `{}` here \
                 (`aws s3 sync`) and check the copy",
                self.root().display()
            )));
        }
        let mut out = Checked::default();
        for kind in TableKind::ALL {
            let table = match self.open(kind).await {
                Ok(t) => t,
                Err(LakeError::Missing(_)) if kind.optional() => continue,
                Err(e) => return Err(e),
            };
            let snapshot = table.snapshot().map_err(|source| LakeError::Delta {
                table: self.table_location(kind).display().to_string(),
                source: Box::new(source),
            })?;
            let files: Vec<(String, i64, Option<usize>)> = snapshot
                .log_data()
                .iter()
                .map(|f| (f.path().into_owned(), f.size(), f.num_records()))
                .collect();
            let root = self.table_dir(kind);
            let results: Vec<Result<u64, String>> = files
                .par_iter()
                .map(|(path, size, rows)| check_file(&root.join(path), *size, *rows))
                .collect();
            let mut damaged = Vec::new();
            for ((path, _, _), result) in files.iter().zip(results) {
                out.files += 1;
                match result {
                    Ok(rows) => out.rows += rows,
                    Err(problem) => damaged.push(Damaged {
                        table: kind_name(kind),
                        path: path.clone(),
                        problem,
                        batch: None,
                        writer: None,
                    }),
                }
            }
            damaged.sort_by(|a, b| a.path.cmp(&b.path));
            if !damaged.is_empty() {
                let batches = self.batches_adding(kind)?;
                for d in &mut damaged {
                    if let Some((writer, batch)) = batches.get(&d.path) {
                        d.batch = Some(*batch);
                        d.writer = Some(writer.clone());
                    }
                }
            }
            out.damaged.extend(damaged);
        }
        Ok(out)
    }

    /// Commits the removal of `damaged` files from their tables (one commit per table).
    pub async fn remove_damaged(&self, damaged: &[Damaged]) -> Result<(), LakeError> {
        let _lock = self.lock_for_writing().await?;
        for kind in TableKind::ALL {
            let wanted: Vec<&str> = damaged
                .iter()
                .filter(|d| d.table == kind_name(kind))
                .map(|d| d.path.as_str())
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let err = |source| LakeError::Delta {
                table: self.table_location(kind).display().to_string(),
                source: Box::new(source),
            };
            let table = self.open(kind).await?;
            let snapshot = table.snapshot().map_err(err)?;
            let removes: Vec<Action> = snapshot
                .log_data()
                .iter()
                .filter(|f| wanted.contains(&f.path().as_ref()))
                .map(|f| Action::Remove(f.remove_action(true)))
                .collect();
            CommitBuilder::from(CommitProperties::default())
                .with_actions(removes)
                .build(
                    Some(snapshot),
                    table.log_store(),
                    DeltaOperation::FileSystemCheck {},
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// For each data file added by an ingest commit still in the log: the writer and batch
    /// (`txn` application id and version) of that commit. Paths as the snapshot gives them
    /// (decoded).
    fn batches_adding(&self, kind: TableKind) -> Result<HashMap<String, (String, i64)>, LakeError> {
        let log = self.table_dir(kind).join("_delta_log");
        let io = LakeError::io(&log);
        let mut out = HashMap::new();
        for entry in fs::read_dir(&log).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let actions: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let Some(batch) = actions.iter().find_map(|a| {
                let txn = &a["txn"];
                Some((txn["appId"].as_str()?.to_string(), txn["version"].as_i64()?))
            }) else {
                continue;
            };
            for a in &actions {
                if let Some(p) = a["add"]["path"].as_str() {
                    let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
                    out.insert(decoded.into_owned(), batch.clone());
                }
            }
        }
        Ok(out)
    }
}

/// Reads `path` whole; its rows, or what is wrong with it.
fn check_file(path: &Path, size: i64, rows: Option<usize>) -> Result<u64, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if meta.len() as i64 != size {
        return Err(format!("is {} bytes, the log says {size}", meta.len()));
    }
    let file = File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| format!("is not readable Parquet: {e}"))?;
    let mut read = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| format!("is damaged after {read} rows: {e}"))?;
        read += batch.num_rows() as u64;
    }
    match rows {
        Some(n) if n as u64 != read => Err(format!("holds {read} rows, the log says {n}")),
        _ => Ok(read),
    }
}
