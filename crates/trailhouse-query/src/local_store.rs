//! A local lake's files as the query engine reads them.
//!
//! A Parquet scan asks its store for the ranges of a row group's column chunks, and reads most
//! of a lake that way. `object_store`'s local store reads each range on a blocking thread of its
//! own (a hand-over and a wake-up per request) into a buffer it first fills with zeros, then
//! overwrites. Here the ranges are read where they are asked for, on the thread running the
//! scan, each straight into a buffer of its size (never zeroed: the read fills it). The scan
//! waits for its read either way; a read from the page cache takes microseconds, less than the
//! hand-over did, and from a cold cache the scans measured faster too. Everything else (whole
//! objects, listing, writing) is the local store's.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use trailhouse_lake::Lake;

/// The local file system, ranges read in place.
#[derive(Debug)]
pub struct LocalStore {
    local: LocalFileSystem,
}

impl LocalStore {
    pub fn new() -> Self {
        Self {
            local: LocalFileSystem::new(),
        }
    }

    /// As a store to register for `file://`.
    pub fn shared() -> Arc<dyn ObjectStore> {
        Arc::new(Self::new())
    }
}

impl Default for LocalStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.local)
    }
}

/// Registers on `runtime` the store `lake`'s files are read through: its S3 client for a lake
/// in S3, [`LocalStore`] for a local one.
pub fn register_lake_store(runtime: &RuntimeEnv, lake: &Lake) {
    match lake.object_store() {
        Some((url, store)) => {
            runtime.register_object_store(url, store);
        }
        None => {
            let local = ObjectStoreUrl::local_filesystem();
            runtime.register_object_store(local.as_ref(), LocalStore::shared());
        }
    }
}

/// `ranges` of the file at `path`, each read into a buffer of its own size.
fn read_ranges(path: &std::path::Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
    let failed = |message: String| object_store::Error::Generic {
        store: "LocalStore",
        source: format!("{}: {message}", path.display()).into(),
    };
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.display().to_string(),
            source: e.into(),
        },
        _ => failed(format!("cannot be opened: {e}")),
    })?;
    // Checked before anything is allocated: the ranges come from the file's own metadata,
    // which a damaged file may get wrong by any amount.
    let len = file
        .metadata()
        .map_err(|e| failed(format!("cannot be read: {e}")))?
        .len();
    ranges
        .iter()
        .map(|r| {
            if r.start > r.end || r.end > len {
                return Err(failed(format!(
                    "range {}..{} is not within its {len} bytes",
                    r.start, r.end
                )));
            }
            let wanted = r.end - r.start;
            let size = usize::try_from(wanted)
                .map_err(|_| failed(format!("range {}..{} is too large", r.start, r.end)))?;
            let mut buf = Vec::with_capacity(size);
            file.seek(SeekFrom::Start(r.start))
                .and_then(|_| (&mut file).take(wanted).read_to_end(&mut buf))
                .map_err(|e| failed(format!("range {}..{} cannot be read: {e}", r.start, r.end)))?;
            // The file cut short since.
            if buf.len() != size {
                return Err(failed(format!(
                    "range {}..{} runs past the end of the file ({} bytes read)",
                    r.start,
                    r.end,
                    buf.len()
                )));
            }
            Ok(Bytes::from(buf))
        })
        .collect()
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.local.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.local.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.local.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        read_ranges(&self.local.path_to_filesystem(location)?, ranges)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.local.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.local.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.local.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.local.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.local.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.local.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_file(bytes: &[u8]) -> (tempfile::TempDir, LocalStore, Path) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("part-0.parquet");
        std::fs::write(&file, bytes).expect("written");
        let location = Path::from_filesystem_path(&file).expect("a path");
        (dir, LocalStore::new(), location)
    }

    #[tokio::test]
    async fn ranges_are_the_files_bytes_in_any_order_and_size() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, store, location) = store_with_file(&bytes);
        let ranges = [
            200_000..300_000,
            0..1,
            7..7,
            1_000..150_000,
            299_999..300_000,
        ];
        let got = store.get_ranges(&location, &ranges).await.expect("read");
        assert_eq!(got.len(), ranges.len());
        for (r, b) in ranges.iter().zip(&got) {
            assert_eq!(
                b.as_ref(),
                &bytes[r.start as usize..r.end as usize],
                "{r:?}"
            );
        }
        // The same bytes as the local store reads.
        let local = LocalFileSystem::new()
            .get_ranges(&location, &ranges)
            .await
            .expect("read");
        assert_eq!(got, local);
    }

    #[tokio::test]
    async fn a_range_outside_the_file_or_a_missing_file_is_an_error_naming_the_file() {
        let (dir, store, location) = store_with_file(b"0123456789");
        let err = store
            .get_ranges(&location, &[0..4, 8..12])
            .await
            .expect_err("past the end");
        let message = err.to_string();
        assert!(message.contains("part-0.parquet"), "{message}");
        assert!(
            message.contains("range 8..12 is not within its 10 bytes"),
            "{message}"
        );
        // Nothing is allocated for a range the file cannot hold, however large.
        let err = store
            .get_ranges(&location, &[0..1, 0..u64::MAX])
            .await
            .expect_err("larger than the file");
        assert!(
            err.to_string().contains("is not within its 10 bytes"),
            "{err}"
        );
        #[allow(clippy::reversed_empty_ranges)] // as a damaged file's metadata may give
        let reversed = [5..2, 0..1];
        let err = store
            .get_ranges(&location, &reversed)
            .await
            .expect_err("reversed");
        assert!(err.to_string().contains("range 5..2"), "{err}");

        let gone = Path::from_filesystem_path(dir.path())
            .expect("dir")
            .join("gone.parquet");
        let err = store
            .get_ranges(&gone, &[0..1, 1..2])
            .await
            .expect_err("missing");
        assert!(
            matches!(err, object_store::Error::NotFound { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("gone.parquet"), "{err}");
    }
}
