//! `trailhouse evidence`: the events a question matched, bundled for hand-over, and
//! `trailhouse evidence check`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::common::{ParamValues, ScalarValue};
use trailhouse_lake::Lake;
use trailhouse_query::evidence::bundle::{BundleWriter, check as check_bundle};
use trailhouse_query::evidence::{Provenance, collect};

use crate::cli::EvidenceArgs;
use crate::run::{catalog, window};

pub async fn run(lake: &Lake, args: EvidenceArgs) -> anyhow::Result<ExitCode> {
    let Some(output) = args.output.as_deref() else {
        anyhow::bail!("--output DIR|FILE.zip is required");
    };
    let now = Utc::now();
    let window = window(&args.since, &args.until, now)?;
    let session = args.engine.session(lake).await?;
    let (name, sql, matched) = match (&args.name, &args.sql) {
        (Some(name), _) => {
            let c = catalog(args.queries.as_deref())?;
            let query = c.get(name)?;
            let params = query.bind(&args.params, window, now)?;
            let df = session.saved_dataframe(query, params).await?;
            (Some(query.name.clone()), query.sql.clone(), df)
        }
        (None, Some(sql)) => {
            let mut params: HashMap<String, ScalarValue> = window.params();
            for (k, v) in &args.params {
                params.insert(k.clone(), ScalarValue::Utf8(Some(v.clone())));
            }
            let df = session
                .dataframe(sql)
                .await?
                .with_param_values(ParamValues::from(params))?;
            (None, sql.clone(), df)
        }
        (None, None) => anyhow::bail!("name a saved query, or give --sql"),
    };

    let mut writer = BundleWriter::create(output)?;
    let mut integrity: BTreeMap<String, u64> = BTreeMap::new();
    let collected = collect(&session, matched, window, |record| {
        *integrity.entry(record.integrity.clone()).or_default() += 1;
        writer.add(&record)
    })
    .await;
    let records = match collected {
        Ok(n) => n,
        Err(e) => {
            // A bundle that was not finished is no bundle: it goes, and the error says why.
            writer.abandon();
            return Err(e.into());
        }
    };
    let bound = |micros: Option<i64>, open: &str| {
        micros
            .and_then(DateTime::from_timestamp_micros)
            .map_or(open.to_string(), |t| {
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            })
    };
    let provenance = Provenance {
        query: name,
        sql,
        parameters: args.params.iter().cloned().collect(),
        since: bound(window.since, "(open)"),
        until: bound(window.until, "(open)"),
        lake: lake.root().display().to_string(),
        table_version: session.table_version(),
        trailhouse_version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        records,
        integrity: integrity.clone(),
    };
    let fingerprint = writer.finish(&provenance)?;
    let verdicts = integrity
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!(
        "{records} records in {} (source files: {})",
        output.display(),
        if verdicts.is_empty() {
            "none".into()
        } else {
            verdicts
        }
    );
    println!("fingerprint {fingerprint}");
    eprintln!(
        "note the fingerprint where the bundle is handed over; `trailhouse evidence check {}` \
         recomputes it",
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn check(bundle: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let checked = check_bundle(bundle)?;
    if json {
        println!("{}", serde_json::to_string(&checked)?);
    } else {
        for p in &checked.problems {
            println!("CHANGED  {p}");
        }
        println!(
            "{} records; fingerprint {}; {}",
            checked.records,
            checked.fingerprint,
            if checked.problems.is_empty() {
                "every hash matches"
            } else {
                "the bundle was changed"
            }
        );
    }
    Ok(if checked.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
