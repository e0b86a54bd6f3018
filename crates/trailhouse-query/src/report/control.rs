//! One control of a report: its query runs once, and its rows go two ways as they stream.
//!
//! A bounded top-k keeps the first `max_events` in the query's own order (the query's final sort
//! is taken off and done here, so the rows need not be sorted whole). Each row's principal,
//! source IP, weight and times go to the report's one aggregate ([`super::reduce`]), tagged with
//! the control's number, and its temporary key to the principal's most recently used keys
//! ([`super::keys`]): nothing here holds the rows, however many match.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use super::channel;
use super::keys::RecentKeys;
use crate::credentials::lookup::TEMPORARY_KEY_PREFIX;
use crate::error::QueryError;

/// Columns of summary queries that count events (a row per principal and day, say).
const WEIGHT_COLUMNS: [&str; 3] = ["calls", "decrypts", "events"];

/// What a control's query gave besides its reduced rows.
#[derive(Debug, Default)]
pub struct Sampled {
    pub columns: Vec<String>,
    /// The first `max_events` rows, in the query's order.
    pub events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The temporary keys of the principals of its rows.
    pub keys: RecentKeys,
    pub seconds: f64,
}

/// Runs a control's query once: samples its first rows, gathers its principals' temporary keys,
/// and sends all its rows, as [`super::reduce::schema`] rows tagged `control`, to `rows`.
pub async fn run(
    query: DataFrame,
    max_events: usize,
    control: u32,
    mut rows: channel::Sender,
) -> Result<Sampled, QueryError> {
    let started = std::time::Instant::now();
    let columns: Vec<String> = query
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (state, plan) = query.into_parts();
    let (input, mut top) = match TopK::for_plan(&plan, max_events) {
        Some((input, top)) => (input, Some(top)),
        None => (plan, None),
    };
    let input = DataFrame::new(state, input);
    let mut sample: Vec<RecordBatch> = Vec::new();
    let mut kept = 0;
    let mut keys = RecentKeys::default();
    let mut stream = input.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let reduced = reduced_rows(&batch, control)?;
        gather_keys(&batch, &reduced, &mut keys)?;
        rows.send(reduced).await;
        match top.as_mut() {
            Some(t) => t.push(batch)?,
            None if kept < max_events => {
                let n = (max_events - kept).min(batch.num_rows());
                kept += n;
                sample.push(batch.slice(0, n));
            }
            None => {}
        }
    }
    if let Some(t) = top {
        sample.extend(t.into_batch());
    }
    let mut events = Vec::new();
    for b in &sample {
        add_sample(b, &mut events)?;
    }
    Ok(Sampled {
        columns,
        events,
        keys,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A batch of a control's rows in the reduction's shape: the control's number, the principal
/// (`(unknown)` where the query has the column but the row no value), the source IP, the weight
/// (a summary query's count column, else 1) and the row's first and last times.
fn reduced_rows(batch: &RecordBatch, control: u32) -> Result<RecordBatch, QueryError> {
    use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, UInt32Array};
    let n = batch.num_rows();
    let text = |name: &str| -> Result<Option<StringArray>, QueryError> {
        Ok(match batch.column_by_name(name) {
            Some(c) => Some(cast(c, &DataType::Utf8)?.as_string::<i32>().clone()),
            None => None,
        })
    };
    let principal: StringArray = match text("principal")? {
        Some(p) => (0..n)
            .map(|i| {
                Some(if p.is_valid(i) {
                    p.value(i)
                } else {
                    "(unknown)"
                })
            })
            .collect(),
        None => StringArray::new_null(n),
    };
    let ip = text("sourceipaddress")?.unwrap_or_else(|| StringArray::new_null(n));
    let weight: ArrayRef = match WEIGHT_COLUMNS.iter().find_map(|w| batch.column_by_name(w)) {
        Some(c) => cast(c, &DataType::Int64)?,
        None => Arc::new(arrow::array::Int64Array::from(vec![1i64; n])),
    };
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let time = |names: [&str; 2]| -> Result<ArrayRef, QueryError> {
        let found = names.iter().find_map(|name| {
            batch
                .column_by_name(name)
                .filter(|c| matches!(c.data_type(), DataType::Timestamp(_, _)))
        });
        Ok(match found {
            Some(c) => cast(c, &ts)?,
            None => Arc::new(TimestampMicrosecondArray::new_null(n).with_timezone("UTC")),
        })
    };
    Ok(RecordBatch::try_new(
        super::reduce::schema(),
        vec![
            Arc::new(UInt32Array::from(vec![control; n])),
            Arc::new(principal),
            Arc::new(ip),
            weight,
            time(["eventtime", "first_seen"])?,
            time(["eventtime", "last_seen"])?,
        ],
    )?)
}

/// Adds to `keys` each row's temporary key (only `ASIA…` keys have an origin), under the row's
/// principal and as of its last time, both as `reduced` (the rows in the reduction's shape)
/// has them.
fn gather_keys(
    batch: &RecordBatch,
    reduced: &RecordBatch,
    keys: &mut RecentKeys,
) -> Result<(), QueryError> {
    let Some(k) = batch.column_by_name("accesskeyid") else {
        return Ok(());
    };
    let k = cast(k, &DataType::Utf8)?;
    let k = k.as_string::<i32>();
    let column = |name: &str| {
        reduced.column_by_name(name).ok_or_else(|| {
            QueryError::Io(std::io::Error::other(format!(
                "report rows: no column {name}"
            )))
        })
    };
    let principal = column("p")?.as_string::<i32>();
    let at = column("t1")?.as_primitive::<TimestampMicrosecondType>();
    for i in 0..k.len() {
        if k.is_valid(i) && principal.is_valid(i) && k.value(i).starts_with(TEMPORARY_KEY_PREFIX) {
            keys.add(
                principal.value(i),
                k.value(i),
                at.is_valid(i).then(|| at.value(i)),
            );
        }
    }
    Ok(())
}

/// The first `limit` rows of a stream in the order of an ORDER BY over its columns, kept as
/// the rows arrive (a bounded top-k), so the stream need not be sorted whole.
struct TopK {
    limit: usize,
    keys: Vec<(usize, SortOptions)>,
    best: Option<RecordBatch>,
}

impl TopK {
    /// For a plan that ends in an ORDER BY of its own columns (no LIMIT): the plan below the
    /// sort and the top-k that replaces it.
    fn for_plan(plan: &LogicalPlan, limit: usize) -> Option<(LogicalPlan, Self)> {
        let LogicalPlan::Sort(sort) = plan else {
            return None;
        };
        if sort.fetch.is_some() {
            return None;
        }
        let schema = sort.input.schema();
        let keys = sort
            .expr
            .iter()
            .map(|e| match &e.expr {
                Expr::Column(c) => schema.index_of_column(c).ok().map(|i| {
                    (
                        i,
                        SortOptions {
                            descending: !e.asc,
                            nulls_first: e.nulls_first,
                        },
                    )
                }),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some((
            sort.input.as_ref().clone(),
            Self {
                limit,
                keys,
                best: None,
            },
        ))
    }

    fn push(&mut self, batch: RecordBatch) -> Result<(), QueryError> {
        if self.limit == 0 {
            return Ok(());
        }
        let all = match self.best.take() {
            Some(best) => concat_batches(&batch.schema(), [&best, &batch])?,
            None => batch,
        };
        let columns: Vec<SortColumn> = self
            .keys
            .iter()
            .map(|(i, options)| SortColumn {
                values: all.column(*i).clone(),
                options: Some(*options),
            })
            .collect();
        let order = lexsort_to_indices(&columns, Some(self.limit))?;
        self.best = Some(take_record_batch(&all, &order)?);
        Ok(())
    }

    fn into_batch(self) -> Option<RecordBatch> {
        self.best
    }
}

/// Appends the rows of a sampled batch, as JSON objects, to `out`.
fn add_sample(
    batch: &RecordBatch,
    out: &mut Vec<serde_json::Map<String, serde_json::Value>>,
) -> Result<(), QueryError> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&buf)
        .map_err(|e| QueryError::Io(std::io::Error::other(format!("report rows: {e}"))))?;
    out.extend(rows);
    Ok(())
}
