//! What table `quarantine` already holds, for an ingest that reads a file again.
//!
//! A file that failed part-way (a truncated gzip, invalid JSON after some records) is read again
//! by every later run until it reads whole; the records before its break that were quarantined
//! must not be quarantined again. They are known by (source file, index in it, text).

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use deltalake_core::DeltaTable;

use crate::error::LakeError;
use crate::schema::quarantine::{RECORD, RECORDINDEX, SOURCEFILE};
use crate::table::{Lake, TableKind};

/// A quarantined record's identity: source file, index in it, hash of its text.
pub type QuarantineKey = (String, i64, u64);

/// The identity of a quarantined record.
pub fn quarantine_key(file: &str, index: i64, record: &str) -> QuarantineKey {
    (
        file.to_string(),
        index,
        xxhash_rust::xxh3::xxh3_64(record.as_bytes()),
    )
}

impl Lake {
    /// The records of `files` (source paths as stored) that `table` (the quarantine table)
    /// holds.
    pub fn quarantined_from(
        &self,
        table: &DeltaTable,
        files: &HashSet<String>,
    ) -> Result<HashSet<QuarantineKey>, LakeError> {
        let mut out = HashSet::new();
        if files.is_empty() {
            return Ok(out);
        }
        let root = self.table_location(TableKind::Quarantine);
        let snapshot = table.snapshot().map_err(|source| LakeError::Delta {
            table: root.display().to_string(),
            source: Box::new(source),
        })?;
        for file in snapshot.log_data().iter() {
            let path = root.join(file.path().as_ref());
            // The record texts (large) are read only from files holding one of `files`.
            let sources = self.read_columns(&path, &[SOURCEFILE])?;
            let holds = sources.iter().any(|b| {
                let c = cast(b.column(0), &DataType::Utf8);
                c.is_ok_and(|c| {
                    c.as_string::<i32>()
                        .iter()
                        .flatten()
                        .any(|s| files.contains(s))
                })
            });
            if !holds {
                continue;
            }
            for batch in self.read_columns(&path, &[SOURCEFILE, RECORDINDEX, RECORD])? {
                let sources = cast(batch.column(0), &DataType::Utf8)?;
                let sources = sources.as_string::<i32>();
                let indices = cast(batch.column(1), &DataType::Int64)?;
                let indices = indices.as_primitive::<Int64Type>();
                let records = cast(batch.column(2), &DataType::Utf8)?;
                let records = records.as_string::<i32>();
                for i in 0..batch.num_rows() {
                    if sources.is_valid(i) && files.contains(sources.value(i)) {
                        out.insert(quarantine_key(
                            sources.value(i),
                            indices.value(i),
                            records.value(i),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}
