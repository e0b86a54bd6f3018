//! Writes each partition's new rows as one Parquet data file, in parallel.

use std::path::Path;

use deltalake_core::kernel::Add;
use rayon::prelude::*;
use trailhouse_lake::LakeError;
use trailhouse_lake::table::write_data_file;

use crate::partition::PartitionRows;

/// Writes every partition's rows under `table_root`; returns the `add` actions to commit.
pub fn write_partitions(table_root: &Path, parts: &[PartitionRows]) -> Result<Vec<Add>, LakeError> {
    parts
        .par_iter()
        .map(|p| write_data_file(table_root, &p.partition, &p.batch))
        .collect()
}
