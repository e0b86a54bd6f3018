//! A DataFusion session over the lake: `cloudtrail` and `quarantine` registered from their Delta
//! tables (the files of the snapshot, pruned by partition and file statistics, see
//! `lake_table`), and the JSON functions of datafusion-functions-json
//! (`json_get_str(requestparameters, 'bucketName')`, `->>`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::DataFrame;

use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use deltalake_core::DeltaTable;
use trailhouse_lake::{Lake, TableKind, schema};

use crate::credentials;
use crate::error::QueryError;
use crate::saved::{SavedQuery, SavedQueryError, WINDOW_PARAMS};

/// Parquet metadata kept in memory per session.
const METADATA_CACHE_BYTES: usize = 512 << 20;

/// A query session bound to one lake.
pub struct Session {
    ctx: SessionContext,
    main: DeltaTable,
}

impl Session {
    /// Opens the lake's tables for reading; fails with a clear message when there is no lake.
    pub async fn open(lake: &Lake) -> Result<Self, QueryError> {
        // DATAFUSION_* environment variables tune the engine (DataFusion's names); the settings
        // below are ours unless the environment sets them.
        let mut config = SessionConfig::from_env()?
            .with_information_schema(true)
            .with_default_catalog_and_schema("trailhouse", "public");
        let ours = [
            // Plain Utf8 strings: with view types, a placeholder compared with a column
            // (Utf8View) and with a JSON function's result (Utf8) get two conflicting types.
            (
                "datafusion.execution.parquet.schema_force_view_types",
                false,
            ),
            // Decode the filter columns first and the other columns only for rows that pass:
            // most questions pick a few events out of millions.
            ("datafusion.execution.parquet.pushdown_filters", true),
            ("datafusion.execution.parquet.reorder_filters", true),
        ];
        for (key, value) in ours {
            let var = key.replace('.', "_").to_uppercase();
            if std::env::var_os(var).is_none() {
                config = config.set_bool(key, value);
            }
        }
        // Parquet footers and page indexes stay cached for the session: a report or a shell runs
        // many queries over the same files. DataFusion's default (50 MiB) holds about 500 of our
        // files' metadata; a 90-day, many-region table has more.
        let runtime = RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(METADATA_CACHE_BYTES)
            .build_arc()?;
        let ctx = context(config, runtime)?;
        let main = lake.open(TableKind::CloudTrail).await?;
        register(&ctx, &main, schema::TABLE_NAME).await?;
        if let Ok(q) = lake.open(TableKind::Quarantine).await {
            register(&ctx, &q, schema::QUARANTINE_TABLE_NAME).await?;
        }
        // `credentials` is derived in a context of its own that holds `cloudtrail` only.
        let own = context(ctx.copied_config(), ctx.runtime_env())?;
        own.register_table(
            schema::TABLE_NAME,
            ctx.table_provider(schema::TABLE_NAME).await?,
        )?;
        let cache = main.version().and_then(|version| {
            Some(credentials::CacheDir {
                dir: lake.state_dir().join("credentials"),
                table_id: main.snapshot().ok()?.metadata().id().to_string(),
                version,
            })
        });
        let sources = credentials::Sources {
            ctx: own,
            delta: main.clone(),
        };
        ctx.register_table(
            credentials::TABLE_NAME,
            Arc::new(credentials::CredentialsTable::new(sources, cache).await?),
        )?;
        Ok(Self { ctx, main })
    }

    /// A session like this one (settings, functions, caches, `quarantine` and `credentials`) in
    /// which `cloudtrail` is `table`: the rows of the lake a group of queries shares, read once.
    pub async fn with_cloudtrail(&self, table: Arc<dyn TableProvider>) -> Result<Self, QueryError> {
        let ctx = context(self.ctx.copied_config(), self.ctx.runtime_env())?;
        ctx.register_table(schema::TABLE_NAME, table)?;
        for name in [schema::QUARANTINE_TABLE_NAME, credentials::TABLE_NAME] {
            if self.ctx.table_exist(name)? {
                ctx.register_table(name, self.ctx.table_provider(name).await?)?;
            }
        }
        Ok(Self {
            ctx,
            main: self.main.clone(),
        })
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
        Ok(self.dataframe(sql).await?.execute_stream().await?)
    }

    /// A saved query with its parameters bound, as a DataFrame to build on.
    pub async fn saved_dataframe(
        &self,
        query: &SavedQuery,
        params: HashMap<String, ScalarValue>,
    ) -> Result<DataFrame, QueryError> {
        Ok(self
            .dataframe(&query.sql)
            .await?
            .with_param_values(ParamValues::from(params))?)
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
        let df = self.dataframe(&query.sql).await?;
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
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, options)
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
            })?;
        Ok(df)
    }
}

/// A context with our settings and functions, and no tables yet.
pub(crate) fn context(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> Result<SessionContext, QueryError> {
    let mut ctx = SessionContext::new_with_config_rt(config, runtime);
    datafusion_functions_json::register_all(&mut ctx)?;
    ctx.register_udf(crate::udf::cidr_match());
    ctx.register_udf(crate::udf::resource_arns());
    Ok(ctx)
}

async fn register(ctx: &SessionContext, table: &DeltaTable, name: &str) -> Result<(), QueryError> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    // The session's settings (plain Utf8 strings) reach the scan only through `with_session`.
    let provider = table
        .table_provider()
        .with_session(Arc::new(ctx.state()))
        .await
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    // DataFusion's own Parquet scan over the snapshot's files when the table allows it (see
    // `lake_table`), delta-rs's otherwise.
    match crate::lake_table::LakeTable::try_new(table, provider.schema())? {
        Some(files) => ctx.register_table(name, Arc::new(files))?,
        None => ctx.register_table(name, provider)?,
    };
    Ok(())
}
