//! `trailhouse verify`: the trail's log file integrity, checked offline, with verdicts a user can
//! act on.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use trailhouse_ingest::s3::S3Options;
use trailhouse_ingest::verify::keys::PublicKeys;
use trailhouse_ingest::verify::objects::Sources;
use trailhouse_ingest::verify::record::record;
use trailhouse_ingest::verify::{DigestVerdict, LogVerdict, Verification, Window, verify};
use trailhouse_lake::Lake;

use crate::cli::VerifyArgs;

/// Checks the trail; with `lake` (`--record`), keeps the log files' verdicts in it.
pub async fn run(
    lake: Option<&Lake>,
    s3_endpoint: Option<String>,
    args: VerifyArgs,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let given = crate::run::window(&args.since, &args.until, now)?;
    let window = Window {
        since: given.since.and_then(DateTime::from_timestamp_micros),
        until: given.until.and_then(DateTime::from_timestamp_micros),
    };
    for source in &args.sources {
        if !trailhouse_ingest::s3::is_s3(source) && !source.exists() {
            anyhow::bail!("source `{}` does not exist", source.display());
        }
    }
    let keys = PublicKeys::load(&args.public_keys)?;
    let options = S3Options {
        endpoint: s3_endpoint,
        ..S3Options::default()
    };
    let sources = Sources::open(&args.sources, &options)?;
    let found = verify(&sources, &keys, window, HashMap::new()).await?;
    let recorded = match lake {
        Some(lake) => record(lake, &found, now)
            .await
            .with_context(|| format!("recording the verdicts in `{}`", lake.root().display()))?,
        None => None,
    };

    if args.json {
        /// The findings written as they are serialized: as one `serde_json::Value` first, a
        /// 90-day trail's 200,000 verdicts took more memory than the whole check.
        #[derive(serde::Serialize)]
        struct Output<'a> {
            #[serde(flatten)]
            found: &'a Verification,
            summary: serde_json::Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            recorded: Option<serde_json::Value>,
        }
        let output = Output {
            found: &found,
            summary: serde_json::json!({
                "digests": counts(found.digest_counts().into_iter().map(|(v, n)| (v.as_str(), n))),
                "log_files": counts(found.log_counts().into_iter().map(|(v, n)| (v.as_str(), n))),
                "all_valid": found.all_valid(),
            }),
            recorded: recorded
                .map(|version| serde_json::json!({ "table": "integrity", "version": version })),
        };
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer(&mut out, &output)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        print_text(&found, &args, keys.len());
        if let Some(version) = recorded {
            println!(
                "recorded: {} log files' verdicts in the lake's table `integrity` (version {version})",
                found.log_files.len()
            );
        }
    }
    Ok(if found.all_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn counts<'a>(items: impl Iterator<Item = (&'a str, usize)>) -> serde_json::Value {
    serde_json::Value::Object(items.map(|(k, n)| (k.to_string(), n.into())).collect())
}

fn print_text(found: &Verification, args: &VerifyArgs, keys: usize) {
    let chains: BTreeSet<_> = found.digests.iter().map(|d| &d.chain).collect();
    let sources: Vec<String> = args
        .sources
        .iter()
        .map(|s| s.display().to_string())
        .collect();
    let span = match (
        found.digests.first(),
        found.digests.iter().map(|d| d.end_time).max(),
    ) {
        (Some(_), Some(last)) => {
            let first = found
                .digests
                .iter()
                .map(|d| d.end_time)
                .min()
                .unwrap_or(last);
            format!(
                ", digests ending {} to {}",
                first.format("%Y-%m-%dT%H:%M:%SZ"),
                last.format("%Y-%m-%dT%H:%M:%SZ")
            )
        }
        _ => String::new(),
    };
    println!(
        "{} digests in {} chains and {} log files under {}{span}",
        found.digests.len(),
        chains.len(),
        found.log_files.len(),
        sources.join(", ")
    );
    if keys == 0 {
        println!(
            "no public keys given: signatures cannot be checked (save `aws cloudtrail \
             list-public-keys --region R` and name it with --public-keys)"
        );
    }
    println!();
    for d in &found.digests {
        if d.verdict != DigestVerdict::Valid || args.all {
            println!("digest    {:<14} {}", d.verdict.as_str(), d.object);
            for reason in &d.reasons {
                println!("          {:<14} {reason}", "");
            }
        }
    }
    for l in &found.log_files {
        if l.verdict != LogVerdict::Valid || args.all {
            println!("log file  {:<14} {}", l.verdict.as_str(), l.object);
            if let Some(reason) = &l.reason {
                println!("          {:<14} {reason}", "");
            }
            if let Some(digest) = &l.digest {
                println!("          {:<14} listed by {digest}", "");
            }
        }
    }
    for (path, why) in &found.unreadable {
        println!("unreadable               {path}: {why}");
    }
    let line = |items: Vec<(&str, usize)>| {
        items
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let digests = found.digest_counts();
    let logs = found.log_counts();
    println!();
    println!(
        "digests:   {}",
        if digests.is_empty() {
            "none found (is log file validation on for this trail? are its CloudTrail-Digest \
             folders in the sources?)"
                .to_string()
        } else {
            line(
                digests
                    .iter()
                    .rev()
                    .map(|(v, n)| (v.as_str(), *n))
                    .collect(),
            )
        }
    );
    println!(
        "log files: {}",
        if logs.is_empty() {
            "none".to_string()
        } else {
            line(logs.iter().rev().map(|(v, n)| (v.as_str(), *n)).collect())
        }
    );
    println!(
        "{}",
        if found.all_valid() {
            "all valid"
        } else {
            "PROBLEMS FOUND: see above"
        }
    );
}
