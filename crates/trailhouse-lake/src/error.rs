//! Errors of the on-disk contract.

use std::path::PathBuf;

/// What can go wrong opening, reading or committing the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("delta table `{table}`: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake_core::DeltaTableError>,
    },
    #[error("failed to access `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read parquet file `{path}`: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("schema mismatch: {0}")]
    Schema(String),
    #[error("the lake `{0}` is locked by another ingest; wait for it to finish")]
    Locked(PathBuf),
    #[error("no lake at `{0}`: run `trailhouse ingest` first")]
    Missing(PathBuf),
    #[error(
        "the lake `{0}` was written by an earlier trailhouse ({1}); this one cannot read or add to it: \
         ingest the trail again into a new lake (`--lake NEW_DIR`)"
    )]
    OldLayout(PathBuf, String),
}
