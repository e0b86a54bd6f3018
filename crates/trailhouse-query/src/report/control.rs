//! One control of a report: its query runs once, and its rows are reduced as they stream.
//!
//! The rows go two ways. A bounded top-k keeps the first `max_events` in the query's own order
//! (the query's final sort is taken off and done here, so the rows need not be sorted whole).
//! And an aggregate in the engine ([`reduction`]) counts them by principal, by principal and
//! temporary key, and by source IP, spilling to disk beyond the memory pool: a control that
//! matches a million events holds the sample and the aggregate's share of the pool, not the
//! events, nor a map of every principal. Its sorted output gives the top principals first, then
//! the keys of just those principals, whose origins the report looks up.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::{DataType, Int64Type, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::common::runtime::SpawnedTask;
use datafusion::functions_aggregate::expr_fn::{count, grouping, max, min, sum};
use datafusion::logical_expr::{Expr, GroupingSet, LogicalPlan, col, lit, when};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

use super::channel;
use super::{Count, TOP, top};
use crate::error::QueryError;

/// Columns of summary queries that count events (a row per principal and day, say).
const WEIGHT_COLUMNS: [&str; 3] = ["calls", "decrypts", "events"];

/// Temporary keys kept per listed principal, for their origins: the most recently used.
pub const KEYS_PER_PRINCIPAL: usize = 1_000;

/// A principal of a control's findings, with its temporary keys (and when each was last used).
#[derive(Debug, Clone, Default)]
pub struct Principal {
    pub principal: String,
    pub count: u64,
    pub keys: Vec<(String, Option<i64>)>,
}

/// What a control's query matched.
#[derive(Debug, Default)]
pub struct Matches {
    pub count: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub columns: Vec<String>,
    /// The first `max_events` rows, in the query's order.
    pub events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The [`TOP`] principals by count.
    pub principals: Vec<Principal>,
    pub source_ips: Vec<Count>,
    pub seconds: f64,
}

/// The columns a control's rows are reduced by, taken from its query's own columns.
#[derive(Debug, Clone, Copy)]
struct Shape {
    principal: bool,
    key: bool,
    ip: bool,
}

/// Runs a control's query once, reducing its rows as they stream. `findings` receives each
/// row's principal, source IP and weight, for the report's totals across controls.
pub async fn run(
    query: DataFrame,
    max_events: usize,
    mut findings: Option<channel::Sender>,
) -> Result<Matches, QueryError> {
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
    let input = DataFrame::new(state.clone(), input);
    let schema: Arc<Schema> = Arc::new(input.schema().as_arrow().clone());
    let (rows, mut feed) = channel::table(Arc::clone(&schema))?;
    let ctx = SessionContext::new_with_state(state);
    let (shape, reduction) = reduction(ctx.read_table(rows)?, &schema)?;
    let reducing = SpawnedTask::spawn(async move { Reduced::collect(reduction, shape).await });

    let mut sample: Vec<RecordBatch> = Vec::new();
    let mut kept = 0;
    let mut stream = input.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        match top.as_mut() {
            Some(t) => t.push(batch.clone())?,
            None if kept < max_events => {
                let n = (max_events - kept).min(batch.num_rows());
                kept += n;
                sample.push(batch.slice(0, n));
            }
            None => {}
        }
        if let Some(f) = findings.as_mut() {
            f.send(finding_rows(&batch)?).await;
        }
        if !feed.send(batch).await {
            break;
        }
    }
    drop(feed);
    drop(findings);
    let reduced = reducing
        .join()
        .await
        .map_err(|e| QueryError::Io(std::io::Error::other(format!("report control: {e}"))))??;
    if let Some(t) = top {
        sample.extend(t.into_batch());
    }
    let mut events = Vec::new();
    for b in &sample {
        add_sample(b, &mut events)?;
    }
    Ok(Matches {
        count: reduced.rows,
        first: reduced.first,
        last: reduced.last,
        columns,
        events,
        principals: reduced.principals,
        source_ips: reduced.ips,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The aggregate that reduces a control's rows (table `rows`, with the control query's
/// columns): one row for all of them, one per principal, per principal and temporary key, and
/// per source IP, those by key last.
fn reduction(rows: DataFrame, schema: &Schema) -> Result<(Shape, DataFrame), QueryError> {
    let has = |name: &str| schema.field_with_name(name).is_ok();
    let text = |name: &str| -> Expr {
        if has(name) {
            Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(col(name)),
                DataType::Utf8,
            ))
        } else {
            lit(ScalarValue::Utf8(None))
        }
    };
    let time = |names: &[&str]| -> Expr {
        names
            .iter()
            .find(|n| {
                schema.field_with_name(n).is_ok_and(|f| {
                    matches!(f.data_type(), DataType::Timestamp(TimeUnit::Microsecond, _))
                })
            })
            .map_or(
                lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into()))),
                |n| {
                    Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(col(*n)),
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    ))
                },
            )
    };
    let weight = WEIGHT_COLUMNS.iter().find(|w| has(w)).map_or(lit(1i64), |w| {
        Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(col(*w)),
            DataType::Int64,
        ))
    });
    let shape = Shape {
        principal: has("principal"),
        key: has("accesskeyid"),
        ip: has("sourceipaddress"),
    };
    // Only temporary keys have an origin to look up.
    let key = when(text("accesskeyid").like(lit("ASIA%")), text("accesskeyid"))
        .end()
        .map_err(QueryError::from)?;
    let projected = rows.select(vec![
        text("principal").alias("p"),
        key.alias("k"),
        text("sourceipaddress").alias("ip"),
        weight.alias("w"),
        time(&["eventtime", "first_seen"]).alias("t0"),
        time(&["eventtime", "last_seen"]).alias("t1"),
    ])?;
    // The keys by principal only when there are both; then sorted so that the principals are
    // all counted before their keys come.
    let keyed = shape.principal && shape.key;
    let mut sets = vec![vec![], vec![col("p")], vec![col("ip")]];
    if keyed {
        sets.push(vec![col("p"), col("k")]);
    }
    let sets = Expr::GroupingSet(GroupingSet::GroupingSets(sets));
    let mut aggregates = vec![
        count(lit(1i64)).alias("rows"),
        sum(col("w")).alias("weight"),
        min(col("t0")).alias("first"),
        max(col("t1")).alias("last"),
        grouping(col("p")).alias("gp"),
        grouping(col("ip")).alias("gi"),
    ];
    if keyed {
        aggregates.push(grouping(col("k")).alias("gk"));
    }
    let reduced = projected.aggregate(vec![sets], aggregates)?;
    if !keyed {
        return Ok((shape, reduced));
    }
    // The groups without a key (the total, principals, IPs) come first, then the keys by
    // principal, the most recently used first.
    let sorted = reduced.sort(vec![
        col("gk").sort(false, false),
        col("p").sort(true, false),
        col("last").sort(false, false),
    ])?;
    Ok((shape, sorted))
}

/// A control's rows, reduced.
#[derive(Default)]
struct Reduced {
    rows: u64,
    first: Option<i64>,
    last: Option<i64>,
    principals: Vec<Principal>,
    ips: Vec<Count>,
}

/// The reduction's columns of one batch, typed once.
struct Columns {
    gp: arrow::array::Int64Array,
    /// Absent when the rows were not grouped by key.
    gk: Option<arrow::array::Int64Array>,
    gi: arrow::array::Int64Array,
    rows: arrow::array::Int64Array,
    weight: arrow::array::Int64Array,
    first: arrow::array::TimestampMicrosecondArray,
    last: arrow::array::TimestampMicrosecondArray,
    p: arrow::array::StringArray,
    k: arrow::array::StringArray,
    ip: arrow::array::StringArray,
}

impl Columns {
    fn of(batch: &RecordBatch) -> Result<Self, QueryError> {
        let column = |name: &str, to: &DataType| -> Result<arrow::array::ArrayRef, QueryError> {
            let c = batch.column_by_name(name).ok_or_else(|| {
                QueryError::Io(std::io::Error::other(format!("report reduction: no {name}")))
            })?;
            Ok(cast(c, to)?)
        };
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let int = |name: &str| -> Result<arrow::array::Int64Array, QueryError> {
            Ok(column(name, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
        };
        let time = |name: &str| -> Result<arrow::array::TimestampMicrosecondArray, QueryError> {
            Ok(column(name, &ts)?
                .as_primitive::<TimestampMicrosecondType>()
                .clone())
        };
        let text = |name: &str| -> Result<arrow::array::StringArray, QueryError> {
            Ok(column(name, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        Ok(Self {
            gp: int("gp")?,
            gk: batch.column_by_name("gk").map(|_| int("gk")).transpose()?,
            gi: int("gi")?,
            rows: int("rows")?,
            weight: int("weight")?,
            first: time("first")?,
            last: time("last")?,
            p: text("p")?,
            k: text("k")?,
            ip: text("ip")?,
        })
    }
}

fn value<T: arrow::array::ArrowPrimitiveType>(
    a: &arrow::array::PrimitiveArray<T>,
    i: usize,
) -> Option<T::Native> {
    a.is_valid(i).then(|| a.value(i))
}

fn string(a: &arrow::array::StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

impl Reduced {
    async fn collect(reduction: DataFrame, shape: Shape) -> Result<Self, QueryError> {
        let mut out = Reduced::default();
        let mut principals: Vec<(String, u64)> = Vec::new();
        let mut ips: Vec<(String, u64)> = Vec::new();
        let mut keyed: Option<Vec<Principal>> = None;
        let mut stream = reduction.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let c = Columns::of(&batch?)?;
            for i in 0..c.gp.len() {
                let weight = value(&c.weight, i).unwrap_or(0).max(0) as u64;
                if c.gk.as_ref().is_some_and(|gk| value(gk, i) == Some(0)) {
                    // The principals are all counted: the top ones are known.
                    let listed = keyed.get_or_insert_with(|| {
                        top(std::mem::take(&mut principals))
                            .into_iter()
                            .map(|c| Principal {
                                principal: c.value,
                                count: c.count,
                                keys: Vec::new(),
                            })
                            .collect()
                    });
                    let Some(key) = string(&c.k, i) else {
                        continue;
                    };
                    let name = string(&c.p, i).unwrap_or("(unknown)");
                    if let Some(entry) = listed.iter_mut().find(|e| e.principal == name)
                        && entry.keys.len() < KEYS_PER_PRINCIPAL
                    {
                        entry.keys.push((key.to_string(), value(&c.last, i)));
                    }
                } else if value(&c.gp, i) == Some(0) {
                    if shape.principal {
                        let name = string(&c.p, i).unwrap_or("(unknown)");
                        keep_top(&mut principals, name.to_string(), weight);
                    }
                } else if value(&c.gi, i) == Some(0) {
                    if shape.ip
                        && let Some(ip) = string(&c.ip, i)
                    {
                        keep_top(&mut ips, ip.to_string(), weight);
                    }
                } else {
                    out.rows = value(&c.rows, i).unwrap_or(0).max(0) as u64;
                    out.first = value(&c.first, i);
                    out.last = value(&c.last, i);
                }
            }
        }
        out.principals = match keyed {
            Some(listed) => listed,
            None => top(principals)
                .into_iter()
                .map(|c| Principal {
                    principal: c.value,
                    count: c.count,
                    keys: Vec::new(),
                })
                .collect(),
        };
        if !shape.key {
            out.principals.iter_mut().for_each(|p| p.keys.clear());
        }
        out.ips = top(ips);
        Ok(out)
    }
}

/// Adds a value to a list that keeps the [`TOP`] by count (then value) and a margin, so that
/// memory does not grow with the values offered.
fn keep_top(list: &mut Vec<(String, u64)>, value: String, count: u64) {
    list.push((value, count));
    if list.len() >= TOP * 8 {
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(TOP);
    }
}

/// A batch's principal, source IP and weight, in the shape the report's totals across controls
/// read (see [`super::findings`]).
fn finding_rows(batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    let n = batch.num_rows();
    let text = |name: &str| -> Result<arrow::array::ArrayRef, QueryError> {
        Ok(match batch.column_by_name(name) {
            Some(c) => cast(c, &DataType::Utf8)?,
            None => arrow::array::new_null_array(&DataType::Utf8, n),
        })
    };
    let weight = match WEIGHT_COLUMNS.iter().find_map(|w| batch.column_by_name(w)) {
        Some(c) => cast(c, &DataType::Int64)?,
        None => Arc::new(arrow::array::Int64Array::from(vec![1i64; n])),
    };
    let has_principal = batch.column_by_name("principal").is_some();
    Ok(RecordBatch::try_new(
        super::findings::schema(),
        vec![
            text("principal")?,
            Arc::new(arrow::array::BooleanArray::from(vec![has_principal; n])),
            text("sourceipaddress")?,
            weight,
        ],
    )?)
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
