//! Point lookups of STS calls by the key or session they minted, and the walk of a key's chain of
//! calls back to its origin.
//!
//! A temporary key is used after the call that minted it and at most [`LIFETIME`] later (the
//! longest any STS credential lives), so the call behind a key used at `t` is looked for among
//! the calls of `[t - LIFETIME, t]`: a day or two of the lake, and within it only the row groups
//! whose bloom filter on `mintedkey` may hold the key. Each step of a chain (the call that minted
//! the caller's own key) is one more such lookup for all chains at once. The cost follows the
//! number of keys asked for and the length of their chains, not the number of STS calls in the
//! lake.

use crate::lake_table::Snapshot;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::utils::disjunction;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

/// The longest a temporary credential lives: 36 hours (GetSessionToken and GetFederationToken;
/// AssumeRole* sessions last 12 hours at most, AssumeRoot 15 minutes). In microseconds.
pub const LIFETIME: i64 = 36 * 3600 * 1_000_000;

/// A day in microseconds.
pub(super) const DAY: i64 = 24 * 3600 * 1_000_000;

/// What every temporary access key starts with (AWS's unique-id prefixes: `AKIA` is a long-term
/// key).
pub const TEMPORARY_KEY_PREFIX: &str = "ASIA";

/// The longest chain of STS calls followed back to its origin.
pub const MAX_HOPS: usize = 10;

/// Keys asked for in one scan: the IN list is a hash set at execution, and bloom filters prune
/// by it while it is short; longer lists are split into scans of this many.
const MAX_LISTED_KEYS: usize = 50_000;

/// Keys (or sessions) listed beyond which a scan does not prune by the list: bloom filters
/// rarely rule out a row group that thousands of keys might be in, and the list was copied for
/// every file and row group to try (a third of a report's time on the 2M-event benchmark).
const PRUNED_LIST: usize = 256;

/// A lookup's windows are merged into at most this many time ranges.
const MAX_RANGES: usize = 32;

/// The calls the cache keeps between lookups of one session.
const CACHE_ENTRIES: usize = 200_000;

/// The STS calls that minted temporary credentials, one row per copy of a call.
pub(super) const MINTS_SQL: &str = include_str!("mints.sql");

/// A key to look up, with the times its minting call may have happened at (inclusive,
/// microseconds since the epoch; `i64::MIN`/`i64::MAX` when open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub key: String,
    pub lo: i64,
    pub hi: i64,
}

impl Want {
    /// Any time.
    pub fn anytime(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            lo: i64::MIN,
            hi: i64::MAX,
        }
    }

    /// The key as used at `t`: minted at most [`LIFETIME`] before.
    pub fn used_at(key: impl Into<String>, t: i64) -> Self {
        Self {
            key: key.into(),
            lo: t.saturating_sub(LIFETIME),
            hi: t,
        }
    }
}

/// One STS call that minted a key: the columns of `mints.sql`. Of the copies of a call, the
/// preferred one (the caller's account names the caller by ARN), with the members only some copy
/// carries taken from any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub minted_key: String,
    pub minted_session: Option<String>,
    pub caller_key: Option<String>,
    pub caller: Option<String>,
    pub caller_type: Option<String>,
    pub eventname: Option<String>,
    pub eventtime: i64,
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub source_identity: Option<String>,
    pub federated_subject: Option<String>,
    pub federated_issuer: Option<String>,
    pub sourceipaddress: Option<String>,
    pub account: Option<String>,
    pub eventid: Option<String>,
    pref: i64,
}

impl Call {
    /// Folds another copy of the same call into this one: the preferred copy (by `pref`, then
    /// `eventid`) gives the caller's side; any copy may carry the session, source identity and
    /// federated subject.
    pub(super) fn merge(&mut self, other: Call) {
        let (mut first, second) = if (other.pref, &other.eventid) < (self.pref, &self.eventid) {
            (other, std::mem::replace(self, Call::empty()))
        } else {
            (std::mem::replace(self, Call::empty()), other)
        };
        first.minted_session = first.minted_session.max(second.minted_session);
        first.source_identity = first.source_identity.max(second.source_identity);
        first.federated_subject = first.federated_subject.max(second.federated_subject);
        first.federated_issuer = first.federated_issuer.max(second.federated_issuer);
        *self = first;
    }

    fn empty() -> Self {
        Call {
            minted_key: String::new(),
            minted_session: None,
            caller_key: None,
            caller: None,
            caller_type: None,
            eventname: None,
            eventtime: 0,
            role_arn: None,
            session_name: None,
            source_identity: None,
            federated_subject: None,
            federated_issuer: None,
            sourceipaddress: None,
            account: None,
            eventid: None,
            pref: 0,
        }
    }
}

/// A minted key with the origin of its chain: the first caller, reached through `hops` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub call: Arc<Call>,
    pub origin: Option<String>,
    pub origin_type: Option<String>,
    pub origin_key: Option<String>,
    pub origin_call: Option<String>,
    pub origin_subject: Option<String>,
    pub origin_source_identity: Option<String>,
    pub hops: i64,
}

impl Credential {
    /// The origin of a chain: `chain[0]` minted the key, each next call minted the caller's key
    /// of the one before.
    fn of_chain(chain: &[Arc<Call>]) -> Option<Self> {
        let first = chain.first()?;
        let at = chain.last()?;
        Some(Credential {
            call: Arc::clone(first),
            origin: at.caller.clone(),
            origin_type: at.caller_type.clone(),
            origin_key: at.caller_key.clone(),
            origin_call: at.eventname.clone(),
            origin_subject: at.federated_subject.clone(),
            // The source identity is set at the first hop and carried along the chain.
            origin_source_identity: chain.iter().rev().find_map(|c| c.source_identity.clone()),
            hops: chain.len() as i64,
        })
    }
}

/// Looks up minting calls in the lake's `cloudtrail` table.
pub struct Lookup {
    /// A context holding `cloudtrail` (the whole lake) and the functions `mints.sql` uses.
    ctx: SessionContext,
    /// Calls found so far, by key: chains share their upper steps.
    cache: Mutex<HashMap<String, Arc<Call>>>,
    /// The snapshot of the lake's `cloudtrail` table `ctx` reads, when known: what a cluster's
    /// nodes open to look the same calls up.
    snapshot: Option<Snapshot>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup").finish_non_exhaustive()
    }
}

impl Lookup {
    pub fn new(ctx: SessionContext) -> Self {
        Self {
            ctx,
            cache: Mutex::new(HashMap::new()),
            snapshot: None,
        }
    }

    /// Says which snapshot of the lake's `cloudtrail` table the context reads.
    pub fn reading(mut self, snapshot: Option<Snapshot>) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// The snapshot of the lake's `cloudtrail` table looked in, when known.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub(super) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The minting calls (as `mints.sql` gives them) passing `predicate`.
    pub(super) async fn mints(&self, predicate: Option<Expr>) -> Result<DataFrame> {
        self.mints_listing(predicate, 0).await
    }

    /// [`Lookup::mints`] for a predicate listing `listed` values.
    async fn mints_listing(&self, predicate: Option<Expr>, listed: usize) -> Result<DataFrame> {
        let df = if listed > PRUNED_LIST {
            crate::engine::unpruned(&self.ctx, true)
                .sql(MINTS_SQL)
                .await?
        } else {
            self.ctx.sql(MINTS_SQL).await?
        };
        match predicate {
            Some(p) => df.filter(p),
            None => Ok(df),
        }
    }

    /// The days (their first microsecond, UTC) on which calls passing `predicate` minted keys,
    /// with how many rows each holds, in order. Reads only the key and time columns.
    pub(super) async fn days_of_mints(&self, predicate: Option<Expr>) -> Result<Vec<(i64, u64)>> {
        let day = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
            datafusion::functions::datetime::date_trunc(),
            vec![lit("day"), col("eventtime")],
        ));
        let counted = self
            .mints(predicate)
            .await?
            .aggregate(
                vec![day.alias("day")],
                vec![datafusion::functions_aggregate::count::count(lit(1)).alias("calls")],
            )?
            .collect()
            .await?;
        let mut days = Vec::new();
        for batch in &counted {
            let starts = cast(
                batch.column(0),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let starts = starts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            let calls = cast(batch.column(1), &DataType::UInt64)?;
            let calls = calls.as_primitive::<arrow::datatypes::UInt64Type>();
            for i in 0..batch.num_rows() {
                if starts.is_valid(i) && calls.is_valid(i) {
                    days.push((starts.value(i), calls.value(i)));
                }
            }
        }
        days.sort_unstable();
        Ok(days)
    }

    /// The call that minted each wanted key within its window (the preferred copy), by key.
    pub async fn calls(&self, wants: &[Want]) -> Result<HashMap<String, Arc<Call>>> {
        let mut found: HashMap<String, Arc<Call>> = HashMap::new();
        let mut windows: HashMap<&str, (i64, i64)> = HashMap::new();
        {
            let cache = self.cache.lock().map_err(poisoned)?;
            for w in wants {
                match cache.get(&w.key) {
                    Some(c) if (w.lo..=w.hi).contains(&c.eventtime) => {
                        found.insert(w.key.clone(), Arc::clone(c));
                    }
                    _ => {
                        let e = windows.entry(w.key.as_str()).or_insert((w.lo, w.hi));
                        e.0 = e.0.min(w.lo);
                        e.1 = e.1.max(w.hi);
                    }
                }
            }
        }
        if windows.is_empty() {
            return Ok(found);
        }
        let mut copies: HashMap<String, Call> = HashMap::new();
        let keys: Vec<&str> = windows.keys().copied().collect();
        for chunk in keys.chunks(MAX_LISTED_KEYS) {
            let listed: Vec<Expr> = chunk.iter().map(|k| lit(*k)).collect();
            let mut predicate = col("minted_key").in_list(listed, false);
            if let Some(t) = time_predicate(chunk.iter().filter_map(|k| windows.get(k).copied())) {
                predicate = predicate.and(t);
            }
            let mut stream = self
                .mints_listing(Some(predicate), chunk.len())
                .await?
                .execute_stream()
                .await?;
            while let Some(batch) = stream.next().await {
                for call in calls_of(&batch?)? {
                    let Some(&(lo, hi)) = windows.get(call.minted_key.as_str()) else {
                        continue;
                    };
                    if !(lo..=hi).contains(&call.eventtime) {
                        continue;
                    }
                    match copies.get_mut(&call.minted_key) {
                        Some(c) => c.merge(call),
                        None => {
                            copies.insert(call.minted_key.clone(), call);
                        }
                    }
                }
            }
        }
        let mut cache = self.cache.lock().map_err(poisoned)?;
        if cache.len() + copies.len() > CACHE_ENTRIES {
            cache.clear();
        }
        for (key, call) in copies {
            let call = Arc::new(call);
            cache.insert(key.clone(), Arc::clone(&call));
            found.insert(key, call);
        }
        // A key's window is the union of its wants': a call is found only if it falls in one of
        // them.
        let mut own: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
        for w in wants {
            own.entry(w.key.as_str()).or_default().push((w.lo, w.hi));
        }
        found.retain(|key, call| {
            own.get(key.as_str()).is_some_and(|ws| {
                ws.iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&call.eventtime))
            })
        });
        Ok(found)
    }

    /// The calls that minted credentials for `sessions` (assumed-role session ARNs) between `lo`
    /// and `hi`, one per minted key.
    pub async fn calls_for_sessions(
        &self,
        sessions: &[String],
        lo: i64,
        hi: i64,
    ) -> Result<Vec<Arc<Call>>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let listed: Vec<Expr> = sessions.iter().map(|s| lit(s.as_str())).collect();
        let mut predicate = col("minted_session").in_list(listed, false);
        if let Some(t) = time_predicate([(lo, hi)]) {
            predicate = predicate.and(t);
        }
        let mut copies: HashMap<String, Call> = HashMap::new();
        let mut stream = self
            .mints_listing(Some(predicate), sessions.len())
            .await?
            .execute_stream()
            .await?;
        while let Some(batch) = stream.next().await {
            for call in calls_of(&batch?)? {
                match copies.get_mut(&call.minted_key) {
                    Some(c) => c.merge(call),
                    None => {
                        copies.insert(call.minted_key.clone(), call);
                    }
                }
            }
        }
        Ok(copies.into_values().map(Arc::new).collect())
    }

    /// The credentials of the wanted keys that a call in the lake minted, with their origins.
    pub async fn credentials(&self, wants: &[Want]) -> Result<HashMap<String, Credential>> {
        let calls = self.calls(wants).await?;
        let firsts: Vec<Arc<Call>> = calls.into_values().collect();
        Ok(self
            .origins(firsts)
            .await?
            .into_iter()
            .map(|c| (c.call.minted_key.clone(), c))
            .collect())
    }

    /// Walks each call's chain back to its origin: the call that minted the caller's key, within
    /// [`LIFETIME`] before, and so on, all chains a step at a time, until a caller whose key no
    /// call in the lake minted, a cycle, or [`MAX_HOPS`] calls.
    pub async fn origins(&self, firsts: Vec<Arc<Call>>) -> Result<Vec<Credential>> {
        let mut chains: Vec<(Vec<Arc<Call>>, bool)> =
            firsts.into_iter().map(|c| (vec![c], true)).collect();
        for _ in 1..MAX_HOPS {
            let mut wants = Vec::new();
            for (chain, open) in chains.iter_mut() {
                match chain.last().and_then(|c| next_want(c, chain)) {
                    Some(w) => wants.push(w),
                    None => *open = false,
                }
            }
            if wants.is_empty() {
                break;
            }
            let found = self.calls(&wants).await?;
            for (chain, open) in chains.iter_mut().filter(|(_, open)| *open) {
                let next = chain
                    .last()
                    .and_then(|c| next_want(c, chain))
                    .and_then(|w| found.get(&w.key));
                match next {
                    Some(c) => chain.push(Arc::clone(c)),
                    None => *open = false,
                }
            }
        }
        Ok(chains
            .iter()
            .filter_map(|(chain, _)| Credential::of_chain(chain))
            .collect())
    }
}

/// The lookup of the call that minted `call`'s caller key: only temporary keys (`ASIA…`) are
/// minted by STS; a long-term key (`AKIA…`) is where a chain starts. None either when the chain
/// already holds that key (a cycle: impossible in AWS, possible in bad data).
fn next_want(call: &Call, chain: &[Arc<Call>]) -> Option<Want> {
    let key = call
        .caller_key
        .as_deref()
        .filter(|k| k.starts_with(TEMPORARY_KEY_PREFIX))?;
    if chain.iter().any(|c| c.minted_key == key) {
        return None;
    }
    Some(Want::used_at(key, call.eventtime))
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> DataFusionError {
    DataFusionError::Internal("credentials cache lock poisoned".into())
}

fn timestamp(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

/// `eventtime` within any of `windows`, merged into at most [`MAX_RANGES`] ranges; `None` when
/// a window is open on both ends (any time).
pub(super) fn time_predicate(windows: impl IntoIterator<Item = (i64, i64)>) -> Option<Expr> {
    let mut ranges: Vec<(i64, i64)> = windows.into_iter().collect();
    if ranges.is_empty()
        || ranges
            .iter()
            .any(|&(lo, hi)| lo == i64::MIN && hi == i64::MAX)
    {
        return None;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    while merged.len() > MAX_RANGES {
        // Join the two neighbours with the smallest gap between them.
        let at = (1..merged.len())
            .min_by_key(|&i| merged[i].0.saturating_sub(merged[i - 1].1))
            .unwrap_or(1);
        let (_, hi) = merged.remove(at);
        merged[at - 1].1 = merged[at - 1].1.max(hi);
    }
    disjunction(merged.into_iter().map(|(lo, hi)| {
        let t = col("eventtime");
        match (lo, hi) {
            (i64::MIN, hi) => t.lt_eq(timestamp(hi)),
            (lo, i64::MAX) => t.gt_eq(timestamp(lo)),
            (lo, hi) => t.clone().gt_eq(timestamp(lo)).and(t.lt_eq(timestamp(hi))),
        }
    }))
}

fn strings(batch: &RecordBatch, name: &str) -> Result<Option<ArrayRef>> {
    batch
        .column_by_name(name)
        .map(|c| cast(c, &DataType::Utf8))
        .transpose()
        .map_err(DataFusionError::from)
}

/// The calls of a batch of `mints.sql` rows (rows without a key or a time are skipped).
pub(super) fn calls_of(batch: &RecordBatch) -> Result<Vec<Call>> {
    let text = |name: &str| strings(batch, name);
    let columns: Vec<Option<ArrayRef>> = [
        "minted_key",
        "minted_session",
        "caller_key",
        "caller",
        "caller_type",
        "eventname",
        "role_arn",
        "session_name",
        "source_identity",
        "federated_subject",
        "federated_issuer",
        "sourceipaddress",
        "account",
        "eventid",
    ]
    .iter()
    .map(|n| text(n))
    .collect::<Result<_>>()?;
    let value = |c: usize, i: usize| -> Option<String> {
        let a = columns[c].as_ref()?.as_string::<i32>();
        a.is_valid(i).then(|| a.value(i).to_string())
    };
    let times = batch
        .column_by_name("eventtime")
        .map(|c| {
            cast(
                c,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )
        })
        .transpose()?;
    let times = times
        .as_ref()
        .and_then(|t| t.as_any().downcast_ref::<TimestampMicrosecondArray>());
    let pref = batch
        .column_by_name("pref")
        .map(|c| cast(c, &DataType::Int64))
        .transpose()?;
    let pref = pref
        .as_ref()
        .map(|p| p.as_primitive::<arrow::datatypes::Int64Type>());
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let (Some(minted_key), Some(eventtime)) = (
            value(0, i),
            times.and_then(|t| t.is_valid(i).then(|| t.value(i))),
        ) else {
            continue;
        };
        out.push(Call {
            minted_key,
            minted_session: value(1, i),
            caller_key: value(2, i),
            caller: value(3, i),
            caller_type: value(4, i),
            eventname: value(5, i),
            eventtime,
            role_arn: value(6, i),
            session_name: value(7, i),
            source_identity: value(8, i),
            federated_subject: value(9, i),
            federated_issuer: value(10, i),
            sourceipaddress: value(11, i),
            account: value(12, i),
            eventid: value(13, i),
            pref: pref.map_or(0, |p| if p.is_valid(i) { p.value(i) } else { 1 }),
        });
    }
    Ok(out)
}

/// Credentials as rows of `schema` (the table's columns, in its order).
pub(super) fn batch_of(credentials: &[Credential], schema: &SchemaRef) -> Result<RecordBatch> {
    let n = credentials.len();
    let strings = |f: &dyn Fn(&Credential) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 24);
        for c in credentials {
            b.append_option(f(c));
        }
        Arc::new(b.finish())
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            Ok(match field.name().as_str() {
                "minted_key" => strings(&|c| Some(c.call.minted_key.as_str())),
                "minted_session" => strings(&|c| c.call.minted_session.as_deref()),
                "caller_key" => strings(&|c| c.call.caller_key.as_deref()),
                "caller" => strings(&|c| c.call.caller.as_deref()),
                "caller_type" => strings(&|c| c.call.caller_type.as_deref()),
                "eventname" => strings(&|c| c.call.eventname.as_deref()),
                "eventtime" => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        credentials.iter().map(|c| c.call.eventtime),
                    )
                    .with_timezone("UTC"),
                ),
                "role_arn" => strings(&|c| c.call.role_arn.as_deref()),
                "session_name" => strings(&|c| c.call.session_name.as_deref()),
                "source_identity" => strings(&|c| c.call.source_identity.as_deref()),
                "federated_subject" => strings(&|c| c.call.federated_subject.as_deref()),
                "federated_issuer" => strings(&|c| c.call.federated_issuer.as_deref()),
                "sourceipaddress" => strings(&|c| c.call.sourceipaddress.as_deref()),
                "account" => strings(&|c| c.call.account.as_deref()),
                "eventid" => strings(&|c| c.call.eventid.as_deref()),
                "origin" => strings(&|c| c.origin.as_deref()),
                "origin_type" => strings(&|c| c.origin_type.as_deref()),
                "origin_key" => strings(&|c| c.origin_key.as_deref()),
                "origin_call" => strings(&|c| c.origin_call.as_deref()),
                "origin_subject" => strings(&|c| c.origin_subject.as_deref()),
                "origin_source_identity" => strings(&|c| c.origin_source_identity.as_deref()),
                "hops" => Arc::new(arrow::array::Int64Array::from_iter_values(
                    credentials.iter().map(|c| c.hops),
                )),
                other => {
                    return Err(DataFusionError::Internal(format!(
                        "credentials: no column {other}"
                    )));
                }
            })
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(key: &str, caller_key: Option<&str>, caller: &str, t: i64) -> Arc<Call> {
        Arc::new(Call {
            minted_key: key.into(),
            caller_key: caller_key.map(str::to_string),
            caller: Some(caller.into()),
            caller_type: Some("AssumedRole".into()),
            eventname: Some("AssumeRole".into()),
            eventtime: t,
            ..Call::empty()
        })
    }

    #[test]
    fn copies_of_a_call_merge_into_the_preferred_one() {
        let mut role_side = Call {
            minted_key: "ASIA1".into(),
            caller: Some("AIDAEXAMPLE".into()),
            eventid: Some("b".into()),
            minted_session: Some("arn:aws:sts::2:assumed-role/R/s".into()),
            pref: 1,
            ..Call::empty()
        };
        let caller_side = Call {
            minted_key: "ASIA1".into(),
            caller: Some("arn:aws:iam::1:user/alice".into()),
            eventid: Some("z".into()),
            pref: 0,
            ..Call::empty()
        };
        role_side.merge(caller_side);
        assert_eq!(
            role_side.caller.as_deref(),
            Some("arn:aws:iam::1:user/alice")
        );
        assert_eq!(
            role_side.minted_session.as_deref(),
            Some("arn:aws:sts::2:assumed-role/R/s"),
            "a member only one copy has is kept"
        );
    }

    #[test]
    fn a_chain_names_its_first_caller() {
        let chain = [
            call("ASIA3", Some("ASIA2"), "assumed-role/Admin/alice", 30),
            call("ASIA2", Some("ASIA1"), "assumed-role/Ops/alice", 20),
            call("ASIA1", Some("AKIAALICE"), "user/alice", 10),
        ];
        let c = Credential::of_chain(&chain).expect("credential");
        assert_eq!(c.call.minted_key, "ASIA3");
        assert_eq!(c.origin.as_deref(), Some("user/alice"));
        assert_eq!(c.origin_key.as_deref(), Some("AKIAALICE"));
        assert_eq!(c.hops, 3);
        // The next step of a chain: the caller's key, minted within its lifetime before.
        assert_eq!(
            next_want(&chain[0], &chain[..1]),
            Some(Want::used_at("ASIA2", 30))
        );
        // A key the chain already holds is a cycle: no next step.
        assert_eq!(
            next_want(&chain[2], &[call("AKIAALICE", None, "x", 0)]),
            None
        );
    }

    #[test]
    fn windows_merge_into_few_ranges() {
        assert!(time_predicate([(i64::MIN, i64::MAX)]).is_none());
        let day = 86_400_000_000;
        let windows: Vec<(i64, i64)> = (0..100).map(|d| (d * day * 3, d * day * 3 + 10)).collect();
        let expr = time_predicate(windows).expect("predicate");
        let text = expr.to_string();
        assert_eq!(text.matches(" OR ").count(), MAX_RANGES - 1, "{text}");
        // Overlapping windows become one range.
        let one = time_predicate([(0, 10), (5, 20), (21, 30)])
            .expect("predicate")
            .to_string();
        assert!(!one.contains(" OR "), "{one}");
    }
}
