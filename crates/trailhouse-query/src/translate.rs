//! Saved queries in another engine's SQL: DuckDB, which reads the lake with its `delta`
//! extension (see `trailhouse ddl duckdb`).
//!
//! A query is planned as trailhouse plans it and the plan written back as DuckDB SQL by
//! DataFusion's unparser, so what it means is what trailhouse runs: our functions are written
//! out in DuckDB's (`actor`, `resource_arns`, `json_get_str`, `->>`, `regexp_like`, and
//! `array_to_string` where the two differ over nulls), integer division
//! stays integer, and the parameters stay named (`$since`, bound as DuckDB binds a prepared
//! statement's). What DuckDB cannot run as it is does not translate, with the reason: the
//! `credentials` table (trailhouse derives it from the lake's STS calls), `cidr_match` (IP
//! blocks: DuckDB's `inet` extension), Sigma's paths into JSON (`json_path_match`) and
//! recursive queries.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::DuckDbDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{Dialect, DuckDBDialect};
use trailhouse_lake::schema;

use crate::engine::{self, EngineOptions, Extensions};
use crate::error::QueryError;
use crate::saved::SavedQuery;
use crate::udf::ACTOR_MEMBERS;

/// Why a saved query has no DuckDB version.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("`{query}` does not translate to DuckDB: {reason}")]
    Untranslatable { query: String, reason: String },
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
    ] {
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
    }
    Ok(ctx)
}

/// `query` as one DuckDB statement over a table or view named `table` holding the lake's
/// `cloudtrail` (parameters as `$name`).
pub async fn duckdb(
    ctx: &SessionContext,
    query: &SavedQuery,
    table: &str,
) -> Result<String, TranslateError> {
    let refused = |reason: &str| TranslateError::Untranslatable {
        query: query.name.clone(),
        reason: reason.to_string(),
    };
    let plan = ctx
        .state()
        .create_logical_plan(&query.sql)
        .await
        .map_err(QueryError::from)?;
    if let Some(reason) = untranslatable(&plan) {
        return Err(refused(&reason));
    }
    let dialect = DuckDBDialect::new().with_custom_scalar_overrides(vec![
        ("actor", Box::new(actor)),
        ("resource_arns", Box::new(resource_arns)),
        ("json_get_str", Box::new(json_get_str)),
        ("json_as_text", Box::new(json_as_text)),
        ("regexp_like", Box::new(regexp_like)),
        ("array_to_string", Box::new(array_to_string)),
    ]);
    let sql = Unparser::new(&dialect)
        .plan_to_sql(&plan)
        .map_err(|e| refused(&e.to_string()))?;
    let sql = sql.to_string();
    Ok(if table == schema::TABLE_NAME {
        sql
    } else {
        // The statement names `cloudtrail`; another name is given that one first.
        let quoted = table
            .split('.')
            .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(".");
        format!("WITH \"cloudtrail\" AS (SELECT * FROM {quoted}) {sql}")
    })
}

/// What in `plan` DuckDB cannot run, if anything.
fn untranslatable(plan: &LogicalPlan) -> Option<String> {
    let mut reason = None;
    let _ = plan.apply(|node| {
        reason = match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == "credentials" => Some(
                "it reads `credentials`, the origins of temporary keys trailhouse derives from \
                 the lake's STS calls"
                    .to_string(),
            ),
            LogicalPlan::RecursiveQuery(_) => {
                Some("it is recursive (WITH RECURSIVE over `credentials`)".to_string())
            }
            _ => {
                let mut function = None;
                let _ = node.apply_expressions(|e| {
                    e.apply(|e| {
                        function = match e {
                            Expr::ScalarFunction(f) if f.name() == "cidr_match" => Some(
                                "it uses `cidr_match` (IP blocks), which DuckDB has only in \
                                 its `inet` extension",
                            ),
                            Expr::ScalarFunction(f)
                                if matches!(f.name(), "json_path_match" | "json_path_text") =>
                            {
                                Some(
                                    "it reads into JSON as Sigma does (keys in any case, arrays \
                                     searched element by element), which DuckDB's JSON paths do \
                                     not",
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

/// DuckDB's expression for `text`, where the arguments' SQL is already written in.
fn parse(text: &str) -> datafusion::common::Result<ast::Expr> {
    Parser::new(&DuckDbDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| DataFusionError::Plan(format!("{e}: {text}")))
}

fn sql_of(unparser: &Unparser, e: &Expr) -> datafusion::common::Result<String> {
    Ok(unparser.expr_to_sql(e)?.to_string())
}

/// `actor(useridentity)`: the first of its members that is there.
fn actor(unparser: &Unparser, args: &[Expr]) -> datafusion::common::Result<Option<ast::Expr>> {
    let [identity] = args else {
        return Ok(None);
    };
    let identity = sql_of(unparser, identity)?;
    let members: Vec<String> = ACTOR_MEMBERS
        .iter()
        .map(|m| format!("({identity}).\"{m}\""))
        .collect();
    parse(&format!("coalesce({})", members.join(", "))).map(Some)
}

/// `resource_arns(resources)`: the ARNs, one per line.
fn resource_arns(
    unparser: &Unparser,
    args: &[Expr],
) -> datafusion::common::Result<Option<ast::Expr>> {
    let [resources] = args else {
        return Ok(None);
    };
    let resources = sql_of(unparser, resources)?;
    parse(&format!(
        "array_to_string(list_filter(list_transform({resources}, lambda r: r.\"arn\"), \
         lambda a: a IS NOT NULL), chr(10))"
    ))
    .map(Some)
}

/// `json_get_str(json, 'a', 'b')`: the text at `$."a"."b"`, when it is a string.
fn json_get_str(
    unparser: &Unparser,
    args: &[Expr],
) -> datafusion::common::Result<Option<ast::Expr>> {
    json_at(unparser, args, |json, path| {
        format!(
            "CASE WHEN json_type({json}, '{path}') = 'VARCHAR' \
             THEN json_extract_string({json}, '{path}') END"
        )
    })
}

/// `json ->> 'key'`: the text at `$."key"`: a string's own text, other values' JSON.
fn json_as_text(
    unparser: &Unparser,
    args: &[Expr],
) -> datafusion::common::Result<Option<ast::Expr>> {
    json_at(unparser, args, |json, path| {
        format!("json_extract_string({json}, '{path}')")
    })
}

/// A JSON function of `(json, key, …)` written by `write` from the JSON's SQL and the keys'
/// path.
fn json_at(
    unparser: &Unparser,
    args: &[Expr],
    write: impl Fn(&str, &str) -> String,
) -> datafusion::common::Result<Option<ast::Expr>> {
    let Some((json, keys)) = args.split_first() else {
        return Ok(None);
    };
    let path = json_path(keys)?;
    let json = sql_of(unparser, json)?;
    parse(&write(&json, &path)).map(Some)
}

/// The JSON path of literal keys, `$."a"."b"`, ready to stand in a SQL literal.
fn json_path(keys: &[Expr]) -> datafusion::common::Result<String> {
    let mut path = String::from("$");
    for key in keys {
        let Expr::Literal(ScalarValue::Utf8(Some(key)) | ScalarValue::Utf8View(Some(key)), _) = key
        else {
            return Err(DataFusionError::Plan(
                "a JSON key that is not a literal text".to_string(),
            ));
        };
        path.push_str(&format!(".\"{}\"", key.replace('"', "\\\"")));
    }
    Ok(path.replace('\'', "''"))
}

/// `array_to_string(list, separator)`: DataFusion's gives `''` for a list of nulls only, DuckDB's
/// gives NULL; both give NULL for no list.
fn array_to_string(
    unparser: &Unparser,
    args: &[Expr],
) -> datafusion::common::Result<Option<ast::Expr>> {
    let [list, separator] = args else {
        return Ok(None);
    };
    let (list, separator) = (sql_of(unparser, list)?, sql_of(unparser, separator)?);
    parse(&format!(
        "CASE WHEN ({list}) IS NOT NULL THEN coalesce(array_to_string({list}, {separator}), '') END"
    ))
    .map(Some)
}

/// `regexp_like(text, pattern)`: DuckDB's `regexp_matches` (both find the pattern anywhere).
fn regexp_like(
    unparser: &Unparser,
    args: &[Expr],
) -> datafusion::common::Result<Option<ast::Expr>> {
    let parts = args
        .iter()
        .map(|a| sql_of(unparser, a))
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    parse(&format!("regexp_matches({})", parts.join(", "))).map(Some)
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
        let sql = duckdb(&ctx, history, "cloudtrail")
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
        let sql = duckdb(&ctx, bucket, "cloudtrail")
            .await
            .expect("translated");
        assert!(sql.contains("ILIKE 'DeleteBucket' ESCAPE '\\'"), "{sql}");
        let renamed = duckdb(&ctx, history, "trail.events")
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
            match duckdb(&ctx, query, "cloudtrail").await {
                Err(TranslateError::Untranslatable { reason: r, .. }) => {
                    assert!(r.contains(reason), "{name}: {r}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
