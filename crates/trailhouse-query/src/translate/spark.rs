//! Spark SQL (Apache Spark 4, Databricks): identifiers in backticks, string literals with
//! Spark's backslash escapes, parameters as named markers (`:since`, bound by
//! `spark.sql(sql, args={…})` or a Databricks widget), and our functions in Spark's words.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::TimeUnit;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{self, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::DatabricksDialect;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::Dialect;
use trailhouse_lake::actor::ACTOR_MEMBERS;

use super::{json_keys, parse_with, sql_of};
use crate::udf::{access_denied_predicate, principal_predicate};

/// `plan` as one Spark SQL statement.
pub(super) fn write(plan: LogicalPlan) -> Result<String> {
    let plan = named_markers(plan)?;
    let mut statement = Unparser::new(&SparkDialect).plan_to_sql(&plan)?;
    let _ = statement.visit(&mut EscapeCharacters);
    Ok(statement.to_string())
}

/// A parameter as Spark names it in the statement.
pub(super) fn marker(name: &str) -> String {
    format!(":{name}")
}

/// Parameters `$name` renamed `:name`, Spark's named parameter markers.
fn named_markers(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform(|e| match e {
                Expr::Placeholder(mut p) if p.id.starts_with('$') => {
                    p.id = marker(&p.id[1..]);
                    Ok(Transformed::yes(Expr::Placeholder(p)))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })
    .map(|t| t.data)
}

/// `LIKE … ESCAPE '\'`: the escape character is written without going through
/// [`Dialect::string_literal_to_sql`], and a lone backslash would escape Spark's closing quote.
struct EscapeCharacters;

impl VisitorMut for EscapeCharacters {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        if let ast::Expr::Like { escape_char, .. }
        | ast::Expr::ILike { escape_char, .. }
        | ast::Expr::SimilarTo { escape_char, .. } = expr
            && let Some(ast::ValueWithSpan {
                value: ast::Value::SingleQuotedString(c),
                ..
            }) = escape_char
        {
            *c = spark_text(c);
        }
        ControlFlow::Continue(())
    }
}

/// A string's contents as a Spark literal holds them: backslashes doubled (Spark reads `\` as
/// an escape); sqlparser doubles single quotes, which Spark reads as one.
fn spark_text(s: &str) -> String {
    s.replace('\\', "\\\\")
}

struct SparkDialect;

impl Dialect for SparkDialect {
    fn identifier_quote_style(&self, _: &str) -> Option<char> {
        Some('`')
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::String(None)
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::String(None)
    }
    fn timestamp_cast_dtype(&self, _: &TimeUnit, _: &Option<Arc<str>>) -> ast::DataType {
        // Spark's TIMESTAMP is an instant (shown in the session's time zone).
        ast::DataType::Timestamp(None, ast::TimezoneInfo::None)
    }
    fn requires_derived_table_alias(&self) -> bool {
        true
    }
    fn string_literal_to_sql(&self, s: &str) -> Option<ast::Expr> {
        Some(ast::Expr::value(ast::Value::SingleQuotedString(
            spark_text(s),
        )))
    }
    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        let sql = |e: &Expr| sql_of(unparser, e);
        let text = match (name, args) {
            ("actor", [identity]) => {
                let identity = sql(identity)?;
                let members: Vec<String> = ACTOR_MEMBERS
                    .iter()
                    .map(|m| format!("({identity}).`{m}`"))
                    .collect();
                format!("coalesce({})", members.join(", "))
            }
            ("access_denied", [code]) => sql(&access_denied_predicate(code.clone()))?,
            ("is_principal", [identity, name]) => {
                sql(&principal_predicate(identity.clone(), name.clone()))?
            }
            // The ARNs, one per line.
            ("resource_arns", [resources]) => format!(
                "array_join(filter(transform({}, r -> r.`arn`), a -> a IS NOT NULL), chr(10))",
                sql(resources)?
            ),
            // The text at the path when it is a JSON string; Spark's own JSON functions cannot
            // tell a string from a number, a VARIANT can.
            ("json_get_str", [json, keys @ ..]) => {
                let (json, path) = (sql(json)?, literal(&path(keys)?));
                format!(
                    "CASE WHEN schema_of_variant(variant_get(try_parse_json({json}), {path})) \
                     = 'STRING' THEN variant_get(try_parse_json({json}), {path}, 'string') END"
                )
            }
            // `json ->> 'key'`: a string's own text, other values' JSON.
            ("json_as_text", [json, keys @ ..]) => {
                format!("get_json_object({}, {})", sql(json)?, literal(&path(keys)?))
            }
            // Both give '' for a list of nulls only, NULL for no list.
            ("array_to_string", [list, separator]) => {
                format!("array_join({}, {})", sql(list)?, sql(separator)?)
            }
            ("strpos", [text, part]) => format!("instr({}, {})", sql(text)?, sql(part)?),
            ("starts_with", [text, prefix]) => {
                format!("startswith({}, {})", sql(text)?, sql(prefix)?)
            }
            ("ends_with", [text, suffix]) => {
                format!("endswith({}, {})", sql(text)?, sql(suffix)?)
            }
            // Seconds since 1970, with their fraction, as a DOUBLE.
            (
                "date_part",
                [
                    Expr::Literal(
                        ScalarValue::Utf8(Some(field)) | ScalarValue::Utf8View(Some(field)),
                        _,
                    ),
                    time,
                ],
            ) if field.eq_ignore_ascii_case("epoch") => {
                format!("(unix_micros({}) / 1e6)", sql(time)?)
            }
            ("regexp_like", [_, _, _]) => {
                return Err(DataFusionError::Plan(
                    "Spark's regexp_like takes no flags".to_string(),
                ));
            }
            _ => return Ok(None),
        };
        parse_with(&DatabricksDialect {}, &text).map(Some)
    }
}

/// `text` as a Spark SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", spark_text(text).replace('\'', "''"))
}

/// The JSON path of literal keys, `$['a']['b']`.
fn path(keys: &[Expr]) -> Result<String> {
    let mut path = String::from("$");
    for key in json_keys(keys)? {
        if key.contains(['\'', '\\', ']']) {
            return Err(DataFusionError::Plan(format!(
                "the JSON key `{key}` cannot be written in a Spark JSON path"
            )));
        }
        path.push_str(&format!("['{key}']"));
    }
    Ok(path)
}
