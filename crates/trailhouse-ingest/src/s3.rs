//! Sources in Amazon S3 or an S3-compatible store: `s3://bucket[/prefix]`.
//!
//! A trail bucket holds millions of objects and grows every five minutes, so a run must not list
//! all of it. Listing follows CloudTrail's key layout
//! (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<name>`): folders are listed one
//! level at a time with a delimiter (new accounts and regions are found that way, a few requests
//! each) down to each region folder, whose keys are listed in order from where the last run got
//! ([`Cursors`]) less an overlap of [`OVERLAP`] for uploads still in flight then. Keys re-listed in
//! the overlap are skipped by the ledger (key, size, modification time and ETag), without a GET.
//! Below a region folder, or outside the layout, every key under the prefix is listed.
//!
//! Objects are read with many GETs in flight (S3 is latency-bound), with object_store's retries
//! and timeouts; an object that still fails is that object's failure, not the run's.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{NaiveDate, NaiveDateTime};
use futures::{StreamExt, TryStreamExt, stream};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use trailhouse_lake::State;

use crate::discover::SourceFile;
use crate::error::{FileError, IngestError};
use crate::etag::ETag;
use crate::fetch::Stored;
use crate::shard::{Shard, account_region};

/// How far before the last key seen a region folder is listed again: an upload that started
/// before the last run listed the folder and finished after it has a name (its delivery time)
/// up to this much older than the newest key then.
pub const OVERLAP: chrono::Duration = chrono::Duration::hours(1);

pub(crate) const SCHEME: &str = "s3://";

/// How to reach S3.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// An S3-compatible store's endpoint (MinIO, Ceph, R2); else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// GET and LIST requests in flight at once.
    pub requests: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            requests: 256,
        }
    }
}

/// Whether a source names an S3 location.
pub fn is_s3(source: &FsPath) -> bool {
    source.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

/// A bucket and a key prefix (no leading or trailing `/`; empty for the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    pub fn parse(source: &FsPath) -> Result<Self, IngestError> {
        let text = source.to_string_lossy();
        let bad = |why: &str| IngestError::S3 {
            url: text.to_string(),
            message: why.to_string(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid {
            return Err(bad(
                "the bucket name must be 3 to 63 lower-case letters, digits, '-', '.' or '_'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|s| s.is_empty() && !prefix.is_empty())
        {
            return Err(bad("the prefix has an empty folder name (`//`)"));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The location as the user wrote it: `s3://bucket` or `s3://bucket/prefix`.
    pub fn name(&self) -> String {
        if self.prefix.is_empty() {
            format!("{SCHEME}{}", self.bucket)
        } else {
            format!("{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }

    /// How an object is named in reports, the ledger and the quarantine: `s3://bucket/key`.
    pub fn object(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("{SCHEME}{}/{key}", self.bucket))
    }
}

/// The bucket and key of an object named by [`S3Url::object`].
fn split_object(path: &FsPath) -> Option<(&str, &str)> {
    path.to_str()?.strip_prefix(SCHEME)?.split_once('/')
}

/// One client per bucket a run reads, and the counts of requests made.
pub struct Buckets {
    stores: HashMap<String, Arc<dyn ObjectStore>>,
    requests: usize,
    runtime: tokio::runtime::Handle,
    /// LIST requests made (one per page of up to 1,000 keys).
    pub lists: AtomicU64,
    /// Object keys those LISTs returned (folders not counted).
    pub keys: AtomicU64,
}

impl Buckets {
    /// Clients for the buckets of `sources` (other sources are ignored), configured from the
    /// environment: the standard credential chain of `AWS_*` variables (keys, web identity, ECS
    /// and EC2 instance metadata), a profile's static keys and region from the shared files
    /// (`AWS_PROFILE`), `AWS_REGION`, and `AWS_ENDPOINT_URL` or `options.endpoint`.
    pub fn connect(
        sources: &[PathBuf],
        options: &S3Options,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, IngestError> {
        let mut stores = HashMap::new();
        for source in sources.iter().filter(|s| is_s3(s)) {
            let url = S3Url::parse(source)?;
            if stores.contains_key(&url.bucket) {
                continue;
            }
            let store = client(&url.bucket, options).map_err(|e| IngestError::S3 {
                url: source.to_string_lossy().into_owned(),
                message: e.to_string(),
            })?;
            stores.insert(url.bucket, store);
        }
        Ok(Self {
            stores,
            requests: options.requests.max(1),
            runtime,
            lists: AtomicU64::new(0),
            keys: AtomicU64::new(0),
        })
    }

    fn store(&self, bucket: &str) -> Option<&Arc<dyn ObjectStore>> {
        self.stores.get(bucket)
    }

    /// Lists the objects under `url` (see the module documentation), starting each region
    /// folder from its cursor in `cursors`, and no earlier than `since`'s delivery day; only the
    /// region folders of `shard`, when given.
    pub async fn list(
        &self,
        url: &S3Url,
        cursors: &Cursors,
        since: Option<NaiveDate>,
        shard: Option<Shard>,
    ) -> Result<Listing, IngestError> {
        let store = self
            .store(&url.bucket)
            .ok_or_else(|| IngestError::S3 {
                url: format!("{SCHEME}{}", url.bucket),
                message: "no client for this bucket".into(),
            })?
            .clone();
        let mut listing = Listing::default();
        let mut regions: Vec<String> = Vec::new();
        let mut flat: Vec<String> = Vec::new();
        match Level::of(&url.prefix) {
            Level::Region => regions.push(url.prefix.clone()),
            Level::Inside => flat.push(url.prefix.clone()),
            Level::Digests => {}
            Level::Above => {
                // The first listing names the source: if it fails, the source cannot be read.
                let top = self
                    .folder(&store, &url.prefix)
                    .await
                    .map_err(|e| IngestError::S3 {
                        url: url.name(),
                        message: explain(&e),
                    })?;
                let mut frontier = self.sort_folder(url, top, &mut listing, &mut regions);
                while !frontier.is_empty() {
                    let found: Vec<(String, object_store::Result<object_store::ListResult>)> =
                        stream::iter(frontier)
                            .map(|folder| {
                                let store = store.clone();
                                async move {
                                    let r = self.folder(&store, &folder).await;
                                    (folder, r)
                                }
                            })
                            .buffer_unordered(self.requests)
                            .collect()
                            .await;
                    frontier = Vec::new();
                    for (folder, result) in found {
                        match result {
                            Ok(list) => frontier.extend(self.sort_folder(
                                url,
                                list,
                                &mut listing,
                                &mut regions,
                            )),
                            Err(e) => listing
                                .unreadable
                                .push((url.object(&format!("{folder}/")), explain(&e))),
                        }
                    }
                }
            }
        }
        // Region folders of other shards are not listed at all.
        if let Some(shard) = shard {
            regions.retain(|folder| {
                let segments: Vec<&str> = folder.trim_matches('/').split('/').collect();
                shard.holds(account_region(&segments))
            });
        }
        let scans = regions
            .into_iter()
            .map(|folder| {
                let start = start_after(&folder, cursors.get(url, &folder), since);
                (folder, start, true)
            })
            .chain(flat.into_iter().map(|folder| (folder, None, false)));
        // Each folder's objects become the listing's files as its LIST completes: a trail's
        // 400,000 objects are not held twice over (as object_store's metadata and as files).
        let mut results = stream::iter(scans)
            .map(|(folder, start, region)| {
                let store = store.clone();
                async move {
                    let r = self.keys_from(&store, &folder, start.as_deref()).await;
                    (folder, region, r)
                }
            })
            .buffer_unordered(self.requests);
        while let Some((folder, region, result)) = results.next().await {
            match result {
                Ok(objects) => {
                    // The folder's last key, not all of them: which keys the run left unread
                    // is known at its end (a few), and the cursor stops at the first of those.
                    let last = region
                        .then(|| objects.iter().map(|m| m.location.as_ref()).max())
                        .flatten()
                        .map(Box::from);
                    if let Some(last) = last {
                        listing.folders.push(RegionListed {
                            folder: cursor_name(url, &folder),
                            last,
                        });
                    }
                    listing.files.reserve(objects.len());
                    listing
                        .files
                        .extend(objects.into_iter().map(|meta| source_file(url, meta)));
                }
                Err(e) => listing
                    .unreadable
                    .push((url.object(&format!("{folder}/")), explain(&e))),
            }
        }
        Ok(listing)
    }

    /// Files at a folder's level go to `listing`, region folders to `regions`; the other
    /// sub-folders are returned, to be listed next (digest folders are left out).
    fn sort_folder(
        &self,
        url: &S3Url,
        list: object_store::ListResult,
        listing: &mut Listing,
        regions: &mut Vec<String>,
    ) -> Vec<String> {
        listing
            .files
            .extend(list.objects.into_iter().map(|meta| source_file(url, meta)));
        let mut next = Vec::new();
        for sub in list.common_prefixes {
            let sub = sub.as_ref().to_string();
            match Level::of(&sub) {
                Level::Region => regions.push(sub),
                Level::Digests => {}
                // Inside: only when a folder outside the layout holds `CloudTrail/<region>/…`
                // deeper than a region folder's place; walked like the rest.
                Level::Above | Level::Inside => next.push(sub),
            }
        }
        next
    }

    async fn folder(
        &self,
        store: &Arc<dyn ObjectStore>,
        folder: &str,
    ) -> object_store::Result<object_store::ListResult> {
        let prefix = (!folder.is_empty()).then(|| Path::from(folder));
        let r = store.list_with_delimiter(prefix.as_ref()).await?;
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.keys
            .fetch_add(r.objects.len() as u64, Ordering::Relaxed);
        Ok(r)
    }

    /// Every key under `folder`, after `start` if given.
    async fn keys_from(
        &self,
        store: &Arc<dyn ObjectStore>,
        folder: &str,
        start: Option<&str>,
    ) -> object_store::Result<Vec<ObjectMeta>> {
        let prefix = (!folder.is_empty()).then(|| Path::from(folder));
        let listed = match start {
            Some(s) => store.list_with_offset(prefix.as_ref(), &Path::from(s)),
            None => store.list(prefix.as_ref()),
        };
        let objects: Vec<ObjectMeta> = listed.try_collect().await?;
        // LIST returns up to 1,000 keys a page.
        self.lists.fetch_add(
            objects.len().div_ceil(1000).max(1) as u64,
            Ordering::Relaxed,
        );
        self.keys.fetch_add(objects.len() as u64, Ordering::Relaxed);
        Ok(objects)
    }

    /// The stored bytes of S3 objects, many GETs in flight; blocks the calling thread (a read
    /// thread, not the runtime's). Objects larger than `limit` are refused without a GET.
    pub fn get_all(&self, files: &[&SourceFile], limit: u64) -> Vec<Stored> {
        let gets = stream::iter(files.iter().map(|f| self.get(f, limit)))
            .buffered(self.requests)
            .collect::<Vec<Stored>>();
        self.runtime.block_on(gets)
    }

    async fn get(&self, file: &SourceFile, limit: u64) -> Stored {
        if file.size > limit {
            return Err(FileError::TooLarge { limit });
        }
        let (bucket, key) = split_object(&file.path)
            .ok_or_else(|| FileError::Read(std::io::Error::other("not an s3://bucket/key name")))?;
        let store = self
            .store(bucket)
            .ok_or_else(|| FileError::Read(std::io::Error::other("no client for this bucket")))?;
        let location = Path::from(key);
        let got = store.get(&location).await.map_err(FileError::Fetch)?;
        let bytes = got.bytes().await.map_err(FileError::Fetch)?;
        Ok(Vec::from(bytes))
    }
}

/// An S3 error, with what to do about it when the cause is a usual one.
fn explain(e: &object_store::Error) -> String {
    let text = e.to_string();
    match hint(&text) {
        Some(hint) => format!("{hint} ({text})"),
        None => text,
    }
}

/// What to do about an S3 error whose text is `text`, when its cause is a usual one.
pub fn hint(text: &str) -> Option<&'static str> {
    Some(
        if text.contains("169.254.169.254") || text.contains("169.254.170.2") {
            "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or \
             AWS_PROFILE, or run with an instance or task role)"
        } else if text.contains("SignatureDoesNotMatch") || text.contains("InvalidAccessKeyId") {
            "the credentials were refused: check the access key and its secret"
        } else if text.contains("AccessDenied") {
            "access denied: reading a trail needs s3:ListBucket and s3:GetObject on its keys; a \
             lake also needs s3:PutObject and s3:DeleteObject under its prefix"
        } else if text.contains("NoSuchBucket") {
            "no such bucket"
        } else if text.contains("PermanentRedirect") {
            "the bucket is in another region: set AWS_REGION to the bucket's region"
        } else if text.contains("Connection refused") || text.contains("dns error") {
            "the endpoint does not answer: check AWS_ENDPOINT_URL / --s3-endpoint and the network"
        } else if text.contains("error sending request") {
            "the request did not get through in time, retries included (a busy endpoint, a lost \
             connection): the next run tries it again"
        } else {
            return None;
        },
    )
}

/// The client for one bucket (configured as [`Buckets::connect`] says).
pub fn client(bucket: &str, options: &S3Options) -> object_store::Result<Arc<dyn ObjectStore>> {
    use object_store::aws::AmazonS3ConfigKey as Key;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let profile = Profile::from_env();
    if builder.get_config_value(&Key::AccessKeyId).is_none()
        && std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_none()
        && let Some((key, secret)) = profile.keys()
    {
        builder = builder
            .with_access_key_id(key)
            .with_secret_access_key(secret);
        if let Some(token) = profile.get("aws_session_token") {
            builder = builder.with_token(token);
        }
    }
    if builder.get_config_value(&Key::Region).is_none()
        && let Some(region) = profile.get("region")
    {
        builder = builder.with_region(region);
    }
    if builder
        .get_config_value(&Key::Endpoint)
        .is_some_and(|e| e.starts_with("http://"))
    {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build()?))
}

/// Settings of the shared AWS files for the profile in `AWS_PROFILE` (else `default`): static
/// keys from the credentials file, the region from the config file. Profiles that take their
/// keys elsewhere (SSO, a credential process, a role to assume) are not read here: export them
/// first (`aws configure export-credentials --format env`).
#[derive(Debug, Default)]
struct Profile {
    values: HashMap<String, String>,
}

impl Profile {
    fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let mut values = HashMap::new();
        // The config file names sections `[profile x]` (but `[default]`); credentials `[x]`.
        let config_section = if name == "default" {
            name.clone()
        } else {
            format!("profile {name}")
        };
        for (path, section) in [
            (file("AWS_CONFIG_FILE", "config"), config_section),
            (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), name),
        ] {
            if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) {
                values.extend(ini_section(&text, &section));
            }
        }
        Self { values }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }

    fn keys(&self) -> Option<(String, String)> {
        Some((
            self.get("aws_access_key_id")?,
            self.get("aws_secret_access_key")?,
        ))
    }
}

/// The `key = value` lines of one `[section]` of an INI text.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// Where a folder stands in CloudTrail's layout.
#[derive(Debug, PartialEq, Eq)]
enum Level {
    /// Above the region folders (the bucket, `AWSLogs`, an organization, an account): listed a
    /// level at a time.
    Above,
    /// `…/CloudTrail*/<region>`: listed in key order from its cursor.
    Region,
    /// Below a region folder: every key is listed.
    Inside,
    /// `CloudTrail-Digest` and below: integrity digests, not events.
    Digests,
}

impl Level {
    fn of(folder: &str) -> Self {
        let parts: Vec<&str> = folder.trim_matches('/').split('/').collect();
        match parts.iter().position(|p| p.starts_with("CloudTrail")) {
            Some(at) if parts[at] == "CloudTrail-Digest" => Level::Digests,
            // `CloudTrail`, `CloudTrail-Insight`, `CloudTrail-NetworkActivity`: regions below.
            Some(at) if parts.len() == at + 2 => Level::Region,
            Some(at) if parts.len() > at + 2 => Level::Inside,
            _ => Level::Above,
        }
    }
}

fn source_file(url: &S3Url, meta: ObjectMeta) -> SourceFile {
    SourceFile {
        path: url.object(meta.location.as_ref()),
        size: meta.size,
        mtime_ns: meta
            .last_modified
            .timestamp_nanos_opt()
            .unwrap_or_else(|| meta.last_modified.timestamp() * 1_000_000_000),
        etag: meta.e_tag.map(ETag::from),
    }
}

/// The key to list a region folder after: a little before its cursor ([`OVERLAP`]), and not
/// before `since`'s delivery day. `None`: from the start.
fn start_after(folder: &str, cursor: Option<&str>, since: Option<NaiveDate>) -> Option<String> {
    let from_cursor = cursor.and_then(|c| overlap(folder, c));
    // `…/2026/11/04` sorts before every key of that day's folder and after the day before.
    let from_since = since.map(|d| format!("{folder}/{}", d.format("%Y/%m/%d")));
    from_cursor.max(from_since)
}

/// A key [`OVERLAP`] before `cursor` in delivery time, from CloudTrail's file name
/// (`<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz`); for other names, the
/// start of the cursor's delivery day.
fn overlap(folder: &str, cursor: &str) -> Option<String> {
    let rest = cursor.strip_prefix(folder)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let name = parts.last()?;
    let fields: Vec<&str> = name.split('_').collect();
    if fields.len() >= 5
        && let Ok(t) = NaiveDateTime::parse_from_str(fields[3], "%Y%m%dT%H%MZ")
    {
        let t = t - OVERLAP;
        return Some(format!(
            "{folder}/{}/{}_{}_{}_{}",
            t.format("%Y/%m/%d"),
            fields[0],
            fields[1],
            fields[2],
            t.format("%Y%m%dT%H%MZ")
        ));
    }
    (parts.len() >= 4).then(|| format!("{folder}/{}", parts[..3].join("/")))
}

/// The cursor name (`s3://bucket/<region folder>`) and key of an object `s3://bucket/key` in
/// CloudTrail's layout.
fn region_folder(path: &FsPath) -> Option<(String, &str)> {
    let (bucket, key) = split_object(path)?;
    let segments: Vec<&str> = key.split('/').collect();
    let at = segments.iter().position(|p| p.starts_with("CloudTrail"))?;
    (segments.len() > at + 2).then(|| {
        (
            format!("{SCHEME}{bucket}/{}", segments[..at + 2].join("/")),
            key,
        )
    })
}

fn cursor_name(url: &S3Url, folder: &str) -> String {
    format!("{SCHEME}{}/{folder}", url.bucket)
}

/// A region folder listed from a cursor, and the last key listed there.
#[derive(Debug, Default)]
pub struct RegionListed {
    /// `s3://bucket/<region folder>`.
    pub folder: String,
    pub last: Box<str>,
}

/// What listing a source found.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<SourceFile>,
    /// Folders whose listing failed after its retries (reported as failed; the run goes on).
    pub unreadable: Vec<(PathBuf, String)>,
    /// The region folders listed from a cursor, for the next cursors.
    pub folders: Vec<RegionListed>,
}

/// How far each region folder has been read: the last key listed there, or the first one a run
/// listed and left unread (every key listed before it was read). Kept in the lake's state folder.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Cursors {
    folders: BTreeMap<String, String>,
}

impl Cursors {
    /// The cursors kept in `state` as `rel` (none yet: empty).
    pub async fn load(state: &State, rel: &str) -> Result<Self, IngestError> {
        let err = |message: String| IngestError::Ledger {
            path: state.name(rel),
            message,
        };
        match state.read(rel).await.map_err(|e| err(e.to_string()))? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string())),
            None => Ok(Self::default()),
        }
    }

    /// Written whole or not at all.
    pub async fn save(&self, state: &State, rel: &str) -> Result<(), IngestError> {
        let err = |message: String| IngestError::Ledger {
            path: state.name(rel),
            message,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        state.write(rel, text).await.map_err(|e| err(e.to_string()))
    }

    fn get(&self, url: &S3Url, folder: &str) -> Option<&str> {
        self.folders
            .get(&cursor_name(url, folder))
            .map(String::as_str)
    }

    /// Whether the object `path` (`s3://bucket/key`) is behind its region folder's cursor by
    /// more than the overlap: no run lists it again.
    pub fn behind(&self, path: &FsPath) -> bool {
        let Some((folder, key)) = region_folder(path) else {
            return false;
        };
        let Some(cursor) = self.folders.get(&folder) else {
            return false;
        };
        let Some((_, local)) = split_object(FsPath::new(&folder)) else {
            return false;
        };
        overlap(local, cursor).is_some_and(|start| key <= start.as_str())
    }

    /// Moves the cursor of the object's region folder back so the next run lists `path`
    /// (`s3://bucket/key`) again: its batch is to be read again.
    pub fn rewind(&mut self, path: &FsPath) {
        let Some((folder, key)) = region_folder(path) else {
            return;
        };
        if let Some(cursor) = self.folders.get_mut(&folder)
            && cursor.as_str() > key
        {
            // Listed from an overlap before the cursor: the key itself is listed.
            *cursor = key.to_string();
        }
    }

    /// Moves each listed folder's cursor to the last key listed there or, if the run left a key
    /// it listed there unread (`unread`: `s3://bucket/key` names; failed, or outside its scope),
    /// to the first of those: the next run lists from an overlap before it, so it is read again.
    pub fn advance<'a>(&mut self, listing: &Listing, unread: impl IntoIterator<Item = &'a FsPath>) {
        let mut first: HashMap<String, &str> = HashMap::new();
        for path in unread {
            if let Some((folder, key)) = region_folder(path) {
                let at = first.entry(folder).or_insert(key);
                *at = (*at).min(key);
            }
        }
        for region in &listing.folders {
            let last: &str = &region.last;
            let key = first.get(&region.folder).map_or(last, |k| last.min(*k));
            self.folders.insert(region.folder.clone(), key.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        let u = S3Url::parse(FsPath::new("s3://my-trail/AWSLogs/o-abc/")).expect("url");
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("my-trail", "AWSLogs/o-abc")
        );
        let u = S3Url::parse(FsPath::new("s3://my-trail")).expect("url");
        assert_eq!(u.prefix, "");
        assert_eq!(
            u.object("AWSLogs/1/x.json.gz"),
            PathBuf::from("s3://my-trail/AWSLogs/1/x.json.gz")
        );
        for bad in ["s3://", "s3://A_B/x", "s3://ab", "s3://bucket/a//b"] {
            assert!(S3Url::parse(FsPath::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn folders_are_placed_in_the_layout() {
        for (folder, level) in [
            ("", Level::Above),
            ("AWSLogs/o-x/111122223333/", Level::Above),
            ("AWSLogs/o-x/111122223333/CloudTrail/", Level::Above),
            ("AWSLogs/111122223333/CloudTrail/us-east-1/", Level::Region),
            ("AWSLogs/1/CloudTrail-Insight/us-east-1", Level::Region),
            ("AWSLogs/1/CloudTrail/us-east-1/2026/11", Level::Inside),
            ("AWSLogs/1/CloudTrail-Digest/us-east-1", Level::Digests),
        ] {
            assert_eq!(Level::of(folder), level, "{folder}");
        }
    }

    #[test]
    fn listing_resumes_an_overlap_before_the_cursor_and_not_before_since() {
        let folder = "AWSLogs/111122223333/CloudTrail/us-east-1";
        let cursor = format!(
            "{folder}/2026/11/04/111122223333_CloudTrail_us-east-1_20261104T0010Z_abcdefghijklmnop.json.gz"
        );
        let start = start_after(folder, Some(&cursor), None).expect("start");
        assert_eq!(
            start,
            format!("{folder}/2026/11/03/111122223333_CloudTrail_us-east-1_20261103T2310Z")
        );
        // Keys delivered within the overlap come after the start; older ones before it.
        let late = format!(
            "{folder}/2026/11/03/111122223333_CloudTrail_us-east-1_20261103T2340Z_x.json.gz"
        );
        let old = format!(
            "{folder}/2026/11/03/111122223333_CloudTrail_us-east-1_20261103T2200Z_x.json.gz"
        );
        assert!(late > start && old < start && cursor > start);

        let since = NaiveDate::from_ymd_opt(2026, 11, 10);
        let from_since = start_after(folder, Some(&cursor), since).expect("start");
        assert_eq!(from_since, format!("{folder}/2026/11/10"));
        assert!(format!("{folder}/2026/11/10/a") > from_since);
        assert!(format!("{folder}/2026/11/09/z") < from_since);
        assert_eq!(start_after(folder, None, None), None);

        // A name outside CloudTrail's pattern: from the start of its delivery day.
        let odd = format!("{folder}/2026/11/04/other.json.gz");
        assert_eq!(
            start_after(folder, Some(&odd), None),
            Some(format!("{folder}/2026/11/04"))
        );
    }

    #[test]
    fn cursors_stop_at_the_first_key_left_unread() {
        let mut c = Cursors::default();
        let listing = Listing {
            folders: vec![
                RegionListed {
                    folder: "s3://b/AWSLogs/1/CloudTrail/r1".into(),
                    last: "AWSLogs/1/CloudTrail/r1/2026/11/04/c".into(),
                },
                RegionListed {
                    folder: "s3://b/AWSLogs/1/CloudTrail/r2".into(),
                    last: "AWSLogs/1/CloudTrail/r2/2026/11/04/c".into(),
                },
            ],
            ..Listing::default()
        };
        let unread = [
            "s3://b/AWSLogs/1/CloudTrail/r1/2026/11/04/b",
            "s3://b/AWSLogs/1/CloudTrail/r1/2026/11/03/z",
            "s3://b/outside/the/layout",
            "s3://other/AWSLogs/1/CloudTrail/r2/2026/11/01/a",
        ];
        c.advance(&listing, unread.iter().map(FsPath::new));
        assert_eq!(
            c.folders["s3://b/AWSLogs/1/CloudTrail/r1"], "AWSLogs/1/CloudTrail/r1/2026/11/03/z",
            "the first key left unread, not the first reported"
        );
        assert_eq!(
            c.folders["s3://b/AWSLogs/1/CloudTrail/r2"], "AWSLogs/1/CloudTrail/r2/2026/11/04/c",
            "another bucket's folder of the same name is not this one"
        );
        assert!(!c.behind(FsPath::new("s3://b/AWSLogs/1/CloudTrail/r1/2026/11/03/z")));
        c.advance(&listing, []);
        assert_eq!(
            c.folders["s3://b/AWSLogs/1/CloudTrail/r1"], "AWSLogs/1/CloudTrail/r1/2026/11/04/c",
            "everything read: the last key"
        );
    }

    #[test]
    fn profile_sections_are_read_from_ini_text() {
        let text = "[default]\nregion = eu-west-1\n[profile ops]\nregion=us-west-2\n# c\naws_access_key_id = AK\n";
        assert_eq!(
            ini_section(text, "profile ops"),
            vec![
                ("region".to_string(), "us-west-2".to_string()),
                ("aws_access_key_id".to_string(), "AK".to_string())
            ]
        );
        assert_eq!(ini_section(text, "default").len(), 1);
    }
}
