//! A lake in an object store (`--lake s3://bucket/prefix`): the same layout as on disk, under a
//! key prefix.
//!
//! - Delta commits go through delta-rs's default log store over the bucket's client: a commit
//!   is a PUT of `_delta_log/<version>.json` with `If-None-Match: *`, so of two writers (on two
//!   machines) committing the same version, the store accepts one and the other retries on the
//!   next version or reports the conflict.
//! - Data files are written to a local staging folder (as for a local lake, with the same
//!   Parquet writer), uploaded before the commit that names them, then removed locally.
//! - The ingest's state (`_trailhouse/…`: the ledger's plans, the S3 cursors) is a set of small
//!   objects, each written whole by one PUT.
//! - The writer lock is a lease: `_trailhouse/writer.lock`, created only if absent
//!   (`If-None-Match: *`), renewed every minute by its holder, and taken over (`If-Match` on the
//!   stale copy's ETag, so by one process only) when it has not been renewed for
//!   [`LEASE_STALE`]: a crashed run does not block the lake for good.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deltalake_core::kernel::Add;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::LakeError;

/// A lease not renewed for this long belongs to a process that is gone.
pub const LEASE_STALE: Duration = Duration::from_secs(10 * 60);
/// How often a holder renews its lease.
const LEASE_RENEW: Duration = Duration::from_secs(60);

/// Where a remote lake lives and the client that reaches it.
#[derive(Debug)]
pub struct Remote {
    /// `s3://bucket/prefix/` (always with the trailing `/`).
    pub(crate) url: Url,
    /// `s3://bucket/`: what DataFusion registers the client under.
    pub(crate) bucket_url: Url,
    /// The bucket's client (keys are relative to the bucket).
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The lake's key prefix in the bucket (empty, or `a/b`).
    prefix: String,
    /// Where data files are written before their upload.
    pub(crate) staging: PathBuf,
    runtime: tokio::runtime::Handle,
}

impl Remote {
    /// `url` is `scheme://bucket[/prefix]`; `store` the client of its bucket. Must be called
    /// within a tokio runtime (its handle runs the requests of synchronous callers).
    pub(crate) fn new(url: &Url, store: Arc<dyn ObjectStore>) -> Result<Self, LakeError> {
        let bad = |why: &str| LakeError::Schema(format!("lake URL `{url}`: {why}"));
        let bucket = url.host_str().ok_or_else(|| bad("no bucket"))?;
        let prefix = url.path().trim_matches('/').to_string();
        let bucket_url = Url::parse(&format!("{}://{bucket}/", url.scheme()))
            .map_err(|e| bad(&e.to_string()))?;
        let url = if prefix.is_empty() {
            bucket_url.clone()
        } else {
            bucket_url
                .join(&format!("{prefix}/"))
                .map_err(|e| bad(&e.to_string()))?
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| bad(&format!("no async runtime: {e}")))?;
        let staging =
            std::env::temp_dir().join(format!("trailhouse-staging-{}", uuid::Uuid::new_v4()));
        Ok(Self {
            url,
            bucket_url,
            store,
            prefix,
            staging,
            runtime,
        })
    }

    /// The object key of `rel`, a path relative to the lake's root.
    pub(crate) fn key(&self, rel: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// How `rel` is named in messages: `s3://bucket/prefix/rel`.
    pub(crate) fn name(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("{}{rel}", self.url))
    }

    /// `rel` from a name made by [`Remote::name`].
    pub(crate) fn relative<'a>(&self, name: &'a Path) -> Option<&'a str> {
        name.to_str()?.strip_prefix(self.url.as_str())
    }

    fn error(&self, rel: &str, e: object_store::Error) -> LakeError {
        LakeError::Store {
            url: self.name(rel).display().to_string(),
            source: Box::new(e),
        }
    }

    /// Runs `f` to completion from synchronous code, whether or not the caller is itself on
    /// the runtime (a thread of its own waits for it).
    pub(crate) fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        std::thread::scope(|s| match s.spawn(|| self.runtime.block_on(f)).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    /// The object `rel`; `None` when there is none.
    pub(crate) async fn get(&self, rel: &str) -> Result<Option<Bytes>, LakeError> {
        match self.store.get(&self.key(rel)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| self.error(rel, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// `columns` of the Parquet object `rel` (`name` in errors), fetched by ranged GETs of its
    /// footer and of those columns' chunks only, not the whole file. parquet 59 deprecates its
    /// object_store reader in favour of one written by each user; it is the same ranged reads,
    /// and kept until DataFusion moves off it too.
    #[allow(deprecated)]
    pub(crate) async fn read_columns(
        &self,
        rel: &str,
        name: &Path,
        columns: &[&str],
    ) -> Result<Vec<arrow::array::RecordBatch>, LakeError> {
        use parquet::arrow::ParquetRecordBatchStreamBuilder;
        use parquet::arrow::async_reader::ParquetObjectReader;
        let pq = LakeError::parquet(name);
        let reader = ParquetObjectReader::new(Arc::clone(&self.store), self.key(rel));
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(pq)?;
        let mask =
            crate::datafile::projection(builder.schema(), builder.parquet_schema(), name, columns)?;
        builder
            .with_projection(mask)
            .build()
            .map_err(pq)?
            .try_collect()
            .await
            .map_err(pq)
    }

    /// Uploads the staged data files of `adds` to table folder `table`, several at a time.
    pub(crate) async fn upload_all(&self, table: &str, adds: &[Add]) -> Result<(), LakeError> {
        futures::stream::iter(adds.iter().map(|add| {
            let rel = format!("{table}/{}", add.path);
            async move { self.upload(&rel).await }
        }))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
    }

    /// Writes the object `rel` whole.
    pub(crate) async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.store
            .put(&self.key(rel), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error(rel, e))
    }

    pub(crate) async fn delete(&self, rel: &str) -> Result<(), LakeError> {
        match self.store.delete(&self.key(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// The names of the objects directly under folder `rel`.
    pub(crate) async fn list(&self, rel: &str) -> Result<Vec<String>, LakeError> {
        let folder = self.key(rel);
        let listed = self
            .store
            .list_with_delimiter(Some(&folder))
            .await
            .map_err(|e| self.error(rel, e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect())
    }

    /// The names of the objects directly under folder `rel` that sort after `after` (one LIST
    /// from there, not from the folder's start).
    pub(crate) async fn list_after(
        &self,
        rel: &str,
        after: &str,
    ) -> Result<Vec<String>, LakeError> {
        let folder = self.key(rel);
        let offset = self.key(&format!("{rel}/{after}"));
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list_with_offset(Some(&folder), &offset)
            .try_collect()
            .await
            .map_err(|e| self.error(rel, e))?;
        let depth = folder.parts().count() + 1;
        Ok(listed
            .into_iter()
            .filter(|o| o.location.parts().count() == depth)
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect())
    }

    /// Whether any object's key starts with folder `rel`.
    pub(crate) async fn has_any(&self, rel: &str) -> Result<bool, LakeError> {
        let folder = self.key(rel);
        let mut listing = self.store.list(Some(&folder));
        listing
            .try_next()
            .await
            .map(|o| o.is_some())
            .map_err(|e| self.error(rel, e))
    }

    /// Uploads the staged file `rel` (written under [`Remote::staging`]) and removes it
    /// locally. Large files go up in parts.
    pub(crate) async fn upload(&self, rel: &str) -> Result<(), LakeError> {
        let local = self.staging.join(rel);
        let io = LakeError::io(&local);
        let mut file = tokio::fs::File::open(&local).await.map_err(io)?;
        let mut writer = object_store::buffered::BufWriter::with_capacity(
            Arc::clone(&self.store),
            self.key(rel),
            16 << 20,
        );
        tokio::io::copy(&mut file, &mut writer).await.map_err(io)?;
        writer.shutdown().await.map_err(|e| LakeError::Store {
            url: self.name(rel).display().to_string(),
            source: Box::new(object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }),
        })?;
        drop(file);
        tokio::fs::remove_file(&local).await.map_err(io)
    }

    /// Takes the lease `name` (a file of `_trailhouse/`), waiting up to `wait` for a live
    /// holder to let go. A lease is refused while another live lease whose name `conflicts`
    /// says clashes with it is held: each side takes its own, then looks for the other, and
    /// gives its own back if it finds one (so of two racing, neither or one goes on).
    pub(crate) async fn lease(
        self: &Arc<Self>,
        name: &str,
        conflicts: &dyn Fn(&str) -> bool,
        wait: Duration,
        waiting: &dyn Fn(),
    ) -> Result<Lease, LakeError> {
        let rel = format!("{STATE}/{name}");
        let deadline = std::time::Instant::now() + wait;
        let mut told = false;
        let holder = serde_json::json!({
            "pid": std::process::id(),
            "host": hostname(),
            "since": chrono::Utc::now().to_rfc3339(),
        })
        .to_string();
        loop {
            let busy = match self.try_lease(&rel, &holder).await? {
                Some(put) => match self.live_lease(name, conflicts).await? {
                    None => {
                        let renew = tokio::spawn(renew(
                            Arc::clone(self),
                            self.key(&rel),
                            holder.clone(),
                            put.e_tag,
                            put.version,
                        ));
                        return Ok(Lease {
                            remote: Arc::clone(self),
                            rel,
                            renew,
                        });
                    }
                    Some(other) => {
                        self.delete(&rel).await?;
                        other
                    }
                },
                None => rel.clone(),
            };
            if std::time::Instant::now() >= deadline {
                let text = self.get(&busy).await.ok().flatten().unwrap_or_default();
                return Err(LakeError::Leased {
                    lock: self.name(&busy),
                    holder: String::from_utf8_lossy(&text).into_owned(),
                    stale_minutes: LEASE_STALE.as_secs() / 60,
                });
            }
            if !told {
                waiting();
                told = true;
            }
            // Two writers that found each other back off for different times.
            let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 2;
            tokio::time::sleep(Duration::from_millis(300 + jitter)).await;
        }
    }

    /// Creates the lease object `rel`, or takes it over when its holder stopped renewing it;
    /// `None` while a live holder has it.
    async fn try_lease(
        &self,
        rel: &str,
        holder: &str,
    ) -> Result<Option<object_store::PutResult>, LakeError> {
        let key = self.key(rel);
        let payload = || PutPayload::from(holder.to_string());
        loop {
            let create = PutOptions::from(PutMode::Create);
            match self.store.put_opts(&key, payload(), create).await {
                Ok(r) => return Ok(Some(r)),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(self.error(rel, e)),
            }
            let meta = match self.store.head(&key).await {
                Ok(m) => m,
                // Released in between: try again at once.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.error(rel, e)),
            };
            if !is_stale(&meta) {
                return Ok(None);
            }
            let update = PutOptions::from(PutMode::Update(UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            }));
            return match self.store.put_opts(&key, payload(), update).await {
                Ok(r) => Ok(Some(r)),
                // Another process took it over first.
                Err(object_store::Error::Precondition { .. }) => Ok(None),
                Err(e) => Err(self.error(rel, e)),
            };
        }
    }

    /// A live lease of `_trailhouse/` other than `own` whose name `conflicts` with it.
    async fn live_lease(
        &self,
        own: &str,
        conflicts: &dyn Fn(&str) -> bool,
    ) -> Result<Option<String>, LakeError> {
        let folder = self.key(STATE);
        let listed = self
            .store
            .list_with_delimiter(Some(&folder))
            .await
            .map_err(|e| self.error(STATE, e))?;
        Ok(listed.objects.into_iter().find_map(|o| {
            let name = o.location.filename()?;
            (name != own && conflicts(name) && !is_stale(&o)).then(|| format!("{STATE}/{name}"))
        }))
    }
}

const STATE: &str = "_trailhouse";

/// Whether a lease object was last renewed longer ago than a lease lives.
fn is_stale(meta: &object_store::ObjectMeta) -> bool {
    (chrono::Utc::now() - meta.last_modified)
        .to_std()
        .is_ok_and(|age| age >= LEASE_STALE)
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Staged files are removed as they are uploaded; their folders remain.
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// Renews a lease until it is dropped; stops if another process took it over.
async fn renew(
    remote: Arc<Remote>,
    key: Key,
    holder: String,
    mut e_tag: Option<String>,
    mut version: Option<String>,
) {
    loop {
        tokio::time::sleep(LEASE_RENEW).await;
        let update = PutOptions::from(PutMode::Update(UpdateVersion {
            e_tag: e_tag.clone(),
            version: version.clone(),
        }));
        match remote
            .store
            .put_opts(&key, PutPayload::from(holder.clone()), update)
            .await
        {
            Ok(r) => (e_tag, version) = (r.e_tag, r.version),
            Err(_) => return,
        }
    }
}

/// The writer's lease on a remote lake; dropping it stops its renewal and deletes it.
#[derive(Debug)]
pub struct Lease {
    remote: Arc<Remote>,
    rel: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        // Left behind if this fails: the next writer takes it over once it is stale.
        let _ = self.remote.block(self.remote.delete(&self.rel));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Registers delta-rs's default log store (commits by conditional PUT) for `scheme`, once.
pub(crate) fn register_log_store(scheme: &str) {
    use deltalake_core::logstore::{
        LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
        logstore_factories,
    };
    struct Factory;
    impl LogStoreFactory for Factory {
        fn with_options(
            &self,
            prefixed_store: ObjectStoreRef,
            root_store: ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake_core::DeltaResult<Arc<dyn LogStore>> {
            Ok(default_logstore(
                prefixed_store,
                root_store,
                location,
                options,
            ))
        }
    }
    if let Ok(url) = Url::parse(&format!("{scheme}://")) {
        let registry = logstore_factories();
        if !registry.contains_key(&url) {
            registry.insert(url, Arc::new(Factory));
        }
    }
}
