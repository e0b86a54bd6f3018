//! The objects validation reads: digests, their signatures, and log files, under local folders
//! or `s3://bucket[/prefix]`.
//!
//! A digest's signature is the S3 user metadata `signature` of the digest object. A copy of a
//! trail outside S3 has lost it; it can be kept beside the digest as `<digest>.metadata.json`,
//! holding what `aws s3api head-object` prints (`{"Metadata": {"signature": …}}`) or just
//! `{"signature": …}`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use rayon::prelude::*;

use super::VerifyError;
use super::digest::{DigestName, log_delivery_time};
use crate::discover::discover_all;
use crate::s3::{S3Options, S3Url, client, is_s3};

/// The suffix of a digest's signature kept beside it.
pub const SIDECAR: &str = ".metadata.json";

/// What an object is to validation.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Boxed: most objects are log files, and a digest's name is the largest kind.
    Digest(Box<DigestName>),
    /// A log file, with the delivery time its name gives.
    Log(Option<DateTime<Utc>>),
    /// The saved S3 metadata of the digest whose key this is.
    Sidecar(String),
}

/// One object found under the sources. A trail of 20M events lists half a million: its key
/// and where it is stored are read from its name, not kept beside it.
#[derive(Debug, Clone)]
pub struct Object {
    /// How it is shown: a path, or `s3://bucket/key`.
    pub name: String,
    /// Where in `name` its [`key`](Object::key) starts.
    key_at: usize,
    pub kind: Kind,
    /// Its size as listed (stored bytes).
    pub size: u64,
    /// The SHA-256 of its uncompressed bytes, when the run that listed it has read it.
    pub hash: Option<super::digest::Sha256>,
    location: Location,
}

impl Object {
    /// Its key from `AWSLogs/` on (what digests are compared by; the bucket and any prefix
    /// before `AWSLogs/` are where the copy lives, not what was signed).
    pub fn key(&self) -> &str {
        self.name.get(self.key_at..).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
enum Location {
    /// A local file: its path is the name, or this one when the path is not UTF-8.
    Local(Option<PathBuf>),
    /// `s3://<bucket>/<key>`: the bucket's name ends where the object's key starts, at `key_at`.
    S3 { key_at: usize },
}

/// An object's bytes and its S3 user metadata (empty for a local file).
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub metadata: HashMap<String, String>,
}

/// What listing found.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<Object>,
    /// Entries that could not be listed, and why.
    pub unreadable: Vec<(String, String)>,
}

/// The key of `path` from its `AWSLogs/` segment on, or all of it when it has none.
pub fn layout_key(path: &str) -> &str {
    let mut from = 0;
    while let Some(at) = path[from..].find("AWSLogs/") {
        let at = from + at;
        if at == 0 || path[..at].ends_with('/') {
            return &path[at..];
        }
        from = at + 1;
    }
    path
}

/// The account and region folders of a log file's key (`…/<account>/CloudTrail/<region>/…`).
pub fn account_region(key: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = key.split('/').collect();
    let at = parts.iter().position(|p| *p == "CloudTrail")?;
    Some((*parts.get(at.checked_sub(1)?)?, *parts.get(at + 1)?))
}

fn classify(path: &str) -> Option<Kind> {
    let file = path.rsplit('/').next().unwrap_or(path);
    if let Some(digest) = path.strip_suffix(SIDECAR) {
        return DigestName::parse(digest.rsplit('/').next().unwrap_or(digest))
            .map(|_| Kind::Sidecar(layout_key(digest).to_string()));
    }
    if !file.ends_with(".json.gz") {
        return None;
    }
    if path.contains("/CloudTrail-Digest/") {
        return DigestName::parse(file).map(|n| Kind::Digest(Box::new(n)));
    }
    if path.contains("/CloudTrail/") {
        return Some(Kind::Log(log_delivery_time(file)));
    }
    None
}

/// Which objects a listing keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// Digests and the sidecars keeping their signatures.
    Digests,
    /// Log files.
    Logs,
}

impl Which {
    fn holds(self, kind: &Kind) -> bool {
        match self {
            Which::All => true,
            Which::Digests => !matches!(kind, Kind::Log(_)),
            Which::Logs => matches!(kind, Kind::Log(_)),
        }
    }

    /// Whether a name may be of an object it keeps, told before the name is parsed (half a
    /// million names at 20M events).
    pub(crate) fn may_hold(self, name: &str) -> bool {
        let digest = name.ends_with(SIDECAR) || name.contains("/CloudTrail-Digest/");
        match self {
            Which::All => true,
            Which::Digests => digest,
            Which::Logs => !digest,
        }
    }
}

/// The sources of one validation: local folders and S3 locations.
pub struct Sources {
    local: Vec<PathBuf>,
    s3: Vec<(S3Url, Arc<dyn ObjectStore>)>,
}

impl Sources {
    /// Clients for the S3 sources (configured as ingest's are); local sources must exist.
    pub fn open(sources: &[PathBuf], options: &S3Options) -> Result<Self, VerifyError> {
        let mut local = Vec::new();
        let mut s3 = Vec::new();
        for source in sources {
            if is_s3(source) {
                let url = S3Url::parse(source).map_err(|e| VerifyError::Source {
                    location: source.display().to_string(),
                    message: e.to_string(),
                })?;
                let store = client(&url.bucket, options).map_err(|e| VerifyError::Source {
                    location: source.display().to_string(),
                    message: e.to_string(),
                })?;
                s3.push((url, store));
            } else {
                local.push(source.clone());
            }
        }
        Ok(Self { local, s3 })
    }

    /// No sources of its own: reads local objects listed already (by their paths).
    pub fn local_files() -> Self {
        Self {
            local: Vec::new(),
            s3: Vec::new(),
        }
    }

    /// The objects of `which` kind among `files` (a walk of local sources already made, as
    /// ingest's).
    pub fn listing_of(files: &[crate::discover::SourceFile], which: Which) -> Listing {
        Self::objects_of(
            files.par_iter().map(|f| (f.path.as_path(), f.size, None)),
            which,
        )
    }

    /// [`Sources::listing_of`] local files given by path and size, with the hashes of those
    /// read (`hashes[i]` of `files[i]`).
    pub fn listing_of_paths(
        files: &[crate::report::PathAndSize],
        hashes: &[Option<super::digest::Sha256>],
        which: Which,
    ) -> Listing {
        Self::objects_of(
            files
                .par_iter()
                .enumerate()
                .map(|(i, (path, size))| (&**path, *size, hashes.get(i).copied().flatten())),
            which,
        )
    }

    fn objects_of<'a>(
        files: impl ParallelIterator<Item = (&'a std::path::Path, u64, Option<super::digest::Sha256>)>,
        which: Which,
    ) -> Listing {
        // Names read on every core: a 20M-event trail lists half a million objects.
        let mut objects: Vec<Object> = files
            .filter_map(|(path, size, hash)| {
                let (name, path) = match path.to_str() {
                    Some(name) => (name.to_string(), None),
                    None => (path.display().to_string(), Some(path.to_path_buf())),
                };
                if !which.may_hold(&name) {
                    return None;
                }
                let kind = classify(&name)?;
                which.holds(&kind).then(|| Object {
                    key_at: name.len() - layout_key(&name).len(),
                    name,
                    kind,
                    size,
                    hash,
                    location: Location::Local(path),
                })
            })
            .collect();
        objects.par_sort_unstable_by(|a, b| a.name.cmp(&b.name));
        objects.dedup_by(|a, b| a.name == b.name);
        Listing {
            objects,
            unreadable: Vec::new(),
        }
    }

    /// Every digest, sidecar and log file under the sources.
    pub async fn list(&self) -> Result<Listing, VerifyError> {
        let mut listing = Listing::default();
        if !self.local.is_empty() {
            let local = self.local.clone();
            let found = tokio::task::spawn_blocking(move || discover_all(&local))
                .await
                .map_err(|e| VerifyError::Source {
                    location: "local folders".into(),
                    message: e.to_string(),
                })?
                .map_err(|e| VerifyError::Source {
                    location: "local folders".into(),
                    message: e.to_string(),
                })?;
            listing = Self::listing_of(&found.files, Which::All);
            listing.unreadable.extend(
                found
                    .unreadable
                    .into_iter()
                    .map(|(p, why)| (p.display().to_string(), why)),
            );
        }
        for (url, store) in &self.s3 {
            let prefix = (!url.prefix.is_empty()).then(|| Path::from(url.prefix.as_str()));
            let metas: Vec<object_store::ObjectMeta> = store
                .list(prefix.as_ref())
                .try_collect()
                .await
                .map_err(|e| VerifyError::Source {
                    location: url.name(),
                    message: e.to_string(),
                })?;
            for meta in metas {
                let key = meta.location.as_ref();
                if let Some(kind) = classify(key) {
                    let name = url.object(key).display().to_string();
                    listing.objects.push(Object {
                        key_at: name.len() - layout_key(key).len(),
                        location: Location::S3 {
                            key_at: name.len() - key.len(),
                        },
                        name,
                        kind,
                        size: meta.size,
                        hash: None,
                    });
                }
            }
        }
        listing.objects.sort_by(|a, b| a.name.cmp(&b.name));
        listing.objects.dedup_by(|a, b| a.name == b.name);
        Ok(listing)
    }

    /// The path of a local object: read it on the thread that uses it (one `read` call), not
    /// through the runtime's blocking pool (a hand-off per file).
    pub fn local_path(object: &Object) -> Option<&std::path::Path> {
        match &object.location {
            Location::Local(path) => Some(
                path.as_deref()
                    .unwrap_or(std::path::Path::new(&object.name)),
            ),
            Location::S3 { .. } => None,
        }
    }

    /// An object's bytes (and, from S3, its user metadata).
    pub async fn read(&self, object: &Object) -> Result<Fetched, String> {
        match &object.location {
            Location::Local(path) => tokio::fs::read(
                path.as_deref()
                    .unwrap_or(std::path::Path::new(&object.name)),
            )
            .await
            .map(|bytes| Fetched {
                bytes,
                metadata: HashMap::new(),
            })
            .map_err(|e| e.to_string()),
            Location::S3 { key_at } => {
                // `s3://<bucket>/<key>`
                let bucket = object
                    .name
                    .get(crate::s3::SCHEME.len()..key_at.saturating_sub(1))
                    .ok_or("not an S3 object name")?;
                let key = object.name.get(*key_at..).unwrap_or_default();
                let store = self
                    .s3
                    .iter()
                    .find(|(url, _)| url.bucket == bucket)
                    .map(|(_, store)| store)
                    .ok_or("no client for this bucket")?;
                let got = store
                    .get(&Path::from(key))
                    .await
                    .map_err(|e| e.to_string())?;
                let metadata = got
                    .attributes
                    .iter()
                    .filter_map(|(name, value)| match name {
                        Attribute::Metadata(name) => {
                            Some((name.to_ascii_lowercase(), value.as_ref().to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                let bytes = got.bytes().await.map_err(|e| e.to_string())?;
                Ok(Fetched {
                    bytes: bytes.to_vec(),
                    metadata,
                })
            }
        }
    }
}

/// The signature in a digest's metadata, or in a sidecar's text.
pub fn signature_in(metadata: &HashMap<String, String>) -> Option<String> {
    metadata.get("signature").map(|s| s.trim().to_string())
}

/// The signature a sidecar holds (`head-object` output or the metadata alone).
pub fn sidecar_signature(text: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let metadata = value.get("Metadata").unwrap_or(&value);
    let found = metadata
        .as_object()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("signature"))
                .map(|(_, v)| v)
        })
        .and_then(serde_json::Value::as_str);
    found
        .map(|s| s.trim().to_string())
        .ok_or_else(|| "no `signature` (nor `Metadata.signature`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_compared_from_awslogs_on() {
        assert_eq!(
            layout_key("/copy/of/bucket/AWSLogs/o-1/1/CloudTrail/x.json.gz"),
            "AWSLogs/o-1/1/CloudTrail/x.json.gz"
        );
        assert_eq!(layout_key("AWSLogs/1/x"), "AWSLogs/1/x");
        assert_eq!(layout_key("prefix/MyAWSLogs/AWSLogs/1/x"), "AWSLogs/1/x");
        assert_eq!(layout_key("other/x.json.gz"), "other/x.json.gz");
        assert_eq!(
            account_region("AWSLogs/o-1/111/CloudTrail/eu-west-1/2026/x.json.gz"),
            Some(("111", "eu-west-1"))
        );
        assert_eq!(account_region("AWSLogs/x.json.gz"), None);
    }

    #[test]
    fn objects_are_told_apart_by_cloudtrails_layout() {
        let digest = "a/AWSLogs/1/CloudTrail-Digest/us-east-1/2026/11/04/1_CloudTrail-Digest_us-east-1_t_us-east-1_20261104T011031Z.json.gz";
        assert!(matches!(classify(digest), Some(Kind::Digest(_))));
        match classify(&format!("{digest}{SIDECAR}")) {
            Some(Kind::Sidecar(of)) => assert_eq!(of, layout_key(digest)),
            other => panic!("not a sidecar: {other:?}"),
        }
        let log = "AWSLogs/1/CloudTrail/us-east-1/2026/11/04/1_CloudTrail_us-east-1_20261104T0005Z_x.json.gz";
        assert!(matches!(classify(log), Some(Kind::Log(Some(_)))));
        assert!(classify("AWSLogs/1/CloudTrail/us-east-1/README.md").is_none());
    }

    #[test]
    fn sidecars_hold_head_object_output_or_the_metadata_alone() {
        let head = br#"{"ContentLength": 3, "Metadata": {"signature": "ab01", "signature-algorithm": "SHA256withRSA"}}"#;
        assert_eq!(sidecar_signature(head).as_deref(), Ok("ab01"));
        assert_eq!(
            sidecar_signature(br#"{"signature": " cd "}"#).as_deref(),
            Ok("cd")
        );
        assert!(sidecar_signature(br#"{"Metadata": {}}"#).is_err());
    }
}
