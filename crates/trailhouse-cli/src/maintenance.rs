//! `trailhouse compact`, `trailhouse vacuum` and `trailhouse check`.

use std::process::ExitCode;
use std::time::Duration;

use trailhouse_ingest::ledger::Ledger;
use trailhouse_ingest::shard::Writer;
use trailhouse_lake::Lake;

use crate::cli::{CheckArgs, CompactArgs, VacuumArgs};

pub async fn compact(lake: &Lake, args: CompactArgs) -> anyhow::Result<ExitCode> {
    let done = lake
        .compact(
            args.target_size << 20,
            Duration::from_secs(args.wait),
            &|| eprintln!("{}", crate::ingest::WAITING),
        )
        .await?;
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

pub async fn vacuum(lake: &Lake, args: VacuumArgs) -> anyhow::Result<ExitCode> {
    let retention = Duration::from_secs(args.retention_hours * 3600);
    let done = lake
        .vacuum(
            retention,
            args.dry_run,
            Duration::from_secs(args.wait),
            &|| eprintln!("{}", crate::ingest::WAITING),
        )
        .await?;
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

pub async fn check(lake: &Lake, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let found = lake.check().await?;
    for d in &found.damaged {
        eprintln!(
            "damaged: {}/{} {} (ingest batch {})",
            d.table,
            d.path,
            d.problem,
            d.batch.map_or_else(
                || "unknown: a compacted file".to_string(),
                |b| b.to_string()
            )
        );
    }
    let mut reread = Vec::new();
    if args.repair && !found.damaged.is_empty() {
        lake.remove_damaged(&found.damaged).await?;
        // Each batch is in the ledger of the writer (the ingest, or a shard) that committed it.
        let mut batches: Vec<(String, i64)> = found
            .damaged
            .iter()
            .filter_map(|d| {
                let writer = Writer::of_app_id(d.writer.as_deref()?)?;
                Some((writer.ledger(), d.batch?))
            })
            .collect();
        batches.sort_unstable();
        batches.dedup();
        for (ledger, b) in batches {
            reread.extend(Ledger::read_again(&lake.state(), &ledger, b).await?);
        }
        eprintln!(
            "removed {} damaged files from the table; the next ingest of their sources reads {} \
             source files again (rows other files still hold are kept once)",
            found.damaged.len(),
            reread.len()
        );
        if found.damaged.iter().any(|d| d.batch.is_none()) {
            eprintln!(
                "some damaged files were compacted from several batches: ingest their days' \
                 sources into a new lake, or restore the files from a backup"
            );
        }
    }
    eprintln!(
        "checked {} data files ({} rows): {} damaged",
        found.files,
        found.rows,
        found.damaged.len()
    );
    if args.json {
        let reread: Vec<String> = reread.iter().map(|p| p.display().to_string()).collect();
        println!(
            "{}",
            serde_json::json!({
                "files": found.files,
                "rows": found.rows,
                "damaged": found.damaged,
                "repaired": args.repair && !found.damaged.is_empty(),
                "sources_to_read_again": reread,
            })
        );
    }
    Ok(if found.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
