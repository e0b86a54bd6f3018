//! The DataFusion engine as trailhouse configures it: session settings, one memory pool with
//! spilling, the metadata cache, and the functions every context has (the JSON functions of
//! datafusion-functions-json, [`crate::udf`]). What tables a context holds is not decided here.

use std::num::NonZeroUsize;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session as CatalogSession;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::QueryError;

/// Memory the engine's operators may hold (sorts, aggregates, joins) before they spill to disk,
/// unless the caller says otherwise.
pub const DEFAULT_MEMORY: usize = 512 << 20;

/// The smallest pool: a report's few dozen queries each need a little to run at all.
pub const MIN_MEMORY: usize = 64 << 20;

/// Parquet footers and page indexes kept in memory per process: a report or a shell runs many
/// queries over the same files.
const METADATA_CACHE_BYTES: usize = 128 << 20;

/// How the engine is set up for one command.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// The memory pool's size in bytes: operators that can spill do so beyond it, the others
    /// fail with an error naming what used the memory.
    pub memory: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            memory: DEFAULT_MEMORY,
        }
    }
}

/// Our session settings, unless a `DATAFUSION_*` environment variable (DataFusion's names) sets
/// them.
pub fn config() -> Result<SessionConfig, QueryError> {
    let mut config = SessionConfig::from_env()?
        .with_information_schema(true)
        .with_default_catalog_and_schema("trailhouse", "public");
    let ours: [(&str, &str); 5] = [
        // Plain Utf8 strings: with view types, a placeholder compared with a column
        // (Utf8View) and with a JSON function's result (Utf8) get two conflicting types.
        (
            "datafusion.execution.parquet.schema_force_view_types",
            "false",
        ),
        // Decode the filter columns first and the other columns only for rows that pass:
        // most questions pick a few events out of millions.
        ("datafusion.execution.parquet.pushdown_filters", "true"),
        ("datafusion.execution.parquet.reorder_filters", "true"),
        // Our footers and page indexes are tens of kilobytes; DataFusion's default guess (512
        // KiB) read most of every small file to find them.
        ("datafusion.execution.parquet.metadata_size_hint", "65536"),
        // What each sort sets aside for merging what it spilled: a report runs dozens of
        // sorts at once in one pool, and DataFusion's 10 MiB each was most of a small pool.
        (
            "datafusion.execution.sort_spill_reservation_bytes",
            "1048576",
        ),
    ];
    for (key, value) in ours {
        let var = key.replace('.', "_").to_uppercase();
        if std::env::var_os(var).is_none() {
            config.options_mut().set(key, value)?;
        }
    }
    Ok(config)
}

/// Scans in flight for a lake in an object store: each waits tens of milliseconds for every
/// range it reads, so throughput comes from many files read at once, not from the cores
/// (measured on a 2M-event lake served with 20 ms a request: 5.9 s with 2, 1.15 s with 16, 0.66 s
/// with 64).
pub const REMOTE_PARTITIONS: usize = 64;

/// [`config`] for a lake in an object store (`remote`): more scans in flight, unless
/// `DATAFUSION_EXECUTION_TARGET_PARTITIONS` says otherwise.
pub fn config_for(remote: bool) -> Result<SessionConfig, QueryError> {
    let config = config()?;
    if remote && std::env::var_os("DATAFUSION_EXECUTION_TARGET_PARTITIONS").is_none() {
        let partitions = config.target_partitions().max(REMOTE_PARTITIONS);
        return Ok(config.with_target_partitions(partitions));
    }
    Ok(config)
}

/// The runtime: one fair memory pool of `options.memory` bytes (spilling to the system's
/// temporary directory) and the metadata cache.
pub fn runtime(options: EngineOptions) -> Result<Arc<RuntimeEnv>, QueryError> {
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(options.memory.max(MIN_MEMORY)),
        NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
    );
    Ok(RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_metadata_cache_limit(METADATA_CACHE_BYTES)
        .build_arc()?)
}

/// What a context plans beyond DataFusion's own: optimizer rules (run after DataFusion's) and
/// the planners of the logical nodes those rules make.
#[derive(Default, Clone)]
pub struct Extensions {
    pub rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
    pub planners: Vec<Arc<dyn ExtensionPlanner + Send + Sync>>,
}

/// A context with our settings, functions and `extensions`, and no tables yet.
pub fn context(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    extensions: &Extensions,
) -> Result<SessionContext, QueryError> {
    // A context of its own: its default catalog is made here (a copy of a cluster client's
    // settings says not to, its catalog being the client's).
    let config = config.with_create_default_catalog_and_schema(true);
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rules(crate::union_projection::physical_rules())
        .with_optimizer_rule(crate::distinct::rule());
    for rule in &extensions.rules {
        state = state.with_optimizer_rule(Arc::clone(rule));
    }
    state = state.with_query_planner(query_planner(&extensions.planners));
    let mut ctx = SessionContext::new_with_state(state.build());
    datafusion_functions_json::register_all(&mut ctx)?;
    ctx.register_udf(crate::strpos::strpos());
    ctx.register_udf(crate::udf::cidr_match());
    ctx.register_udf(crate::udf::resource_arns());
    ctx.register_udf(crate::udf::arns_only());
    ctx.register_udf(crate::udf::actor());
    ctx.register_udf(crate::udf::actor_of());
    ctx.register_udf(crate::udf::access_denied());
    ctx.register_udf(crate::udf::is_principal());
    ctx.register_udf(crate::json_path::json_path_match());
    ctx.register_udf(crate::json_path::json_path_text());
    Ok(ctx)
}

/// DataFusion's physical planner with the planners of the nodes our rules make: `CountDistinct`
/// (from the distinct rule, in every context) and `extensions`.
pub(crate) fn query_planner(
    extensions: &[Arc<dyn ExtensionPlanner + Send + Sync>],
) -> Arc<dyn QueryPlanner + Send + Sync> {
    let mut planners: Vec<Arc<dyn ExtensionPlanner + Send + Sync>> =
        vec![Arc::new(crate::count_distinct::CountDistinctPlanner)];
    planners.extend(extensions.iter().cloned());
    Arc::new(Planner {
        extensions: planners,
    })
}

/// DataFusion's physical planner with our extension planners.
struct Planner {
    extensions: Vec<Arc<dyn ExtensionPlanner + Send + Sync>>,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

#[async_trait]
impl QueryPlanner for Planner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn CatalogSession,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(self.extensions.clone())
            .create_physical_plan(plan, session)
            .await
    }
}

/// A copy of `ctx` (same tables, functions and memory pool) whose Parquet scans do not prune:
/// no row-group statistics, page indexes or bloom filters, and, unless `filter_rows`, no
/// filtering of rows as they are decoded. For a scan whose predicate passes a large share of
/// the rows, or lists thousands of values: DataFusion analyzes the predicate again for every
/// file and row group to prune by it (copying every listed value each time), which then costs
/// more than it saves.
pub fn unpruned(ctx: &SessionContext, filter_rows: bool) -> SessionContext {
    let mut state = ctx.state();
    let options = &mut state.config_mut().options_mut().execution.parquet;
    options.pushdown_filters = filter_rows;
    options.pruning = false;
    options.enable_page_index = false;
    options.bloom_filter_on_read = false;
    SessionContext::new_with_state(state)
}
