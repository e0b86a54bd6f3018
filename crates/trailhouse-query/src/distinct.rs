//! `count(DISTINCT x)` next to other counts, planned as a group-by.
//!
//! DataFusion plans `SELECT count(DISTINCT eventid), count(*) FROM cloudtrail` with one
//! accumulator holding every distinct value, per partition and then merged on one thread, in
//! memory it cannot spill: over 20M events that failed for lack of memory. Its own rewrite into a
//! group-by (single_distinct_to_groupby) applies only when the other aggregates are sums, minima
//! and maxima. This rule does the same when they are also counts:
//!
//! ```text
//! SELECT count(DISTINCT x), count(*), sum(y) FROM t
//!   => SELECT count(g), coalesce(sum(c), 0), sum(s)
//!      FROM (SELECT x AS g, count(*) AS c, sum(y) AS s FROM t GROUP BY x)
//! ```
//!
//! The inner aggregate is hash-partitioned across cores and spills beyond the memory pool.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Rewrites `count(DISTINCT x)` beside counts, sums, minima and maxima into a group-by on `x`.
#[derive(Debug, Default)]
pub struct CountDistinctToGroupBy;

/// The group column of the inner aggregate.
const GROUP: &str = "__trailhouse_distinct";

impl OptimizerRule for CountDistinctToGroupBy {
    fn name(&self) -> &str {
        "count_distinct_to_group_by"
    }
    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }
    fn supports_rewrite(&self) -> bool {
        true
    }
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        match rewrite(&aggregate)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))),
        }
    }
}

/// What each aggregate becomes: its part of the inner aggregate (if any) and how the outer one
/// combines it.
enum Part {
    Distinct { func: &'static str },
    Count,
    Sum,
    Min,
    Max,
}

fn rewrite(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    if !aggregate.group_expr.is_empty() {
        return Ok(None);
    }
    let mut distinct_arg: Option<&Expr> = None;
    let mut parts = Vec::with_capacity(aggregate.aggr_expr.len());
    let mut counts = 0;
    for e in &aggregate.aggr_expr {
        let (inner, _) = unalias(e);
        let Expr::AggregateFunction(AggregateFunction {
            func,
            params:
                AggregateFunctionParams {
                    distinct,
                    args,
                    filter: None,
                    order_by,
                    null_treatment: _,
                },
        }) = inner
        else {
            return Ok(None);
        };
        if !order_by.is_empty() {
            return Ok(None);
        }
        let name = func.name().to_lowercase();
        let part = match (name.as_str(), *distinct, args.as_slice()) {
            ("count", true, [arg]) | ("sum", true, [arg]) => {
                if distinct_arg.is_some_and(|d| d != arg) {
                    return Ok(None);
                }
                distinct_arg = Some(arg);
                Part::Distinct {
                    func: if name == "count" { "count" } else { "sum" },
                }
            }
            ("count", false, [_]) => {
                counts += 1;
                Part::Count
            }
            ("sum", false, [_]) => Part::Sum,
            ("min", false, [_]) => Part::Min,
            ("max", false, [_]) => Part::Max,
            _ => return Ok(None),
        };
        parts.push((part, args.first().cloned()));
    }
    // Without a count beside it, DataFusion's own rewrite applies.
    let Some(distinct_arg) = distinct_arg else {
        return Ok(None);
    };
    if counts == 0 {
        return Ok(None);
    }
    let mut inner_aggregates = Vec::new();
    let mut outer = Vec::new();
    for (i, (part, arg)) in parts.iter().enumerate() {
        let name = format!("__trailhouse_part_{i}");
        let arg = arg.clone().unwrap_or_else(|| lit(ScalarValue::Null));
        let combined = match part {
            Part::Distinct { func: "count" } => count(col(GROUP)),
            Part::Distinct { .. } => sum(col(GROUP)),
            Part::Count => {
                inner_aggregates.push(count(arg).alias(&name));
                coalesce(vec![sum(col(&name)), lit(0i64)])
            }
            Part::Sum => {
                inner_aggregates.push(sum(arg).alias(&name));
                sum(col(&name))
            }
            Part::Min => {
                inner_aggregates.push(min(arg).alias(&name));
                min(col(&name))
            }
            Part::Max => {
                inner_aggregates.push(max(arg).alias(&name));
                max(col(&name))
            }
        };
        outer.push(combined);
    }
    let grouped = LogicalPlanBuilder::from(aggregate.input.as_ref().clone())
        .aggregate(vec![distinct_arg.clone().alias(GROUP)], inner_aggregates)?
        .build()?;
    let (outer_aggregates, names): (Vec<Expr>, Vec<String>) = outer
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let name = format!("__trailhouse_total_{i}");
            (e.alias(&name), name)
        })
        .unzip();
    let combined = LogicalPlanBuilder::from(grouped)
        .aggregate(Vec::<Expr>::new(), outer_aggregates)?
        .build()?;
    // The columns keep the names (and so the meaning) the plan above reads.
    let projection: Vec<Expr> = names
        .iter()
        .zip(aggregate.schema.columns())
        .map(|(name, original)| {
            col(name.as_str()).alias_qualified(original.relation, original.name)
        })
        .collect();
    Ok(Some(
        LogicalPlanBuilder::from(combined)
            .project(projection)?
            .build()?,
    ))
}

fn unalias(e: &Expr) -> (&Expr, Option<&str>) {
    match e {
        Expr::Alias(a) => (a.expr.as_ref(), Some(a.name.as_str())),
        other => (other, None),
    }
}

/// The rule, for registration.
pub fn rule() -> Arc<dyn OptimizerRule + Send + Sync> {
    Arc::new(CountDistinctToGroupBy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    async fn answer(
        with_rule: bool,
        rows: (Vec<Option<&str>>, Vec<Option<i64>>),
    ) -> (String, String) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Utf8, true),
            Field::new("y", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(rows.0)),
                Arc::new(Int64Array::from(rows.1)),
            ],
        )
        .expect("batch");
        let mut state = SessionStateBuilder::new().with_default_features();
        if with_rule {
            state = state.with_optimizer_rule(rule());
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
        )
        .expect("register");
        let sql = "SELECT count(DISTINCT x) AS ids, count(*) AS n, count(x) AS xs, sum(y) AS s, \
                   min(y) AS lo, max(y) AS hi FROM t";
        let plan = ctx
            .sql(&format!("EXPLAIN {sql}"))
            .await
            .expect("plan")
            .collect()
            .await
            .expect("explain");
        let rows = ctx
            .sql(sql)
            .await
            .expect("sql")
            .collect()
            .await
            .expect("rows");
        (
            arrow::util::pretty::pretty_format_batches(&plan)
                .expect("format")
                .to_string(),
            arrow::util::pretty::pretty_format_batches(&rows)
                .expect("format")
                .to_string(),
        )
    }

    #[tokio::test]
    async fn count_distinct_beside_counts_is_a_group_by_with_the_same_answer() {
        let data = || {
            (
                vec![Some("a"), Some("a"), Some("b"), None, Some("c")],
                vec![Some(1), Some(2), None, Some(4), Some(8)],
            )
        };
        let (plan, ours) = answer(true, data()).await;
        let (theirs_plan, theirs) = answer(false, data()).await;
        assert!(plan.contains("__trailhouse_distinct"), "{plan}");
        assert!(
            !theirs_plan.contains("__trailhouse_distinct"),
            "{theirs_plan}"
        );
        assert_eq!(ours, theirs);
        assert!(ours.contains("| 3   | 5 | 4  | 15 | 1  | 8  |"), "{ours}");
        // No rows: counts are 0, the rest null, as without the rewrite.
        let (_, ours) = answer(true, (vec![], vec![])).await;
        let (_, theirs) = answer(false, (vec![], vec![])).await;
        assert_eq!(ours, theirs);
    }
}
