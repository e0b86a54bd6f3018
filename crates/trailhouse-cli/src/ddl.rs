//! `trailhouse ddl`: what registers or reads the lake's table in another engine. Every engine
//! here reads the Delta log itself (schema, files, partitions), so nothing lists columns or
//! partitions that could drift from the table: a new ingest is seen by the next query there.

use std::process::ExitCode;

use anyhow::{Context, bail};
use trailhouse_lake::{Lake, TableKind};

use trailhouse_query::saved::{Catalog, SavedQuery};
use trailhouse_query::translate::{self, Target, TranslateError};

use crate::cli::{DdlArgs, DdlTable, Engine};

/// What does not carry over to another engine, said in each output.
const NOT_CARRIED: &str = "trailhouse's own functions (actor, cidr_match, …) and credentials table";

pub async fn run(lake: &Lake, endpoint: Option<&str>, args: DdlArgs) -> anyhow::Result<ExitCode> {
    let (kind, default_name) = match args.table {
        DdlTable::Cloudtrail => (TableKind::CloudTrail, "cloudtrail"),
        DdlTable::Quarantine => (TableKind::Quarantine, "quarantine"),
    };
    let location = match args.location {
        Some(l) => l.trim_end_matches('/').to_string(),
        None => table_location(lake, kind)?,
    };
    let name = Name::parse(
        args.name.as_deref().unwrap_or(default_name),
        args.engine == Engine::Trino,
    )?;
    // Saved queries, when asked for, in the engine's SQL: checked before anything is printed.
    let target = if args.queries.is_empty() {
        None
    } else if kind != TableKind::CloudTrail {
        bail!("--query: saved queries read the cloudtrail table, not --table quarantine");
    } else {
        Some(match args.engine {
            Engine::Duckdb => Target::DuckDb,
            Engine::Spark | Engine::Databricks => Target::Spark,
            Engine::Athena | Engine::Trino | Engine::Polars => bail!(
                "--query: saved queries are written for duckdb, spark and databricks; not for \
                 Athena's or Trino's SQL, which no test here can run (drop --query for the \
                 table's statement)"
            ),
        })
    };
    print!("{}", statements(args.engine, &name, &location, endpoint)?);
    match target {
        Some(target) => queries(&name.parts.join("."), &args.queries, target).await,
        None => Ok(ExitCode::SUCCESS),
    }
}

/// How a statement of `target` gets its parameters' values.
fn binding(target: Target) -> &'static str {
    match target {
        Target::DuckDb => {
            "bind them as DuckDB binds a prepared statement's, con.execute(query, {\"since\": …})."
        }
        Target::Spark => {
            "bind them with spark.sql(query, args={\"since\": …}) in PySpark, or as parameters \
             in Databricks SQL. Set spark.sql.session.timeZone to UTC to see times as CloudTrail \
             writes them."
        }
    }
}

/// The saved queries `names` (or `all`) in `target`'s SQL over `table`; those that do not
/// translate are said so, in a comment and on stderr (exit 1 when one was named).
async fn queries(table: &str, names: &[String], target: Target) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin()?;
    let all = names.iter().any(|n| n == "all");
    let chosen: Vec<&SavedQuery> = if all {
        catalog.iter().collect()
    } else {
        names
            .iter()
            .map(|n| catalog.get(n))
            .collect::<Result<_, _>>()?
    };
    let ctx = translate::planning_context()?;
    println!(
        "-- The saved queries below name their parameters ({}): {}",
        target.marker("since"),
        binding(target)
    );
    let mut code = ExitCode::SUCCESS;
    for query in chosen {
        println!("\n-- {}: {}", query.name, query.summary);
        match translate::translate(&ctx, query, table, target).await {
            Ok(sql) => {
                for param in query.describe_params() {
                    println!("-- {}", target.marker(&param));
                }
                for (bound, what) in [("since", "start"), ("until", "end")] {
                    if query.sql.contains(&format!("${bound}")) {
                        println!(
                            "-- {} timestamp (required): {what} of the window",
                            target.marker(bound)
                        );
                    }
                }
                println!("{sql};");
            }
            Err(e @ TranslateError::Untranslatable { .. }) => {
                println!("-- {e}");
                if !all {
                    eprintln!("{e}");
                    code = ExitCode::from(1);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

/// The table's URL in an S3 lake; the absolute folder of a local one, which must exist.
fn table_location(lake: &Lake, kind: TableKind) -> anyhow::Result<String> {
    let location = lake.table_location(kind);
    if lake.is_remote() {
        return Ok(location.to_string_lossy().into_owned());
    }
    let folder = std::path::absolute(&location)
        .with_context(|| format!("table folder `{}`", location.display()))?;
    if !folder.join("_delta_log").is_dir() {
        bail!(
            "no table at `{}`: ingest into the lake first, or pass --location",
            folder.display()
        );
    }
    folder
        .to_str()
        .map(str::to_string)
        .with_context(|| format!("`{}` is not UTF-8", folder.display()))
}

/// A table name: `table`, `schema.table`, or (Trino) `catalog.schema.table`, of plain words.
#[derive(Debug, PartialEq)]
struct Name {
    parts: Vec<String>,
}

impl Name {
    fn parse(text: &str, catalog_allowed: bool) -> anyhow::Result<Self> {
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        let max = if catalog_allowed { 3 } else { 2 };
        let word = |p: &String| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if parts.len() > max || !parts.iter().all(word) {
            bail!(
                "--name `{text}`: want {} of letters, digits and `_`",
                if catalog_allowed {
                    "`table`, `schema.table` or `catalog.schema.table`"
                } else {
                    "`table` or `schema.table`"
                }
            );
        }
        Ok(Self { parts })
    }

    /// The name with each part quoted by `quote`.
    fn quoted(&self, quote: char) -> String {
        self.parts
            .iter()
            .map(|p| format!("{quote}{p}{quote}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn table(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn is_s3(location: &str) -> bool {
    location.starts_with("s3://") || location.starts_with("s3a://")
}

/// The statements (or, for polars, the Python) for `engine`.
fn statements(
    engine: Engine,
    name: &Name,
    location: &str,
    endpoint: Option<&str>,
) -> anyhow::Result<String> {
    let s3 = is_s3(location);
    if matches!(engine, Engine::Athena | Engine::Trino) && !s3 {
        bail!(
            "{} reads tables in S3, and this lake is on this machine: keep the lake in S3 \
             (--lake s3://bucket/prefix), or copy the table there and pass --location s3://…",
            if engine == Engine::Athena {
                "Athena"
            } else {
                "Trino's Delta Lake connector, as written for here,"
            }
        );
    }
    let out = match engine {
        Engine::Athena => format!(
            "-- Amazon Athena, engine version 3: it reads the Delta log itself (columns, files,\n\
             -- partitions), so there is no column list and no partition to add.\n\
             -- Not carried over: {NOT_CARRIED}.\n\
             CREATE EXTERNAL TABLE {}\n\
             LOCATION {}\n\
             TBLPROPERTIES ('table_type' = 'DELTA');\n",
            name.quoted('`'),
            literal(&format!("{location}/")),
        ),
        Engine::Trino => {
            let (catalog, schema) = match name.parts.as_slice() {
                [c, s, _] => (c.as_str(), s.as_str()),
                [s, _] => ("delta", s.as_str()),
                _ => ("delta", "default"),
            };
            format!(
                "-- Trino, Delta Lake connector (catalog `{catalog}`; name yours with --name \
                 catalog.schema.table),\n\
                 -- with delta.register-table-procedure.enabled=true in the catalog's properties.\n\
                 -- Not carried over: {NOT_CARRIED}.\n\
                 CALL \"{catalog}\".system.register_table(schema_name => {}, table_name => {}, \
                 table_location => {});\n",
                literal(schema),
                literal(name.table()),
                literal(location),
            )
        }
        Engine::Spark => format!(
            "-- Apache Spark with Delta Lake (the delta-spark package), with\n\
             --   spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension\n\
             --   spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog\n\
             {}\
             -- Not carried over: {NOT_CARRIED}.\n\
             CREATE TABLE IF NOT EXISTS {} USING DELTA LOCATION {};\n",
            if s3 {
                "-- Outside EMR, Spark's S3 connector (hadoop-aws) reads s3a:// where this says s3://.\n"
            } else {
                ""
            },
            name.quoted('`'),
            literal(location),
        ),
        Engine::Databricks => format!(
            "-- Databricks: with Unity Catalog, the location must be inside an external location\n\
             -- you may read (or use the hive_metastore catalog).\n\
             -- Not carried over: {NOT_CARRIED}.\n\
             CREATE TABLE IF NOT EXISTS {} USING DELTA LOCATION {};\n",
            name.quoted('`'),
            literal(location),
        ),
        Engine::Duckdb => {
            let secret = if s3 {
                let mut options = vec!["TYPE s3".to_string(), "PROVIDER credential_chain".into()];
                if let Some(e) = endpoint {
                    let (scheme, host) = e.split_once("://").unwrap_or(("https", e));
                    options.push(format!("ENDPOINT {}", literal(host.trim_end_matches('/'))));
                    options.push("URL_STYLE 'path'".into());
                    if scheme == "http" {
                        options.push("USE_SSL false".into());
                    }
                }
                format!("CREATE SECRET ({});\n", options.join(", "))
            } else {
                String::new()
            };
            format!(
                "-- DuckDB with its delta extension (delta_scan reads the Delta log; reading the\n\
                 -- Parquet files directly would also read files the table no longer holds).\n\
                 -- Not carried over: {NOT_CARRIED}.\n\
                 INSTALL delta;\n\
                 LOAD delta;\n\
                 {secret}\
                 CREATE OR REPLACE VIEW {} AS SELECT * FROM delta_scan({});\n",
                name.quoted('"'),
                literal(location),
            )
        }
        Engine::Polars => {
            let options = match (s3, endpoint) {
                (true, Some(e)) => format!(
                    ",\n    storage_options={{\"AWS_ENDPOINT_URL\": {}{}}},",
                    python_string(e),
                    if e.starts_with("http://") {
                        ", \"AWS_ALLOW_HTTP\": \"true\""
                    } else {
                        ""
                    }
                ),
                _ => String::new(),
            };
            format!(
                "# Python polars (with the deltalake package): scan_delta reads the Delta log.\n\
                 # Credentials for S3 come from the usual AWS_* environment variables.\n\
                 # Not carried over: {NOT_CARRIED}.\n\
                 import polars as pl\n\
                 \n\
                 {} = pl.scan_delta({}{options})\n",
                name.table(),
                python_string(location),
            )
        }
    };
    Ok(out)
}

/// A Python string literal (JSON's escapes are Python's).
fn python_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words_in_up_to_two_or_three_parts() {
        assert_eq!(Name::parse("ct", false).expect("one").quoted('`'), "`ct`");
        assert_eq!(
            Name::parse("logs.ct_1", false).expect("two").quoted('"'),
            "\"logs\".\"ct_1\""
        );
        assert!(Name::parse("a.b.c", false).is_err());
        assert_eq!(Name::parse("a.b.c", true).expect("three").table(), "c");
        for bad in ["", "a..b", "1ct", "ct;DROP", "a b", "ct`"] {
            assert!(Name::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_are_quoted_as_literals() {
        let name = Name::parse("ct", false).expect("name");
        let out = statements(Engine::Spark, &name, "/data/it's/cloudtrail", None).expect("spark");
        assert!(out.contains("LOCATION '/data/it''s/cloudtrail';"), "{out}");
        let out =
            statements(Engine::Polars, &name, "/data/\"q\"/cloudtrail", None).expect("polars");
        assert!(
            out.contains(r#"pl.scan_delta("/data/\"q\"/cloudtrail")"#),
            "{out}"
        );
    }

    #[test]
    fn athena_and_trino_want_s3_and_an_endpoint_reaches_duckdb_and_polars() {
        let name = Name::parse("ct", true).expect("name");
        for engine in [Engine::Athena, Engine::Trino] {
            let e = statements(engine, &name, "/data/lake/cloudtrail", None).expect_err("local");
            assert!(e.to_string().contains("--location s3://"), "{e}");
        }
        let out = statements(
            Engine::Duckdb,
            &name,
            "s3://b/p/cloudtrail",
            Some("http://127.0.0.1:9000"),
        )
        .expect("duckdb");
        assert!(
            out.contains("CREATE SECRET (TYPE s3, PROVIDER credential_chain, ENDPOINT '127.0.0.1:9000', URL_STYLE 'path', USE_SSL false);"),
            "{out}"
        );
        let out = statements(
            Engine::Polars,
            &name,
            "s3://b/p/cloudtrail",
            Some("http://h:1"),
        )
        .expect("polars");
        assert!(out.contains(r#""AWS_ENDPOINT_URL": "http://h:1", "AWS_ALLOW_HTTP": "true""#));
        let out = statements(Engine::Athena, &name, "s3://b/p/cloudtrail", None).expect("athena");
        assert!(out.contains("LOCATION 's3://b/p/cloudtrail/'"), "{out}");
        assert!(
            out.contains("TBLPROPERTIES ('table_type' = 'DELTA');"),
            "{out}"
        );
        let name = Name::parse("lake.logs.ct", true).expect("name");
        let out = statements(Engine::Trino, &name, "s3://b/p/cloudtrail", None).expect("trino");
        assert!(
            out.contains("CALL \"lake\".system.register_table(schema_name => 'logs', table_name => 'ct', table_location => 's3://b/p/cloudtrail');"),
            "{out}"
        );
    }
}
