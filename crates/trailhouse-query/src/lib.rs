//! Querying a trailhouse lake with DataFusion: the session over tables `cloudtrail` and
//! `quarantine`, read-only SQL, result formats, and the export of original records. Writing the
//! lake is not this crate's business.

pub mod call_summary;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod count_distinct;
pub mod credentials;
mod distinct;
pub mod engine;
pub mod error;
pub mod escape;
pub mod evidence;
pub mod export;
pub mod json_path;
pub mod lake_table;
pub mod local_store;
pub mod output;
pub mod report;
pub mod saved;
pub mod session;
pub mod sigma;
mod strpos;
pub mod text_views;
pub mod translate;
pub mod udf;
mod union_projection;

#[cfg(test)]
mod test_support;

pub use error::QueryError;
pub use output::{Format, write_stream};
pub use session::Session;
