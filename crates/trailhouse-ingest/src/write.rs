//! Writes one partition's new rows as a Parquet data file of table `cloudtrail`.
//!
//! [`crate::partition::partition`] calls it for each partition as soon as the partition's rows
//! are deduplicated and sorted, in parallel across partitions.

use std::path::Path;

use arrow::array::RecordBatch;
use deltalake_core::kernel::Add;
use trailhouse_lake::Partition;
use trailhouse_lake::datafile::write_data_file;

use crate::error::IngestError;

/// Writes `batch` under `table_root`; returns the `add` action to commit.
pub fn write_partition(
    table_root: &Path,
    partition: &Partition,
    batch: &RecordBatch,
) -> Result<Add, IngestError> {
    Ok(write_data_file(table_root, partition, batch)?)
}
