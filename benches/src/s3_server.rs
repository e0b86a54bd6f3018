//! A real S3 endpoint for tests and benchmarks: s3s-fs (buckets are the folders of a directory)
//! served on 127.0.0.1 with signature checks, counting on the server's side what it was asked
//! (LIST requests, the keys they returned, GETs, PUTs) and refusing GETs of keys marked as denied.
//!
//! Conditional writes (`If-None-Match: *`, `If-Match: <etag>`) are answered as S3 answers them:
//! s3s-fs checks the condition, then writes; this server runs each conditional write alone, so
//! the check and the write are one step, as S3's are.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

pub const ACCESS_KEY: &str = "AKIATRAILHOUSETEST";
pub const SECRET_KEY: &str = "trailhouse-test-secret";

/// What the server was asked, counted on its side.
#[derive(Default)]
pub struct Counts {
    pub lists: AtomicU64,
    /// Object keys the LISTs returned.
    pub keys: AtomicU64,
    /// Common prefixes (folders) the LISTs with a delimiter returned.
    pub prefixes: AtomicU64,
    /// Time the server spent answering LISTs, in microseconds (s3s-fs walks the bucket's
    /// folder for each one: its cost, not the client's).
    pub list_micros: AtomicU64,
    pub gets: AtomicU64,
    /// PUTs (whole objects and completed multipart uploads).
    pub puts: AtomicU64,
    /// Conditional PUTs refused because their condition failed (`412 Precondition Failed`).
    pub refused: AtomicU64,
    /// Keys written by a PUT that creates only if absent (`If-None-Match: *`), as
    /// `bucket/key`.
    pub created: Mutex<Vec<String>>,
    /// GETs and PUTs of keys containing any of these fail with AccessDenied.
    pub denied: Mutex<Vec<String>>,
    /// Objects whose key contains any of these are deleted when a GET asks for them (as if
    /// removed between a LIST and the GET): the GET finds no such key.
    pub vanishing: Mutex<Vec<String>>,
    /// Milliseconds each GET and LIST waits before it is answered (S3's first-byte latency is
    /// tens of milliseconds; a local server answers in microseconds).
    pub latency_ms: AtomicU64,
}

impl Counts {
    /// LIST requests, object keys listed and GETs since the last call (folders listed are
    /// counted apart, in `prefixes`).
    pub fn take(&self) -> (u64, u64, u64) {
        self.prefixes.store(0, Ordering::SeqCst);
        self.list_micros.store(0, Ordering::SeqCst);
        (
            self.lists.swap(0, Ordering::SeqCst),
            self.keys.swap(0, Ordering::SeqCst),
            self.gets.swap(0, Ordering::SeqCst),
        )
    }

    pub fn deny(&self, part: &str) {
        self.denied.lock().expect("lock").push(part.to_string());
    }

    pub fn vanish(&self, part: &str) {
        self.vanishing.lock().expect("lock").push(part.to_string());
    }

    pub fn allow_all(&self) {
        self.denied.lock().expect("lock").clear();
    }
}

struct Counting {
    fs: s3s_fs::FileSystem,
    /// The folder whose sub-folders are the buckets.
    root: std::path::PathBuf,
    counts: Arc<Counts>,
    /// Held by a conditional write from its check to its write.
    conditional: tokio::sync::Mutex<()>,
}

impl Counting {
    fn is_denied(&self, key: &str) -> bool {
        self.counts
            .denied
            .lock()
            .expect("lock")
            .iter()
            .any(|d| key.contains(d.as_str()))
    }

    fn count_put<T>(&self, out: &S3Result<T>) {
        match out {
            Ok(_) => self.counts.puts.fetch_add(1, Ordering::SeqCst),
            Err(e) if *e.code() == s3s::S3ErrorCode::PreconditionFailed => {
                self.counts.refused.fetch_add(1, Ordering::SeqCst)
            }
            Err(_) => 0,
        };
    }

    async fn wait(&self) {
        let ms = self.counts.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }
}

/// A LIST answered from the folder its prefix names, one page of it: s3s-fs walks the whole
/// bucket and reads every file's metadata for each page (a LIST of an organization trail's top
/// folder, or each page of a region folder's keys, read all 834,000 files). With the delimiter
/// `/`, a sub-folder is listed when a file lies below it (S3 has no empty folders). `None`: a
/// LIST this does not take (another delimiter, `.` or `..` in the prefix, no such bucket), for
/// s3s-fs to answer.
fn from_folder(root: &Path, input: &ListObjectsV2Input) -> Option<S3Result<ListObjectsV2Output>> {
    let prefix = input.prefix.as_deref().unwrap_or("");
    let one_level = match input.delimiter.as_deref() {
        None => false,
        Some("/") => true,
        Some(_) => return None,
    };
    let bucket = root.join(&input.bucket);
    if prefix.split('/').any(|part| part == "." || part == "..") || !bucket.is_dir() {
        return None;
    }
    // The folder the prefix lies in, and the keys (sub-folders too, with a delimiter) under it
    // that start with the prefix.
    let folder = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
    let mut keys: Vec<(String, bool)> = Vec::new();
    let mut pending = vec![folder.to_string()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(bucket.join(&at)) else {
            continue;
        };
        for entry in entries.flatten() {
            let (Ok(name), Ok(kind)) = (entry.file_name().into_string(), entry.file_type()) else {
                continue;
            };
            let key = format!("{at}{name}");
            if kind.is_file() && key.starts_with(prefix) {
                keys.push((key, false));
            } else if kind.is_dir() {
                let sub = format!("{key}/");
                if one_level {
                    if sub.starts_with(prefix) && holds_a_file(&entry.path()) {
                        keys.push((sub, true));
                    }
                } else if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                    pending.push(sub);
                }
            }
        }
    }
    keys.sort();
    let after = input
        .continuation_token
        .as_deref()
        .max(input.start_after.as_deref());
    if let Some(after) = after {
        keys.retain(|(k, _)| k.as_str() > after);
    }
    let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
    let page = usize::try_from(max_keys).unwrap_or(1000);
    let truncated = keys.len() > page;
    keys.truncate(page);
    let next = truncated
        .then(|| keys.last().map(|(k, _)| k.clone()))
        .flatten();
    let mut contents = Vec::new();
    let mut common_prefixes = Vec::new();
    for (key, is_folder) in keys {
        if is_folder {
            common_prefixes.push(CommonPrefix { prefix: Some(key) });
            continue;
        }
        let meta = match std::fs::metadata(bucket.join(&key)) {
            Ok(meta) => meta,
            // Removed since it was listed: not there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Some(Err(s3s::s3_error!(InternalError, "{key}: {e}"))),
        };
        contents.push(Object {
            size: i64::try_from(meta.len()).ok(),
            last_modified: meta.modified().ok().map(Timestamp::from),
            key: Some(key),
            ..Object::default()
        });
    }
    let count = i32::try_from(contents.len() + common_prefixes.len()).unwrap_or(i32::MAX);
    Some(Ok(ListObjectsV2Output {
        name: Some(input.bucket.clone()),
        prefix: Some(prefix.to_string()),
        delimiter: input.delimiter.clone(),
        max_keys: Some(max_keys),
        key_count: Some(count),
        is_truncated: Some(truncated),
        continuation_token: input.continuation_token.clone(),
        next_continuation_token: next,
        start_after: input.start_after.clone(),
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        ..ListObjectsV2Output::default()
    }))
}

/// Whether a file lies anywhere below `folder` (depth first, stopping at the first).
fn holds_a_file(folder: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return false;
    };
    entries.flatten().any(|entry| match entry.file_type() {
        Ok(kind) if kind.is_file() => true,
        Ok(kind) if kind.is_dir() => holds_a_file(&entry.path()),
        _ => false,
    })
}

/// An ETag of S3's shape (32 hex digits) for a listed object, from its key, size and
/// modification time: it changes when the object is written again, as S3's does. Not the MD5 of
/// its bytes, which would read every object listed on every LIST.
fn listed_etag(object: &Object) -> String {
    use s3s::crypto::Checksum;
    let mut md5 = s3s::crypto::Md5::new();
    md5.update(object.key.as_deref().unwrap_or_default().as_bytes());
    md5.update(&object.size.unwrap_or_default().to_le_bytes());
    if let Some(t) = &object.last_modified {
        md5.update(format!("{t:?}").as_bytes());
    }
    hex::encode(md5.finalize())
}

#[async_trait::async_trait]
impl S3 for Counting {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.wait().await;
        let started = std::time::Instant::now();
        let mut out = match from_folder(&self.root, &req.input) {
            Some(level) => S3Response::new(level?),
            None => self.fs.list_objects_v2(req).await?,
        };
        // S3 lists every object with its ETag; s3s-fs lists none.
        for object in out.output.contents.iter_mut().flatten() {
            object.e_tag = Some(ETag::Strong(listed_etag(object)));
        }
        self.counts
            .list_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::SeqCst);
        let o = &out.output;
        let objects = o.contents.as_ref().map_or(0, Vec::len);
        let prefixes = o.common_prefixes.as_ref().map_or(0, Vec::len);
        self.counts.lists.fetch_add(1, Ordering::SeqCst);
        self.counts.keys.fetch_add(objects as u64, Ordering::SeqCst);
        self.counts
            .prefixes
            .fetch_add(prefixes as u64, Ordering::SeqCst);
        Ok(out)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.counts.lists.fetch_add(1, Ordering::SeqCst);
        self.fs.list_objects(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.counts.gets.fetch_add(1, Ordering::SeqCst);
        self.wait().await;
        if self.is_denied(&req.input.key) {
            return Err(s3s::s3_error!(AccessDenied, "denied by the test"));
        }
        let vanishes = self
            .counts
            .vanishing
            .lock()
            .expect("lock")
            .iter()
            .any(|v| req.input.key.contains(v.as_str()));
        if vanishes {
            let path = self.root.join(&req.input.bucket).join(&req.input.key);
            let _ = std::fs::remove_file(path);
        }
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if self.is_denied(&req.input.key) {
            return Err(s3s::s3_error!(AccessDenied, "denied by the test"));
        }
        let create = req.input.if_none_match.is_some();
        let conditional = create || req.input.if_match.is_some();
        let _alone = if conditional {
            Some(self.conditional.lock().await)
        } else {
            None
        };
        let name = format!("{}/{}", req.input.bucket, req.input.key);
        let out = self.fs.put_object(req).await;
        self.count_put(&out);
        if create && out.is_ok() {
            self.counts.created.lock().expect("lock").push(name);
        }
        out
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        if self.is_denied(&req.input.key) {
            return Err(s3s::s3_error!(AccessDenied, "denied by the test"));
        }
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let conditional = req.input.if_none_match.is_some() || req.input.if_match.is_some();
        let _alone = if conditional {
            Some(self.conditional.lock().await)
        } else {
            None
        };
        let out = self.fs.complete_multipart_upload(req).await;
        self.count_put(&out);
        out
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }
}

/// The server, stopped when dropped.
pub struct S3Server {
    pub endpoint: String,
    pub counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// Serves the folders under `root` as buckets.
    pub fn start(root: &Path) -> Self {
        let counts = Arc::new(Counts::default());
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(Counting {
            fs,
            root: root.to_path_buf(),
            counts: Arc::clone(&counts),
            conditional: tokio::sync::Mutex::new(()),
        });
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let http = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                loop {
                    let socket = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((socket, _)) => socket,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => break,
                    };
                    let conn = http
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                        .into_owned();
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        });
        Self {
            endpoint,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The environment a client needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    /// [`S3Server::env`] with `key` set to `value` instead (a wrong secret, another endpoint).
    pub fn env_with(&self, key: &str, value: &str) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        for (k, v) in &mut env {
            if *k == key {
                *v = value.to_string();
            }
        }
        env
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(
        root: &Path,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<String>,
    ) -> ListObjectsV2Output {
        let input = ListObjectsV2Input::builder()
            .bucket("b".to_string())
            .prefix(Some(prefix.to_string()))
            .delimiter(delimiter.map(str::to_string))
            .continuation_token(token)
            .build()
            .expect("input");
        from_folder(root, &input).expect("taken").expect("listed")
    }

    #[test]
    fn folders_are_listed_page_by_page_in_key_order_and_empty_folders_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bucket = dir.path().join("b");
        let mut want = Vec::new();
        for day in ["01", "02", "10"] {
            let folder = bucket.join("AWSLogs/1/CloudTrail/r1").join(day);
            std::fs::create_dir_all(&folder).expect("folder");
            for i in 0..900 {
                std::fs::write(folder.join(format!("f{i:04}.json.gz")), b"x").expect("file");
                want.push(format!("AWSLogs/1/CloudTrail/r1/{day}/f{i:04}.json.gz"));
            }
        }
        std::fs::create_dir_all(bucket.join("AWSLogs/1/CloudTrail/empty/deeper")).expect("empty");
        std::fs::write(bucket.join("AWSLogs/1/CloudTrail/r1x"), b"x").expect("file");
        want.sort();

        let mut got = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = list(dir.path(), "AWSLogs/1/CloudTrail/r1/", None, token);
            pages += 1;
            got.extend(
                page.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
            token = page.next_continuation_token;
            if page.is_truncated != Some(true) {
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(got, want);

        let partial = list(dir.path(), "AWSLogs/1/CloudTrail/r1/1", None, None);
        assert_eq!(
            partial.contents.map_or(0, |c| c.len()),
            900,
            "a prefix inside a folder"
        );

        let level = list(dir.path(), "AWSLogs/1/CloudTrail/", Some("/"), None);
        let prefixes: Vec<String> = level
            .common_prefixes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.prefix)
            .collect();
        assert_eq!(prefixes, vec!["AWSLogs/1/CloudTrail/r1/".to_string()]);
        let keys: Vec<String> = level
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect();
        assert_eq!(keys, vec!["AWSLogs/1/CloudTrail/r1x".to_string()]);
    }
}
