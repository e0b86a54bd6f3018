//! One scan of `cloudtrail` for all of a report's controls.
//!
//! Each control's query picks a few kinds of events out of the window; run one after the other,
//! thirty queries open every file of the window thirty times and decode the same columns thirty
//! times. Instead, the optimized plan of each query tells which rows it can read (the filters
//! DataFusion pushed into its scans of `cloudtrail`) and which columns; one scan reads the rows
//! any of them can read (the OR of those filters) with the columns any of them reads, and each
//! query then runs unchanged against those rows. The pushed-down filters are implied by each
//! query's own predicate, so the shared rows are a superset of what each query selects, and the
//! queries apply their full predicates again: the results are the same.
//!
//! The rows come in chunks of at most the memory budget. When the first chunk holds them all,
//! every query reads it. Otherwise the queries that look at one row at a time (filter, project,
//! sort: their results over the chunks add up to their result over the whole) read each chunk
//! in turn, and the others (aggregates, joins) read the lake themselves. A query whose scans
//! narrow the table by time alone (a whole-window summary) always reads the lake.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::logical_expr::utils::{conjunction, disjunction};
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use trailhouse_lake::schema;

use crate::error::QueryError;
use crate::session::Session;

/// Columns that only place a row in time: a scan filtered by these alone reads the whole window.
const TIME_COLUMNS: [&str; 2] = ["eventtime", "day"];

/// The rows several queries share, read once in chunks.
pub struct SharedScan {
    session: Session,
    stream: Option<SendableRecordBatchStream>,
    /// A batch read past the end of the last chunk, the start of the next.
    carry: Option<RecordBatch>,
    budget: usize,
    partitions: usize,
    serves: Vec<bool>,
    row_level: Vec<bool>,
    /// Rows, bytes (Arrow memory) and chunks read so far.
    pub rows: usize,
    pub bytes: usize,
    pub chunks: usize,
}

/// One scan of `cloudtrail` in a query's plan: the AND of its pushed-down filters (`None` when
/// they narrow by time only) and the columns it reads.
struct Scan {
    predicate: Option<Expr>,
    columns: BTreeSet<String>,
}

impl SharedScan {
    /// Starts the scan of the rows and columns that `queries` (planned against `session`) read
    /// from `cloudtrail`. `None` when no query narrows the table.
    pub async fn start(
        session: &Session,
        queries: &[DataFrame],
        budget: usize,
    ) -> Result<Option<Self>, QueryError> {
        let state = session.context().state();
        let mut shared: Vec<(Expr, BTreeSet<String>)> = Vec::new();
        let mut serves = Vec::with_capacity(queries.len());
        let mut row_level = Vec::with_capacity(queries.len());
        let mut fields = FieldUse::default();
        for q in queries {
            let plan = state.optimize(q.logical_plan())?;
            row_level.push(is_row_level(&plan));
            fields.add(&plan)?;
            let narrowed: Option<Vec<(Expr, BTreeSet<String>)>> = scans(&plan)?
                .into_iter()
                .map(|s| s.predicate.map(|p| (p, s.columns)))
                .collect();
            match narrowed {
                Some(n) if !n.is_empty() => {
                    shared.extend(n);
                    serves.push(true);
                }
                _ => serves.push(false),
            }
        }
        let Some(filter) = disjunction(shared.iter().map(|(p, _)| p.clone())) else {
            return Ok(None);
        };
        let columns: BTreeSet<&str> = shared
            .iter()
            .flat_map(|(_, c)| c.iter().map(String::as_str))
            .collect();
        // A struct column is kept with only the fields the queries name (`useridentity.arn`):
        // the scan decodes those leaves only, and the chunks are smaller.
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
        let lake = session.context().table_provider(schema::TABLE_NAME).await?;
        let stream = session
            .context()
            .read_table(lake)?
            .filter(filter)?
            .select(columns)?
            .execute_stream()
            .await?;
        let partitions = session.context().copied_config().target_partitions().max(1);
        Ok(Some(Self {
            session: session
                .with_cloudtrail(Arc::new(MemTable::try_new(
                    stream.schema(),
                    vec![Vec::new()],
                )?))
                .await?,
            stream: Some(stream),
            carry: None,
            budget: budget.max(1),
            partitions,
            serves,
            row_level,
            rows: 0,
            bytes: 0,
            chunks: 0,
        }))
    }

    /// Reads the next chunk (at most the budget, or one batch when a batch alone is larger)
    /// into [`session`](Self::session)'s `cloudtrail`; `false` after the last.
    pub async fn next_chunk(&mut self) -> Result<bool, QueryError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let schema = stream.schema();
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.partitions];
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut add = |batch: RecordBatch, n: &mut usize, bytes: &mut usize| {
            *bytes += batch.get_array_memory_size();
            self.rows += batch.num_rows();
            parts[*n % self.partitions].push(batch);
            *n += 1;
        };
        if let Some(b) = self.carry.take() {
            add(b, &mut n, &mut bytes);
        }
        loop {
            match stream.next().await {
                None => {
                    self.stream = None;
                    break;
                }
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    if n > 0 && bytes + batch.get_array_memory_size() > self.budget {
                        self.carry = Some(batch);
                        break;
                    }
                    add(batch, &mut n, &mut bytes);
                }
            }
        }
        if n == 0 && self.chunks > 0 {
            return Ok(false);
        }
        self.chunks += 1;
        self.bytes += bytes;
        let table = MemTable::try_new(schema, parts)?;
        self.session = self.session.with_cloudtrail(Arc::new(table)).await?;
        Ok(true)
    }

    /// The session whose `cloudtrail` is the current chunk.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether every shared row has been read (after a chunk: whether it was the last).
    pub fn finished(&self) -> bool {
        self.stream.is_none() && self.carry.is_none()
    }

    /// Whether the `i`th query (in the order given to `start`) reads the shared rows.
    pub fn serves(&self, i: usize) -> bool {
        self.serves.get(i).copied().unwrap_or(false)
    }

    /// Whether the `i`th query's result over the chunks adds up to its result over all rows.
    pub fn row_level(&self, i: usize) -> bool {
        self.row_level.get(i).copied().unwrap_or(false)
    }
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

/// Whether a plan looks at one row at a time: one scan of `cloudtrail` under filters,
/// projections and a sort (no limit, aggregate, join, window or distinct).
fn is_row_level(plan: &LogicalPlan) -> bool {
    let mut scans = 0;
    let mut other = false;
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(s) if s.table_name.table() == schema::TABLE_NAME => scans += 1,
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            }
            LogicalPlan::Sort(s) if s.fetch.is_none() => {}
            _ => other = true,
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans == 1 && !other
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
