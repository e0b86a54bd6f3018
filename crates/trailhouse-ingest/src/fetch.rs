//! Reads source files from storage ahead of the workers.
//!
//! CloudTrail writes many small files (a 2-million-event trail is ~100,000 files of a few KiB).
//! On storage that is not in the page cache — a freshly synced directory evicted since, a network
//! disk, an EBS volume — each read waits on the device, and two workers reading one file at a time
//! leave the device idle most of the time: measured here, 20,000 uncached files took 16 s read one
//! after another and 0.6 s read 16 at a time. So a pool of I/O threads, separate from the CPU
//! workers, reads the next batch's files (many reads in flight) while the current batch is
//! decompressed, parsed and written. What is held is the stored (compressed) bytes of at most two
//! batches. Objects in S3 are fetched by [`Buckets`] with many GETs in flight on the async
//! runtime, waited on by one thread of their own, beside the local reads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

use rayon::prelude::*;

use crate::discover::SourceFile;
use crate::error::{FileError, IngestError};
use crate::s3::{Buckets, is_s3};

/// A file's bytes as stored, or why they could not be read.
pub type Stored = Result<Vec<u8>, FileError>;

/// Reads one batch of files in the background while the caller works on the previous one.
pub struct ReadAhead {
    pool: Arc<rayon::ThreadPool>,
    limit: u64,
    /// The clients of the S3 sources, if any, and the one thread their fetches run on.
    remote: Option<Remote>,
    next: Option<Started>,
}

/// S3 sources' clients, and the thread that waits on their GETs.
///
/// The objects' bytes are allocated on the thread that waits (it gathers each body) and freed
/// by the workers. The allocator takes back memory freed by another thread when its owner next
/// allocates: waiting on whichever read thread was free left each batch's bodies with a thread
/// that might not fetch again for many batches. A 20M-event trail from S3 peaked at
/// 1,003 MiB that way, and at 734-808 MiB with every fetch on one thread (775 MiB from local
/// disk).
#[derive(Clone)]
struct Remote {
    buckets: Arc<Buckets>,
    thread: Arc<rayon::ThreadPool>,
}

/// Files being read, and where their bytes will arrive.
struct Started {
    files: Arc<[SourceFile]>,
    bytes: Receiver<Vec<Stored>>,
}

impl ReadAhead {
    /// `threads`: reads in flight at once; `limit`: files larger than this on disk are refused
    /// without being read (the decompressed-size cap applies to them a fortiori); `remote`:
    /// the clients of the run's S3 sources.
    pub fn new(
        threads: usize,
        limit: u64,
        remote: Option<Arc<Buckets>>,
    ) -> Result<Self, IngestError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("trailhouse-read-{i}"))
            .build()?;
        let remote = match remote {
            Some(buckets) => Some(Remote {
                buckets,
                thread: Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(|_| "trailhouse-fetch".to_string())
                        .build()?,
                ),
            }),
            None => None,
        };
        Ok(Self {
            pool: Arc::new(pool),
            limit,
            remote,
            next: None,
        })
    }

    /// Runs `work` on the I/O threads (listing the sources: one `stat` per file, latency-bound
    /// on cold metadata as reads are).
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    /// Starts reading `files`; [`ReadAhead::take`] returns their bytes, in order.
    pub fn start(&mut self, files: Arc<[SourceFile]>) {
        let (tx, rx) = channel();
        let pool = self.pool.clone();
        let limit = self.limit;
        let remote = self.remote.clone();
        self.next = Some(Started {
            files: Arc::clone(&files),
            bytes: rx,
        });
        self.pool.spawn(move || {
            let stored = pool.install(|| read_all(&files, limit, remote.as_ref()));
            // The receiver is gone only when the run stopped early; nothing to deliver then.
            let _ = tx.send(stored);
        });
    }

    /// The bytes of `files`, in order: from the background read when they are the files last
    /// passed to [`ReadAhead::start`], else read now.
    pub fn take(&mut self, files: &Arc<[SourceFile]>) -> Vec<Stored> {
        let started = self
            .next
            .take()
            .filter(|s| Arc::ptr_eq(&s.files, files))
            .and_then(|s| s.bytes.recv().ok());
        match started {
            Some(stored) => stored,
            None => self
                .pool
                .install(|| read_all(files, self.limit, self.remote.as_ref())),
        }
    }
}

/// The stored bytes of `files`, in order: local files read by the pool's threads, S3 objects
/// fetched by `remote` meanwhile.
fn read_all(files: &[SourceFile], limit: u64, remote: Option<&Remote>) -> Vec<Stored> {
    let objects: Vec<&SourceFile> = files.iter().filter(|f| is_s3(&f.path)).collect();
    let (local, fetched) = rayon::join(
        || {
            files
                .par_iter()
                .with_max_len(16)
                .map(|f| (!is_s3(&f.path)).then(|| read(f, limit)))
                .collect::<Vec<Option<Stored>>>()
        },
        || match remote {
            _ if objects.is_empty() => Vec::new(),
            Some(remote) => remote
                .thread
                .install(|| remote.buckets.get_all(&objects, limit)),
            None => objects
                .iter()
                .map(|_| {
                    Err(FileError::Read(std::io::Error::other(
                        "no S3 client was set up for this run",
                    )))
                })
                .collect(),
        },
    );
    let mut fetched = fetched.into_iter();
    local
        .into_iter()
        .map(|read| {
            read.or_else(|| fetched.next()).unwrap_or_else(|| {
                Err(FileError::Read(std::io::Error::other(
                    "an object's fetch gave no result",
                )))
            })
        })
        .collect()
}

/// A local file's bytes, read into a buffer of its listed size: no `stat` of it again (one
/// system call of five per file, a million of them over an organization trail), and no more
/// than `limit` bytes read if it grew since it was listed.
fn read(file: &SourceFile, limit: u64) -> Stored {
    use std::io::Read;
    if file.size > limit {
        return Err(FileError::TooLarge { limit });
    }
    let opened = std::fs::File::open(&file.path).map_err(FileError::Read)?;
    // One byte past the listed size: the read that finds the end needs room.
    let room = usize::try_from(file.size.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(room);
    opened
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(FileError::Read)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: std::path::PathBuf) -> SourceFile {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        SourceFile {
            path,
            size,
            mtime_ns: 0,
            etag: None,
        }
    }

    #[test]
    fn delivers_each_batch_in_order_with_per_file_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = Vec::new();
        for i in 0..50 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, format!("file {i}")).expect("write");
            files.push(source(p));
        }
        files.push(source(dir.path().join("missing")));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b' '; 100]).expect("write");
        files.push(source(big));

        let mut ahead = ReadAhead::new(4, 99, None).expect("pool");
        let (a, b): (Arc<[SourceFile]>, Arc<[SourceFile]>) =
            (files[..25].into(), files[25..].into());
        ahead.start(Arc::clone(&a));
        let first = ahead.take(&a);
        ahead.start(Arc::clone(&b));
        let second = ahead.take(&b);
        let all: Vec<Stored> = first.into_iter().chain(second).collect();
        assert_eq!(all.len(), 52);
        for (i, s) in all.iter().take(50).enumerate() {
            assert_eq!(s.as_deref().expect("read"), format!("file {i}").as_bytes());
        }
        assert!(matches!(all[50], Err(FileError::Read(_))));
        assert!(matches!(all[51], Err(FileError::TooLarge { limit: 99 })));

        // Other files than those started (or none started): take reads them on the spot.
        ahead.start(Arc::clone(&a));
        let c: Arc<[SourceFile]> = files[..3].into();
        assert_eq!(ahead.take(&c)[2].as_deref().expect("read"), b"file 2");
        assert_eq!(ahead.take(&c).len(), 3);
    }

    #[test]
    fn a_file_is_read_whole_whatever_its_listed_size_and_no_further_than_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"short").expect("write");
        let listed = source(path.clone());
        assert_eq!(read(&listed, 99).expect("read"), b"short");
        // Grown since it was listed: all of it, up to the limit.
        std::fs::write(&path, vec![b'x'; 60]).expect("write");
        assert_eq!(read(&listed, 99).expect("read").len(), 60);
        assert_eq!(read(&listed, 60).expect("read").len(), 60);
        assert!(matches!(
            read(&listed, 59),
            Err(FileError::TooLarge { limit: 59 })
        ));
        // Shrunk: what is there.
        std::fs::write(&path, b"").expect("write");
        assert_eq!(read(&listed, 99).expect("read"), b"");
    }
}
