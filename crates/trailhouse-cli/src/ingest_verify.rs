//! `ingest --verify`: after the run, the log files it read checked against the trail's digests
//! by the hashes it took as it read them (and those an earlier run left pending their digest),
//! and the verdicts recorded. Over local sources the digests were judged as the run read
//! ([`trailhouse_ingest::verify::early`]); from S3, they are judged here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::Utc;
use trailhouse_ingest::Report;
use trailhouse_ingest::report::{Listed, PathAndSize};
use trailhouse_ingest::s3::S3Options;
use trailhouse_ingest::verify::digest::Sha256;
use trailhouse_ingest::verify::early::{Ask, window_of};
use trailhouse_ingest::verify::objects::{Sources, Which};
use trailhouse_ingest::verify::record::record;
use trailhouse_ingest::verify::{
    DigestVerdict, LogVerdict, Verification, check_logs, verify, verify_listed,
};
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
/// pending their digest (`ask`) against the digests in `sources`, and records the verdicts. The
/// report's hashes and listing are taken from it (not copied: a 20M-event trail has 400,000
/// files).
pub async fn after_ingest(
    lake: &Lake,
    sources: &[PathBuf],
    s3: &S3Options,
    ask: &Ask,
    report: &mut Report,
) -> anyhow::Result<Verified> {
    let listed = report.listed.take();
    let early = listed.as_ref().and_then(Listed::early);
    let listed = listed.map(Listed::into_parts);
    let found = match (early, listed) {
        // The digests were judged as the run read; the log files are judged here by the
        // hashes it took.
        (Some(early), Some((files, hashes))) => match early.finish().await? {
            Some((window, findings)) => {
                let listing = Sources::listing_of_paths(&files, &hashes, Which::Logs);
                drop((files, hashes));
                Some(check_logs(&Sources::local_files(), listing, findings, window).await?)
            }
            None => None,
        },
        (_, listed) => after_run(sources, s3, ask, listed, report).await?,
    };
    let Some(found) = found else {
        eprintln!("verify: no log files read, none pending: nothing to check");
        return Ok(Verified {
            digests: BTreeMap::new(),
            log_files: BTreeMap::new(),
            all_valid: true,
            recorded: None,
        });
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

/// The check after a run that did not judge its digests as it read (S3 sources, or none to
/// judge): the window from the log files it read and those `pending`, the digests judged, then
/// the log files. `None` when there is no log file to check.
async fn after_run(
    sources: &[PathBuf],
    s3: &S3Options,
    ask: &Ask,
    listed: Option<(Vec<PathAndSize>, Vec<Option<Sha256>>)>,
    report: &mut Report,
) -> anyhow::Result<Option<Verification>> {
    let Ask { keys, pending } = ask;
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
    let read_listed = listed.iter().flat_map(|(files, hashes)| {
        files
            .iter()
            .zip(hashes)
            .filter(|(_, hash)| hash.is_some())
            .filter_map(|((path, _), _)| path.to_str())
    });
    let names = known
        .keys()
        .chain(pending)
        .map(String::as_str)
        .chain(read_listed)
        .map(|n| n.rsplit('/').next().unwrap_or(n));
    let Some(window) = window_of(names) else {
        return Ok(None);
    };
    let opened = Sources::open(sources, s3)?;
    let found = match listed {
        Some((files, hashes)) => {
            let listing = Sources::listing_of_paths(&files, &hashes, Which::All);
            drop((files, hashes));
            verify_listed(&opened, listing, keys, window, known).await?
        }
        None => verify(&opened, keys, window, known).await?,
    };
    Ok(Some(found))
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
pub async fn pending(lake: &Lake) -> anyhow::Result<Vec<String>> {
    // A lake this run is to create holds nothing pending.
    let session = match trailhouse_query::session::Session::open(lake).await {
        Err(trailhouse_query::QueryError::Lake(trailhouse_lake::LakeError::Missing(_))) => {
            return Ok(Vec::new());
        }
        opened => opened?,
    };
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
