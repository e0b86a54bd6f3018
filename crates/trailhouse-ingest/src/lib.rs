//! Ingest of CloudTrail log files into a trailhouse lake.
//!
//! The stages are modules named after what they do — [`discover`], [`fetch`], [`decompress`],
//! [`parse`], [`normalize`], [`partition`], [`write`] — and [`pipeline`] runs them batch by
//! batch, recording progress in the [`ledger`] and accounting for every file and record in a
//! [`report::Report`].
//! Querying the lake is not this crate's business.

pub mod decompress;
pub mod discover;
pub mod error;
pub mod etag;
pub mod fetch;
pub mod ledger;
pub mod normalize;
pub mod parse;
pub mod partition;
pub mod pipeline;
pub mod report;
pub mod s3;
pub mod shard;
pub mod verify;
pub mod write;

pub use error::{FileError, IngestError};
pub use pipeline::{FailPoint, FileReading, NoProgress, Options, Progress, ingest, read_bytes};
pub use report::Report;
