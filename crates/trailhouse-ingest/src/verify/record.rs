//! Verdicts kept with the lake: table `integrity`, one row per log file each time a check is
//! recorded, so that a question's answer can say whether the files under it were verified
//! (`cloudtrail.sourcefile` joins `integrity.sourcefile`).

use std::sync::Arc;

use arrow::array::{RecordBatch, StringBuilder, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};
use trailhouse_lake::datafile::{ROW_GROUP_ROWS, write_unpartitioned_batches};
use trailhouse_lake::{Lake, LakeError, TableKind, schema};

use super::{LogCheck, Verification};

/// The writer recorded in the table's transaction markers.
const APP_ID: &str = "trailhouse-verify";

/// Appends the log files' verdicts of `found` to table `integrity` (created the first time), in
/// one commit; returns the table's new version, or `None` when there was nothing to record.
pub async fn record(
    lake: &Lake,
    found: &Verification,
    checked_at: DateTime<Utc>,
) -> Result<Option<u64>, LakeError> {
    if found.log_files.is_empty() {
        return Ok(None);
    }
    if !lake.exists() {
        return Err(LakeError::Missing(lake.root().to_path_buf()));
    }
    let _lock = lake.lock_for_writing().await?;
    let mut table = lake.open_or_create(TableKind::Integrity).await?;
    let seq = lake.committed_seq(&table, APP_ID).await? + 1;
    // A row group's verdicts at a time: at 20M events there are 400,000.
    let add = write_unpartitioned_batches(
        &lake.table_dir(TableKind::Integrity),
        schema::integrity_schema(),
        found
            .log_files
            .chunks(ROW_GROUP_ROWS)
            .map(|rows| batch(rows, checked_at)),
    )?;
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "trailhouse".into(),
        serde_json::json!({
            "verify": seq,
            "logFiles": found.log_files.len(),
            "digests": found.digests.len(),
        }),
    );
    let version = lake
        .commit(
            &mut table,
            TableKind::Integrity,
            vec![add],
            APP_ID,
            seq,
            metadata,
        )
        .await?;
    Ok(Some(version))
}

fn batch(log_files: &[LogCheck], checked_at: DateTime<Utc>) -> Result<RecordBatch, LakeError> {
    let rows = log_files.len();
    let mut file = StringBuilder::new();
    let mut verdict = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut digest = StringBuilder::new();
    let mut digest_verdict = StringBuilder::new();
    for l in log_files {
        file.append_value(&l.object);
        verdict.append_value(l.verdict.as_str());
        reason.append_option(l.reason.as_deref());
        digest.append_option(l.digest.as_deref());
        digest_verdict.append_option(l.digest_verdict.map(|v| v.as_str()));
    }
    let at = TimestampMicrosecondArray::from(vec![checked_at.timestamp_micros(); rows])
        .with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema::integrity_schema(),
        vec![
            Arc::new(file.finish()),
            Arc::new(verdict.finish()),
            Arc::new(reason.finish()),
            Arc::new(digest.finish()),
            Arc::new(digest_verdict.finish()),
            Arc::new(at),
        ],
    )?)
}
