//! `trailhouse compact`, `trailhouse vacuum` and `trailhouse check`.

use std::process::ExitCode;
use std::time::Duration;

use trailhouse_ingest::ledger::Ledger;
use trailhouse_ingest::s3::{Cursors, is_s3};
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
    if let Some(e) = &done.checkpoint_error {
        eprintln!(
            "  warning: no checkpoint of the compaction's commit (it is committed; readers \
             read it from the log): {e}"
        );
    }
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
        let mut batches: Vec<(Writer, i64)> = found
            .damaged
            .iter()
            .filter_map(|d| {
                let writer = Writer::of_app_id(d.writer.as_deref()?)?;
                Some((writer, d.batch?))
            })
            .collect();
        batches.sort_unstable();
        batches.dedup();
        let state = lake.state();
        for (writer, b) in batches {
            let again = Ledger::read_again(&state, &writer.ledger(), b).await?;
            // S3 objects are listed only past their folder's cursor: move it back to them.
            if again.iter().any(|p| is_s3(p)) {
                let mut cursors = Cursors::load(&state, &writer.cursors()).await?;
                for path in &again {
                    cursors.rewind(path);
                }
                cursors.save(&state, &writer.cursors()).await?;
            }
            reread.extend(again);
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
