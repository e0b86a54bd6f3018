//! Errors of the ingest pipeline.
//!
//! A [`FileError`] is about one source file: it is reported and counted, and the run goes on.
//! An [`IngestError`] stops the run (the lake cannot be written, a source path does not exist).

use std::path::PathBuf;

use trailhouse_lake::LakeError;

/// Why one source file could not be (fully) read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("failed to read: {0}")]
    Read(#[source] std::io::Error),
    #[error("failed to fetch: {0}")]
    Fetch(#[source] object_store::Error),
    #[error("failed to decompress: {0}")]
    Decompress(#[source] std::io::Error),
    #[error(
        "decompressed size exceeds the limit of {limit} bytes (a gzip bomb, or raise --max-file-size)"
    )]
    TooLarge { limit: u64 },
    #[error("not UTF-8 text at byte {0}")]
    NotUtf8(usize),
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("invalid JSON after {records} records: {source}")]
    Truncated {
        records: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("unrecognised envelope: {0}")]
    Envelope(String),
}

/// An error that stops the run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("source `{path}` cannot be read: {source}")]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("source `{url}` cannot be read: {message}")]
    S3 { url: String, message: String },
    #[error("ledger `{path}`: {message}")]
    Ledger { path: PathBuf, message: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("cannot start worker threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
}
