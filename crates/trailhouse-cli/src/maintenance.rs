//! `trailhouse compact` and `trailhouse vacuum`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use trailhouse_lake::Lake;

use crate::cli::{CompactArgs, VacuumArgs};

pub async fn compact(lake: &Path, args: CompactArgs) -> anyhow::Result<ExitCode> {
    let done = Lake::new(lake).compact(args.target_size << 20).await?;
    eprintln!(
        "compacted {} files into {} in {} partitions (table version {})",
        done.files_removed,
        done.files_added,
        done.partitions,
        done.table_version
            .map_or_else(|| "-".to_string(), |v| v.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn vacuum(lake: &Path, args: VacuumArgs) -> anyhow::Result<ExitCode> {
    let retention = Duration::from_secs(args.retention_hours * 3600);
    let done = Lake::new(lake).vacuum(retention, args.dry_run).await?;
    for f in &done.files_deleted {
        println!("{f}");
    }
    eprintln!(
        "{} {} unreferenced files older than {} hours",
        if done.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        done.files_deleted.len(),
        args.retention_hours
    );
    Ok(ExitCode::SUCCESS)
}
