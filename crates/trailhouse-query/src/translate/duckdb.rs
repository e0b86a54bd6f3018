//! DuckDB, which reads the lake with its `delta` extension (see `trailhouse ddl duckdb`): our
//! functions written out in DuckDB's (`actor`, `access_denied`, `is_principal`, `resource_arns`, `json_get_str`, `->>`,
//! `regexp_like`, and `array_to_string` where the two differ over nulls); integer division
//! stays integer; parameters stay named (`$since`), bound as DuckDB binds a prepared
//! statement's.

use datafusion::common::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::DuckDbDialect;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{Dialect, DuckDBDialect};
use trailhouse_lake::actor::ACTOR_MEMBERS;

use super::{json_keys, parse_with, sql_of};
use crate::udf::{access_denied_predicate, principal_predicate};

/// `plan` as one DuckDB statement.
pub(super) fn write(plan: LogicalPlan) -> Result<String> {
    let dialect = DuckDBDialect::new().with_custom_scalar_overrides(vec![
        ("actor", Box::new(actor)),
        ("access_denied", Box::new(access_denied)),
        ("is_principal", Box::new(is_principal)),
        ("resource_arns", Box::new(resource_arns)),
        ("json_get_str", Box::new(json_get_str)),
        ("json_as_text", Box::new(json_as_text)),
        ("regexp_like", Box::new(regexp_like)),
        ("array_to_string", Box::new(array_to_string)),
    ]);
    Ok(Unparser::new(&dialect).plan_to_sql(&plan)?.to_string())
}

/// DuckDB's expression for `text`, where the arguments' SQL is already written in.
fn parse(text: &str) -> Result<ast::Expr> {
    parse_with(&DuckDbDialect {}, text)
}

/// `actor(useridentity)`: the first of its members that is there.
fn actor(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
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

/// `access_denied(errorcode)`: the `LIKE`s and comparisons it stands for.
fn access_denied(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
    let [code] = args else {
        return Ok(None);
    };
    Ok(Some(
        unparser.expr_to_sql(&access_denied_predicate(code.clone()))?,
    ))
}

/// `is_principal(useridentity, name)`: the comparisons it stands for.
fn is_principal(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
    let [identity, name] = args else {
        return Ok(None);
    };
    Ok(Some(unparser.expr_to_sql(&principal_predicate(
        identity.clone(),
        name.clone(),
    ))?))
}

/// `resource_arns(resources)`: the ARNs, one per line.
fn resource_arns(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
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
fn json_get_str(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
    json_at(unparser, args, |json, path| {
        format!(
            "CASE WHEN json_type({json}, '{path}') = 'VARCHAR' \
             THEN json_extract_string({json}, '{path}') END"
        )
    })
}

/// `json ->> 'key'`: the text at `$."key"`: a string's own text, other values' JSON.
fn json_as_text(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
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
) -> Result<Option<ast::Expr>> {
    let Some((json, keys)) = args.split_first() else {
        return Ok(None);
    };
    let path = json_path(keys)?;
    let json = sql_of(unparser, json)?;
    parse(&write(&json, &path)).map(Some)
}

/// The JSON path of literal keys, `$."a"."b"`, ready to stand in a SQL literal.
fn json_path(keys: &[Expr]) -> Result<String> {
    let mut path = String::from("$");
    for key in json_keys(keys)? {
        path.push_str(&format!(".\"{}\"", key.replace('"', "\\\"")));
    }
    Ok(path.replace('\'', "''"))
}

/// `array_to_string(list, separator)`: DataFusion's gives `''` for a list of nulls only, DuckDB's
/// gives NULL; both give NULL for no list.
fn array_to_string(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
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
fn regexp_like(unparser: &Unparser, args: &[Expr]) -> Result<Option<ast::Expr>> {
    let parts = args
        .iter()
        .map(|a| sql_of(unparser, a))
        .collect::<Result<Vec<_>>>()?;
    parse(&format!("regexp_matches({})", parts.join(", "))).map(Some)
}
