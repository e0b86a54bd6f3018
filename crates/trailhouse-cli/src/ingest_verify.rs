//! `ingest --verify`: after the run, the log files it read checked against the trail's digests
//! by the hashes it took as it read them (and those an earlier run left pending their digest),
//! and the verdicts recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use trailhouse_ingest::Report;
use trailhouse_ingest::s3::S3Options;
use trailhouse_ingest::verify::digest::{Sha256, log_delivery_time};
use trailhouse_ingest::verify::keys::PublicKeys;
use trailhouse_ingest::verify::objects::Sources;
use trailhouse_ingest::verify::record::record;
use trailhouse_ingest::verify::{DigestVerdict, LogVerdict, Window, verify, verify_listed};
use trailhouse_lake::Lake;

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
    // Files hashed outside the listing (read from S3); those listed keep their hashes beside it.
    let known: HashMap<String, Sha256> = std::mem::take(&mut report.file_hashes)
        .into_iter()
        .map(|(path, hash)| {
            let name = path
                .into_os_string()
                .into_string()
                .unwrap_or_else(|p| p.to_string_lossy().into_owned());
            (name, hash)
        })
        .collect();
    let pending = pending(lake).await?;
    let delivered = |n: &str| log_delivery_time(n.rsplit('/').next().unwrap_or(n));
    let read_listed = listed.iter().flat_map(|(files, hashes)| {
        files
            .iter()
            .zip(hashes)
            .filter(|(_, hash)| hash.is_some())
            .filter_map(|((path, _), _)| path.to_str())
    });
    let times = known
        .keys()
        .chain(&pending)
        .map(String::as_str)
        .chain(read_listed)
        .filter_map(delivered);
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
            let listing = Sources::listing_of_paths(&files, &hashes);
            drop((files, hashes));
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
    let mut logs = Problems::default();
    for l in found
        .log_files
        .iter()
        .filter(|l| !matches!(l.verdict, LogVerdict::Valid | LogVerdict::Pending))
    {
        logs.add(l.verdict.as_str(), || {
            format!(
                "verify: {} {} {}",
                l.verdict.as_str(),
                l.object,
                l.reason.as_deref().unwrap_or("")
            )
        });
    }
    logs.print("log files", |verdict| {
        format!(
            "each is in table `integrity`: SELECT sourcefile, reason FROM integrity WHERE \
             verdict = '{verdict}'"
        )
    });
    let mut digests = Problems::default();
    for d in found
        .digests
        .iter()
        .filter(|d| d.verdict != DigestVerdict::Valid)
    {
        digests.add(d.verdict.as_str(), || {
            format!(
                "verify: digest {} {} {}",
                d.verdict.as_str(),
                d.object,
                d.reasons.join("; ")
            )
        });
    }
    digests.print("digests", |_| {
        "`trailhouse verify` over the same sources lists each".to_string()
    });
    Ok(v)
}

/// Problems `ingest --verify` names one by one, per verdict, before it counts the rest: a
/// trail verified without its public keys has a problem per digest (110,000 for 2M events), and
/// the run's own report would scroll away under them.
const NAMED_PER_VERDICT: usize = 10;

/// The problems of one kind (log files or digests), by verdict: the first lines and how many.
#[derive(Default)]
struct Problems {
    by_verdict: BTreeMap<&'static str, (Vec<String>, usize)>,
}

impl Problems {
    /// One problem with `verdict`; its line is made only if it is to be printed.
    fn add(&mut self, verdict: &'static str, line: impl FnOnce() -> String) {
        let (lines, n) = self.by_verdict.entry(verdict).or_default();
        if lines.len() < NAMED_PER_VERDICT {
            lines.push(line());
        }
        *n += 1;
    }

    /// Prints the lines kept, and for each verdict with more, how many more and `where_all`.
    fn print(&self, what: &str, where_all: impl Fn(&str) -> String) {
        for (verdict, (lines, n)) in &self.by_verdict {
            for line in lines {
                eprintln!("{line}");
            }
            if *n > lines.len() {
                eprintln!(
                    "verify: ... and {} more {what} {verdict} ({})",
                    n - lines.len(),
                    where_all(verdict)
                );
            }
        }
    }
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
