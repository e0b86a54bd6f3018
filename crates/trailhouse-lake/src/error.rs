//! Errors of the on-disk contract.

use std::path::{Path, PathBuf};

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
    #[error("Parquet file `{path}`: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("schema mismatch: {0}")]
    Schema(String),
    #[error(
        "the lake `{0}` is being written by another process (an ingest, compact or vacuum); \
         rerun when it is done, or pass --wait SECONDS"
    )]
    Locked(PathBuf),
    #[error("the table `{table}` is not safe to read: its log names {what}")]
    Unsafe { table: PathBuf, what: String },
    #[error(
        "queries are reading the lake `{0}`, and a vacuum with a retention under 168 hours may delete \
         files they read: run it when they are done, or keep the default retention"
    )]
    Read(PathBuf),
    #[error(
        "the table's log is damaged: `{file}` is not a whole commit ({why}); restore it from a \
         backup, or ingest the sources into a new lake"
    )]
    DamagedLog { file: PathBuf, why: String },
    #[error("{url}: {source}")]
    Store {
        url: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error(
        "the lake is being written by another process (an ingest, compact or vacuum): its lease \
         `{}` is held by {holder}; rerun when it is done, or pass --wait SECONDS (a lease its \
         holder stopped renewing is taken over after {stale_minutes} minutes)",
        lock.display()
    )]
    Leased {
        lock: PathBuf,
        holder: String,
        stale_minutes: u64,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("no lake at `{0}`: run `trailhouse ingest` first")]
    Missing(PathBuf),
    #[error(
        "the lake `{0}` was written by an earlier trailhouse ({1}); this one cannot read or add to it: \
         ingest the trail again into a new lake (`--lake NEW_DIR`)"
    )]
    OldLayout(PathBuf, String),
}

impl LakeError {
    /// Names `path` in an I/O error: `.map_err(LakeError::io(path))`.
    pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> Self + Copy + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Names `path` in a Parquet error: `.map_err(LakeError::parquet(path))`.
    pub(crate) fn parquet(
        path: &Path,
    ) -> impl Fn(parquet::errors::ParquetError) -> Self + Copy + '_ {
        move |source| Self::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
}
