//! The report's one aggregate: every control's rows, tagged with the control's number, counted
//! by control, by control and principal, by control and source IP, and across controls by
//! principal and by source IP, in one GROUPING SETS plan that spills to disk beyond the memory
//! pool. One aggregate for all controls holds the pool's share of one consumer, where an
//! aggregate per control split the pool dozens of ways.
//!
//! Its output is sorted by control. The principals' temporary keys are not counted here: a
//! group per control, principal and key made this aggregate, and the sort of its millions of
//! groups, the largest part of a report's memory; [`super::keys`] keeps them instead.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, UInt32Type,
};
use datafusion::catalog::TableProvider;
use datafusion::functions_aggregate::expr_fn::{count, grouping, max, min, sum};
use datafusion::logical_expr::{Expr, GroupingSet, col, lit};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::{Count, TOP, top};
use crate::engine::{self, Extensions};
use crate::error::QueryError;

/// The context [`reduce`] runs in: `session`'s runtime (its memory pool) and settings, in one
/// partition. Split in two, the aggregate's output was sorted by two sorts and merged by a
/// third operator, none of whose merges can spill; in a pool the controls had filled, the
/// first sort's merge took what was left and the final merge failed for lack of memory (seen
/// in reports of a 20M-event trail, and in the test below).
pub fn context(session: &SessionContext) -> Result<SessionContext, QueryError> {
    let config = session.copied_config().with_target_partitions(1);
    engine::context(config, session.runtime_env(), &Extensions::default())
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("c", DataType::UInt32, false),
        Field::new("p", DataType::Utf8, true),
        Field::new("ip", DataType::Utf8, true),
        Field::new("w", DataType::Int64, true),
        Field::new("t0", time.clone(), true),
        Field::new("t1", time, true),
    ]))
});

/// The rows the controls send: control number, principal, source IP, weight, first and last
/// time.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// A principal of a control's findings, with its temporary keys (and when each was last used),
/// which the report adds from [`super::keys`].
#[derive(Debug, Clone, Default)]
pub struct Principal {
    pub principal: String,
    pub count: u64,
    pub keys: Vec<(String, Option<i64>)>,
}

/// One control's rows, reduced.
#[derive(Debug, Clone, Default)]
pub struct Reduced {
    pub rows: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// The [`TOP`] principals by count.
    pub principals: Vec<Principal>,
    pub ips: Vec<Count>,
}

/// Every control's reduction, and the principals and IPs across all of them.
#[derive(Debug, Default)]
pub struct Totals {
    pub controls: Vec<Reduced>,
    pub principals: Vec<Count>,
    pub ips: Vec<Count>,
}

/// A control's reduction while its groups are read.
#[derive(Default)]
struct Acc {
    out: Reduced,
    principals: Vec<(String, u64)>,
    ips: Vec<(String, u64)>,
}

impl Acc {
    fn finish(mut self) -> Reduced {
        self.out.principals = listed(self.principals);
        self.out.ips = top(self.ips);
        self.out
    }
}

fn listed(principals: Vec<(String, u64)>) -> Vec<Principal> {
    top(principals)
        .into_iter()
        .map(|c| Principal {
            principal: c.value,
            count: c.count,
            keys: Vec::new(),
        })
        .collect()
}

/// Adds a value to a list that keeps the [`TOP`] by count (then value) and a margin, so that
/// memory does not grow with the values offered.
fn keep_top(list: &mut Vec<(String, u64)>, value: &str, count: u64) {
    list.push((value.to_string(), count));
    if list.len() >= TOP * 8 {
        *list = top(std::mem::take(list))
            .into_iter()
            .map(|c| (c.value, c.count))
            .collect();
    }
}

/// Reduces the rows of table `rows` (of [`schema`]) sent by `controls` controls.
pub async fn reduce(
    ctx: SessionContext,
    rows: Arc<dyn TableProvider>,
    controls: usize,
) -> Result<Totals, QueryError> {
    let sets = Expr::GroupingSet(GroupingSet::GroupingSets(vec![
        vec![col("c")],
        vec![col("c"), col("p")],
        vec![col("c"), col("ip")],
        vec![col("p")],
        vec![col("ip")],
    ]));
    let frame = ctx
        .read_table(rows)?
        .aggregate(
            vec![sets],
            vec![
                count(lit(1i64)).alias("rows"),
                sum(col("w")).alias("weight"),
                min(col("t0")).alias("first"),
                max(col("t1")).alias("last"),
                grouping(col("c")).alias("gc"),
                grouping(col("p")).alias("gp"),
                grouping(col("ip")).alias("gi"),
            ],
        )?
        .sort(vec![
            col("gc").sort(true, false),
            col("c").sort(true, false),
        ])?;
    let mut totals = Totals {
        controls: vec![Reduced::default(); controls],
        ..Totals::default()
    };
    let (mut principals, mut ips) = (Vec::new(), Vec::new());
    let mut current: Option<(u32, Acc)> = None;
    let finish = |current: &mut Option<(u32, Acc)>, totals: &mut Totals| {
        if let Some((c, acc)) = current.take()
            && let Some(slot) = totals.controls.get_mut(c as usize)
        {
            *slot = acc.finish();
        }
    };
    let mut stream = frame.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let b = Columns::of(&batch?)?;
        for i in 0..b.gc.len() {
            let weight = value(&b.weight, i).unwrap_or(0).max(0) as u64;
            let p = string(&b.p, i);
            if value(&b.gc, i) != Some(0) {
                finish(&mut current, &mut totals);
                if value(&b.gp, i) == Some(0) {
                    if let Some(p) = p {
                        keep_top(&mut principals, p, weight);
                    }
                } else if let Some(ip) = string(&b.ip, i) {
                    keep_top(&mut ips, ip, weight);
                }
                continue;
            }
            let Some(c) = value(&b.c, i) else {
                continue;
            };
            if current.as_ref().is_none_or(|(at, _)| *at != c) {
                finish(&mut current, &mut totals);
                current = Some((c, Acc::default()));
            }
            let Some((_, acc)) = current.as_mut() else {
                continue;
            };
            if value(&b.gp, i) == Some(0) {
                if let Some(p) = p {
                    keep_top(&mut acc.principals, p, weight);
                }
            } else if value(&b.gi, i) == Some(0) {
                if let Some(ip) = string(&b.ip, i) {
                    keep_top(&mut acc.ips, ip, weight);
                }
            } else {
                acc.out.rows = value(&b.rows, i).unwrap_or(0).max(0) as u64;
                acc.out.first = value(&b.first, i);
                acc.out.last = value(&b.last, i);
            }
        }
    }
    finish(&mut current, &mut totals);
    totals.principals = top(principals);
    totals.ips = top(ips);
    Ok(totals)
}

/// The aggregate's columns of one batch, typed once.
struct Columns {
    c: arrow::array::UInt32Array,
    gc: arrow::array::Int64Array,
    gp: arrow::array::Int64Array,
    gi: arrow::array::Int64Array,
    rows: arrow::array::Int64Array,
    weight: arrow::array::Int64Array,
    first: arrow::array::TimestampMicrosecondArray,
    last: arrow::array::TimestampMicrosecondArray,
    p: arrow::array::StringArray,
    ip: arrow::array::StringArray,
}

impl Columns {
    fn of(batch: &RecordBatch) -> Result<Self, QueryError> {
        let column = |name: &str, to: &DataType| -> Result<arrow::array::ArrayRef, QueryError> {
            let c = batch.column_by_name(name).ok_or_else(|| {
                QueryError::Io(std::io::Error::other(format!(
                    "report reduction: no column {name}"
                )))
            })?;
            Ok(cast(c, to)?)
        };
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let int = |name: &str| -> Result<arrow::array::Int64Array, QueryError> {
            Ok(column(name, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
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
            c: column("c", &DataType::UInt32)?
                .as_primitive::<UInt32Type>()
                .clone(),
            gc: int("gc")?,
            gp: int("gp")?,
            gi: int("gi")?,
            rows: int("rows")?,
            weight: int("weight")?,
            first: time("first")?,
            last: time("last")?,
            p: text("p")?,
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

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray, UInt32Array};
    use datafusion::datasource::MemTable;
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::FairSpillPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;

    use super::*;
    use crate::engine::{EngineOptions, MIN_MEMORY};

    /// Rows of `controls` controls, each row its own source IP: 1,800,000 groups by IP (per
    /// control and across), more than the smallest pool holds, so the reduce finishes only by
    /// spilling (the test checks that it cannot without).
    fn rows(controls: u32, per_control: usize) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        for c in 0..controls {
            for chunk in (0..per_control).collect::<Vec<_>>().chunks(8192) {
                let n = chunk.len();
                let columns: Vec<Arc<dyn Array>> = vec![
                    Arc::new(UInt32Array::from(vec![c; n])),
                    Arc::new(StringArray::from_iter_values(
                        chunk
                            .iter()
                            .map(|i| format!("arn:aws:sts::1:assumed-role/r/s{}", i % 5000)),
                    )),
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|i| {
                        format!("10.{c}.{}.{}", i / 256 % 256 + i / 65536 * 1000, i % 256)
                    }))),
                    Arc::new(Int64Array::from(vec![1; n])),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(
                            chunk.iter().map(|i| *i as i64),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(
                            chunk.iter().map(|i| *i as i64),
                        )
                        .with_timezone("UTC"),
                    ),
                ];
                batches.push(RecordBatch::try_new(schema(), columns).expect("batch"));
            }
        }
        batches
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reduces_more_groups_than_the_smallest_pool_holds() {
        let runtime = engine::runtime(EngineOptions { memory: MIN_MEMORY }).expect("runtime");
        let base = engine::context(
            engine::config().expect("config"),
            runtime,
            &Extensions::default(),
        )
        .expect("context");
        let per_control = 300_000;
        let table = MemTable::try_new(schema(), vec![rows(3, per_control)]).expect("table");
        let totals = reduce(context(&base).expect("reduce context"), Arc::new(table), 3)
            .await
            .expect("reduced within the pool, spilling");
        assert_eq!(totals.controls.len(), 3);

        // The same rows, the same pool, nowhere to spill: the reduce runs out of memory, so the
        // run above did spill.
        let no_disk = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(MIN_MEMORY)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .expect("runtime without disk");
        let unspilled = engine::context(
            engine::config().expect("config"),
            no_disk,
            &Extensions::default(),
        )
        .expect("context");
        let table = MemTable::try_new(schema(), vec![rows(3, per_control)]).expect("table");
        let err = reduce(
            context(&unspilled).expect("reduce context"),
            Arc::new(table),
            3,
        )
        .await
        .expect_err("no room without spilling");
        assert!(err.to_string().contains("Resources exhausted"), "{err}");
        for reduced in &totals.controls {
            assert_eq!(reduced.rows, per_control as u64);
            assert_eq!(reduced.first, Some(0));
            assert_eq!(reduced.last, Some(per_control as i64 - 1));
            assert_eq!(reduced.principals.len(), TOP);
            assert_eq!(reduced.ips.len(), TOP);
        }
    }
}
