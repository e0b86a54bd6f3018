//! CloudTrail log file integrity validation, offline: every digest's signature (SHA256withRSA
//! with the region's public key), the chain of digests (each records the hash and signature of
//! the one before it), and every listed log file's SHA-256 over its uncompressed bytes; log files
//! no digest lists are named too. Exactly the scheme `aws cloudtrail validate-logs` checks, over
//! local copies or S3, without calling AWS, and stricter where the CLI is lenient: the recorded
//! hash and signature of the previous digest are compared with that digest.

pub mod chain;
pub mod digest;
pub mod early;
pub mod keys;
pub mod objects;
pub mod record;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, stream};
use rayon::prelude::*;

use chain::{ReadDigest, judge};
use digest::{ChainId, Digest, DigestName, Sha256};
use keys::PublicKeys;
use objects::{Kind, Object, Sources, layout_key, sidecar_signature, signature_in};

/// Objects read at once (S3 is latency-bound; a local disk does not mind).
const IN_FLIGHT: usize = 64;
/// Chains of digests checked at once (each on a blocking thread once read).
const CHAINS_IN_FLIGHT: usize = 4;
/// The largest digest accepted, stored and uncompressed: a digest lists one region's log files
/// of one hour (real ones are kilobytes); it is a file in a bucket an attacker may write to, so
/// a larger one is refused unread.
pub const DIGEST_LIMIT: u64 = 64 << 20;
/// The largest saved metadata of a digest read (`head-object` output is a few hundred bytes).
const SIDECAR_LIMIT: u64 = 1 << 20;

/// What stops a validation.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("public keys `{path}`: {message}")]
    PublicKeys {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("source `{location}` cannot be read: {message}")]
    Source { location: String, message: String },
}

/// A digest's verdict, worst first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DigestVerdict {
    /// Not gzip, not JSON, or a required field missing.
    Unreadable,
    /// Found somewhere other than the place it was signed for.
    Moved,
    /// Signed with a key not among the public keys given.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// No signature to check: its S3 metadata was lost and no later digest records it.
    NoSignature,
    /// Its link to the digest before it is broken (missing, altered, restarted).
    ChainBroken,
    Valid,
}

/// A log file's verdict, worst first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum LogVerdict {
    /// Its SHA-256 differs from its digest's record (or it no longer decompresses).
    Modified,
    /// Listed by a digest, not in the sources.
    Missing,
    /// In the sources, listed by no digest (added, or delivered while validation was off).
    NotCovered,
    /// Its hash matches, but the signature of the digest listing it could not be verified (or
    /// the file could not be read).
    Unverified,
    /// Delivered after the newest digest of its account and region: the digest that will list
    /// it is not there yet (not a problem; checked again by the next run).
    Pending,
    Valid,
}

impl DigestVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::Moved => "moved",
            Self::UnknownKey => "unknown-key",
            Self::BadSignature => "bad-signature",
            Self::NoSignature => "no-signature",
            Self::ChainBroken => "chain-broken",
            Self::Valid => "valid",
        }
    }
}

impl DigestVerdict {
    /// Its signature verified where it was delivered: what it lists is what CloudTrail
    /// delivered, whatever its link to the digest before it.
    pub fn authentic(self) -> bool {
        matches!(self, Self::Valid | Self::ChainBroken)
    }
}

impl LogVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::NotCovered => "not-covered",
            Self::Unverified => "unverified",
            Self::Pending => "pending",
            Self::Valid => "valid",
        }
    }
}

/// One digest's verdict and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DigestCheck {
    pub object: String,
    /// Shared by the verdicts of one chain.
    pub chain: Arc<ChainId>,
    pub end_time: DateTime<Utc>,
    pub verdict: DigestVerdict,
    pub reasons: Vec<String>,
    /// Log files it lists.
    pub log_files: usize,
}

/// One log file's verdict and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogCheck {
    /// Where it is, or (missing) the key its digest lists.
    pub object: String,
    pub verdict: LogVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The digest that lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Arc<str>>,
    /// That digest's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest_verdict: Option<DigestVerdict>,
}

/// The window of a validation: digests whose hour ends in it, log files delivered in it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The outcome of a validation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub window: Window,
    pub digests: Vec<DigestCheck>,
    pub log_files: Vec<LogCheck>,
    /// Entries under the sources that could not be listed.
    pub unreadable: Vec<(String, String)>,
}

impl Verification {
    /// Every digest and log file valid (or pending its digest), and at least one digest
    /// checked.
    pub fn all_valid(&self) -> bool {
        !self.digests.is_empty()
            && self.unreadable.is_empty()
            && self
                .digests
                .iter()
                .all(|d| d.verdict == DigestVerdict::Valid)
            && self
                .log_files
                .iter()
                .all(|l| matches!(l.verdict, LogVerdict::Valid | LogVerdict::Pending))
    }

    pub fn digest_counts(&self) -> BTreeMap<DigestVerdict, usize> {
        let mut counts = BTreeMap::new();
        for d in &self.digests {
            *counts.entry(d.verdict).or_default() += 1;
        }
        counts
    }

    pub fn log_counts(&self) -> BTreeMap<LogVerdict, usize> {
        let mut counts = BTreeMap::new();
        for l in &self.log_files {
            *counts.entry(l.verdict).or_default() += 1;
        }
        counts
    }
}

/// Validates the trail under `sources` in `window` with `keys`. `known` holds log files'
/// SHA-256 over their uncompressed bytes already computed (by the ingest that just read them,
/// by name as listed): those are not read again.
pub async fn verify(
    sources: &Sources,
    keys: &PublicKeys,
    window: Window,
    known: HashMap<String, Sha256>,
) -> Result<Verification, VerifyError> {
    verify_listed(sources, sources.list().await?, keys, window, known).await
}

/// [`verify`] over `listing`, the objects of `sources` listed already.
pub async fn verify_listed(
    sources: &Sources,
    mut listing: objects::Listing,
    keys: &PublicKeys,
    window: Window,
    known: HashMap<String, Sha256>,
) -> Result<Verification, VerifyError> {
    if !known.is_empty() {
        for object in &mut listing.objects {
            if let Some(hash) = known.get(object.name.as_str()) {
                object.hash = Some(*hash);
            }
        }
    }
    drop(known);
    let (logs, digests): (Vec<Object>, Vec<Object>) = listing
        .objects
        .into_iter()
        .partition(|o| matches!(o.kind, Kind::Log(_)));
    let judging = Judging::new(digests, keys, window);
    judging.drain(sources, CHAINS_IN_FLIGHT).await?;
    let logs = objects::Listing {
        objects: logs,
        unreadable: listing.unreadable,
    };
    check_logs(sources, logs, judging.take_findings(), window).await
}

/// The digests of a validation, judged a chain at a time by whoever drains them: the
/// validation's own tasks, and, while an ingest reads the log files, threads of low priority
/// before them ([`early`]). A chain's links stay inside it, so chains are judged apart.
pub struct Judging {
    /// Each sidecar, by the key of the digest whose signature it keeps.
    sidecars: HashMap<String, Object>,
    /// The chains not taken yet: each one's digests, oldest first, and whether each is in the
    /// window (the others are read for the signature they record). A chain's objects go once
    /// it is judged.
    todo: Mutex<std::vec::IntoIter<Vec<(Object, bool)>>>,
    keys: Arc<PublicKeys>,
    window: Window,
    /// What the chains judged so far found.
    done: Mutex<DigestFindings>,
}

/// The digests of a validation judged, and what those in its window list: what the check of
/// the log files needs of them.
#[derive(Default)]
pub struct DigestFindings {
    checks: Vec<DigestCheck>,
    /// What the digests of the window list, by log key; once all are judged, in key order and
    /// one per key (a backfill digest repeats a log: the better digest's record).
    listed: Vec<(Box<str>, Recorded)>,
    /// The end of the newest digest of each account and region (standard chains), by account,
    /// then region.
    newest: HashMap<String, HashMap<String, DateTime<Utc>>>,
    /// About how many bytes the checks and records take.
    bytes: usize,
}

impl DigestFindings {
    /// The digests judged, with their verdicts.
    pub fn checks(&self) -> &[DigestCheck] {
        &self.checks
    }

    /// How many log files the digests of the window list.
    pub fn listed_count(&self) -> usize {
        self.listed.len()
    }
}

impl Judging {
    /// The chains of `objects` (digests and sidecars; anything else is left out) to judge for
    /// `window`: its digests (and those of an hour past its end: the logs delivered in its last
    /// hour are listed by the digest after it), and the one after those in each chain, which
    /// records the last one's signature.
    pub fn new(objects: Vec<Object>, keys: &PublicKeys, window: Window) -> Self {
        let mut by_chain: BTreeMap<ChainId, Vec<(DateTime<Utc>, Object)>> = BTreeMap::new();
        let mut sidecars = HashMap::new();
        for object in objects {
            match &object.kind {
                Kind::Digest(name) => {
                    let (chain, end) = (name.chain(), name.end);
                    by_chain.entry(chain).or_default().push((end, object));
                }
                Kind::Sidecar(of) => {
                    sidecars.insert(of.clone(), object);
                }
                Kind::Log(_) => {}
            }
        }
        let digest_end = window.until.map(|u| u + Duration::hours(1));
        let inside = |end: DateTime<Utc>| {
            window.since.is_none_or(|s| end >= s) && digest_end.is_none_or(|u| end < u)
        };
        let mut chains = Vec::new();
        let mut newest: HashMap<String, HashMap<String, DateTime<Utc>>> = HashMap::new();
        for (chain, mut members) in by_chain {
            members.sort_by(|(a, x), (b, y)| (a, x.key()).cmp(&(b, y.key())));
            if let (false, Some((last, _))) = (chain.backfill, members.last()) {
                let at = newest
                    .entry(chain.account)
                    .or_default()
                    .entry(chain.region)
                    .or_insert(*last);
                *at = (*at).max(*last);
            }
            let mut wanted = Vec::new();
            let mut after = false;
            for (end, object) in members {
                if inside(end) {
                    wanted.push((object, true));
                } else if digest_end.is_some_and(|u| end >= u) && !after {
                    wanted.push((object, false));
                    after = true;
                }
            }
            if !wanted.is_empty() {
                chains.push(wanted);
            }
        }
        Self {
            sidecars,
            todo: Mutex::new(chains.into_iter()),
            keys: Arc::new(keys.clone()),
            window,
            done: Mutex::new(DigestFindings {
                newest,
                ..DigestFindings::default()
            }),
        }
    }

    /// Judges chains until none is left to take, `in_flight` at once: each one's digests read
    /// with requests in flight, then decompressed, parsed and judged on a blocking thread.
    /// Memory holds the chains in flight, not every digest of the window.
    pub async fn drain(&self, sources: &Sources, in_flight: usize) -> Result<(), VerifyError> {
        self.drain_within(sources, in_flight, usize::MAX).await
    }

    /// [`Judging::drain`], taking no chain once what was found takes `budget` bytes or more.
    pub async fn drain_within(
        &self,
        sources: &Sources,
        in_flight: usize,
        budget: usize,
    ) -> Result<(), VerifyError> {
        let next = std::iter::from_fn(|| {
            if lock(&self.done).bytes >= budget {
                return None;
            }
            lock(&self.todo).next()
        });
        let mut judged = stream::iter(next)
            .map(|chain| self.judge_chain(sources, chain))
            .buffer_unordered(in_flight.max(1));
        while let Some(chain) = judged.next().await {
            self.merge(chain?);
        }
        Ok(())
    }

    async fn judge_chain(
        &self,
        sources: &Sources,
        chain: Vec<(Object, bool)>,
    ) -> Result<Judged, VerifyError> {
        let reads = chain.iter().filter_map(|(object, in_window)| {
            let Kind::Digest(name) = &object.kind else {
                return None;
            };
            let sidecar = self.sidecars.get(object.key());
            Some(fetch_digest(sources, object, name, sidecar, *in_window))
        });
        let fetched: Vec<Fetched> = stream::iter(reads).buffered(IN_FLIGHT).collect().await;
        drop(chain);
        let keys = Arc::clone(&self.keys);
        let since = self.window.since;
        tokio::task::spawn_blocking(move || {
            let mut reader = Reader::default();
            let read: Vec<ReadDigest> = fetched.into_iter().map(|f| reader.digest(f)).collect();
            let checks = judge(&read, &keys, since);
            let listed = listed_by(&read, &checks);
            Judged { checks, listed }
        })
        .await
        .map_err(|e| VerifyError::Source {
            location: "digests".into(),
            message: format!("checking stopped: {e}"),
        })
    }

    /// One chain's findings merged as it is judged: memory holds the merged findings and the
    /// chains in flight, not every chain's findings besides.
    fn merge(&self, chain: Judged) {
        // Each value's own size, and each text of it with an allocation's overhead (16 bytes).
        let text = |s: &str| s.len() + 16;
        // A chain's id once (its verdicts share it), with its reference count.
        let mut ids = HashSet::new();
        let bytes = chain
            .checks
            .iter()
            .map(|c| {
                let id = if ids.insert(Arc::as_ptr(&c.chain)) {
                    let ChainId {
                        account,
                        region,
                        trail,
                        home_region,
                        ..
                    } = &*c.chain;
                    std::mem::size_of::<ChainId>()
                        + 16
                        + [account, region, trail, home_region]
                            .into_iter()
                            .map(|s| text(s))
                            .sum::<usize>()
                } else {
                    0
                };
                std::mem::size_of::<DigestCheck>()
                    + id
                    + std::iter::once(&c.object)
                        .chain(&c.reasons)
                        .map(|s| text(s))
                        .sum::<usize>()
            })
            .chain(
                chain
                    .listed
                    .iter()
                    .map(|(key, _)| std::mem::size_of::<(Box<str>, Recorded)>() + text(key)),
            )
            .sum::<usize>();
        let mut done = lock(&self.done);
        done.checks.extend(chain.checks);
        done.listed.extend(chain.listed);
        done.bytes += bytes;
    }

    /// What was found, taken out once every chain is judged (by [`Judging::drain`]).
    pub fn take_findings(&self) -> DigestFindings {
        let mut found = std::mem::take(&mut *lock(&self.done));
        found.checks.par_sort_unstable_by(|a, b| {
            (&a.chain, a.end_time, &a.object).cmp(&(&b.chain, b.end_time, &b.object))
        });
        // Listed twice (a backfill digest repeats a log): the better digest decides, the first
        // by name between equals (chains are judged in no set order).
        found.listed.par_sort_unstable_by(|(a, x), (b, y)| {
            (a, std::cmp::Reverse(x.verdict), &x.digest).cmp(&(
                b,
                std::cmp::Reverse(y.verdict),
                &y.digest,
            ))
        });
        found.listed.dedup_by(|later, first| later.0 == first.0);
        found
    }

    /// The window it judges for.
    pub fn window(&self) -> Window {
        self.window
    }

    /// How many chains are still to be taken.
    pub fn untaken(&self) -> usize {
        lock(&self.todo).len()
    }
}

/// A lock held only to take or add an item: a panic elsewhere leaves what it guards whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Judges the log files of `logs` (with the hashes a run took of those it read) against what
/// the digests list: those a digest lists by their hash, those none lists as not covered or
/// pending their digest, those listed and not found as missing.
pub async fn check_logs(
    sources: &Sources,
    listing: objects::Listing,
    findings: DigestFindings,
    window: Window,
) -> Result<Verification, VerifyError> {
    let DigestFindings {
        checks,
        listed,
        newest,
        ..
    } = findings;
    let logs: Vec<&Object> = listing
        .objects
        .iter()
        .filter(|o| matches!(o.kind, Kind::Log(_)))
        .collect();
    // The log files found, by key; those a digest lists are taken out as they are matched
    // (what is left was listed by none). Each structure is consumed as it is used: at 20M events
    // each holds some 400,000 log files.
    let mut found: HashMap<&str, &Object> = logs.iter().map(|o| (o.key(), *o)).collect();
    let mut log_checks = Vec::new();
    let mut to_hash: Vec<(&Object, Recorded)> = Vec::new();
    for (key, recorded) in listed {
        match found.remove(&*key) {
            Some(object) => to_hash.push((object, recorded)),
            None => log_checks.push(LogCheck {
                object: recorded.expected(&key),
                verdict: LogVerdict::Missing,
                reason: Some("not in the sources".into()),
                digest: Some(recorded.digest),
                digest_verdict: Some(recorded.verdict),
            }),
        }
    }
    for object in &logs {
        let Kind::Log(delivered) = &object.kind else {
            continue;
        };
        let in_window = match delivered {
            Some(t) => window.since.is_none_or(|s| *t >= s) && window.until.is_none_or(|u| *t < u),
            None => window.since.is_none() && window.until.is_none(),
        };
        if !in_window || !found.contains_key(object.key()) {
            continue;
        }
        let last = objects::account_region(object.key())
            .and_then(|(account, region)| newest.get(account)?.get(region).copied());
        let (verdict, reason) = match (delivered, last) {
            (Some(t), Some(last)) if *t >= last => (
                LogVerdict::Pending,
                format!(
                    "delivered after the newest digest of its account and region (ending {}): \
                     the digest that lists it is still to come",
                    last.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            ),
            (_, None) => (
                LogVerdict::NotCovered,
                "listed by no digest, and its account and region have none here: log file \
                 validation off, or their CloudTrail-Digest folder not in the sources"
                    .to_string(),
            ),
            _ => (
                LogVerdict::NotCovered,
                "listed by no digest: added after delivery, or delivered while log file \
                 validation was off"
                    .to_string(),
            ),
        };
        log_checks.push(LogCheck {
            object: object.name.clone(),
            verdict,
            reason: Some(reason),
            digest: None,
            digest_verdict: None,
        });
    }
    drop(found);
    // Hashed already as ingest read them.
    let mut unknown = Vec::new();
    for (object, recorded) in to_hash {
        match object.hash {
            Some(hash) => log_checks.push(check_log(object.name.clone(), recorded, Ok(hash))),
            None => unknown.push((object, recorded)),
        }
    }
    // Read a batch with many requests in flight, hash it on every core, then the next: memory
    // holds one batch of compressed files.
    unknown.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut unknown = unknown.into_iter().peekable();
    while unknown.peek().is_some() {
        let batch: Vec<(&Object, Recorded)> = unknown.by_ref().take(IN_FLIGHT * 4).collect();
        let fetched: Vec<Stored> = stream::iter(&batch)
            .map(|(object, _)| async move {
                match Stored::local(object) {
                    Some(local) => local,
                    None => Stored::Read(
                        sources
                            .read(object)
                            .await
                            .map(|f| f.bytes)
                            .map_err(|e| format!("cannot be read: {e}")),
                    ),
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        let work: Vec<(String, Recorded, Stored)> = batch
            .into_iter()
            .zip(fetched)
            .map(|((object, recorded), bytes)| (object.name.clone(), recorded, bytes))
            .collect();
        let checked = tokio::task::spawn_blocking(move || {
            work.into_par_iter()
                .with_min_len(IN_FLIGHT / 2)
                .map_init(Reader::default, |reader, (name, recorded, stored)| {
                    let hash = reader.log_sha256(stored);
                    check_log(name, recorded, hash)
                })
                .collect::<Vec<LogCheck>>()
        })
        .await
        .map_err(|e| VerifyError::Source {
            location: "log files".into(),
            message: format!("hashing stopped: {e}"),
        })?;
        log_checks.extend(checked);
    }
    log_checks.par_sort_unstable_by(|a, b| (a.verdict, &a.object).cmp(&(b.verdict, &b.object)));

    drop(logs);
    let mut unreadable = listing.unreadable;
    unreadable.sort();
    Ok(Verification {
        window,
        digests: checks,
        log_files: log_checks,
        unreadable,
    })
}

/// A digest's stored bytes (or why they were not read), and its saved signature.
struct Fetched {
    name: String,
    key: String,
    digest_name: DigestName,
    bytes: Stored,
    signature: Option<String>,
    in_window: bool,
}

/// An object's stored bytes: read (S3), or to read where they are used (a local file).
enum Stored {
    Read(Result<Vec<u8>, String>),
    /// A local file and its size as listed.
    Local(std::path::PathBuf, u64),
}

impl Stored {
    fn local(object: &Object) -> Option<Self> {
        Sources::local_path(object).map(|path| Stored::Local(path.to_path_buf(), object.size))
    }

    /// Its bytes; a local file is read into `spare` (an earlier file's buffer, cleared).
    fn bytes_into(self, spare: Vec<u8>) -> Result<Vec<u8>, String> {
        match self {
            Stored::Read(r) => r,
            Stored::Local(path, size) => {
                // Sized by the listing, and read through `take`: `File::read_to_end` would ask
                // the file its size and position first, two system calls per file. A file that
                // grew since is read whole.
                let mut bytes = spare;
                bytes.clear();
                bytes.reserve(usize::try_from(size).unwrap_or(0) + 1);
                std::fs::File::open(&path)
                    .and_then(|file| file.take(u64::MAX).read_to_end(&mut bytes))
                    .map(|_| bytes)
                    .map_err(|e| format!("cannot be read: {e}"))
            }
        }
    }
}

async fn fetch_digest(
    sources: &Sources,
    object: &Object,
    digest_name: &DigestName,
    sidecar: Option<&Object>,
    in_window: bool,
) -> Fetched {
    let mut signature = None;
    let bytes = if object.size > DIGEST_LIMIT {
        Stored::Read(Err(format!(
            "{} bytes: larger than any digest ({} MiB at most), not read",
            object.size,
            DIGEST_LIMIT >> 20
        )))
    } else if let Some(local) = Stored::local(object) {
        local
    } else {
        Stored::Read(match sources.read(object).await {
            Ok(fetched) => {
                signature = signature_in(&fetched.metadata);
                Ok(fetched.bytes)
            }
            Err(e) => Err(format!("cannot be read: {e}")),
        })
    };
    if signature.is_none()
        && let Some(sidecar) = sidecar
        && sidecar.size <= SIDECAR_LIMIT
        && let Ok(fetched) = sources.read(sidecar).await
    {
        signature = sidecar_signature(&fetched.bytes).ok();
    }
    Fetched {
        name: object.name.clone(),
        key: object.key().to_string(),
        digest_name: digest_name.clone(),
        bytes,
        signature,
        in_window,
    }
}

/// Reads files one after another with the same buffers and gzip state (a digest is 700 bytes:
/// making those afresh cost as much as inflating it): one per chain of digests, one per
/// thread hashing log files.
#[derive(Default)]
struct Reader {
    stored: Vec<u8>,
    raw: Vec<u8>,
    gunzip: crate::decompress::Gunzip,
}

impl Reader {
    /// A log file's SHA-256 over its uncompressed bytes (all members), streamed.
    fn log_sha256(&mut self, stored: Stored) -> Result<Sha256, NoHash> {
        let bytes = stored
            .bytes_into(std::mem::take(&mut self.stored))
            .map_err(NoHash::NotRead)?;
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let streamed = self
            .gunzip
            .stream(&bytes, &mut self.raw, &mut |chunk| context.update(chunk));
        self.stored = bytes;
        match streamed {
            Ok(_) => {
                let mut hash = [0; 32];
                hash.copy_from_slice(context.finish().as_ref());
                Ok(hash)
            }
            Err(crate::error::FileError::Decompress(e)) => Err(NoHash::Unreadable(e.to_string())),
            Err(e) => Err(NoHash::Unreadable(e.to_string())),
        }
    }

    /// Decompresses and parses a fetched digest, within [`DIGEST_LIMIT`].
    fn digest(&mut self, f: Fetched) -> ReadDigest {
        let content = match f.bytes.bytes_into(std::mem::take(&mut self.stored)) {
            Err(e) => Err(e),
            Ok(bytes) => {
                let raw = std::mem::take(&mut self.raw);
                let content = match self.gunzip.gunzip_into(&bytes, DIGEST_LIMIT, raw) {
                    Ok(raw) => {
                        let parsed = Digest::parse(&raw);
                        self.raw = raw;
                        parsed
                    }
                    Err(broken) => {
                        self.raw = broken.partial;
                        Err(match broken.error {
                            crate::error::FileError::TooLarge { .. } => format!(
                                "larger than any digest once decompressed (over {} MiB): not \
                                 read further",
                                DIGEST_LIMIT >> 20
                            ),
                            e => format!("cannot be decompressed: {e}"),
                        })
                    }
                };
                self.stored = bytes;
                content
            }
        };
        ReadDigest {
            name: f.name,
            key: f.key,
            digest_name: f.digest_name,
            content,
            signature: f.signature,
            in_window: f.in_window,
        }
    }
}

/// One chain's verdicts, and what its digests in the window list, by log key.
struct Judged {
    checks: Vec<DigestCheck>,
    listed: Vec<(Box<str>, Recorded)>,
}

/// What the digests of the window in `read` list, with each digest's verdict.
fn listed_by(read: &[ReadDigest], checks: &[DigestCheck]) -> Vec<(Box<str>, Recorded)> {
    let verdicts: HashMap<&str, DigestVerdict> = checks
        .iter()
        .map(|c| (c.object.as_str(), c.verdict))
        .collect();
    let mut out = Vec::new();
    for d in read.iter().filter(|d| d.in_window) {
        let Ok(content) = &d.content else { continue };
        let verdict = verdicts
            .get(d.name.as_str())
            .copied()
            .unwrap_or(DigestVerdict::Valid);
        // Where its log files would be: beside the digest's `AWSLogs/`.
        let root = d.name.strip_suffix(d.key.as_str()).unwrap_or_default();
        let digest: Arc<str> = Arc::from(d.name.as_str());
        for log in &content.log_files {
            let key: Box<str> = layout_key(&log.object).into();
            let recorded = Recorded {
                hash: RecordedHash::of(&log.hash),
                digest: Arc::clone(&digest),
                verdict,
                root: root.len(),
            };
            out.push((key, recorded));
        }
    }
    out
}

/// What the digest listing a log file recorded of it (a 20M-event trail's digests list
/// 400,000: held compact).
#[derive(Debug, Clone)]
struct Recorded {
    /// The SHA-256 of its uncompressed bytes.
    hash: RecordedHash,
    /// The digest (as found), shared by the log files it lists.
    digest: Arc<str>,
    /// That digest's verdict.
    verdict: DigestVerdict,
    /// How long the part of the digest's name before its `AWSLogs/` is: the log files it lists
    /// are expected there.
    root: usize,
}

/// The SHA-256 a digest recorded of a log file: its bytes, or its text when that is not 64 hex
/// digits (an edited digest's, which no file's hash equals).
#[derive(Debug, Clone)]
enum RecordedHash {
    Sha256(Sha256),
    Text(Box<str>),
}

impl RecordedHash {
    fn of(text: &str) -> Self {
        let mut bytes = [0; 32];
        match hex::decode_to_slice(text, &mut bytes) {
            Ok(()) => Self::Sha256(bytes),
            Err(_) => Self::Text(text.into()),
        }
    }

    fn matches(&self, hash: &Sha256) -> bool {
        matches!(self, Self::Sha256(recorded) if recorded == hash)
    }
}

impl std::fmt::Display for RecordedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sha256(bytes) => f.write_str(&hex::encode(bytes)),
            Self::Text(text) => f.write_str(text),
        }
    }
}

impl Recorded {
    /// Where the log file of `key` is expected: its key beside the digest's `AWSLogs/`.
    fn expected(&self, key: &str) -> String {
        format!("{}{key}", self.digest.get(..self.root).unwrap_or_default())
    }
}

/// Why a log file's hash could not be computed.
enum NoHash {
    /// It could not be read.
    NotRead(String),
    /// It no longer decompresses.
    Unreadable(String),
}

/// A log file's SHA-256 over its uncompressed bytes against what its digest recorded.
fn check_log(object: String, recorded: Recorded, hash: Result<Sha256, NoHash>) -> LogCheck {
    let Recorded {
        hash: expected,
        digest,
        verdict: digest_verdict,
        ..
    } = recorded;
    let check = |verdict, reason: Option<String>| LogCheck {
        object,
        verdict,
        reason,
        digest: Some(digest),
        digest_verdict: Some(digest_verdict),
    };
    match hash {
        Err(NoHash::NotRead(e)) => check(LogVerdict::Unverified, Some(e)),
        Err(NoHash::Unreadable(e)) => check(
            LogVerdict::Modified,
            Some(format!(
                "no longer decompresses ({e}): its digest recorded a whole file"
            )),
        ),
        Ok(hash) if !expected.matches(&hash) => check(
            LogVerdict::Modified,
            Some(format!(
                "SHA-256 {}, its digest recorded {expected}",
                hex::encode(hash)
            )),
        ),
        Ok(_) if !digest_verdict.authentic() => check(
            LogVerdict::Unverified,
            Some(format!(
                "its hash matches, but its digest is {}",
                digest_verdict.as_str()
            )),
        ),
        Ok(_) => check(LogVerdict::Valid, None),
    }
}
