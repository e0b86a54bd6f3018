//! Writes the stored records back as CloudTrail JSON, one per line.

use std::io::Write;

use datafusion::prelude::SQLOptions;
use futures::StreamExt;
use trailhouse_lake::rebuild::{Rebuilder, push_on_one_line};
use trailhouse_lake::schema::{self, RECORD_FIELDS};

use crate::error::QueryError;
use crate::output::formatted;
use crate::session::Session;

/// How many records an export wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportCounts {
    pub records: u64,
    pub quarantined: u64,
}

/// Writes every record of `cloudtrail` (and with `quarantine`, the quarantined ones too) to `out`
/// as NDJSON, each rebuilt semantically equal to the record that was ingested.
pub async fn export_ndjson(
    session: &Session,
    quarantine: bool,
    out: &mut dyn Write,
) -> Result<ExportCounts, QueryError> {
    let mut counts = ExportCounts::default();
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false);
    // The record's columns only: the derived ones (source file, hash, minted key, ARNs) are not
    // part of what was delivered, and reading them would only cost.
    let record_columns: Vec<String> = RECORD_FIELDS
        .iter()
        .map(|f| schema::column_name(f.key))
        .chain([schema::EXTRA.to_string()])
        .collect();
    let df = session
        .context()
        .table(schema::TABLE_NAME)
        .await?
        .select_columns(
            &record_columns
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
    // Each batch's records rebuilt on other threads while the scan reads the next, into text
    // buffers used again once written.
    let (spares, mut records) =
        formatted(df.execute_stream().await?, |batch, _, mut lines: String| {
            let rebuilder = Rebuilder::new(batch)?;
            lines.clear();
            for row in 0..batch.num_rows() {
                rebuilder.write_row(row, &mut lines)?;
                lines.push('\n');
            }
            Ok(lines)
        });
    while let Some(rebuilt) = records.next().await {
        let (rows, lines) = rebuilt?;
        out.write_all(lines.as_bytes())?;
        counts.records += rows as u64;
        spares.give_back(lines);
    }
    let mut line = String::new();
    if quarantine
        && session
            .context()
            .table_exist(schema::QUARANTINE_TABLE_NAME)?
    {
        let df = session
            .context()
            .sql_with_options(
                &format!(
                    "SELECT {} FROM {}",
                    schema::quarantine::RECORD,
                    schema::QUARANTINE_TABLE_NAME
                ),
                options,
            )
            .await?;
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
            let records = arrow::array::AsArray::as_string::<i32>(column.as_ref());
            for r in records.iter().flatten() {
                // The record as it arrived, on one line; text that is not JSON at all (kept
                // verbatim in quarantine) is written as a JSON string.
                line.clear();
                if serde_json::from_str::<serde::de::IgnoredAny>(r).is_ok() {
                    push_on_one_line(&mut line, r);
                } else {
                    line.push_str(&serde_json::Value::from(r).to_string());
                }
                line.push('\n');
                out.write_all(line.as_bytes())?;
                counts.quarantined += 1;
            }
        }
    }
    out.flush()?;
    Ok(counts)
}
