//! `count(DISTINCT x)` next to other counts, or beside `count(DISTINCT y)`, planned as
//! group-bys.
//!
//! DataFusion plans `SELECT count(DISTINCT eventid), count(*) FROM cloudtrail` with one
//! accumulator holding every distinct value, per partition and then merged on one thread, in
//! memory it cannot spill: over 20M events that failed for lack of memory. Its own rewrite into a
//! group-by (single_distinct_to_groupby) applies only when the other aggregates are sums, minima
//! and maxima of one distinct argument. This rule does the same when they are also counts:
//!
//! ```text
//! SELECT count(DISTINCT x), count(*), sum(y) FROM t
//!   => SELECT count(g), coalesce(sum(c), 0), sum(s)
//!      FROM (SELECT x AS g, count(*) AS c, sum(y) AS s FROM t GROUP BY x)
//! ```
//!
//! and, for several distinct arguments, groups by each in a branch of its own over the same
//! input, the branches joined on the query's group keys (side by side without any):
//!
//! ```text
//! SELECT k, count(DISTINCT x), count(DISTINCT y) FROM t GROUP BY k
//!   => SELECT a.k, a.n, b.n
//!      FROM (SELECT k, count(g) AS n FROM (SELECT k, x AS g FROM t GROUP BY k, x) GROUP BY k) a
//!      JOIN (SELECT k, count(g) AS n FROM (SELECT k, y AS g FROM t GROUP BY k, y) GROUP BY k) b
//!        ON a.k IS NOT DISTINCT FROM b.k
//! ```
//!
//! The inner aggregates are hash-partitioned across cores and spill beyond the memory pool; each
//! branch reads only the columns it needs.
//!
//! Without group keys, a count of the distinct values of a string is a [`CountDistinct`] of its
//! own (16 bytes a value where it can, sorted runs), beside one aggregate of the other
//! aggregates:
//!
//! ```text
//! SELECT count(DISTINCT x), count(*) FROM t
//!   => SELECT d.n, a.c FROM CountDistinct(SELECT x FROM t) d CROSS JOIN (SELECT count(*) AS c FROM t) a
//! ```
//!
//! as is DataFusion's own rewrite of a lone `count(DISTINCT x)` (`SELECT count(g) FROM (SELECT x
//! AS g FROM t GROUP BY x)`), which this rule finds after it.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{NullEquality, Result, ScalarValue};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum as sum_of};
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, JoinType, LogicalPlan, LogicalPlanBuilder, col, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::count_distinct::{self, CountDistinct};

/// Rewrites `count(DISTINCT x)` beside counts, sums, minima and maxima into a group-by on `x`,
/// or, without group keys and `x` a string, into a [`CountDistinct`] of `x`.
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
        if let Some(rewritten) = grouped_count(&aggregate)? {
            return Ok(Transformed::yes(rewritten));
        }
        match rewrite(&aggregate)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))),
        }
    }
}

/// What each aggregate becomes: its part of an inner aggregate (if any) and how the outer one
/// combines it.
enum Part {
    /// `count(DISTINCT x)` or `sum(DISTINCT x)`, `x` the branch's distinct argument.
    Distinct {
        branch: usize,
        sum: bool,
    },
    Count,
    Sum,
    Min,
    Max,
}

/// The name of the `j`th group key in branch `branch` (each branch's keys are its own columns
/// in the join of the branches).
fn key_name(branch: usize, j: usize) -> String {
    format!("__trailhouse_key_{branch}_{j}")
}

fn rewrite(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    if matches!(aggregate.group_expr.first(), Some(Expr::GroupingSet(_))) {
        return Ok(None);
    }
    let mut distinct_args: Vec<&Expr> = Vec::new();
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
                let branch = match distinct_args.iter().position(|d| *d == arg) {
                    Some(branch) => branch,
                    None => {
                        distinct_args.push(arg);
                        distinct_args.len() - 1
                    }
                };
                Part::Distinct {
                    branch,
                    sum: name == "sum",
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
    match distinct_args.len() {
        0 => return Ok(None),
        // One distinct argument without a count beside it: DataFusion's own rewrite applies.
        1 if counts == 0 => return Ok(None),
        1 => {}
        // Each distinct argument is grouped by in a branch of its own, over the same input:
        // input that is not the same when read twice keeps DataFusion's plan.
        _ if is_volatile(&aggregate.input)? => return Ok(None),
        _ => {}
    }
    let keys = aggregate.group_expr.len();
    if keys == 0
        && let Some(counted) = counted_apart(aggregate, &parts, &distinct_args)?
    {
        return Ok(Some(counted));
    }
    let mut totals: Vec<Option<String>> = vec![None; parts.len()];
    let mut branches = Vec::with_capacity(distinct_args.len());
    for (branch, distinct_arg) in distinct_args.iter().enumerate() {
        let mut inner_groups: Vec<Expr> = aggregate
            .group_expr
            .iter()
            .enumerate()
            .map(|(j, e)| e.clone().alias(key_name(branch, j)))
            .collect();
        inner_groups.push((*distinct_arg).clone().alias(GROUP));
        let mut inner_aggregates = Vec::new();
        let mut outer = Vec::new();
        for (i, (part, arg)) in parts.iter().enumerate() {
            let name = format!("__trailhouse_part_{i}");
            let arg = arg.clone().unwrap_or_else(|| lit(ScalarValue::Null));
            // The other aggregates are taken along by the first branch.
            let combined = match part {
                Part::Distinct { branch: b, sum } if *b == branch => {
                    if *sum {
                        sum_of(col(GROUP))
                    } else {
                        count(col(GROUP))
                    }
                }
                Part::Distinct { .. } => continue,
                _ if branch != 0 => continue,
                Part::Count => {
                    inner_aggregates.push(count(arg).alias(&name));
                    coalesce(vec![sum_of(col(&name)), lit(0i64)])
                }
                Part::Sum => {
                    inner_aggregates.push(sum_of(arg).alias(&name));
                    sum_of(col(&name))
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
            let total = format!("__trailhouse_total_{i}");
            outer.push(combined.alias(&total));
            totals[i] = Some(total);
        }
        let outer_groups: Vec<Expr> = (0..keys).map(|j| col(key_name(branch, j))).collect();
        branches.push(
            LogicalPlanBuilder::from(aggregate.input.as_ref().clone())
                .aggregate(inner_groups, inner_aggregates)?
                .aggregate(outer_groups, outer)?
                .build()?,
        );
    }
    // The branches hold the same groups (every input row is in one group of each): joined on
    // their keys, a null key meeting a null key, or side by side when there is one row each.
    let mut branches = branches.into_iter();
    let Some(first) = branches.next() else {
        return Ok(None);
    };
    let mut joined = LogicalPlanBuilder::from(first);
    for (branch, next) in branches.enumerate().map(|(i, b)| (i + 1, b)) {
        joined = if keys == 0 {
            joined.cross_join(next)?
        } else {
            joined.join_detailed(
                next,
                JoinType::Inner,
                (
                    (0..keys).map(|j| key_name(0, j)).collect::<Vec<_>>(),
                    (0..keys).map(|j| key_name(branch, j)).collect::<Vec<_>>(),
                ),
                None,
                NullEquality::NullEqualsNull,
            )?
        };
    }
    // The columns keep the names (and so the meaning) the plan above reads: the group keys,
    // then the aggregates.
    let names = (0..keys).map(|j| Some(key_name(0, j))).chain(totals);
    renamed(joined, names, aggregate)
}

/// `plan` with the columns `names` under the names of `aggregate`'s output, in its order;
/// `None` when a name is missing.
fn renamed(
    plan: LogicalPlanBuilder,
    names: impl Iterator<Item = Option<String>>,
    aggregate: &Aggregate,
) -> Result<Option<LogicalPlan>> {
    let Some(names) = names.collect::<Option<Vec<String>>>() else {
        return Ok(None);
    };
    let projection: Vec<Expr> = names
        .iter()
        .zip(aggregate.schema.columns())
        .map(|(name, original)| {
            col(name.as_str()).alias_qualified(original.relation, original.name)
        })
        .collect();
    Ok(Some(plan.project(projection)?.build()?))
}

/// Without group keys, when every distinct part counts a string: each distinct argument
/// counted by a [`CountDistinct`], the other parts by one aggregate, side by side.
fn counted_apart(
    aggregate: &Aggregate,
    parts: &[(Part, Option<Expr>)],
    distinct_args: &[&Expr],
) -> Result<Option<LogicalPlan>> {
    let input = aggregate.input.as_ref();
    for (part, _) in parts {
        if matches!(part, Part::Distinct { sum: true, .. }) {
            return Ok(None);
        }
    }
    for arg in distinct_args {
        if !count_distinct::counts(&arg.get_type(input.schema())?) {
            return Ok(None);
        }
    }
    let others: Vec<Expr> = parts
        .iter()
        .zip(&aggregate.aggr_expr)
        .enumerate()
        .filter(|(_, ((part, _), _))| !matches!(part, Part::Distinct { .. }))
        .map(|(i, (_, e))| {
            unalias(e)
                .0
                .clone()
                .alias(format!("__trailhouse_total_{i}"))
        })
        .collect();
    let reads = distinct_args.len() + usize::from(!others.is_empty());
    if reads > 1 && is_volatile(input)? {
        return Ok(None);
    }
    let mut branches = Vec::with_capacity(reads);
    for (branch, arg) in distinct_args.iter().enumerate() {
        let values = LogicalPlanBuilder::from(input.clone())
            .project(vec![(*arg).clone().alias(GROUP)])?
            .build()?;
        branches.push(CountDistinct::new(values, &distinct_name(branch))?.plan());
    }
    if !others.is_empty() {
        branches.push(
            LogicalPlanBuilder::from(input.clone())
                .aggregate(Vec::<Expr>::new(), others)?
                .build()?,
        );
    }
    let mut branches = branches.into_iter();
    let Some(first) = branches.next() else {
        return Ok(None);
    };
    let mut joined = LogicalPlanBuilder::from(first);
    for next in branches {
        joined = joined.cross_join(next)?;
    }
    let names = parts.iter().enumerate().map(|(i, (part, _))| match part {
        Part::Distinct { branch, .. } => Some(distinct_name(*branch)),
        _ => Some(format!("__trailhouse_total_{i}")),
    });
    renamed(joined, names, aggregate)
}

/// The column of the `branch`th distinct argument's count.
fn distinct_name(branch: usize) -> String {
    format!("__trailhouse_distinct_{branch}")
}

/// DataFusion's plan of a lone `count(DISTINCT x)`, counts of the one group key of a group-by
/// without aggregates, as a [`CountDistinct`] of `x` when `x` is a string.
fn grouped_count(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Aggregate(inner) = aggregate.input.as_ref() else {
        return Ok(None);
    };
    let ([key], [], true, false) = (
        inner.group_expr.as_slice(),
        inner.aggr_expr.as_slice(),
        aggregate.group_expr.is_empty(),
        aggregate.aggr_expr.is_empty(),
    ) else {
        return Ok(None);
    };
    if matches!(key, Expr::GroupingSet(_)) {
        return Ok(None);
    }
    let Some(grouped) = inner.schema.columns().into_iter().next() else {
        return Ok(None);
    };
    for e in &aggregate.aggr_expr {
        let Expr::AggregateFunction(AggregateFunction {
            func,
            params:
                AggregateFunctionParams {
                    distinct: false,
                    args,
                    filter: None,
                    order_by,
                    null_treatment: _,
                },
        }) = unalias(e).0
        else {
            return Ok(None);
        };
        let counts_the_key = matches!(args.as_slice(), [Expr::Column(c)] if *c == grouped);
        if !func.name().eq_ignore_ascii_case("count") || !order_by.is_empty() || !counts_the_key {
            return Ok(None);
        }
    }
    let (value, _) = unalias(key);
    if !count_distinct::counts(&value.get_type(inner.input.schema())?) {
        return Ok(None);
    }
    let values = LogicalPlanBuilder::from(inner.input.as_ref().clone())
        .project(vec![value.clone().alias(GROUP)])?
        .build()?;
    let counted = CountDistinct::new(values, &distinct_name(0))?.plan();
    let names = aggregate.aggr_expr.iter().map(|_| Some(distinct_name(0)));
    renamed(LogicalPlanBuilder::from(counted), names, aggregate)
}

/// Whether `plan` computes anything that may differ from one reading to the next.
fn is_volatile(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| {
        let mut volatile = false;
        node.apply_expressions(|e| {
            volatile |= e.is_volatile();
            Ok(if volatile {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        Ok(volatile)
    })
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

    /// The plan and the answer of `sql` over `t (k, x, y)`, with the rule or without it.
    async fn answer(
        with_rule: bool,
        rows: (Vec<Option<&str>>, Vec<Option<i64>>),
        sql: &str,
    ) -> (String, String) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("x", DataType::Utf8, true),
            Field::new("y", DataType::Int64, true),
        ]));
        let keys: Vec<Option<&str>> = (0..rows.0.len())
            .map(|i| [Some("p"), None, Some("q")][i % 3])
            .collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(StringArray::from(rows.0)),
                Arc::new(Int64Array::from(rows.1)),
            ],
        )
        .expect("batch");
        let mut state = SessionStateBuilder::new().with_default_features();
        if with_rule {
            state = state
                .with_optimizer_rule(rule())
                .with_query_planner(crate::engine::query_planner(&[]));
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
        )
        .expect("register");
        let plan = crate::test_support::explained(&ctx, sql).await;
        let rows = ctx
            .sql(sql)
            .await
            .expect("sql")
            .collect()
            .await
            .expect("rows");
        (
            plan,
            arrow::util::pretty::pretty_format_batches(&rows)
                .expect("format")
                .to_string(),
        )
    }

    fn data() -> (Vec<Option<&'static str>>, Vec<Option<i64>>) {
        (
            vec![Some("a"), Some("a"), Some("b"), None, Some("c"), Some("b")],
            vec![Some(1), Some(2), None, Some(4), Some(8), Some(1)],
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
        let sql = "SELECT count(DISTINCT x) AS ids, count(*) AS n, count(x) AS xs, sum(y) AS s, \
                   min(y) AS lo, max(y) AS hi FROM t";
        let (plan, ours) = answer(true, data(), sql).await;
        let (theirs_plan, theirs) = answer(false, data(), sql).await;
        // A string without group keys: counted apart, the other aggregates beside it.
        assert!(plan.contains("CountDistinctExec"), "{plan}");
        assert!(!theirs_plan.contains("CountDistinct"), "{theirs_plan}");
        assert_eq!(ours, theirs);
        assert!(ours.contains("| 3   | 5 | 4  | 15 | 1  | 8  |"), "{ours}");
        // No rows: counts are 0, the rest null, as without the rewrite.
        let (_, ours) = answer(true, (vec![], vec![]), sql).await;
        let (_, theirs) = answer(false, (vec![], vec![]), sql).await;
        assert_eq!(ours, theirs);
    }

    #[tokio::test]
    async fn several_distinct_arguments_or_groups_are_group_bys_with_the_same_answer() {
        for sql in [
            "SELECT count(DISTINCT x) AS xs, count(DISTINCT y) AS ys, sum(DISTINCT y) AS sy, \
             count(*) AS n, min(y) AS lo FROM t",
            // Group keys, a null one among them: each group once, with its own counts.
            "SELECT k, count(DISTINCT x) AS xs, count(DISTINCT y) AS ys, count(y) AS n \
             FROM t GROUP BY k ORDER BY k NULLS FIRST",
            // One distinct argument beside a count, grouped (DataFusion's rewrite takes sums,
            // minima and maxima only).
            "SELECT k, count(DISTINCT x) AS xs, count(*) AS n, max(y) AS hi \
             FROM t GROUP BY k ORDER BY k NULLS FIRST",
            // The same distinct argument twice is one branch.
            "SELECT count(DISTINCT x) AS a, count(DISTINCT x) + 1 AS b, count(DISTINCT y) AS c \
             FROM t",
        ] {
            let (plan, ours) = answer(true, data(), sql).await;
            let (theirs_plan, theirs) = answer(false, data(), sql).await;
            assert!(plan.contains("__trailhouse_distinct"), "{plan}");
            assert!(
                !theirs_plan.contains("__trailhouse_distinct"),
                "{theirs_plan}"
            );
            assert_eq!(ours, theirs, "{sql}");
            let (_, ours) = answer(true, (vec![], vec![]), sql).await;
            let (_, theirs) = answer(false, (vec![], vec![]), sql).await;
            assert_eq!(ours, theirs, "{sql}: no rows");
        }
        let (_, grouped) = answer(
            true,
            data(),
            "SELECT k, count(DISTINCT x) AS xs, \
            count(DISTINCT y) AS ys FROM t GROUP BY k ORDER BY k NULLS FIRST",
        )
        .await;
        // k cycles p, null, q over the six rows: the null group holds x a and c, y 2 and 8.
        assert!(grouped.contains("|   | 2  | 2  |"), "{grouped}");
        // Grouped, or of a number: group-bys, not counted apart.
        let (plan, _) = answer(
            true,
            data(),
            "SELECT k, count(DISTINCT x), count(*) FROM t GROUP BY k",
        )
        .await;
        assert!(!plan.contains("CountDistinct"), "{plan}");
        let (plan, _) = answer(true, data(), "SELECT count(DISTINCT y), count(*) FROM t").await;
        assert!(!plan.contains("CountDistinct"), "{plan}");
        // Input read twice must be the same input: random() keeps DataFusion's plan.
        let (plan, _) = answer(
            true,
            data(),
            "SELECT count(DISTINCT x), count(DISTINCT y) \
            FROM (SELECT x, y FROM t WHERE random() < 2.0)",
        )
        .await;
        assert!(!plan.contains("__trailhouse_distinct"), "{plan}");
    }

    #[tokio::test]
    async fn strings_counted_without_group_keys_are_counted_apart_with_the_same_answer() {
        for sql in [
            // DataFusion's own rewrite of a lone count, found after it.
            "SELECT count(DISTINCT x) AS xs FROM t",
            "SELECT count(DISTINCT x) AS a, count(DISTINCT x) AS b FROM t",
            // Two strings: two counts side by side; a number beside them: an aggregate of it.
            "SELECT count(DISTINCT x) AS xs, count(DISTINCT k) AS ks FROM t",
            "SELECT count(DISTINCT x) AS xs, count(DISTINCT k) AS ks, count(DISTINCT y) AS ys, \
             max(y) AS hi FROM t",
            "SELECT count(DISTINCT upper(x)) AS xs, count(*) AS n FROM t WHERE y > 1",
        ] {
            let (plan, ours) = answer(true, data(), sql).await;
            let (_, theirs) = answer(false, data(), sql).await;
            assert!(plan.contains("CountDistinctExec"), "{sql}: {plan}");
            assert_eq!(ours, theirs, "{sql}");
            let (_, ours) = answer(true, (vec![], vec![]), sql).await;
            let (_, theirs) = answer(false, (vec![], vec![]), sql).await;
            assert_eq!(ours, theirs, "{sql}: no rows");
        }
        let (_, counted) = answer(
            true,
            data(),
            "SELECT count(DISTINCT x) AS xs, count(DISTINCT k) AS ks FROM t",
        )
        .await;
        // x holds a, b and c (and a null); k cycles p, null, q.
        assert!(counted.contains("| 3  | 2  |"), "{counted}");
    }
}
