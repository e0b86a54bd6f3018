//! `trailhouse verify`: the trail's log file integrity, checked offline, with verdicts a user can
//! act on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use trailhouse_ingest::Report;
use trailhouse_ingest::s3::S3Options;
use trailhouse_ingest::verify::digest::{Sha256, log_delivery_time};
use trailhouse_ingest::verify::keys::PublicKeys;
use trailhouse_ingest::verify::objects::Sources;
use trailhouse_ingest::verify::record::record;
use trailhouse_ingest::verify::{
    DigestVerdict, LogVerdict, Verification, Window, verify, verify_listed,
};
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
        let mut value = serde_json::to_value(&found)?;
        value["summary"] = serde_json::json!({
            "digests": counts(found.digest_counts().into_iter().map(|(v, n)| (v.as_str(), n))),
            "log_files": counts(found.log_counts().into_iter().map(|(v, n)| (v.as_str(), n))),
            "all_valid": found.all_valid(),
        });
        if let Some(version) = recorded {
            value["recorded"] = serde_json::json!({ "table": "integrity", "version": version });
        }
        println!("{}", serde_json::to_string(&value)?);
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

/// What `ingest --verify` found, in its JSON report.
pub struct Verified {
    pub digests: BTreeMap<&'static str, usize>,
    pub log_files: BTreeMap<&'static str, usize>,
    pub all_valid: bool,
    /// The version of table `integrity` the verdicts were recorded at.
    pub recorded: Option<u64>,
}

/// Checks the log files this run read (by the hashes it took) and those an earlier run left
/// pending their digest against the digests in `sources`, and records the verdicts. The
/// report's hashes and listing are taken from it (not copied: a 20M-event trail has 400,000
/// files).
pub async fn after_ingest(
    lake: &Lake,
    sources: &[PathBuf],
    s3: &S3Options,
    keys: &PublicKeys,
    report: &mut Report,
) -> anyhow::Result<Verified> {
    let listed = report.listed.take().map(|l| l.into_parts());
    let mut known: HashMap<String, Sha256> = std::mem::take(&mut report.file_hashes)
        .into_iter()
        .map(|(path, hash)| {
            let name = path
                .into_os_string()
                .into_string()
                .unwrap_or_else(|p| p.to_string_lossy().into_owned());
            (name, hash)
        })
        .collect();
    if let Some((files, hashes)) = &listed {
        for ((path, _), hash) in files.iter().zip(hashes) {
            if let Some(hash) = hash {
                known.insert(path.to_string_lossy().into_owned(), *hash);
            }
        }
    }
    let pending = pending(lake).await?;
    let delivered = |n: &String| log_delivery_time(n.rsplit('/').next().unwrap_or(n));
    let times = known.keys().chain(&pending).filter_map(delivered);
    let (first, last) = times.fold((None, None), |(first, last), t| {
        (
            first.map_or(Some(t), |f: DateTime<Utc>| Some(f.min(t))),
            last.map_or(Some(t), |l: DateTime<Utc>| Some(l.max(t))),
        )
    });
    drop(pending);
    let (Some(first), Some(last)) = (first, last) else {
        eprintln!("verify: no log files read, none pending: nothing to check");
        return Ok(Verified {
            digests: BTreeMap::new(),
            log_files: BTreeMap::new(),
            all_valid: true,
            recorded: None,
        });
    };
    let window = Window {
        since: Some(first),
        until: Some(last + chrono::Duration::minutes(1)),
    };
    let opened = Sources::open(sources, s3)?;
    let found = match listed {
        Some((files, hashes)) => {
            drop(hashes);
            let listing = Sources::listing_of_paths(&files);
            drop(files);
            verify_listed(&opened, listing, keys, window, known).await?
        }
        None => verify(&opened, keys, window, known).await?,
    };
    let recorded = record(lake, &found, Utc::now()).await?;
    let counts = |items: Vec<(&'static str, usize)>| items.into_iter().collect::<BTreeMap<_, _>>();
    let v = Verified {
        digests: counts(
            found
                .digest_counts()
                .into_iter()
                .map(|(v, n)| (v.as_str(), n))
                .collect(),
        ),
        log_files: counts(
            found
                .log_counts()
                .into_iter()
                .map(|(v, n)| (v.as_str(), n))
                .collect(),
        ),
        all_valid: found.all_valid(),
        recorded,
    };
    let line = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "verify: digests {}; log files {}{}",
        if v.digests.is_empty() {
            "none (is log file validation on? are the CloudTrail-Digest folders in the sources?)"
                .to_string()
        } else {
            line(&v.digests)
        },
        line(&v.log_files),
        recorded.map_or(String::new(), |r| format!(
            "; recorded in table `integrity` (version {r})"
        ))
    );
    for l in found
        .log_files
        .iter()
        .filter(|l| !matches!(l.verdict, LogVerdict::Valid | LogVerdict::Pending))
    {
        eprintln!(
            "verify: {} {} {}",
            l.verdict.as_str(),
            l.object,
            l.reason.as_deref().unwrap_or("")
        );
    }
    for d in found
        .digests
        .iter()
        .filter(|d| d.verdict != DigestVerdict::Valid)
    {
        eprintln!(
            "verify: digest {} {} {}",
            d.verdict.as_str(),
            d.object,
            d.reasons.join("; ")
        );
    }
    Ok(v)
}

/// Log files the lake's table `integrity` holds as pending their digest.
async fn pending(lake: &Lake) -> anyhow::Result<Vec<String>> {
    let session = trailhouse_query::session::Session::open(lake).await?;
    if !session
        .context()
        .table_exist(trailhouse_lake::schema::INTEGRITY_TABLE_NAME)?
    {
        return Ok(Vec::new());
    }
    let batches = session
        .dataframe("SELECT sourcefile FROM integrity WHERE verdict = 'pending'")
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        out.extend(
            arrow::array::AsArray::as_string::<i32>(c.as_ref())
                .iter()
                .flatten()
                .map(str::to_string),
        );
    }
    Ok(out)
}
