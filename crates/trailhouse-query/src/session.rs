//! A DataFusion session over the lake: `cloudtrail`, `quarantine` and `integrity` (the latest
//! verdict per source file) registered from their Delta tables (the files of the snapshot,
//! pruned by partition and file statistics, see `lake_table`), `credentials` and
//! `call_summary` derived from `cloudtrail`, and the JSON functions of datafusion-functions-json
//! (`json_get_str(requestparameters, 'bucketName')`, `->>`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext};
use deltalake_core::DeltaTable;
use trailhouse_lake::{Lake, LakeError, ReaderLock, TableKind, schema};

use crate::call_summary::{self, CallSummary};
use crate::credentials::{self, Lookup};
use crate::engine::{self, EngineOptions, Extensions};
use crate::error::QueryError;
use crate::lake_table::Snapshot;
use crate::local_store;
use crate::saved::{SavedQuery, SavedQueryError, WINDOW_PARAMS};

/// A query session bound to one lake.
pub struct Session {
    ctx: SessionContext,
    main: DeltaTable,
    /// Where `credentials` looks minting calls up: the lake's whole `cloudtrail`, whatever
    /// `cloudtrail` is in this session (a report hands its controls chunks of it).
    lookup: Arc<Lookup>,
    /// This process reads the lake while the session lives (a vacuum with a short retention
    /// waits for no reader).
    _reading: Option<Arc<ReaderLock>>,
    /// The jobs statements become when they run on a cluster.
    cluster: Option<ClusterJobs>,
}

#[cfg(feature = "cluster")]
type ClusterJobs = crate::cluster::jobs::Jobs;
#[cfg(not(feature = "cluster"))]
type ClusterJobs = std::convert::Infallible;

impl Session {
    /// Opens the lake's tables for reading with the default engine settings; fails with a
    /// clear message when there is no lake.
    pub async fn open(lake: &Lake) -> Result<Self, QueryError> {
        Self::open_with(lake, EngineOptions::default()).await
    }

    /// Opens the lake's tables for reading, the engine set up by `options`.
    pub async fn open_with(lake: &Lake, options: EngineOptions) -> Result<Self, QueryError> {
        let ctx = engine::context(
            engine::config_for(lake.object_store().is_some())?,
            engine::runtime(options)?,
            &credentials::extensions(),
        )?;
        local_store::register_lake_store(&ctx.runtime_env(), lake);
        // Before the snapshot is read (no vacuum can then delete a file it names); only for a
        // lake that exists (the lock file is not to create one).
        let reading = lake
            .exists()
            .then(|| lake.lock_for_reading())
            .flatten()
            .map(Arc::new);
        let main = lake.open(TableKind::CloudTrail).await?;
        register(&ctx, &main, schema::TABLE_NAME).await?;
        ctx.register_table(
            call_summary::TABLE_NAME,
            Arc::new(CallSummary::new(
                ctx.table_provider(schema::TABLE_NAME).await?,
            )),
        )?;
        match lake.open(TableKind::Quarantine).await {
            Ok(q) => register(&ctx, &q, schema::QUARANTINE_TABLE_NAME).await?,
            // A lake written before the quarantine table existed.
            Err(LakeError::Missing(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match lake.open(TableKind::Integrity).await {
            Ok(table) => register_integrity(&ctx, &table).await?,
            // Never verified with `--record`.
            Err(LakeError::Missing(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let lookup = Arc::new(lookup_in(
            &ctx,
            ctx.table_provider(schema::TABLE_NAME).await?,
            Snapshot::of(&main),
        )?);
        credentials::register(&ctx, Arc::clone(&lookup))?;
        Ok(Self {
            ctx,
            main,
            lookup,
            _reading: reading,
            cluster: None,
        })
    }

    /// A session like this one (settings, functions, caches, `quarantine` and `credentials`) in
    /// which `cloudtrail` is `table`: the rows of the lake a group of queries shares, read once.
    ///
    /// Its queries run in one partition: `table` is one stream, and the queries sharing it run
    /// side by side, which keeps the cores busy. Cut in two, each query's aggregates and sorts
    /// were twice as many consumers of the memory pool; in a small pool (`--memory 64`, a report
    /// of 29 controls) each got a sliver, spilled again and again, and the report took three
    /// times as long and more memory outside the pool.
    pub async fn with_cloudtrail(&self, table: Arc<dyn TableProvider>) -> Result<Self, QueryError> {
        let ctx = engine::context(
            self.ctx.copied_config().with_target_partitions(1),
            self.ctx.runtime_env(),
            &credentials::extensions(),
        )?;
        ctx.register_table(schema::TABLE_NAME, table)?;
        // The summary of the lake's calls, not of `table`'s.
        for name in [
            schema::QUARANTINE_TABLE_NAME,
            schema::INTEGRITY_TABLE_NAME,
            call_summary::TABLE_NAME,
        ] {
            if self.ctx.table_exist(name)? {
                ctx.register_table(name, self.ctx.table_provider(name).await?)?;
            }
        }
        credentials::register(&ctx, Arc::clone(&self.lookup))?;
        Ok(Self {
            ctx,
            main: self.main.clone(),
            lookup: Arc::clone(&self.lookup),
            _reading: self._reading.clone(),
            cluster: None,
        })
    }

    /// This session with its statements planned and run on the DataFusion Ballista cluster
    /// whose scheduler is at `address` (`df://HOST:PORT`), which serves the same lake.
    #[cfg(feature = "cluster")]
    pub async fn on_cluster(self, address: &str) -> Result<Self, QueryError> {
        let (ctx, jobs) = crate::cluster::remote(&self.ctx, address).await?;
        Ok(Self {
            ctx,
            cluster: Some(jobs),
            ..self
        })
    }

    /// The jobs this session's statements become on its cluster (none on one machine).
    #[cfg(feature = "cluster")]
    pub fn cluster_jobs(&self) -> Option<&crate::cluster::jobs::Jobs> {
        self.cluster.as_ref()
    }

    /// Where temporary keys are looked up (see [`credentials::lookup`]).
    pub fn credentials(&self) -> &Arc<Lookup> {
        &self.lookup
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The Delta table version being read.
    pub fn table_version(&self) -> Option<u64> {
        self.main.version()
    }

    /// When the table was last committed to (milliseconds since the epoch), from its log.
    pub async fn last_commit_millis(&self) -> Option<i64> {
        use futures::StreamExt;
        let mut history = self.main.history(Some(1));
        history.next().await?.ok()?.timestamp
    }

    /// Runs one read-only statement. Statements that write or change the session (COPY, CREATE,
    /// INSERT, DROP, SET) are refused.
    pub async fn sql(&self, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        Ok(readable_names(self.dataframe(sql).await?)?
            .execute_stream()
            .await?)
    }

    /// A saved query with its parameters bound, as a DataFrame to build on.
    pub async fn saved_dataframe(
        &self,
        query: &SavedQuery,
        params: HashMap<String, ScalarValue>,
    ) -> Result<DataFrame, QueryError> {
        Ok(self
            .saved_plan(query)
            .await?
            .with_param_values(ParamValues::from(params))?)
    }

    /// A saved query planned, its parameters unbound, under its own settings (`-- setting:`),
    /// which hold for it alone: the context it is planned in is a copy of this one.
    async fn saved_plan(&self, query: &SavedQuery) -> Result<DataFrame, QueryError> {
        if query.settings.is_empty() {
            return self.dataframe(&query.sql).await;
        }
        let mut state = self.ctx.state();
        for (key, value) in &query.settings {
            state.config_mut().options_mut().set(key, value)?;
        }
        self.planned(&SessionContext::new_with_state(state), &query.sql)
            .await
    }

    /// Plans one read-only statement in `ctx` (this session's, or a copy of it). On a cluster,
    /// a recursive query is planned without repartitioning, in one stage: the rounds of its
    /// recursive term read a work table that does not travel between executors.
    async fn planned(&self, ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
        let df = read_only(ctx, sql).await?;
        if self.cluster.is_none() || !is_recursive(df.logical_plan()) {
            return Ok(df);
        }
        let mut state = ctx.state();
        state.config_mut().options_mut().execution.target_partitions = 1;
        read_only(&SessionContext::new_with_state(state), sql).await
    }

    /// Runs a saved query with its parameters bound as values (never spliced into the SQL);
    /// with `explain`, returns its plan (files to scan included) instead of its rows.
    pub async fn run_saved(
        &self,
        query: &SavedQuery,
        params: HashMap<String, ScalarValue>,
        explain: bool,
    ) -> Result<SendableRecordBatchStream, QueryError> {
        let mut df = self.saved_dataframe(query, params).await?;
        if explain {
            df = df.explain(false, false)?;
        }
        Ok(df.execute_stream().await?)
    }

    /// Checks a saved query against this lake: it is exactly one statement, it plans against the
    /// schema, and its placeholders are exactly its declared parameters plus the window
    /// (`$since`, `$until`), which every saved query applies.
    pub async fn check_saved(&self, query: &SavedQuery) -> Result<(), QueryError> {
        let statements = datafusion::sql::parser::DFParser::parse_sql(&query.sql)?;
        if statements.len() != 1 {
            return Err(QueryError::Saved(SavedQueryError::Definition {
                name: query.name.clone(),
                message: format!(
                    "has {} statements; a saved query is exactly one",
                    statements.len()
                ),
            }));
        }
        let df = self.saved_plan(query).await?;
        let mut used: Vec<String> = df
            .logical_plan()
            .get_parameter_types()?
            .into_keys()
            .map(|k| k.trim_start_matches('$').to_string())
            .collect();
        used.sort();
        let mut declared: Vec<String> = query.params.iter().map(|p| p.name.clone()).collect();
        declared.extend(WINDOW_PARAMS.iter().map(|p| p.to_string()));
        declared.sort();
        if used != declared {
            return Err(QueryError::Saved(SavedQueryError::Definition {
                name: query.name.clone(),
                message: format!(
                    "declares parameters [{}] but its SQL uses [{}]",
                    declared.join(", "),
                    used.join(", ")
                ),
            }));
        }
        Ok(())
    }

    /// Plans one read-only statement.
    pub async fn dataframe(&self, sql: &str) -> Result<DataFrame, QueryError> {
        self.planned(&self.ctx, sql).await
    }
}

/// Whether `plan` holds a recursive query.
fn is_recursive(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|p| {
        found = matches!(p, datafusion::logical_expr::LogicalPlan::RecursiveQuery(_));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Plans one read-only statement in `ctx`.
async fn read_only(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options)
        .await
        .map_err(|e| match e {
            // The refusals of SQLOptions (datafusion `SQLOptions::verify_plan`).
            datafusion::error::DataFusionError::Plan(msg)
                if [
                    "DDL not supported",
                    "DML not supported",
                    "Statement not supported",
                ]
                .iter()
                .any(|p| msg.starts_with(p)) =>
            {
                QueryError::ReadOnly(format!(
                    "only queries are allowed (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE): {msg}"
                ))
            }
            other => QueryError::from(other),
        })
}

/// Where `credentials` looks minting calls up: a context of its own (`ctx`'s settings, memory
/// pool and caches) holding `cloudtrail` (the whole lake's, `provider`, at `snapshot`).
pub(crate) fn lookup_in(
    ctx: &SessionContext,
    provider: Arc<dyn TableProvider>,
    snapshot: Option<Snapshot>,
) -> Result<Lookup, QueryError> {
    let own = engine::context(
        ctx.copied_config(),
        ctx.runtime_env(),
        &Extensions::default(),
    )?;
    own.register_table(schema::TABLE_NAME, provider)?;
    Ok(Lookup::new(own).reading(snapshot))
}

async fn register(ctx: &SessionContext, table: &DeltaTable, name: &str) -> Result<(), QueryError> {
    ctx.register_table(name, provider(ctx, table).await?)?;
    Ok(())
}

/// Registers `integrity` as the latest verdict of each source file: the Delta table keeps
/// every recorded check (`checked_at`), a join wants one row per file.
async fn register_integrity(ctx: &SessionContext, table: &DeltaTable) -> Result<(), QueryError> {
    use datafusion::prelude::col;
    use schema::integrity::{CHECKED_AT, SOURCEFILE};
    let checks = ctx.read_table(provider(ctx, table).await?)?;
    let columns = checks
        .schema()
        .fields()
        .iter()
        .map(|f| col(f.name()))
        .collect();
    let latest = checks.distinct_on(
        vec![col(SOURCEFILE)],
        columns,
        Some(vec![
            col(SOURCEFILE).sort(true, false),
            col(CHECKED_AT).sort(false, false),
        ]),
    )?;
    ctx.register_table(schema::INTEGRITY_TABLE_NAME, latest.into_view())?;
    Ok(())
}

/// How `ctx` reads `table`: DataFusion's own Parquet scan over the snapshot's files when the
/// table allows it (see `lake_table`), delta-rs's otherwise.
pub(crate) async fn provider(
    ctx: &SessionContext,
    table: &DeltaTable,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    // The session's settings (plain Utf8 strings) reach the scan only through `with_session`.
    let provider = table
        .table_provider()
        .with_session(Arc::new(ctx.state()))
        .await
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    Ok(
        match crate::lake_table::LakeTable::try_new(table, provider.schema())? {
            Some(files) => Arc::new(files),
            None => provider,
        },
    )
}

/// Output columns named as they were written: DataFusion names an unaliased struct field
/// `cloudtrail.useridentity[arn]`; a reader wrote `useridentity.arn`. Other names, and a name
/// that would then collide with another column's, are left as they are.
fn readable_names(df: DataFrame) -> Result<DataFrame, QueryError> {
    let readable = |name: &str| -> Option<String> {
        if !name.contains('[') || !name.ends_with(']') {
            return None;
        }
        let (head, rest) = name.split_once('[')?;
        let head = head.rsplit('.').next()?;
        let fields: Vec<&str> = rest.trim_end_matches(']').split("][").collect();
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
        (plain(head) && fields.iter().all(|f| plain(f)))
            .then(|| format!("{head}.{}", fields.join(".")))
    };
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let renamed: Vec<Option<String>> = names
        .iter()
        .map(|n| readable(n).filter(|r| !names.contains(r)))
        .collect();
    let mut seen = std::collections::HashSet::new();
    if renamed.iter().all(Option::is_none)
        || !renamed.iter().flatten().all(|r| seen.insert(r.clone()))
    {
        return Ok(df);
    }
    let exprs: Vec<datafusion::prelude::Expr> = df
        .schema()
        .iter()
        .zip(renamed)
        .map(|((qualifier, field), new)| {
            let column = datafusion::prelude::Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            match new {
                Some(n) => column.alias(n),
                None => column,
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}
