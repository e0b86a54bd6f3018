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
//! a scan that names no key reads every minting call of its window, a slice of days at a time
//! ([`SLICE_CALLS`]).

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
    ctx.register_table(TABLE_NAME, Arc::new(CredentialsTable::new(lookup)))?;
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
    pub(crate) fn new(lookup: Arc<Lookup>) -> Self {
        Self { lookup }
    }

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Request {
    /// `None`: every key.
    keys: Option<Named>,
    lo: i64,
    hi: i64,
}

/// Keys and sessions named by a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub(crate) lookup: Arc<Lookup>,
    pub(crate) request: Request,
    pub(crate) projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl CredentialsExec {
    pub(crate) fn new(
        lookup: Arc<Lookup>,
        request: Request,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
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

/// Minting calls one slice of a full scan holds (a slice is whole days, so a busier day makes a
/// bigger one): each slice is sorted on its own, so the scan's memory follows the busiest days,
/// not the number of STS calls in the window.
const SLICE_CALLS: u64 = 100_000;

/// Every key minted in the window, in the order the calls were made, a slice of days at a time
/// ([`SLICE_CALLS`]), each slice a batch of calls at a time: the copies of a call merged (they
/// share a time, so a day), each call's chain walked by lookups.
async fn every_key(
    lookup: Arc<Lookup>,
    lo: i64,
    hi: i64,
) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
    every_key_by_slices(lookup, lo, hi, SLICE_CALLS).await
}

async fn every_key_by_slices(
    lookup: Arc<Lookup>,
    lo: i64,
    hi: i64,
    slice_calls: u64,
) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
    let days = lookup.days_of_mints(time_predicate([(lo, hi)])).await?;
    let slices = slices(&days, lo, hi, slice_calls);
    Ok(futures::stream::iter(slices)
        .then(move |(lo, hi)| keys_of_slice(Arc::clone(&lookup), lo, hi))
        .try_flatten()
        .boxed())
}

/// Consecutive days (start, calls), in order, grouped into time ranges of at least
/// `slice_calls` calls (the last may hold fewer), within `[lo, hi]`.
fn slices(days: &[(i64, u64)], lo: i64, hi: i64, slice_calls: u64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut open: Option<(i64, u64)> = None;
    for (i, &(day, calls)) in days.iter().enumerate() {
        let (start, held) = open.get_or_insert((day, 0));
        *held += calls;
        let last = i + 1 == days.len();
        if *held >= slice_calls || last {
            let end = day.saturating_add(lookup::DAY - 1);
            out.push(((*start).max(lo), end.min(hi)));
            open = None;
        }
    }
    out
}

/// The keys minted in `[lo, hi]` (a slice of days), in the order the calls were made (a sort
/// that spills beyond the memory pool), a batch of calls at a time.
async fn keys_of_slice(
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

#[cfg(test)]
mod slice_tests {
    use super::*;
    use arrow::util::pretty::pretty_format_batches;
    use lookup::DAY;

    #[test]
    fn days_are_grouped_into_slices_of_enough_calls_within_the_window() {
        let days = [(0, 4), (DAY, 7), (2 * DAY, 30), (5 * DAY, 1), (6 * DAY, 2)];
        assert_eq!(
            slices(&days, i64::MIN, i64::MAX, 10),
            vec![
                (0, 2 * DAY - 1),
                (2 * DAY, 3 * DAY - 1),
                (5 * DAY, 7 * DAY - 1)
            ]
        );
        // The window's ends cut the first and last slices.
        assert_eq!(slices(&days, 5, 6 * DAY + 9, 1_000), vec![(5, 6 * DAY + 9)]);
        assert_eq!(
            slices(&days, i64::MIN, i64::MAX, 1).len(),
            days.len(),
            "one day per slice"
        );
        assert!(slices(&[], i64::MIN, i64::MAX, 10).is_empty());
    }

    /// STS calls over three days: a chain across midnight, two copies of one call (the
    /// role's account names no caller ARN; the caller's account does), calls at the same time.
    const CALLS: &str = "
        ('ASIA1', 'AKIAALICE', 'arn:aws:iam::111:user/alice', 'IAMUser', '2026-11-01T10:00:00Z', 'e1', '111'),
        ('ASIA2', 'ASIA1', 'arn:aws:sts::111:assumed-role/R/s', 'AssumedRole', '2026-11-01T23:59:59Z', 'e2', '111'),
        ('ASIA3', 'ASIA2', 'arn:aws:sts::111:assumed-role/S/t', 'AssumedRole', '2026-11-02T00:00:00Z', 'e3', '111'),
        ('ASIA4', 'AKIABOB', NULL, 'AWSAccount', '2026-11-02T09:00:00Z', 'e4a', '222'),
        ('ASIA4', 'AKIABOB', 'arn:aws:iam::333:user/bob', 'IAMUser', '2026-11-02T09:00:00Z', 'e4b', '333'),
        ('ASIA0', 'AKIABOB', 'arn:aws:iam::333:user/bob', 'IAMUser', '2026-11-02T09:00:00Z', 'e0', '333'),
        ('ASIA5', 'ASIA3', 'arn:aws:sts::111:assumed-role/T/u', 'AssumedRole', '2026-11-03T10:00:00Z', 'e5', '111')";

    async fn lookup() -> Arc<Lookup> {
        let ctx = engine::context(
            engine::config().expect("config"),
            engine::runtime(engine::EngineOptions::default()).expect("runtime"),
            &Extensions::default(),
        )
        .expect("context");
        let view = format!(
            "CREATE VIEW cloudtrail AS SELECT
                 column1 AS mintedkey,
                 CAST(NULL AS VARCHAR) AS mintedsession,
                 named_struct('accesskeyid', column2, 'arn', column3,
                              'invokedby', CAST(NULL AS VARCHAR), 'principalid', 'P',
                              'type', column4,
                              'sessioncontext', named_struct('sourceidentity', CAST(NULL AS VARCHAR)))
                     AS useridentity,
                 'AssumeRole' AS eventname,
                 arrow_cast(to_timestamp_micros(column5), 'Timestamp(Microsecond, Some(\"UTC\"))')
                     AS eventtime,
                 '{{\"roleArn\": \"arn:aws:iam::111:role/R\", \"roleSessionName\": \"s\"}}'
                     AS requestparameters,
                 CAST(NULL AS VARCHAR) AS responseelements,
                 '192.0.2.1' AS sourceipaddress,
                 column7 AS recipientaccountid,
                 column6 AS eventid
             FROM (VALUES {CALLS})"
        );
        ctx.sql(&view).await.expect("view");
        Arc::new(Lookup::new(ctx))
    }

    async fn scanned(lo: i64, hi: i64, slice_calls: u64) -> String {
        let lookup = lookup().await;
        let batches: Vec<_> = every_key_by_slices(lookup, lo, hi, slice_calls)
            .await
            .expect("scan")
            .try_collect()
            .await
            .expect("batches");
        let columns = ["minted_key", "caller", "eventid", "origin", "hops"];
        let projected: Vec<_> = batches
            .iter()
            .map(|b| {
                let indices: Vec<usize> = columns
                    .iter()
                    .map(|c| b.schema().index_of(c).expect("column"))
                    .collect();
                b.project(&indices).expect("project")
            })
            .collect();
        pretty_format_batches(&projected)
            .expect("format")
            .to_string()
    }

    #[tokio::test]
    async fn a_scan_by_day_gives_what_a_scan_of_the_whole_window_gives() {
        let whole = scanned(i64::MIN, i64::MAX, u64::MAX).await;
        let expected = "\
+------------+-----------------------------------+---------+-----------------------------+------+
| minted_key | caller                            | eventid | origin                      | hops |
+------------+-----------------------------------+---------+-----------------------------+------+
| ASIA1      | arn:aws:iam::111:user/alice       | e1      | arn:aws:iam::111:user/alice | 1    |
| ASIA2      | arn:aws:sts::111:assumed-role/R/s | e2      | arn:aws:iam::111:user/alice | 2    |
| ASIA3      | arn:aws:sts::111:assumed-role/S/t | e3      | arn:aws:iam::111:user/alice | 3    |
| ASIA0      | arn:aws:iam::333:user/bob         | e0      | arn:aws:iam::333:user/bob   | 1    |
| ASIA4      | arn:aws:iam::333:user/bob         | e4b     | arn:aws:iam::333:user/bob   | 1    |
| ASIA5      | arn:aws:sts::111:assumed-role/T/u | e5      | arn:aws:iam::111:user/alice | 4    |
+------------+-----------------------------------+---------+-----------------------------+------+";
        assert_eq!(whole, expected);
        // A day at a time: the same rows in the same order.
        assert_eq!(scanned(i64::MIN, i64::MAX, 1).await, expected);
        // A window that starts and ends inside days keeps only its calls, whatever the slices.
        let (lo, hi) = (
            1_793_491_200_000_000 + 12 * 3600 * 1_000_000, // 2026-11-01T12:00:00Z
            1_793_577_600_000_000 + 9 * 3600 * 1_000_000 - 1, // 2026-11-02T08:59:59.999999Z
        );
        let cut = scanned(lo, hi, 1).await;
        assert_eq!(cut, scanned(lo, hi, u64::MAX).await);
        let keys: Vec<&str> = cut
            .lines()
            .filter_map(|l| l.split('|').nth(1).map(str::trim))
            .filter(|k| k.starts_with("ASIA"))
            .collect();
        assert_eq!(keys, ["ASIA2", "ASIA3"]);
    }

    #[tokio::test]
    async fn a_long_list_of_keys_finds_what_a_short_one_does() {
        let keys = ["ASIA0", "ASIA1", "ASIA2", "ASIA3", "ASIA4", "ASIA5"];
        // A lookup of its own each time: nothing comes from the other's cache.
        let found = |wants: Vec<Want>| async move {
            let mut calls: Vec<(String, Option<String>)> = lookup()
                .await
                .calls(&wants)
                .await
                .expect("lookup")
                .into_iter()
                .map(|(k, c)| (k, c.eventid.clone()))
                .collect();
            calls.sort();
            calls
        };
        let short = found(keys.iter().map(|k| Want::anytime(*k)).collect()).await;
        assert_eq!(short.len(), keys.len(), "{short:?}");
        // Listed with a thousand keys no call minted, the scan no longer prunes by the list.
        let long = found(
            keys.iter()
                .map(|k| k.to_string())
                .chain((0..1000).map(|i| format!("ASIANONE{i}")))
                .map(Want::anytime)
                .collect(),
        )
        .await;
        assert_eq!(long, short);
    }
}
