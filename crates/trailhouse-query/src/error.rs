//! Errors of querying the lake.

use trailhouse_lake::LakeError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("failed to write output: {0}")]
    Io(#[from] std::io::Error),
    #[error("the lake is read-only here: {0}")]
    ReadOnly(String),
}
