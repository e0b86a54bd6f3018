//! Signed digests for a trail on disk, made the way CloudTrail's log file integrity validation
//! makes them, with an RSA key of our own (real AWS digests cannot be made outside AWS).
//!
//! For each account and region folder of the trail, one digest per hour from the hour of its
//! first log file to the hour of its last (empty hours included, as CloudTrail delivers them),
//! each listing the log files delivered in its hour with the SHA-256 of their uncompressed
//! bytes, each chained to the one before (its hash and signature), signed with SHA256withRSA
//! over CloudTrail's string to sign. Optionally one log file is left out of its hour's digest
//! and listed by a backfill digest instead (a chain of its own).
//!
//! Written from the scheme (`cloudtrail-format` reference §3), not from trailhouse's validator:
//! the tests check one with the other. Where real keys have the MD5 of their DER bytes as
//! fingerprint, these have the first 16 bytes of its SHA-256 (a validator looks keys up by the
//! fingerprint the digest names; it does not recompute it).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use chrono::{DateTime, Duration, DurationRound, NaiveDateTime, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// An RSA-2048 key pair standing in for a region's CloudTrail signing key.
pub struct TestKey {
    pair: RsaKeyPair,
    fingerprint: String,
}

impl TestKey {
    pub fn generate() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let der = pair.public_key().as_ref().to_vec();
        let fingerprint = hex::encode(
            &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref()[..16],
        );
        Self { pair, fingerprint }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key as `RSAPublicKey` DER (PKCS #1), what `ListPublicKeys` returns.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The public key as X.509 `SubjectPublicKeyInfo` DER.
    pub fn public_spki_der(&self) -> Vec<u8> {
        self.pair
            .public_key()
            .as_der()
            .expect("SubjectPublicKeyInfo")
            .as_ref()
            .to_vec()
    }

    /// What `aws cloudtrail list-public-keys` prints for this key.
    pub fn public_keys_json(&self) -> String {
        let value = base64::engine::general_purpose::STANDARD.encode(self.public_der());
        serde_json::to_string_pretty(&json!({"PublicKeyList": [{
            "ValidityStartTime": "2026-01-01T00:00:00+00:00",
            "ValidityEndTime": "2027-01-01T00:00:00+00:00",
            "Value": value,
            "Fingerprint": self.fingerprint,
        }]}))
        .expect("JSON")
    }

    /// Hex SHA256withRSA (RSASSA-PKCS1-v1_5) signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing");
        hex::encode(signature)
    }
}

/// Where a digest's signature is kept besides the next digest's record of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecars {
    /// Every digest's S3 metadata saved as `<digest>.metadata.json`.
    All,
    /// Only those whose signature no later digest records (the newest of each chain, the last
    /// before validation was turned off).
    Newest,
    /// None: an archive copied without metadata.
    None,
}

/// How to sign a trail.
#[derive(Debug, Clone)]
pub struct SignSpec {
    pub bucket: String,
    pub trail: String,
    pub home_region: String,
    pub sidecars: Sidecars,
    /// The file name of one log file to list in a backfill digest instead of its hour's.
    pub backfill: Option<String>,
    /// Hours (those starting in this range) when log file validation was off: no digests, the
    /// logs delivered then listed by none, and the chain starting again after.
    pub validation_off: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Default for SignSpec {
    fn default() -> Self {
        Self {
            bucket: "org-trail-logs".into(),
            trail: "org-trail".into(),
            home_region: "us-east-1".into(),
            sidecars: Sidecars::Newest,
            backfill: None,
            validation_off: None,
        }
    }
}

/// A digest written by [`sign_trail`].
#[derive(Debug, Clone)]
pub struct Written {
    /// Its path under the trail's root.
    pub path: PathBuf,
    /// Its uncompressed JSON.
    pub raw: Vec<u8>,
    pub signature: String,
    /// The keys of the log files it lists.
    pub logs: Vec<String>,
    pub backfill: bool,
}

/// The string CloudTrail signs for a digest (reference §3.4): end time as written, `bucket/key`,
/// hex SHA-256 of the uncompressed digest, the previous signature or `null`; `\n` between, none
/// after.
pub fn string_to_sign(
    end_time: &str,
    bucket: &str,
    key: &str,
    raw: &[u8],
    previous_signature: Option<&str>,
) -> String {
    let hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw));
    [
        end_time.to_string(),
        format!("{bucket}/{key}"),
        hash,
        previous_signature.unwrap_or("null").to_string(),
    ]
    .join("\n")
}

struct LogFile {
    key: String,
    delivered: DateTime<Utc>,
    hash: String,
    oldest: Option<String>,
    newest: Option<String>,
}

/// What [`sign_trail`] did.
#[derive(Debug, Clone, Default)]
pub struct SignedTrail {
    /// The digests written, oldest first in each chain.
    pub digests: Vec<Written>,
    /// Log files no digest lists, as they do not decompress (a digest lists whole files), and
    /// why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Writes digests (and sidecars, per `spec`) for every log file under `root`, which holds the
/// trail's `AWSLogs/` folder.
pub fn sign_trail(root: &Path, key: &TestKey, spec: &SignSpec) -> std::io::Result<SignedTrail> {
    let mut skipped = Vec::new();
    // (folder above `CloudTrail/`, account, region) → log files.
    let mut groups: BTreeMap<(String, String, String), Vec<LogFile>> = BTreeMap::new();
    for path in walk(root)? {
        let key_path = path
            .strip_prefix(root)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .into_owned();
        let Some(at) = key_path.find("/CloudTrail/") else {
            continue;
        };
        let file = key_path.rsplit('/').next().unwrap_or_default().to_string();
        let Some((account, rest)) = file.split_once("_CloudTrail_") else {
            continue;
        };
        let mut parts = rest.split('_');
        let (Some(region), Some(stamp)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(delivered) = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%MZ") else {
            continue;
        };
        let raw = match gunzip(&fs::read(&path)?) {
            Ok(raw) => raw,
            Err(e) => {
                skipped.push((path.clone(), e.to_string()));
                continue;
            }
        };
        let (oldest, newest) = event_time_range(&raw);
        groups
            .entry((
                key_path[..at].to_string(),
                account.to_string(),
                region.to_string(),
            ))
            .or_default()
            .push(LogFile {
                key: key_path.clone(),
                delivered: delivered.and_utc(),
                hash: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &raw)),
                oldest,
                newest,
            });
    }

    let mut written = Vec::new();
    for ((above, account, region), mut logs) in groups {
        logs.sort_by(|a, b| (a.delivered, &a.key).cmp(&(b.delivered, &b.key)));
        let backfilled: Vec<LogFile> = match &spec.backfill {
            Some(name) => {
                let (out, keep): (Vec<LogFile>, Vec<LogFile>) = logs
                    .into_iter()
                    .partition(|l| l.key.ends_with(name.as_str()));
                logs = keep;
                out
            }
            None => Vec::new(),
        };
        let Some(first) = logs.first().or(backfilled.first()).map(|l| l.delivered) else {
            continue;
        };
        let last = logs
            .last()
            .or(backfilled.last())
            .map_or(first, |l| l.delivered);
        let hour = |t: DateTime<Utc>| t.duration_trunc(Duration::hours(1)).unwrap_or(t);
        let digest_folder = |end: DateTime<Utc>| {
            format!(
                "{above}/CloudTrail-Digest/{region}/{}",
                end.format("%Y/%m/%d")
            )
        };
        let name = |end: DateTime<Utc>, backfill: bool| {
            format!(
                "{account}_CloudTrail-Digest_{region}_{}_{}_{}{}.json.gz",
                spec.trail,
                spec.home_region,
                end.format("%Y%m%dT%H%M%SZ"),
                if backfill { "_backfill" } else { "" }
            )
        };
        let mut chain: Vec<Written> = Vec::new();
        let mut previous: Option<(String, Vec<u8>, String)> = None; // key, raw, signature
        let mut start = hour(first);
        while start <= hour(last) {
            let end = start + Duration::hours(1);
            if spec
                .validation_off
                .is_some_and(|(from, to)| start >= from && start < to)
            {
                previous = None;
                start = end;
                continue;
            }
            let listed: Vec<&LogFile> = logs
                .iter()
                .filter(|l| l.delivered >= start && l.delivered < end)
                .collect();
            let key_path = format!("{}/{}", digest_folder(end), name(end, false));
            let (raw, signature) = digest(
                spec,
                key,
                &account,
                start,
                end,
                &key_path,
                &listed,
                previous.as_ref(),
            );
            previous = Some((key_path.clone(), raw.clone(), signature.clone()));
            chain.push(Written {
                path: PathBuf::from(&key_path),
                raw,
                signature,
                logs: listed.iter().map(|l| l.key.clone()).collect(),
                backfill: false,
            });
            start = end;
        }
        if !backfilled.is_empty() {
            let end = hour(last) + Duration::hours(2);
            let key_path = format!("{}/{}", digest_folder(end), name(end, true));
            let listed: Vec<&LogFile> = backfilled.iter().collect();
            let (raw, signature) = digest(
                spec,
                key,
                &account,
                end - Duration::hours(1),
                end,
                &key_path,
                &listed,
                None,
            );
            chain.push(Written {
                path: PathBuf::from(&key_path),
                raw,
                signature,
                logs: listed.iter().map(|l| l.key.clone()).collect(),
                backfill: true,
            });
        }
        // Nothing records the signature of a digest the next one does not link to.
        let recorded = |i: usize| {
            chain.get(i + 1).is_some_and(|next| {
                !next.backfill
                    && serde_json::from_slice::<Value>(&next.raw)
                        .is_ok_and(|v| v["previousDigestSignature"].is_string())
            })
        };
        for (i, w) in chain.iter().enumerate() {
            let path = root.join(&w.path);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&w.raw)?;
            fs::write(&path, gz.finish()?)?;
            let sidecar = match spec.sidecars {
                Sidecars::All => true,
                Sidecars::Newest => w.backfill || !recorded(i),
                Sidecars::None => false,
            };
            if sidecar {
                let head = json!({
                    "ContentType": "application/json",
                    "ContentEncoding": "gzip",
                    "Metadata": {"signature": w.signature, "signature-algorithm": "SHA256withRSA"},
                });
                let mut side = path.into_os_string();
                side.push(".metadata.json");
                fs::write(side, serde_json::to_vec_pretty(&head)?)?;
            }
        }
        written.extend(chain);
    }
    Ok(SignedTrail {
        digests: written,
        skipped,
    })
}

/// One digest's JSON and signature.
#[allow(clippy::too_many_arguments)]
fn digest(
    spec: &SignSpec,
    key: &TestKey,
    account: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    key_path: &str,
    logs: &[&LogFile],
    previous: Option<&(String, Vec<u8>, String)>,
) -> (Vec<u8>, String) {
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let newest = logs.iter().filter_map(|l| l.newest.clone()).max();
    let oldest = logs.iter().filter_map(|l| l.oldest.clone()).min();
    let previous_hash = previous
        .map(|(_, raw, _)| hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw)));
    let end_time = stamp(end);
    let body = json!({
        "awsAccountId": account,
        "digestStartTime": stamp(start),
        "digestEndTime": end_time,
        "digestS3Bucket": spec.bucket,
        "digestS3Object": key_path,
        "digestPublicKeyFingerprint": key.fingerprint(),
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": newest,
        "oldestEventTime": oldest,
        "previousDigestS3Bucket": previous.map(|_| spec.bucket.clone()),
        "previousDigestS3Object": previous.map(|(k, _, _)| k.clone()),
        "previousDigestHashValue": previous_hash,
        "previousDigestHashAlgorithm": previous.map(|_| "SHA-256"),
        "previousDigestSignature": previous.map(|(_, _, s)| s.clone()),
        "logFiles": logs.iter().map(|l| json!({
            "s3Bucket": spec.bucket,
            "s3Object": l.key,
            "hashValue": l.hash,
            "hashAlgorithm": "SHA-256",
            "newestEventTime": l.newest,
            "oldestEventTime": l.oldest,
        })).collect::<Vec<Value>>(),
    });
    let raw = serde_json::to_vec(&body).expect("JSON");
    let message = string_to_sign(
        &end_time,
        &spec.bucket,
        key_path,
        &raw,
        previous.map(|(_, _, s)| s.as_str()),
    );
    let signature = key.sign(message.as_bytes());
    (raw, signature)
}

fn event_time_range(raw: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(raw) else {
        return (None, None);
    };
    let times: Vec<&str> = value["Records"]
        .as_array()
        .map(|r| r.iter().filter_map(|e| e["eventTime"].as_str()).collect())
        .unwrap_or_default();
    (
        times.iter().min().map(|s| s.to_string()),
        times.iter().max().map(|s| s.to_string()),
    )
}

fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".json.gz")
                && path.to_string_lossy().contains("/CloudTrail/")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_reference() {
        // §3.4: end time, bucket/key, hex SHA-256 of the uncompressed digest, the previous
        // signature or the four characters `null`; no new line at the end.
        let s = string_to_sign(
            "2015-08-12T04:01:31Z",
            "b",
            "AWSLogs/k.json.gz",
            b"abc",
            None,
        );
        assert_eq!(
            s,
            "2015-08-12T04:01:31Z\nb/AWSLogs/k.json.gz\n\
             ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
        let s = string_to_sign("t", "b", "k", b"abc", Some("0a1b"));
        assert!(s.ends_with("\n0a1b") && !s.ends_with('\n'), "{s}");
    }
}
