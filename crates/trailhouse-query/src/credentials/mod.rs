//! The `credentials` table: one row per temporary access key that STS minted (AssumeRole,
//! AssumeRoleWithSAML, AssumeRoleWithWebIdentity, GetSessionToken, GetFederationToken,
//! AssumeRoot), with the call that minted it and the **origin** of its chain of STS calls,
//! followed through role chaining back to the first caller (a long-term key, a federated sign-in,
//! or a principal of an AWS service), cycle-safe and at most [`MAX_HOPS`] calls deep.
//!
//! Nothing is stored or derived ahead of time: the table is a view of `cloudtrail`'s minting
//! calls ([`lookup`]). A scan that names keys or sessions (`WHERE minted_key = 'ASIA…'`) looks
//! only those up; a join on `minted_key` (who-deleted's `LEFT JOIN credentials c ON c.minted_key =
//! h.useridentity.accesskeyid`) is planned as a lookup of the keys its rows hold ([`join`]); only
//! a scan that names no key reads every minting call of its window, in bounded memory.

pub mod join;
pub mod lookup;

use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::{StreamExt, TryStreamExt};

pub use lookup::{LIFETIME, Lookup, MAX_HOPS, Want};

use crate::engine::{self, Extensions};
use lookup::{batch_of, calls_of, time_predicate};

/// The table's name in SQL.
pub const TABLE_NAME: &str = "credentials";

/// The minting calls of a window, once per key (all.sql reads them as table `mints`).
const ALL_SQL: &str = include_str!("all.sql");

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("minted_key", DataType::Utf8, false),
        text("minted_session"),
        text("caller_key"),
        text("caller"),
        text("caller_type"),
        text("eventname"),
        Field::new(
            "eventtime",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("role_arn"),
        text("session_name"),
        text("source_identity"),
        text("federated_subject"),
        text("federated_issuer"),
        text("sourceipaddress"),
        text("account"),
        text("eventid"),
        text("origin"),
        text("origin_type"),
        text("origin_key"),
        text("origin_call"),
        text("origin_subject"),
        text("origin_source_identity"),
        Field::new("hops", DataType::Int64, false),
    ]))
});

/// The table's columns.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The optimizer rule and planner that make joins on `minted_key` lookups; every context that
/// has the table needs them.
pub fn extensions() -> Extensions {
    Extensions {
        rules: vec![Arc::new(join::LookupJoinRule)],
        planners: vec![Arc::new(join::LookupJoinPlanner)],
    }
}

/// Registers table `credentials`, looking calls up in `lookup`'s `cloudtrail`.
pub fn register(ctx: &datafusion::prelude::SessionContext, lookup: Arc<Lookup>) -> Result<()> {
    ctx.register_table(TABLE_NAME, Arc::new(CredentialsTable { lookup }))?;
    Ok(())
}

/// The `credentials` table provider.
pub struct CredentialsTable {
    lookup: Arc<Lookup>,
}

impl fmt::Debug for CredentialsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsTable").finish_non_exhaustive()
    }
}

impl CredentialsTable {
    pub fn lookup(&self) -> &Arc<Lookup> {
        &self.lookup
    }
}

#[async_trait]
impl TableProvider for CredentialsTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Keys, sessions and times narrow the lookup; every filter is applied again above.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
    async fn scan(
        &self,
        _state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(CredentialsExec::new(
            Arc::clone(&self.lookup),
            Request::from_filters(filters),
            projection.cloned(),
        )?))
    }
}

/// What a scan asks for: the keys and sessions its filters name (or every key), and the window
/// of the minting calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `None`: every key.
    keys: Option<Named>,
    lo: i64,
    hi: i64,
}

/// Keys and sessions named by a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Named {
    keys: Vec<String>,
    sessions: Vec<String>,
}

impl Request {
    fn from_filters(filters: &[Expr]) -> Self {
        let mut request = Request {
            keys: None,
            lo: i64::MIN,
            hi: i64::MAX,
        };
        for f in filters.iter().flat_map(conjuncts) {
            if request.keys.is_none()
                && let Some(named) = named(f)
            {
                request.keys = Some(named);
            }
            if let Some((lo, hi)) = time_bounds(f) {
                request.lo = request.lo.max(lo);
                request.hi = request.hi.min(hi);
            }
        }
        request
    }
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        other => vec![other],
    }
}

fn column_is(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}

fn text_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

/// The keys and sessions `e` names, when it is true only for them: `minted_key = 'A'`,
/// `minted_session IN (…)`, or an OR of such.
fn named(e: &Expr) -> Option<Named> {
    let mut out = Named::default();
    let mut add = |column: &Expr, value: &Expr| -> Option<()> {
        let v = text_literal(value)?;
        if column_is(column, "minted_key") {
            out.keys.push(v);
        } else if column_is(column, "minted_session") {
            out.sessions.push(v);
        } else {
            return None;
        }
        Some(())
    };
    fn walk(e: &Expr, add: &mut dyn FnMut(&Expr, &Expr) -> Option<()>) -> Option<()> {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Or,
                right,
            }) => {
                walk(left, add)?;
                walk(right, add)
            }
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => add(left, right).or_else(|| add(right, left)),
            Expr::InList(list) if !list.negated => {
                for v in &list.list {
                    add(&list.expr, v)?;
                }
                Some(())
            }
            _ => None,
        }
    }
    walk(e, &mut add)?;
    Some(out)
}

fn micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMicrosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(t.div_euclid(1_000)),
        _ => None,
    }
}

/// The range of minting times `e` allows, when it bounds `eventtime` by a constant.
fn time_bounds(e: &Expr) -> Option<(i64, i64)> {
    let bound = |column: &Expr, op: Operator, value: &Expr| -> Option<(i64, i64)> {
        if !column_is(column, "eventtime") {
            return None;
        }
        let Expr::Literal(v, _) = value else {
            return None;
        };
        let t = micros(v)?;
        match op {
            Operator::Gt => Some((t.saturating_add(1), i64::MAX)),
            Operator::GtEq => Some((t, i64::MAX)),
            Operator::Lt => Some((i64::MIN, t.saturating_sub(1))),
            Operator::LtEq => Some((i64::MIN, t)),
            Operator::Eq => Some((t, t)),
            _ => None,
        }
    };
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => bound(left, *op, right)
            .or_else(|| op.swap().and_then(|swapped| bound(right, swapped, left))),
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let (lo, _) = bound(expr, Operator::GtEq, low)?;
            let (_, hi) = bound(expr, Operator::LtEq, high)?;
            Some((lo, hi))
        }
        _ => None,
    }
}

/// The scan of `credentials`: a lookup of the named keys and sessions, or every key of the
/// window.
#[derive(Debug)]
pub(crate) struct CredentialsExec {
    lookup: Arc<Lookup>,
    request: Request,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl CredentialsExec {
    fn new(lookup: Arc<Lookup>, request: Request, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(SCHEMA.project(p)?),
            None => schema(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            lookup,
            request,
            projection,
            schema,
            properties,
        })
    }
}

impl DisplayAs for CredentialsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.request.keys {
            Some(n) => write!(
                f,
                "CredentialsExec: lookup of {} keys, {} sessions",
                n.keys.len(),
                n.sessions.len()
            ),
            None => write!(f, "CredentialsExec: every key of the window"),
        }
    }
}

impl ExecutionPlan for CredentialsExec {
    fn name(&self) -> &str {
        "CredentialsExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
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
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let lookup = Arc::clone(&self.lookup);
        let request = self.request.clone();
        let projection = self.projection.clone();
        let project = move |batch: arrow::array::RecordBatch| match &projection {
            Some(p) => batch.project(p).map_err(DataFusionError::from),
            None => Ok(batch),
        };
        let stream: futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>> =
            match request.keys.clone() {
                Some(named) => futures::stream::once(async move {
                    let batch = named_credentials(&lookup, &named, request.lo, request.hi).await?;
                    project(batch)
                })
                .boxed(),
                None => {
                    futures::stream::once(
                        async move { every_key(lookup, request.lo, request.hi).await },
                    )
                    .try_flatten()
                    .and_then(move |batch| futures::future::ready(project(batch)))
                    .boxed()
                }
            };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// The credentials of the named keys and of the keys minted for the named sessions.
async fn named_credentials(
    lookup: &Lookup,
    named: &Named,
    lo: i64,
    hi: i64,
) -> Result<arrow::array::RecordBatch> {
    let wants: Vec<Want> = named
        .keys
        .iter()
        .map(|k| Want {
            key: k.clone(),
            lo,
            hi,
        })
        .collect();
    let mut firsts: Vec<Arc<lookup::Call>> = lookup.calls(&wants).await?.into_values().collect();
    for call in lookup.calls_for_sessions(&named.sessions, lo, hi).await? {
        if !firsts.iter().any(|c| c.minted_key == call.minted_key) {
            firsts.push(call);
        }
    }
    let mut credentials = lookup.origins(firsts).await?;
    credentials.sort_by(|a, b| a.call.minted_key.cmp(&b.call.minted_key));
    batch_of(&credentials, &SCHEMA)
}

/// Every key minted in the window, in the order the calls were made (a sort that spills beyond
/// the memory pool), a batch of calls at a time: the copies of a call merged, each call's chain
/// walked by lookups.
async fn every_key(
    lookup: Arc<Lookup>,
    lo: i64,
    hi: i64,
) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
    let ctx = engine::context(
        lookup.context().copied_config(),
        lookup.context().runtime_env(),
        &Extensions::default(),
    )
    .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let mints = lookup.mints(time_predicate([(lo, hi)])).await?;
    ctx.register_table("mints", mints.into_view())?;
    let calls = ctx.sql(ALL_SQL).await?.execute_stream().await?;
    // The last call of a batch may have copies at the start of the next.
    let pending: Arc<std::sync::Mutex<Option<lookup::Call>>> = Arc::default();
    let batches = calls
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .then(move |batch| {
            let (lookup, pending) = (Arc::clone(&lookup), Arc::clone(&pending));
            async move {
                let mut merged: Vec<lookup::Call> = Vec::new();
                let carried = pending
                    .lock()
                    .map_err(|_| DataFusionError::Internal("credentials scan".into()))?
                    .take();
                merged.extend(carried);
                // The end of the calls (None) flushes the last one.
                if let Some(batch) = batch {
                    for call in calls_of(&batch?)? {
                        match merged.last_mut() {
                            Some(prev) if prev.minted_key == call.minted_key => prev.merge(call),
                            _ => merged.push(call),
                        }
                    }
                    if let Some(call) = merged.pop() {
                        *pending
                            .lock()
                            .map_err(|_| DataFusionError::Internal("credentials scan".into()))? =
                            Some(call);
                    }
                }
                let firsts = merged.into_iter().map(Arc::new).collect();
                let credentials = lookup.origins(firsts).await?;
                batch_of(&credentials, &SCHEMA)
            }
        });
    Ok(batches.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn filters_name_keys_sessions_and_a_window() {
        let r = Request::from_filters(&[
            col("minted_key")
                .eq(lit("ASIA1"))
                .or(col("minted_session").eq(lit("arn:s"))),
            col("eventtime")
                .gt_eq(ts(10))
                .and(ts(20).gt(col("eventtime"))),
        ]);
        assert_eq!(
            r.keys,
            Some(Named {
                keys: vec!["ASIA1".into()],
                sessions: vec!["arn:s".into()]
            })
        );
        assert_eq!((r.lo, r.hi), (10, 19));
        let listed =
            Request::from_filters(&[col("minted_key").in_list(vec![lit("A"), lit("B")], false)]);
        assert_eq!(
            listed.keys.map(|n| n.keys),
            Some(vec!["A".into(), "B".into()])
        );
        // An OR with anything else may be true for other keys: every key is read.
        let other = Request::from_filters(&[col("minted_key")
            .eq(lit("A"))
            .or(col("caller").eq(lit("x")))]);
        assert_eq!(other.keys, None);
        assert_eq!((other.lo, other.hi), (i64::MIN, i64::MAX));
    }
}
