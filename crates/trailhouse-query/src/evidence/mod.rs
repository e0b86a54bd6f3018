//! Evidence: the records a question matched, exactly as CloudTrail delivered them (rebuilt
//! losslessly from the lake), each with its SHA-256, the source object it came from and that
//! object's integrity verdict, with how they were found (the query, its bound parameters, the
//! window, the table version) and a manifest of every file's SHA-256 (see [`bundle`]).

pub mod bundle;

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::{DataFrame, col, lit};
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

/// Matched events looked up at once: one statement filters the window's rows by this many
/// event ids (and their time range), so the cost follows the answer, not the window.
const CHUNK: usize = 2_000;

/// The rows of `cloudtrail` in `window` that `matched` (a saved query's or a statement's result)
/// names by `eventid` (and `eventtime`, when the result has it as a time), in time order, each
/// with its source file's integrity verdict; `each` is called with every record, so a bundle of
/// a million records is written as it is read.
///
/// The matched keys are collected first (the answer's size); then, a chunk of them at a time in
/// time order, the rows are read with `eventid IN (…)` and the chunk's time range as filters
/// (values, never SQL text), which the scan prunes files and rows by, and the source files'
/// verdicts are looked up for that chunk's files only. A join of the window's rows with the
/// answer held the window's rows in memory and failed at 2M events.
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
    let by_time = has(schema::EVENTTIME, Some(&time));
    let mut columns = vec![col(schema::EVENTID)];
    if by_time {
        columns.push(col(schema::EVENTTIME));
    }
    let mut keys: Vec<(Option<i64>, String)> = Vec::new();
    for batch in matched.select(columns)?.distinct()?.collect().await? {
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let times = match by_time {
            true => Some(cast(batch.column(1), &DataType::Int64)?),
            false => None,
        };
        let times = times
            .as_ref()
            .map(|t| t.as_primitive::<arrow::datatypes::Int64Type>());
        for row in 0..batch.num_rows() {
            if ids.is_null(row) {
                continue;
            }
            let t = times.filter(|t| t.is_valid(row)).map(|t| t.value(row));
            keys.push((t, ids.value(row).to_string()));
        }
    }
    keys.sort();
    keys.dedup();

    let integrity = session
        .context()
        .table_exist(schema::INTEGRITY_TABLE_NAME)?;
    let ts = |v: i64| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(v),
            Some("UTC".into()),
        ))
    };
    let mut count = 0;
    let mut line = String::new();
    for chunk in keys.chunks(CHUNK) {
        let wanted: HashSet<(Option<i64>, &str)> =
            chunk.iter().map(|(t, id)| (*t, id.as_str())).collect();
        let ids: HashSet<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
        let mut filter =
            col(schema::EVENTID).in_list(ids.iter().map(|id| lit(*id)).collect(), false);
        let times: Vec<i64> = chunk.iter().filter_map(|(t, _)| *t).collect();
        if by_time && let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) {
            filter = filter
                .and(col(schema::EVENTTIME).gt_eq(ts(*lo)))
                .and(col(schema::EVENTTIME).lt_eq(ts(*hi)));
        }
        let rows = session
            .dataframe("SELECT * FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until")
            .await?
            .with_param_values(ParamValues::from(window.params()))?
            .filter(filter)?
            .sort(vec![
                col(schema::EVENTTIME).sort(true, false),
                col(schema::EVENTID).sort(true, false),
                col(schema::SOURCEFILE).sort(true, false),
            ])?;
        let mut records = Vec::new();
        let mut stream = rows.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let rebuilder = Rebuilder::new(&batch)?;
            let text = |name: &str| -> Result<arrow::array::ArrayRef, QueryError> {
                let c = batch
                    .column_by_name(name)
                    .ok_or_else(|| QueryError::Evidence(format!("rows without column `{name}`")))?;
                Ok(cast(c, &DataType::Utf8)?)
            };
            let (ids, files) = (text(schema::EVENTID)?, text(schema::SOURCEFILE)?);
            let (ids, files) = (ids.as_string::<i32>(), files.as_string::<i32>());
            let times = batch
                .column_by_name(schema::EVENTTIME)
                .map(|c| cast(c, &DataType::Int64))
                .transpose()?;
            let times = times
                .as_ref()
                .map(|t| t.as_primitive::<arrow::datatypes::Int64Type>());
            for row in 0..batch.num_rows() {
                let time = times.filter(|t| t.is_valid(row)).map(|t| t.value(row));
                let id = if ids.is_valid(row) {
                    ids.value(row)
                } else {
                    ""
                };
                // The id filter matched; with times, only the pairs the answer holds.
                if by_time && !wanted.contains(&(time, id)) {
                    continue;
                }
                line.clear();
                rebuilder.write_row(row, &mut line)?;
                records.push(EvidenceRecord {
                    json: line.clone(),
                    eventid: id.to_string(),
                    eventtime: time.and_then(schema::format_event_time).unwrap_or_default(),
                    sourcefile: files.value(row).to_string(),
                    integrity: UNCHECKED.to_string(),
                });
            }
        }
        if integrity && !records.is_empty() {
            let verdicts = verdicts_of(session, &records).await?;
            for r in &mut records {
                if let Some(v) = verdicts.get(&r.sourcefile) {
                    r.integrity = v.clone();
                }
            }
        }
        for r in records {
            each(r)?;
            count += 1;
        }
    }
    Ok(count)
}

/// The latest integrity verdict of each source file of `records`.
async fn verdicts_of(
    session: &Session,
    records: &[EvidenceRecord],
) -> Result<HashMap<String, String>, QueryError> {
    let files: HashSet<&str> = records.iter().map(|r| r.sourcefile.as_str()).collect();
    let batches = session
        .context()
        .table(schema::INTEGRITY_TABLE_NAME)
        .await?
        .filter(
            col(schema::integrity::SOURCEFILE)
                .in_list(files.iter().map(|f| lit(*f)).collect(), false),
        )?
        .select(vec![
            col(schema::integrity::SOURCEFILE),
            col(schema::integrity::VERDICT),
        ])?
        .collect()
        .await?;
    let mut out = HashMap::new();
    for b in batches {
        let (f, v) = (
            cast(b.column(0), &DataType::Utf8)?,
            cast(b.column(1), &DataType::Utf8)?,
        );
        let (f, v) = (f.as_string::<i32>(), v.as_string::<i32>());
        for row in 0..b.num_rows() {
            if f.is_valid(row) && v.is_valid(row) {
                out.insert(f.value(row).to_string(), v.value(row).to_string());
            }
        }
    }
    Ok(out)
}
