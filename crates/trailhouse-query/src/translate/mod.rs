//! Saved queries in another engine's SQL: DuckDB, which reads the lake with its `delta`
//! extension, and Spark SQL (Apache Spark 4 and Databricks, which read it as a Delta table; see
//! `trailhouse ddl`).
//!
//! A query is planned as trailhouse plans it and the plan written back in the engine's SQL by
//! DataFusion's unparser, so what it means is what trailhouse runs: our functions are written
//! out in the engine's words, and the parameters stay named, as the engine binds them. What an
//! engine cannot run as it is does not translate, with the reason: the `credentials` table
//! (trailhouse derives it from the lake's STS calls), the `call_summary` table (kept beside the
//! lake), `cidr_match` (IP blocks), Sigma's paths
//! into JSON (`json_path_match`), aggregates that order their input, and recursive queries.

mod duckdb;
mod spark;

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::Dialect as ParserDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::unparser::Unparser;
use trailhouse_lake::schema;

use crate::engine::{self, EngineOptions, Extensions};
use crate::error::QueryError;
use crate::saved::SavedQuery;

/// The engines saved queries are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    DuckDb,
    /// Apache Spark 4 SQL, which Databricks runs too.
    Spark,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::DuckDb => "DuckDB",
            Target::Spark => "Spark SQL",
        }
    }

    /// Parameter `name` as the statement names it (`$since`, `:since`).
    pub fn marker(self, name: &str) -> String {
        match self {
            Target::DuckDb => format!("${name}"),
            Target::Spark => spark::marker(name),
        }
    }

    /// `name` quoted as an identifier of the engine.
    fn quote(self, name: &str) -> String {
        match self {
            Target::DuckDb => format!("\"{}\"", name.replace('"', "\"\"")),
            Target::Spark => format!("`{}`", name.replace('`', "``")),
        }
    }
}

/// Why a saved query has no version in an engine's SQL.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("`{query}` does not translate to {engine}: {reason}")]
    Untranslatable {
        query: String,
        engine: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// A context that plans saved queries without a lake: the tables' schemas, no rows.
pub fn planning_context() -> Result<SessionContext, QueryError> {
    let ctx = engine::context(
        engine::config_for(false)?,
        engine::runtime(EngineOptions::default())?,
        &Extensions::default(),
    )?;
    for (name, schema) in [
        (schema::TABLE_NAME, schema::table_schema()),
        (schema::QUARANTINE_TABLE_NAME, schema::quarantine_schema()),
        (crate::credentials::TABLE_NAME, crate::credentials::schema()),
        (
            crate::call_summary::TABLE_NAME,
            crate::call_summary::schema(),
        ),
    ] {
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
    }
    Ok(ctx)
}

/// `query` as one statement of `target` over a table or view named `table` holding the lake's
/// `cloudtrail` (parameters named as [`Target::marker`] says).
pub async fn translate(
    ctx: &SessionContext,
    query: &SavedQuery,
    table: &str,
    target: Target,
) -> Result<String, TranslateError> {
    let refused = |reason: &str| TranslateError::Untranslatable {
        query: query.name.clone(),
        engine: target.name(),
        reason: reason.to_string(),
    };
    let plan = ctx
        .state()
        .create_logical_plan(&query.sql)
        .await
        .map_err(QueryError::from)?;
    if let Some(reason) = untranslatable(&plan, target) {
        return Err(refused(&reason));
    }
    let sql = match target {
        Target::DuckDb => duckdb::write(plan),
        Target::Spark => spark::write(plan),
    }
    .map_err(|e| refused(&e.to_string()))?;
    Ok(if table == schema::TABLE_NAME {
        sql
    } else {
        // The statement names `cloudtrail`; another name is given that one first.
        let quoted = table
            .split('.')
            .map(|part| target.quote(part))
            .collect::<Vec<_>>()
            .join(".");
        format!(
            "WITH {} AS (SELECT * FROM {quoted}) {sql}",
            target.quote(schema::TABLE_NAME)
        )
    })
}

/// What in `plan` `target` cannot run, if anything.
fn untranslatable(plan: &LogicalPlan, target: Target) -> Option<String> {
    let mut reason = None;
    let _ = plan.apply(|node| {
        reason = match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == "credentials" => Some(
                "it reads `credentials`, the origins of temporary keys trailhouse derives from \
                 the lake's STS calls"
                    .to_string(),
            ),
            LogicalPlan::TableScan(scan)
                if scan.table_name.table() == crate::call_summary::TABLE_NAME =>
            {
                Some(
                    "it reads `call_summary`, the summary of each data file's calls trailhouse \
                     keeps beside the lake"
                        .to_string(),
                )
            }
            LogicalPlan::RecursiveQuery(_) => {
                Some("it is recursive (WITH RECURSIVE over `credentials`)".to_string())
            }
            _ => {
                // The schema the node's expressions are written over.
                let inputs = node.inputs();
                let over = match inputs.as_slice() {
                    [input] => input.schema(),
                    _ => node.schema(),
                };
                let mut function = None;
                let _ = node.apply_expressions(|e| {
                    e.apply(|e| {
                        function = match e {
                            Expr::ScalarFunction(f) if f.name() == "cidr_match" => {
                                Some(match target {
                                    Target::DuckDb => {
                                        "it uses `cidr_match` (IP blocks), which DuckDB has \
                                         only in its `inet` extension"
                                    }
                                    Target::Spark => {
                                        "it uses `cidr_match` (IP blocks), which Spark SQL \
                                         has no function for"
                                    }
                                })
                            }
                            Expr::ScalarFunction(f)
                                if matches!(f.name(), "json_path_match" | "json_path_text") =>
                            {
                                Some(
                                    "it reads into JSON as Sigma does (keys in any case, arrays \
                                     searched element by element), which JSON paths do not",
                                )
                            }
                            Expr::BinaryExpr(b)
                                if target == Target::Spark
                                    && b.op == Operator::Divide
                                    && [&b.left, &b.right].iter().all(|side| {
                                        side.get_type(over).is_ok_and(|t| t.is_integer())
                                    }) =>
                            {
                                Some(
                                    "it divides integers, which Spark SQL's `/` turns into a \
                                     fraction",
                                )
                            }
                            Expr::AggregateFunction(f) if !f.params.order_by.is_empty() => Some(
                                "an aggregate in it orders its input (`first_value(… ORDER BY \
                                 …)`), which DataFusion's SQL writer leaves out",
                            ),
                            _ => None,
                        }
                        .map(str::to_string);
                        Ok(if function.is_some() {
                            TreeNodeRecursion::Stop
                        } else {
                            TreeNodeRecursion::Continue
                        })
                    })
                });
                function
            }
        };
        Ok(if reason.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    reason
}

/// The engine's expression for `text`, where the arguments' SQL is already written in.
fn parse_with(dialect: &dyn ParserDialect, text: &str) -> datafusion::common::Result<ast::Expr> {
    Parser::new(dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| DataFusionError::Plan(format!("{e}: {text}")))
}

fn sql_of(unparser: &Unparser, e: &Expr) -> datafusion::common::Result<String> {
    Ok(unparser.expr_to_sql(e)?.to_string())
}

/// The keys of a JSON function's path, which must be literal texts.
fn json_keys(keys: &[Expr]) -> datafusion::common::Result<Vec<&str>> {
    keys.iter()
        .map(|key| match key {
            Expr::Literal(ScalarValue::Utf8(Some(k)) | ScalarValue::Utf8View(Some(k)), _) => {
                Ok(k.as_str())
            }
            _ => Err(DataFusionError::Plan(
                "a JSON key that is not a literal text".to_string(),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saved::Catalog;

    #[tokio::test]
    async fn saved_queries_are_written_in_duckdb_terms_or_refused_with_the_reason() {
        let ctx = planning_context().expect("context");
        let catalog = Catalog::builtin().expect("catalog");
        let history = catalog.get("resource-history").expect("query");
        let sql = translate(&ctx, history, "cloudtrail", Target::DuckDb)
            .await
            .expect("translated");
        // Our functions in DuckDB's words; parameters kept by name.
        assert!(!sql.contains("actor("), "{sql}");
        assert!(
            sql.contains("coalesce((\"cloudtrail\".\"useridentity\").\"arn\""),
            "{sql}"
        );
        assert!(sql.contains("list_transform("), "{sql}");
        assert!(sql.contains("$resource") && sql.contains("$since"), "{sql}");
        // A Sigma rule's case-insensitive values keep their escape character.
        let bucket = catalog
            .get("sigma/aws_cloudtrail_bucket_deleted")
            .expect("rule");
        let sql = translate(&ctx, bucket, "cloudtrail", Target::DuckDb)
            .await
            .expect("translated");
        assert!(sql.contains("ILIKE 'DeleteBucket' ESCAPE '\\'"), "{sql}");
        let renamed = translate(&ctx, history, "trail.events", Target::DuckDb)
            .await
            .expect("translated");
        assert!(
            renamed
                .starts_with("WITH \"cloudtrail\" AS (SELECT * FROM \"trail\".\"events\") SELECT"),
            "{renamed}"
        );
        for (name, reason) in [
            ("who-deleted", "it reads `credentials`"),
            ("session-origin", "recursive"),
            ("ip-activity", "cidr_match"),
            ("new-behaviour", "ORDER BY"),
            (
                "aws_cloudtrail_console_login_success_without_mfa",
                "reads into JSON as Sigma does",
            ),
        ] {
            let query = catalog.get(name).expect("query");
            match translate(&ctx, query, "cloudtrail", Target::DuckDb).await {
                Err(TranslateError::Untranslatable { reason: r, .. }) => {
                    assert!(r.contains(reason), "{name}: {r}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn saved_queries_are_written_in_spark_sql() {
        let ctx = planning_context().expect("context");
        let catalog = Catalog::builtin().expect("catalog");
        let spark = |q| translate(&ctx, q, "cloudtrail", Target::Spark);
        let history = catalog.get("resource-history").expect("query");
        let sql = spark(history).await.expect("translated");
        // Backticks, named markers, our functions in Spark's words.
        assert!(sql.contains("(`cloudtrail`.`useridentity`).`arn`"), "{sql}");
        assert!(sql.contains(":resource") && sql.contains(":since"), "{sql}");
        assert!(!sql.contains('$') && !sql.contains("strpos("), "{sql}");
        assert!(
            sql.contains("instr(") && sql.contains("r -> r.`arn`"),
            "{sql}"
        );
        // A JSON string, told from other JSON values by a VARIANT.
        let logins = catalog.get("cis-console-login-no-mfa").expect("query");
        let sql = spark(logins).await.expect("translated");
        assert!(
            sql.contains("schema_of_variant(variant_get(try_parse_json(`cloudtrail`.`additionaleventdata`), '$[''MFAUsed'']')) = 'STRING'"),
            "{sql}"
        );
        // Spark reads a backslash in a literal as an escape: the escape character is doubled.
        let bucket = catalog
            .get("sigma/aws_cloudtrail_bucket_deleted")
            .expect("rule");
        let sql = spark(bucket).await.expect("translated");
        assert!(sql.contains("ILIKE 'DeleteBucket' ESCAPE '\\\\'"), "{sql}");
        let text = SavedQuery::parse(
            "t/backslash",
            "-- summary: literals\nSELECT eventid FROM cloudtrail WHERE useragent = 'a\\b' AND eventname = 'it''s'",
        )
        .expect("query");
        let sql = spark(&text).await.expect("translated");
        assert!(
            sql.contains(r"= 'a\\b'") && sql.contains("= 'it''s'"),
            "{sql}"
        );
        let renamed = translate(&ctx, history, "trail.events", Target::Spark)
            .await
            .expect("translated");
        assert!(
            renamed.starts_with("WITH `cloudtrail` AS (SELECT * FROM `trail`.`events`) SELECT"),
            "{renamed}"
        );
        let halves = SavedQuery::parse(
            "t/halves",
            "-- summary: integer division\nSELECT count(*) / 2 AS half FROM cloudtrail",
        )
        .expect("query");
        match spark(&halves).await {
            Err(TranslateError::Untranslatable { reason, .. }) => {
                assert!(reason.contains("divides integers"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        match spark(catalog.get("ip-activity").expect("query")).await {
            Err(TranslateError::Untranslatable { reason, engine, .. }) => {
                assert_eq!(engine, "Spark SQL");
                assert!(reason.contains("cidr_match"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
