//! End-to-end tests of the `trailhouse` binary, run the way a user runs it.

#[cfg(feature = "cluster")]
mod cluster;
mod corpus;
mod detect;
mod evidence;
mod hostile;
mod ingest;
mod interop;
mod query;
mod report;
mod s3;
mod s3_lake;
mod saved;
mod shard;
mod support;
mod verify;
