//! The on-disk contract of a trailhouse lake, shared by the writer (ingest) and the readers
//! (query, export): the schema of table `cloudtrail` and its column names, partitioning, the
//! Parquet settings and statistics of data files, Delta commits, and the rebuild of an original
//! record from a row. It knows nothing of where records come from or how they are queried.

pub mod actor;
pub mod arns;
pub mod check;
pub mod concat;
pub mod datafile;
pub mod derived;
pub mod entries;
pub mod error;
pub mod maintenance;
pub mod quarantine;
pub mod rebuild;
pub mod remote;
pub mod schema;
pub mod state;
pub mod table;

pub use error::LakeError;
pub use state::State;
pub use table::{Lake, Partition, ReaderLock, TableKind, WriterLock};
