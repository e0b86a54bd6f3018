//! Evidence: the records a question matched, exactly as CloudTrail delivered them (rebuilt
//! losslessly from the lake), each with its SHA-256, the source object it came from and that
//! object's integrity verdict, with how they were found (the query, its bound parameters, the
//! window, the table version) and a manifest of every file's SHA-256 (see [`bundle`]).

pub mod bundle;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{JoinType, ParamValues};
use datafusion::prelude::{DataFrame, col};
use futures::StreamExt;
use trailhouse_lake::rebuild::Rebuilder;
use trailhouse_lake::schema;

use crate::error::QueryError;
use crate::saved::Window;
use crate::session::Session;

/// What the verdict column says for a source file never checked.
pub const UNCHECKED: &str = "unchecked";

/// How the records were found, written into the bundle as `query.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The saved query's name, or none for a statement given with `--sql`.
    pub query: Option<String>,
    /// The statement that ran, with its placeholders (`$since`, `$resource`).
    pub sql: String,
    /// The values bound to its placeholders, as given.
    pub parameters: BTreeMap<String, String>,
    /// The window, RFC 3339 (UTC).
    pub since: String,
    pub until: String,
    /// The lake and the version of table `cloudtrail` read.
    pub lake: String,
    pub table_version: Option<u64>,
    pub trailhouse_version: String,
    pub generated_at: String,
    /// Records in the bundle.
    pub records: u64,
    /// Records per integrity verdict of their source file (`unchecked`: never verified).
    pub integrity: BTreeMap<String, u64>,
}

/// One record of the bundle.
#[derive(Debug, Clone)]
pub struct EvidenceRecord {
    /// The record as one line of compact JSON.
    pub json: String,
    pub eventid: String,
    pub eventtime: String,
    pub sourcefile: String,
    /// Its source file's latest integrity verdict, or [`UNCHECKED`].
    pub integrity: String,
}

/// The rows of `cloudtrail` in `window` that `matched` (a saved query's or a statement's result)
/// names by `eventid` (and `eventtime`, when the result has it as a time), in time order, each
/// with its source file's integrity verdict; `each` is called with every record, so a bundle of
/// a million records is written as it is read.
pub async fn collect(
    session: &Session,
    matched: DataFrame,
    window: Window,
    mut each: impl FnMut(EvidenceRecord) -> Result<(), QueryError>,
) -> Result<u64, QueryError> {
    let result = matched.schema().clone();
    let has = |name: &str, wanted: Option<&DataType>| {
        result
            .fields()
            .iter()
            .any(|f| f.name() == name && wanted.is_none_or(|t| f.data_type() == t))
    };
    if !has(schema::EVENTID, None) {
        return Err(QueryError::Evidence(
            "the query's result has no `eventid` column, so its rows are not events (it \
             aggregates); evidence is the events a query lists: add `eventid` to its columns"
                .into(),
        ));
    }
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut keys = vec![(schema::EVENTID, "m_eventid")];
    if has(schema::EVENTTIME, Some(&time)) {
        keys.push((schema::EVENTTIME, "m_eventtime"));
    }
    let matched = matched
        .select(
            keys.iter()
                .map(|(k, m)| col(*k).alias(*m))
                .collect::<Vec<_>>(),
        )?
        .distinct()?;
    let rows = session
        .dataframe("SELECT * FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until")
        .await?
        .with_param_values(ParamValues::from(window.params()))?
        .alias("c")?;
    let on: Vec<_> = keys
        .iter()
        .map(|(k, m)| col(format!("c.{k}")).eq(col(*m)))
        .collect();
    let mut records = rows.join_on(matched, JoinType::LeftSemi, on)?;
    if session
        .context()
        .table_exist(schema::INTEGRITY_TABLE_NAME)?
    {
        let verdicts = session
            .context()
            .table(schema::INTEGRITY_TABLE_NAME)
            .await?
            .select(vec![
                col(schema::integrity::SOURCEFILE).alias("i_sourcefile"),
                col(schema::integrity::VERDICT).alias("i_verdict"),
            ])?;
        records = records.join_on(
            verdicts,
            JoinType::Left,
            [col(format!("c.{}", schema::SOURCEFILE)).eq(col("i_sourcefile"))],
        )?;
    }
    let records = records.sort(vec![
        col(format!("c.{}", schema::EVENTTIME)).sort(true, false),
        col(format!("c.{}", schema::EVENTID)).sort(true, false),
        col(format!("c.{}", schema::SOURCEFILE)).sort(true, false),
    ])?;

    let mut stream = records.execute_stream().await?;
    let mut count = 0;
    let mut line = String::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let rebuilder = Rebuilder::new(&batch)?;
        let text = |name: &str| -> Result<Option<arrow::array::ArrayRef>, QueryError> {
            batch
                .column_by_name(name)
                .map(|c| cast(c, &DataType::Utf8))
                .transpose()
                .map_err(QueryError::from)
        };
        let (Some(ids), Some(files)) = (text(schema::EVENTID)?, text(schema::SOURCEFILE)?) else {
            return Err(QueryError::Evidence(
                "rows without eventid or sourcefile".into(),
            ));
        };
        let times = batch
            .column_by_name(schema::EVENTTIME)
            .map(|c| cast(c, &DataType::Int64))
            .transpose()?;
        let verdicts = text("i_verdict")?;
        let (ids, files) = (ids.as_string::<i32>(), files.as_string::<i32>());
        for row in 0..batch.num_rows() {
            line.clear();
            rebuilder.write_row(row, &mut line)?;
            let eventtime = times
                .as_ref()
                .map(|t| t.as_primitive::<arrow::datatypes::Int64Type>())
                .filter(|t| t.is_valid(row))
                .and_then(|t| schema::format_event_time(t.value(row)))
                .unwrap_or_default();
            let integrity = verdicts
                .as_ref()
                .map(|v| v.as_string::<i32>())
                .filter(|v| v.is_valid(row))
                .map_or(UNCHECKED, |v| v.value(row));
            each(EvidenceRecord {
                json: line.clone(),
                eventid: if ids.is_valid(row) {
                    ids.value(row).to_string()
                } else {
                    String::new()
                },
                eventtime,
                sourcefile: files.value(row).to_string(),
                integrity: integrity.to_string(),
            })?;
            count += 1;
        }
    }
    Ok(count)
}
