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
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
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
#[derive(Debug)]
pub struct Sampled {
    pub columns: Vec<String>,
    /// The first `max_events` rows, in the query's order.
    pub events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The temporary keys of the principals of its rows.
    pub keys: RecentKeys,
    /// Keys kept per principal: fewer than [`KEYS_PER_PRINCIPAL`] when the memory pool could not
    /// hold that many for every principal.
    pub keys_per_principal: usize,
    /// The pool's memory `keys` holds, given back when they are let go.
    pub keys_memory: MemoryReservation,
    pub seconds: f64,
}

/// The fewest keys per principal the report keeps before it gives up for lack of memory.
const MIN_KEYS_PER_PRINCIPAL: usize = 10;

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
    // The keys are held in the session's memory pool: what the pool cannot give, the keys
    // kept per principal give back.
    let reservation = MemoryConsumer::new(format!("report keys of control {control}"))
        .register(&state.runtime_env().memory_pool);
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
        while let Err(refused) = reservation.try_resize(keys.bytes()) {
            if keys.cap() <= MIN_KEYS_PER_PRINCIPAL {
                return Err(refused.into());
            }
            keys.cut_to((keys.cap() / 2).max(MIN_KEYS_PER_PRINCIPAL));
        }
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
        keys_per_principal: keys.cap(),
        keys,
        keys_memory: reservation,
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

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, SchemaRef};
    use datafusion::datasource::MemTable;
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;
    use crate::report::keys::KEYS_PER_PRINCIPAL;

    /// A control's rows: three principals, each using 3,000 temporary keys over 9,000 rows.
    fn rows() -> (SchemaRef, RecordBatch, Vec<(String, String, i64)>) {
        let uses: Vec<(String, String, i64)> = (0..9_000i64)
            .map(|i| {
                let principal = ["alice", "bob", "carol"][(i % 3) as usize];
                // Keys reused out of order, times in no order either.
                let key = format!("ASIA{:016}", (i * 7_919) % 3_000);
                (principal.to_string(), key, (i * 104_729) % 1_000_003)
            })
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("principal", DataType::Utf8, true),
            Field::new("accesskeyid", DataType::Utf8, true),
            Field::new(
                "eventtime",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(uses.iter().map(|u| &u.0))),
                Arc::new(StringArray::from_iter_values(uses.iter().map(|u| &u.1))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(uses.iter().map(|u| u.2))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .expect("batch");
        (schema, batch, uses)
    }

    /// The control run in a session whose memory pool holds `pool` bytes.
    async fn sampled(pool: usize) -> (Result<Sampled, QueryError>, Vec<(String, String, i64)>) {
        let (schema, batch, uses) = rows();
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(pool),
            NonZeroUsize::new(3).expect("non-zero"),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .build_arc()
            .expect("runtime");
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("matches", Arc::new(table))
            .expect("register");
        let query = ctx.table("matches").await.expect("query");
        // Nothing reads the reduced rows: the sender finds its table gone and goes on.
        let (_, sender) = channel::table(super::super::reduce::schema()).expect("feed");
        (run(query, 10, 0, sender).await, uses)
    }

    /// The `cap` most recent keys of `principal`, from every use.
    fn expected(uses: &[(String, String, i64)], principal: &str, cap: usize) -> Vec<String> {
        let mut last: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for (_, k, t) in uses.iter().filter(|u| u.0 == principal) {
            let e = last.entry(k.as_str()).or_insert(*t);
            *e = (*e).max(*t);
        }
        let mut v: Vec<(&str, i64)> = last.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .take(cap)
            .map(|(k, _)| k.to_string())
            .collect()
    }

    #[tokio::test]
    async fn keys_the_pool_cannot_hold_are_cut_to_each_principals_most_recent() {
        let (roomy, uses) = sampled(64 << 20).await;
        let mut roomy = roomy.expect("a roomy pool");
        assert_eq!(roomy.keys_per_principal, KEYS_PER_PRINCIPAL);
        let keys = roomy.keys.take("bob");
        assert_eq!(keys.len(), KEYS_PER_PRINCIPAL);

        let (tight, _) = sampled(96 << 10).await;
        let mut tight = tight.expect("a tight pool cuts the keys, and the control runs");
        let cap = tight.keys_per_principal;
        assert!(
            (MIN_KEYS_PER_PRINCIPAL..KEYS_PER_PRINCIPAL).contains(&cap),
            "{cap}"
        );
        assert!(tight.keys_memory.size() <= 96 << 10);
        for principal in ["alice", "bob", "carol"] {
            let kept: Vec<String> = tight
                .keys
                .take(principal)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(kept, expected(&uses, principal, cap), "{principal}");
        }

        let (starved, _) = sampled(1 << 10).await;
        let refused = starved.expect_err("not even the fewest keys fit");
        assert!(
            refused.to_string().contains("Resources exhausted"),
            "{refused}"
        );
    }
}
