//! Errors of querying the lake.

use trailhouse_lake::LakeError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    DataFusion(Box<datafusion::error::DataFusionError>),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("failed to write output: {0}")]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Saved(#[from] crate::saved::SavedQueryError),
    #[error("the lake is read-only here: {0}")]
    ReadOnly(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("evidence: {0}")]
    Evidence(String),
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        QueryError::DataFusion(Box::new(e))
    }
}
