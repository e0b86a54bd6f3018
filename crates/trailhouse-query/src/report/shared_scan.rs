//! One scan of `cloudtrail` for all of a report's controls.
//!
//! Each control's query picks a few kinds of events out of the window; run one after the other,
//! thirty queries open every file of the window thirty times and decode the same columns thirty
//! times. Instead, the optimized plan of each query tells which rows it can read (the filters
//! DataFusion pushed into its scan of `cloudtrail`) and which columns; one scan reads the rows
//! any of them can read (the OR of those filters) with the columns any of them reads, and each
//! query runs unchanged over those rows, handed to it batch by batch as the scan reads them
//! ([`super::channel`]): nothing holds the rows, however many match. The pushed-down filters are
//! implied by each query's own predicate, so the shared rows are a superset of what each query
//! selects, and the queries apply their full predicates again: the results are the same. A
//! query that reads `cloudtrail` more than once, or narrows it by time alone (a whole-window
//! summary), reads the lake itself.

use std::collections::{BTreeSet, HashMap, HashSet};

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::logical_expr::utils::{conjunction, disjunction, split_conjunction};
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::prelude::DataFrame;
use trailhouse_lake::schema;

use crate::error::QueryError;
use crate::session::Session;

/// Columns that only place a row in time: a scan filtered by these alone reads the whole window.
const TIME_COLUMNS: [&str; 2] = ["eventtime", "day"];

/// The rows several queries share, as one scan of the lake.
pub struct SharedScan {
    frame: DataFrame,
    serves: Vec<bool>,
}

/// One scan of `cloudtrail` in a query's plan: the AND of its pushed-down filters (`None` when
/// they narrow by time only) and the columns it reads.
struct Scan {
    predicate: Option<Expr>,
    columns: BTreeSet<String>,
}

impl SharedScan {
    /// The scan of the rows and columns that `queries` (planned against `session`) read from
    /// `cloudtrail`. `None` when no query can share it.
    pub async fn plan(
        session: &Session,
        queries: &[DataFrame],
    ) -> Result<Option<Self>, QueryError> {
        let state = session.context().state();
        let mut shared: Vec<(Expr, BTreeSet<String>)> = Vec::new();
        let mut serves = Vec::with_capacity(queries.len());
        let mut fields = FieldUse::default();
        for q in queries {
            let plan = state.optimize(q.logical_plan())?;
            let scans = scans(&plan)?;
            match scans.as_slice() {
                [
                    Scan {
                        predicate: Some(p),
                        columns,
                    },
                ] => {
                    fields.add(&plan)?;
                    shared.push((p.clone(), columns.clone()));
                    serves.push(true);
                }
                _ => serves.push(false),
            }
        }
        let Some(filter) = any_of(shared.iter().map(|(p, _)| p)) else {
            return Ok(None);
        };
        let columns: BTreeSet<&str> = shared
            .iter()
            .flat_map(|(_, c)| c.iter().map(String::as_str))
            .collect();
        // A struct column is kept with only the fields the queries name (`useridentity.arn`):
        // the scan decodes those leaves only.
        let columns: Vec<Expr> = columns
            .into_iter()
            .map(|name| {
                let column = col(Column::new_unqualified(name));
                match fields.named.get(name) {
                    Some(names) if !fields.whole.contains(name) => {
                        let args = names
                            .iter()
                            .flat_map(|f| [lit(f.as_str()), get_field(column.clone(), f.as_str())])
                            .collect();
                        named_struct(args).alias(name)
                    }
                    _ => column,
                }
            })
            .collect();
        // The shared filter is the OR of every query's: it lets through a large share of the
        // window's rows (the 2M-event benchmark: 43 %), so it prunes little, and analyzing it
        // for every file and row group took a quarter of a report's time. The scan reads the
        // window without pruning, and the OR is applied to rows as they are decoded: the
        // columns only the queries' results read are decoded (and their text cast from views)
        // for the rows that pass (20M events: report 21.3–21.8 -> 19.7–20.2 s, detect 30.5 ->
        // 28.8 s, detect of the medium and higher rules 9.3 -> 8.3 s; the same documents).
        let ctx = crate::engine::unpruned(session.context(), true);
        let lake = ctx.table_provider(schema::TABLE_NAME).await?;
        let frame = ctx.read_table(lake)?.filter(filter)?.select(columns)?;
        Ok(Some(Self { frame, serves }))
    }

    /// Whether the `i`th query (in the order given to [`SharedScan::plan`]) reads the shared
    /// rows.
    pub fn serves(&self, i: usize) -> bool {
        self.serves.get(i).copied().unwrap_or(false)
    }

    /// How many queries read the shared rows.
    pub fn served(&self) -> usize {
        self.serves.iter().filter(|s| **s).count()
    }

    /// The shared rows' columns.
    pub fn schema(&self) -> SchemaRef {
        self.frame.schema().inner().clone()
    }

    /// Starts the scan.
    pub async fn stream(self) -> Result<SendableRecordBatchStream, QueryError> {
        Ok(self.frame.execute_stream().await?)
    }
}

/// The OR of `predicates`, with the conjuncts they all have (the report's window) taken out of
/// it and ANDed: the scan then sees the window as a filter of its own, which files inside it
/// need not evaluate. `None` when there are no predicates.
fn any_of<'a>(predicates: impl Iterator<Item = &'a Expr>) -> Option<Expr> {
    let split: Vec<Vec<&Expr>> = predicates.map(split_conjunction).collect();
    let (first, others) = split.split_first()?;
    let common: Vec<&Expr> = first
        .iter()
        .copied()
        .filter(|c| others.iter().all(|o| o.contains(c)))
        .collect();
    let rest = split.iter().map(|conjuncts| {
        conjunction(
            conjuncts
                .iter()
                .filter(|c| !common.contains(c))
                .map(|c| (*c).clone()),
        )
    });
    // A predicate that is all common conjuncts lets every row of the common ones through.
    let rest: Option<Vec<Expr>> = rest.collect();
    conjunction(
        common
            .into_iter()
            .cloned()
            .chain(rest.and_then(disjunction)),
    )
}

/// How queries use the struct columns of `cloudtrail`: the first-level fields they name
/// (`get_field(useridentity, 'arn')`), and the columns they also use whole.
#[derive(Default)]
struct FieldUse {
    named: HashMap<String, BTreeSet<String>>,
    whole: HashSet<String>,
}

impl FieldUse {
    fn add(&mut self, plan: &LogicalPlan) -> Result<(), QueryError> {
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|e| {
                e.apply(|e| {
                    if let Expr::ScalarFunction(f) = e
                        && f.name() == "get_field"
                        && let [
                            Expr::Column(c),
                            Expr::Literal(ScalarValue::Utf8(Some(field)), _),
                            ..,
                        ] = f.args.as_slice()
                    {
                        self.named
                            .entry(c.name.clone())
                            .or_default()
                            .insert(field.clone());
                        return Ok(TreeNodeRecursion::Jump);
                    }
                    if let Expr::Column(c) = e {
                        self.whole.insert(c.name.clone());
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        Ok(())
    }
}

/// The scans of `cloudtrail` in an optimized plan (subqueries included).
fn scans(plan: &LogicalPlan) -> Result<Vec<Scan>, QueryError> {
    let mut out = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && scan.table_name.table() == schema::TABLE_NAME
        {
            let source = scan.source.schema();
            let columns = match &scan.projection {
                Some(p) => p.iter().map(|i| source.field(*i).name().clone()).collect(),
                None => source.fields().iter().map(|f| f.name().clone()).collect(),
            };
            let narrows = scan.filters.iter().any(|f| {
                f.column_refs()
                    .iter()
                    .any(|c| !TIME_COLUMNS.contains(&c.name.as_str()))
            });
            let predicate = if narrows {
                let filters = scan
                    .filters
                    .iter()
                    .cloned()
                    .map(unqualify)
                    .collect::<datafusion::common::Result<Vec<_>>>()?;
                conjunction(filters)
            } else {
                None
            };
            out.push(Scan { predicate, columns });
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(out)
}

/// The expression with its columns unqualified (`c.eventname` → `eventname`), to apply to a
/// fresh scan of the table.
fn unqualify(e: Expr) -> datafusion::common::Result<Expr> {
    e.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn the_conjuncts_every_query_has_are_taken_out_of_the_or() {
        let window = col("eventtime")
            .gt_eq(lit(1))
            .and(col("eventtime").lt(lit(9)));
        let a = col("eventname").eq(lit("A"));
        let b = col("eventname").eq(lit("B"));
        let both = [window.clone().and(a.clone()), window.clone().and(b.clone())];
        assert_eq!(
            any_of(both.iter()),
            Some(
                col("eventtime")
                    .gt_eq(lit(1))
                    .and(col("eventtime").lt(lit(9)))
                    .and(a.clone().or(b.clone()))
            )
        );
        // A query that reads the whole window lets every row of it through.
        let one_whole = [window.clone(), window.clone().and(b.clone())];
        assert_eq!(any_of(one_whole.iter()), Some(window.clone()));
        // Nothing in common: the OR as it is.
        let apart = [a.clone(), b.clone()];
        assert_eq!(any_of(apart.iter()), Some(a.or(b)));
        assert_eq!(any_of([].iter()), None);
    }
}
