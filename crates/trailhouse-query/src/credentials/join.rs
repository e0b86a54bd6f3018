//! Joins on `credentials.minted_key` planned as lookups: for each batch of the other side, the
//! keys it holds are looked up ([`super::lookup`]), instead of the whole table being built and
//! hashed. `LEFT JOIN credentials c ON c.minted_key = h.useridentity.accesskeyid` then costs what
//! the rows of `h` ask for.
//!
//! [`LookupJoinRule`] runs after DataFusion's optimizer rules and replaces an inner, left or right
//! equi-join whose one side is a plain scan of `credentials` (under an alias and filters) and
//! whose keys include its `minted_key` with a [`LookupJoin`] node over the other side. Everything
//! else the join asked of a match (its filter, the other key pairs, the filters on the
//! credentials side) stays a condition checked on each joined row, so the result is the join's.
//! A bound of the join condition on `c.eventtime` by the other side's columns (`c.eventtime
//! BETWEEN h.eventtime - INTERVAL '36 hours' AND h.eventtime`) narrows each lookup to those times.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{cast, filter_record_batch, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session as CatalogSession;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, DataFusionError, JoinType, Result};
use datafusion::datasource::source_as_provider;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::Between;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Join, LogicalPlan, Operator, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use super::lookup::{Lookup, Want, batch_of};
use super::{CredentialsTable, SCHEMA};

/// Replaces joins on `credentials.minted_key` with [`LookupJoin`]s.
#[derive(Debug, Default)]
pub struct LookupJoinRule;

impl OptimizerRule for LookupJoinRule {
    fn name(&self) -> &str {
        "credentials_lookup_join"
    }
    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }
    fn supports_rewrite(&self) -> bool {
        true
    }
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = plan else {
            return Ok(Transformed::no(plan));
        };
        match LookupJoin::try_from_join(&join)? {
            Some(node) => Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            }))),
            None => Ok(Transformed::no(LogicalPlan::Join(join))),
        }
    }
}

/// A join of `input` with `credentials` on `minted_key = key`, as lookups.
#[derive(Debug, Clone)]
pub struct LookupJoin {
    pub(crate) input: LogicalPlan,
    /// The key, over `input`.
    pub(crate) key: Expr,
    /// Bounds of the minting time the condition sets by `input`'s columns, over `input`.
    pub(crate) lo: Option<Expr>,
    pub(crate) hi: Option<Expr>,
    /// What a match must also satisfy, over the output.
    pub(crate) condition: Option<Expr>,
    /// `Inner` or `Left` (rows of `input` without a match kept, with nulls).
    pub(crate) join_type: JoinType,
    /// Whether the credentials' columns come first in the output.
    pub(crate) credentials_first: bool,
    /// The credentials' columns in the output, as indices of the table's columns.
    pub(crate) projection: Vec<usize>,
    pub(crate) schema: DFSchemaRef,
    pub(crate) lookup: Arc<Lookup>,
}

/// The comparable part of a node (the lookup is the session's, the same for every node).
type Key<'a> = (
    &'a LogicalPlan,
    &'a Expr,
    &'a Option<Expr>,
    &'a Option<Expr>,
    &'a Option<Expr>,
    bool,
    bool,
    &'a Vec<usize>,
);

impl LookupJoin {
    fn key(&self) -> Key<'_> {
        (
            &self.input,
            &self.key,
            &self.lo,
            &self.hi,
            &self.condition,
            self.join_type == JoinType::Left,
            self.credentials_first,
            &self.projection,
        )
    }

    /// The lookup join `join` can be, if it is one.
    fn try_from_join(join: &Join) -> Result<Option<Self>> {
        if join.null_aware {
            return Ok(None);
        }
        for credentials_left in [false, true] {
            let (side, other) = if credentials_left {
                (&join.left, &join.right)
            } else {
                (&join.right, &join.left)
            };
            let join_type = match (join.join_type, credentials_left) {
                (JoinType::Inner, _) => JoinType::Inner,
                (JoinType::Left, false) | (JoinType::Right, true) => JoinType::Left,
                _ => continue,
            };
            let Some((lookup, predicates)) = credentials_scan(side)? else {
                continue;
            };
            let side_schema = side.schema();
            // Filters under the alias name the table (`credentials.hops`); the join's output
            // names the side (`c.hops`).
            let predicates = predicates
                .into_iter()
                .map(|p| requalify(p, side_schema))
                .collect::<Result<Vec<_>>>()?;
            let mut projection = Vec::with_capacity(side_schema.fields().len());
            for field in side_schema.fields() {
                match SCHEMA.index_of(field.name()) {
                    Ok(i) => projection.push(i),
                    Err(_) => return Ok(None),
                }
            }
            let mut key = None;
            let mut condition = predicates;
            for (l, r) in &join.on {
                let (mine, theirs) = if credentials_left { (l, r) } else { (r, l) };
                let is_key = matches!(mine, Expr::Column(c)
                    if c.name == "minted_key" && side_schema.has_column(c));
                if key.is_none() && is_key {
                    key = Some(theirs.clone());
                } else {
                    condition.push(l.clone().eq(r.clone()));
                }
            }
            let Some(key) = key else {
                continue;
            };
            condition.extend(join.filter.iter().flat_map(split_conjunction).cloned());
            let (lo, hi) = time_window(&condition, side_schema, other.schema());
            return Ok(Some(LookupJoin {
                input: other.as_ref().clone(),
                key,
                lo,
                hi,
                condition: conjunction(condition),
                join_type,
                credentials_first: credentials_left,
                projection,
                schema: Arc::clone(&join.schema),
                lookup,
            }));
        }
        Ok(None)
    }
}

/// The lookup and the filters above a scan of `credentials` (under aliases and filters only).
fn credentials_scan(plan: &LogicalPlan) -> Result<Option<(Arc<Lookup>, Vec<Expr>)>> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => credentials_scan(&a.input),
        LogicalPlan::Filter(f) => Ok(credentials_scan(&f.input)?.map(|(lookup, mut p)| {
            p.extend(split_conjunction(&f.predicate).into_iter().cloned());
            (lookup, p)
        })),
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let Ok(provider) = source_as_provider(&scan.source) else {
                return Ok(None);
            };
            Ok(provider
                .downcast_ref::<CredentialsTable>()
                .map(|t| (Arc::clone(t.lookup()), Vec::new())))
        }
        _ => Ok(None),
    }
}

/// `e` with every column of `side` named as `side` names it.
fn requalify(e: Expr, side: &DFSchemaRef) -> Result<Expr> {
    use datafusion::common::Column;
    use datafusion::common::tree_node::TreeNode;
    e.transform(|e| {
        Ok(match e {
            Expr::Column(c) => match side.qualified_field_with_unqualified_name(&c.name) {
                Ok((qualifier, field)) => {
                    Transformed::yes(Expr::Column(Column::new(qualifier.cloned(), field.name())))
                }
                Err(_) => Transformed::no(Expr::Column(c)),
            },
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

/// The bounds on the credentials side's `eventtime` that `condition` states with expressions of
/// the other side (or constants): (lower, upper).
fn time_window(
    condition: &[Expr],
    side: &DFSchemaRef,
    other: &DFSchemaRef,
) -> (Option<Expr>, Option<Expr>) {
    let is_time =
        |e: &Expr| matches!(e, Expr::Column(c) if c.name == "eventtime" && side.has_column(c));
    let of_other = |e: &Expr| e.column_refs().iter().all(|c| other.has_column(c));
    let (mut lo, mut hi) = (None, None);
    for e in condition {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, bound) = if is_time(left) && of_other(right) {
                    (*op, right.as_ref())
                } else if is_time(right) && of_other(left) {
                    match op.swap() {
                        Some(op) => (op, left.as_ref()),
                        None => continue,
                    }
                } else {
                    continue;
                };
                match op {
                    Operator::Gt | Operator::GtEq => lo = Some(bound.clone()),
                    Operator::Lt | Operator::LtEq => hi = Some(bound.clone()),
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_time(expr) && of_other(low) && of_other(high) => {
                lo = Some(low.as_ref().clone());
                hi = Some(high.as_ref().clone());
            }
            _ => {}
        }
    }
    (lo, hi)
}

impl PartialEq for LookupJoin {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for LookupJoin {}

impl PartialOrd for LookupJoin {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.key().partial_cmp(&other.key())
    }
}

impl Hash for LookupJoin {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl UserDefinedLogicalNodeCore for LookupJoin {
    fn name(&self) -> &str {
        "CredentialsLookupJoin"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        let mut v = vec![self.key.clone()];
        v.extend(self.lo.iter().cloned());
        v.extend(self.hi.iter().cloned());
        v.extend(self.condition.iter().cloned());
        v
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "CredentialsLookupJoin: {} minted_key = {}",
            if self.join_type == JoinType::Left {
                "left"
            } else {
                "inner"
            },
            self.key
        )?;
        if let Some(c) = &self.condition {
            write!(f, ", condition {c}")?;
        }
        Ok(())
    }
    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let mut exprs = exprs.into_iter();
        let mut next = || {
            exprs.next().ok_or_else(|| {
                DataFusionError::Internal("CredentialsLookupJoin: expressions".into())
            })
        };
        let key = next()?;
        let lo = self.lo.as_ref().map(|_| next()).transpose()?;
        let hi = self.hi.as_ref().map(|_| next()).transpose()?;
        let condition = self.condition.as_ref().map(|_| next()).transpose()?;
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("CredentialsLookupJoin: input".into()))?;
        Ok(Self {
            input,
            key,
            lo,
            hi,
            condition,
            ..self.clone()
        })
    }
}

/// Plans [`LookupJoin`] nodes.
#[derive(Debug, Default)]
pub struct LookupJoinPlanner;

#[async_trait]
impl ExtensionPlanner for LookupJoinPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn CatalogSession,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(join) = node.as_any().downcast_ref::<LookupJoin>() else {
            return Ok(None);
        };
        let ([logical], [input]) = (logical_inputs, physical_inputs) else {
            return Err(DataFusionError::Internal(
                "CredentialsLookupJoin has one input".into(),
            ));
        };
        let input_schema = logical.schema();
        let over_input =
            |e: &Expr| planner.create_physical_expr(e, input_schema, session, planning_ctx);
        let step = Step {
            key: over_input(&join.key)?,
            lo: join.lo.as_ref().map(over_input).transpose()?,
            hi: join.hi.as_ref().map(over_input).transpose()?,
            condition: join
                .condition
                .as_ref()
                .map(|c| planner.create_physical_expr(c, &join.schema, session, planning_ctx))
                .transpose()?,
            left: join.join_type == JoinType::Left,
            credentials_first: join.credentials_first,
            projection: join.projection.clone(),
            schema: Arc::clone(join.schema.inner()),
            lookup: Arc::clone(&join.lookup),
        };
        Ok(Some(Arc::new(LookupJoinExec::new(
            Arc::clone(input),
            Arc::new(step),
        ))))
    }
}

/// Joins each batch of its input with the credentials of the keys the batch holds.
#[derive(Debug)]
pub struct LookupJoinExec {
    pub(crate) input: Arc<dyn ExecutionPlan>,
    pub(crate) step: Arc<Step>,
    properties: Arc<PlanProperties>,
}

impl LookupJoinExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, step: Arc<Step>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&step.schema)),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            input,
            step,
            properties,
        }
    }
}

impl DisplayAs for LookupJoinExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "CredentialsLookupJoinExec: {} minted_key = {}",
            if self.step.left { "left" } else { "inner" },
            self.step.key
        )
    }
}

impl ExecutionPlan for LookupJoinExec {
    fn name(&self) -> &str {
        "CredentialsLookupJoinExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let step = &self.step;
        let mut recursion = f(&step.key)?;
        for e in [&step.lo, &step.hi, &step.condition].into_iter().flatten() {
            if recursion == TreeNodeRecursion::Stop {
                break;
            }
            recursion = f(e)?;
        }
        Ok(recursion)
    }
    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.into_iter().next() else {
            return Err(DataFusionError::Internal(
                "CredentialsLookupJoinExec has one input".into(),
            ));
        };
        Ok(Arc::new(LookupJoinExec::new(input, Arc::clone(&self.step))))
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let step = Arc::clone(&self.step);
        let stream = input.then(move |batch| {
            let step = Arc::clone(&step);
            async move { step.join(batch?).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.step.schema),
            stream,
        )))
    }
}

/// What joining one batch needs.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) key: Arc<dyn PhysicalExpr>,
    pub(crate) lo: Option<Arc<dyn PhysicalExpr>>,
    pub(crate) hi: Option<Arc<dyn PhysicalExpr>>,
    pub(crate) condition: Option<Arc<dyn PhysicalExpr>>,
    pub(crate) left: bool,
    pub(crate) credentials_first: bool,
    pub(crate) projection: Vec<usize>,
    pub(crate) schema: SchemaRef,
    pub(crate) lookup: Arc<Lookup>,
}

fn times(
    expr: &Option<Arc<dyn PhysicalExpr>>,
    batch: &RecordBatch,
) -> Result<Option<TimestampMicrosecondArray>> {
    let Some(expr) = expr else {
        return Ok(None);
    };
    let values = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    let values = cast(
        &values,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )?;
    Ok(values
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned())
}

impl Step {
    async fn join(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let keys = cast(
            &self.key.evaluate(&batch)?.into_array(rows)?,
            &DataType::Utf8,
        )?;
        let keys = keys.as_string::<i32>();
        let (lo, hi) = (times(&self.lo, &batch)?, times(&self.hi, &batch)?);
        let at = |t: &Option<TimestampMicrosecondArray>, i: usize, open: i64| {
            t.as_ref()
                .filter(|t| t.is_valid(i))
                .map_or(open, |t| t.value(i))
        };
        let wants: Vec<Want> = (0..rows)
            .filter(|&i| keys.is_valid(i))
            .map(|i| Want {
                key: keys.value(i).to_string(),
                lo: at(&lo, i, i64::MIN),
                hi: at(&hi, i, i64::MAX),
            })
            .collect();
        let found = if wants.is_empty() {
            Default::default()
        } else {
            self.lookup.credentials(&wants).await?
        };
        let mut credentials = Vec::with_capacity(found.len());
        let mut position = std::collections::HashMap::with_capacity(found.len());
        for (key, c) in found {
            position.insert(key, credentials.len() as u32);
            credentials.push(c);
        }
        let table = batch_of(&credentials, &SCHEMA)?.project(&self.projection)?;
        let matched: Vec<Option<u32>> = (0..rows)
            .map(|i| {
                keys.is_valid(i)
                    .then(|| position.get(keys.value(i)).copied())
                    .flatten()
            })
            .collect();
        // Inner: only the rows with a match; left: every row.
        let (rows_taken, mut matched): (Option<UInt32Array>, Vec<Option<u32>>) = if self.left {
            (None, matched)
        } else {
            let kept: Vec<u32> = (0..rows as u32)
                .filter(|&i| matched[i as usize].is_some())
                .collect();
            let m = kept.iter().map(|&i| matched[i as usize]).collect();
            (Some(UInt32Array::from(kept)), m)
        };
        let input = match &rows_taken {
            Some(indices) => take_batch(&batch, indices)?,
            None => batch,
        };
        let mut joined = self.assemble(&input, &table, &matched)?;
        if let Some(condition) = &self.condition {
            let pass = condition.evaluate(&joined)?.into_array(joined.num_rows())?;
            let pass = pass.as_boolean();
            if self.left {
                // A match the condition rejects leaves the row without one.
                let mut changed = false;
                for (i, m) in matched.iter_mut().enumerate() {
                    if m.is_some() && !(pass.is_valid(i) && pass.value(i)) {
                        *m = None;
                        changed = true;
                    }
                }
                if changed {
                    joined = self.assemble(&input, &table, &matched)?;
                }
            } else {
                let keep: BooleanArray = (0..pass.len())
                    .map(|i| Some(pass.is_valid(i) && pass.value(i)))
                    .collect();
                joined = filter_record_batch(&joined, &keep)?;
            }
        }
        Ok(joined)
    }

    /// The input's columns and the matched credentials' (null where none), in output order.
    fn assemble(
        &self,
        input: &RecordBatch,
        table: &RecordBatch,
        matched: &[Option<u32>],
    ) -> Result<RecordBatch> {
        let indices = UInt32Array::from(matched.to_vec());
        let credentials: Vec<ArrayRef> = table
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<_, _>>()?;
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        if self.credentials_first {
            columns.extend(credentials);
            columns.extend(input.columns().iter().cloned());
        } else {
            columns.extend(input.columns().iter().cloned());
            columns.extend(credentials);
        }
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(input.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    Ok(arrow::compute::take_record_batch(batch, indices)?)
}
