//! A DataFusion session over the lake: `cloudtrail` and `quarantine` registered from their Delta
//! tables (partition and file-statistics pruning come with the Delta provider), and the JSON
//! functions of datafusion-functions-json (`json_get_str(requestparameters, 'bucketName')`, `->>`).

use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use deltalake_core::DeltaTable;
use trailhouse_lake::{Lake, TableKind, schema};

use crate::error::QueryError;

/// A query session bound to one lake.
pub struct Session {
    ctx: SessionContext,
    main: DeltaTable,
}

impl Session {
    /// Opens the lake's tables for reading; fails with a clear message when there is no lake.
    pub async fn open(lake: &Lake) -> Result<Self, QueryError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("trailhouse", "public");
        let mut ctx = SessionContext::new_with_config(config);
        datafusion_functions_json::register_all(&mut ctx)?;
        let main = lake.open(TableKind::CloudTrail).await?;
        register(&ctx, &main, schema::TABLE_NAME).await?;
        if let Ok(q) = lake.open(TableKind::Quarantine).await {
            register(&ctx, &q, schema::QUARANTINE_TABLE_NAME).await?;
        }
        Ok(Self { ctx, main })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The Delta table version being read.
    pub fn table_version(&self) -> Option<u64> {
        self.main.version()
    }

    /// Runs one read-only statement. Statements that write or change the session (COPY, CREATE,
    /// INSERT, DROP, SET) are refused.
    pub async fn sql(&self, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
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
        Ok(df.execute_stream().await?)
    }
}

async fn register(ctx: &SessionContext, table: &DeltaTable, name: &str) -> Result<(), QueryError> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    ctx.register_table(name, Arc::clone(&provider))?;
    Ok(())
}
