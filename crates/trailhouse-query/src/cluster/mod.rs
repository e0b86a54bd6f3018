//! Queries on a DataFusion Ballista cluster: the same SQL, parameters and answers as on one
//! machine, planned by a scheduler and run by executors.
//!
//! Every node of a cluster serves one lake ([`ServedLake`]): a folder all of them see at the
//! same path, or a prefix in S3. The client plans a statement against its own snapshot of the
//! lake, as it always does, and sends the plan with its tables named by snapshot (see
//! [`codec`]); the scheduler opens the same snapshot to plan the scans (the same files, pruned
//! the same way) and the executors open it to look temporary keys up. Tables that are not the
//! lake's (a report's shared scan held in memory) cannot travel: such a query fails with a
//! message saying so, never with another answer.

pub mod codec;
pub mod jobs;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::catalog::TableProvider;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::work_table::WorkTableExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use trailhouse_lake::{Lake, LakeError, TableKind, schema};

pub use codec::{LakeLogicalCodec, LakePhysicalCodec};

use crate::credentials::{self, Lookup};
use crate::engine::{self, EngineOptions, Extensions};
use crate::error::QueryError;
use crate::lake_table::Snapshot;

/// The scheduler's port when an address names none (Ballista's).
pub const DEFAULT_PORT: u16 = 50050;

/// A lake as a cluster's node serves it: the snapshots queries name, opened once each.
pub struct ServedLake {
    lake: Lake,
    /// Settings, functions and memory pool the tables are read with.
    ctx: SessionContext,
    /// The Delta table ids of `cloudtrail` and `quarantine` (if the lake has one): a query
    /// naming another table was planned on another lake.
    ids: HashMap<&'static str, String>,
    tables: Mutex<HashMap<(String, Snapshot), Arc<dyn TableProvider>>>,
    lookups: Mutex<HashMap<Snapshot, Arc<Lookup>>>,
}

impl std::fmt::Debug for ServedLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedLake")
            .field("lake", &self.lake.root())
            .finish_non_exhaustive()
    }
}

impl ServedLake {
    /// Opens `lake` to serve it; fails when it has no table yet.
    pub async fn open(lake: Lake, options: EngineOptions) -> Result<Arc<Self>, QueryError> {
        let ctx = engine::context(
            engine::config_for(lake.object_store().is_some())?,
            engine::runtime(options)?,
            &Extensions::default(),
        )?;
        if let Some((url, store)) = lake.object_store() {
            ctx.register_object_store(url, store);
        }
        let mut ids = HashMap::new();
        for kind in TableKind::ALL {
            match lake.open(kind).await {
                Ok(table) => {
                    if let Some(snapshot) = Snapshot::of(&table) {
                        ids.insert(kind.name(), snapshot.table_id);
                    }
                }
                Err(LakeError::Missing(_)) if kind.optional() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Arc::new(Self {
            lake,
            ctx,
            ids,
            tables: Mutex::new(HashMap::new()),
            lookups: Mutex::new(HashMap::new()),
        }))
    }

    /// The lake served.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The runtime (memory pool, caches, the lake's object store) the tables are read with.
    pub fn runtime(&self) -> Arc<RuntimeEnv> {
        self.ctx.runtime_env()
    }

    /// A scheduler's session for a client's `config`: our functions, optimizer rules and
    /// planners (joins on `credentials` planned as lookups) with Ballista's rules. Plans arrive
    /// analyzed (types coerced, names resolved) by the client: analyzing them again would
    /// check our lookup joins' conditions, which name the columns they add, against their input.
    pub fn session_state(&self, config: SessionConfig) -> Result<SessionState> {
        let ctx = engine::context(
            scheduled(config),
            self.runtime(),
            &credentials::extensions(),
        )
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let state = ctx.state();
        let rules = ballista_core::optimizer::with_ballista_optimizer_rules(state.optimizers());
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_analyzer_rules(Vec::new())
            .with_optimizer_rules(rules)
            .with_physical_optimizer_rule(Arc::new(WholeWorkTables))
            .build())
    }

    /// The functions an executor decodes plans with: DataFusion's and ours.
    pub fn functions(&self) -> BallistaFunctionRegistry {
        BallistaFunctionRegistry::from(&self.ctx.state())
    }

    /// Which of the lake's tables `snapshot` is of (`cloudtrail` or `quarantine`); refuses a
    /// snapshot of another lake's table.
    fn table_of(&self, snapshot: &Snapshot) -> Result<&'static str> {
        self.ids
            .iter()
            .find(|(_, id)| **id == snapshot.table_id)
            .map(|(name, _)| *name)
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "this cluster serves the lake at `{}`, which does not hold the table the \
                     query was planned on (Delta table id {}): start the cluster on the \
                     client's lake",
                    self.lake.root().display(),
                    snapshot.table_id
                ))
            })
    }

    /// The table `snapshot` is of, as of that version.
    pub(crate) fn table(
        &self,
        snapshot: &Snapshot,
        only: Option<Vec<String>>,
    ) -> Result<Arc<dyn TableProvider>> {
        let name = self.table_of(snapshot)?;
        let provider = self.provider(name, snapshot)?;
        let Some(only) = only else {
            return Ok(provider);
        };
        // A restriction to some files is rare (a table's added files): planned apart.
        let table = block_on(self.open_table(name, snapshot))??;
        let files = crate::lake_table::LakeTable::try_new(&table, provider.schema())
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .ok_or_else(|| DataFusionError::Plan(format!("table `{name}` cannot be restricted")))?;
        Ok(Arc::new(files.restricted_to(&only.into_iter().collect())))
    }

    fn provider(&self, name: &str, snapshot: &Snapshot) -> Result<Arc<dyn TableProvider>> {
        let key = (name.to_string(), snapshot.clone());
        if let Some(p) = lock(&self.tables)?.get(&key) {
            return Ok(Arc::clone(p));
        }
        let provider = block_on(async {
            let table = self.open_table(name, snapshot).await?;
            crate::session::provider(&self.ctx, &table)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
        })??;
        lock(&self.tables)?.insert(key, Arc::clone(&provider));
        Ok(provider)
    }

    async fn open_table(
        &self,
        name: &str,
        snapshot: &Snapshot,
    ) -> Result<deltalake_core::DeltaTable> {
        let kind = TableKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .unwrap_or(TableKind::CloudTrail);
        self.lake
            .open_at(kind, Some(snapshot.version))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Where `credentials` looks keys up in `snapshot` of `cloudtrail`.
    pub(crate) fn lookup(&self, snapshot: &Snapshot) -> Result<Arc<Lookup>> {
        if self.table_of(snapshot)? != schema::TABLE_NAME {
            return Err(DataFusionError::Plan(
                "credentials are looked up in table `cloudtrail` only".into(),
            ));
        }
        if let Some(l) = lock(&self.lookups)?.get(snapshot) {
            return Ok(Arc::clone(l));
        }
        let provider = self.provider(schema::TABLE_NAME, snapshot)?;
        let lookup = crate::session::lookup_in(&self.ctx, provider, Some(snapshot.clone()))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let lookup = Arc::new(lookup);
        lock(&self.lookups)?.insert(snapshot.clone(), Arc::clone(&lookup));
        Ok(lookup)
    }
}

/// Work tables of recursive queries read whole, then projected: DataFusion pushes projections
/// into a work table's scan and keeps them where its codec cannot reach them (the scan is
/// rebuilt on an executor from its name and schema).
#[derive(Debug)]
struct WholeWorkTables;

impl PhysicalOptimizerRule for WholeWorkTables {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(recursive) = node.downcast_ref::<RecursiveQueryExec>() else {
                return Ok(Transformed::no(node));
            };
            let whole = recursive.schema();
            let names: HashSet<&String> = whole.fields().iter().map(|f| f.name()).collect();
            if names.len() != whole.fields().len() {
                return Ok(Transformed::no(node));
            }
            let term = Arc::clone(recursive.recursive_term()).transform_up(|n| {
                let Some(work) = n.downcast_ref::<WorkTableExec>() else {
                    return Ok(Transformed::no(n));
                };
                if work.schema() == whole {
                    return Ok(Transformed::no(n));
                }
                let columns = work
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        let i = whole.index_of(f.name())?;
                        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(f.name(), i));
                        Ok(ProjectionExpr::new(column, f.name().clone()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let scan = WorkTableExec::new(work.name().to_string(), Arc::clone(&whole), None)?;
                Ok(Transformed::yes(
                    Arc::new(ProjectionExec::try_new(columns, Arc::new(scan))?)
                        as Arc<dyn ExecutionPlan>,
                ))
            })?;
            if !term.transformed {
                return Ok(Transformed::no(node));
            }
            let rebuilt = RecursiveQueryExec::try_new(
                recursive.name().to_string(),
                Arc::clone(&whole),
                Arc::clone(recursive.static_term()),
                term.data,
                recursive.is_distinct(),
            )?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "whole_work_tables"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A client's session `config` as the scheduler plans with it: a default catalog made, and
/// Ballista's adaptive planner whatever the client asks. Its static one, given an executor lost
/// mid-job, ran the lost tasks again and summed their partial results twice (a wrong answer,
/// where the adaptive one fails or stalls, which the client tells).
fn scheduled(config: SessionConfig) -> SessionConfig {
    config
        .with_create_default_catalog_and_schema(true)
        .with_ballista_adaptive_query_planner(true)
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| DataFusionError::Internal("a served lake's cache was poisoned".into()))
}

/// Runs `f` to completion from a plan decoder, which DataFusion calls synchronously: on the
/// process's runtime when it can wait there, else on a runtime of its own.
fn block_on<F>(f: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if let Ok(handle) = Handle::try_current()
        && handle.runtime_flavor() == RuntimeFlavor::MultiThread
    {
        return Ok(tokio::task::block_in_place(|| handle.block_on(f)));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(f))
                .map_err(|e| DataFusionError::External(Box::new(e)))
        })
        .join()
        .map_err(|_| DataFusionError::Internal("opening a snapshot panicked".into()))?
    })
}

/// The scheduler's host and port in an address (`df://host:port`, `host:port` or `host`),
/// checked: a typo is an error here, not a connection refused later.
pub fn scheduler_address(address: &str) -> Result<(String, u16), QueryError> {
    let bare = address
        .strip_prefix("df://")
        .unwrap_or(address)
        .trim_end_matches('/');
    let (host, port) = match bare.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>().map_err(|_| {
                QueryError::Cluster(format!(
                    "`{address}`: the port is not a number (df://HOST:PORT)"
                ))
            })?,
        ),
        None => (bare, DEFAULT_PORT),
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(QueryError::Cluster(format!(
            "`{address}` is not a scheduler's address (df://HOST:PORT)"
        )));
    }
    Ok((host.to_string(), port))
}

/// `ctx` (its tables, settings and functions) with its statements planned and run on the
/// cluster whose scheduler is at `address`, and the jobs its statements become there.
pub(crate) async fn remote(
    ctx: &SessionContext,
    address: &str,
) -> Result<(SessionContext, jobs::Jobs), QueryError> {
    let (host, port) = scheduler_address(address)?;
    // Ballista's client connects when a statement runs, and says so in gRPC's words: a
    // scheduler that is not there is told here, in ours.
    let connecting = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(10), connecting).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(QueryError::Cluster(format!(
                "no scheduler answers at df://{host}:{port} ({e}): is `trailhouse cluster \
                 scheduler` running there?"
            )));
        }
        Err(_) => {
            return Err(QueryError::Cluster(format!(
                "no scheduler answered at df://{host}:{port} within 10 seconds"
            )));
        }
    }
    let jobs = jobs::Jobs::new(&host, port)?;
    // Ballista gives an executor as many of a stage's partitions as it has free cores: plans
    // cut for this machine's cores would keep the other executors idle. They are cut for the
    // cluster's cores (when it says how many it has; more are only planned, not a fault).
    let mut config = ctx.copied_config();
    if let Ok(slots) = jobs.slots().await {
        let options = config.options_mut();
        options.execution.target_partitions = options.execution.target_partitions.max(slots);
    }
    // The tables stay where they are registered (a default catalog made anew would be empty).
    let config = config
        .with_create_default_catalog_and_schema(false)
        .with_ballista_job_name(jobs.name())
        .with_ballista_logical_extension_codec(Arc::new(LakeLogicalCodec::client()));
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_config(config)
        .build();
    let functions = (
        state.scalar_functions().clone(),
        state.aggregate_functions().clone(),
        state.window_functions().clone(),
    );
    let state = state
        .upgrade_for_ballista(format!("http://{host}:{port}"))
        .map_err(QueryError::from)?;
    // Ballista sets its own list of functions: ours (`actor`, `cidr_match`, the JSON ones)
    // are added back, for the client to plan with.
    let remote = SessionContext::new_with_state(state);
    let (scalar, aggregate, window) = functions;
    let state = remote.state();
    for (name, f) in scalar {
        if !state.scalar_functions().contains_key(&name) {
            remote.register_udf((*f).clone());
        }
    }
    for (name, f) in aggregate {
        if !state.aggregate_functions().contains_key(&name) {
            remote.register_udaf((*f).clone());
        }
    }
    for (name, f) in window {
        if !state.window_functions().contains_key(&name) {
            remote.register_udwf((*f).clone());
        }
    }
    Ok((remote, jobs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_plans_adaptively_whatever_the_client_asks() {
        let asked = SessionConfig::new().with_ballista_adaptive_query_planner(false);
        assert!(!asked.ballista_adaptive_query_planner_enabled());
        let config = scheduled(asked);
        assert!(config.ballista_adaptive_query_planner_enabled());
        assert!(config.options().catalog.create_default_catalog_and_schema);
    }
}
