//! The reconciled account of one ingest run: every file and every record, once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::discover::SourceFile;
use crate::verify::digest::Sha256;
use crate::verify::early::Early;

/// Counts of a run. Files: `files_seen = files_skipped + files_loaded + files_failed`.
/// Records: `records_read = records_written + records_duplicate + records_quarantined`;
/// `records_collision` counts written records whose eventID an earlier, different record of the
/// same partition already carries.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub files_seen: u64,
    pub files_skipped: u64,
    /// Of the skipped: already ingested by an earlier run (same path, size and mtime).
    pub files_skipped_ingested: u64,
    /// Of the skipped: CloudTrail digest files (integrity data, not events).
    pub files_skipped_digest: u64,
    /// Of the skipped: not CloudTrail (READMEs, manifests, other data).
    pub files_skipped_other: u64,
    pub files_loaded: u64,
    pub files_failed: u64,
    pub records_read: u64,
    pub records_written: u64,
    pub records_duplicate: u64,
    pub records_collision: u64,
    pub records_quarantined: u64,
    /// Partitions (day, region) that received rows.
    pub partitions: u64,
    /// Bytes of the files read, as stored.
    pub bytes_read: u64,
    /// Bytes of JSON after decompression.
    pub bytes_json: u64,
    pub seconds: f64,
    /// Where the time went: reading (decompress, parse, normalize; parallel), partitioning and
    /// deduplication, writing Parquet (parallel), and committing.
    pub stage_seconds: StageSeconds,
    /// Day partitions compacted after the batches, and the small files they held.
    pub partitions_compacted: u64,
    pub files_compacted: u64,
    /// Why the compaction after the batches failed (the batches are committed regardless).
    pub compact_error: Option<String>,
    /// Why the checkpoint of the run's commits could not be written (readers then read the
    /// commits themselves; the next run writes one).
    pub checkpoint_error: Option<String>,
    /// Delta table version after the run.
    pub table_version: Option<u64>,
    /// LIST requests made to S3 sources (pages of up to 1,000 keys), and the object keys they
    /// returned.
    pub s3_list_requests: u64,
    pub s3_keys_listed: u64,
    /// Quarantined records by reason (reasons naming a value are grouped by their first words).
    pub quarantine_reasons: BTreeMap<String, u64>,
    pub failures: Vec<Failure>,
    /// With [`crate::pipeline::Options::hash_files`]: each log file read and not in
    /// [`Report::listed`] (from S3), and the SHA-256 of its uncompressed bytes (what CloudTrail's
    /// digests record).
    #[serde(skip)]
    pub file_hashes: Vec<(PathBuf, Sha256)>,
    /// With [`crate::pipeline::Options::hash_files`] over local sources: every file the run
    /// found under them, digests included, so the check after it does not walk them again, with
    /// the hashes of those it read.
    #[serde(skip)]
    pub listed: Option<Listed>,
}

/// A listed file's path and size (what the check after a run reads of it).
pub type PathAndSize = (Box<Path>, u64);

/// The files a run found, in path order, each with the SHA-256 of its uncompressed bytes once
/// read. The hashes sit beside the listing rather than with a copy of each path: a 20M-event
/// trail has 400,000 log files.
#[derive(Debug, Default, Clone)]
pub struct Listed {
    files: Vec<PathAndSize>,
    hashes: Vec<Option<Sha256>>,
    /// The digests among them, judged while the run reads.
    early: Option<Arc<Early>>,
}

impl Listed {
    pub fn new(files: &[SourceFile]) -> Self {
        let mut files: Vec<PathAndSize> = files
            .iter()
            .map(|f| (f.path.as_path().into(), f.size))
            .collect();
        files.par_sort_unstable_by(|a, b| path_bytes(&a.0).cmp(path_bytes(&b.0)));
        files.dedup_by(|a, b| a.0 == b.0);
        let hashes = vec![None; files.len()];
        Self {
            files,
            hashes,
            early: None,
        }
    }

    /// The listing, with its digests being judged by `early`.
    pub fn with_early(self, early: Option<Early>) -> Self {
        Self {
            early: early.map(Arc::new),
            ..self
        }
    }

    /// The digests being judged while the run reads, if they are.
    pub fn early(&self) -> Option<Arc<Early>> {
        self.early.clone()
    }

    /// Keeps `hash` as the hash of `path`; false when `path` was not listed.
    pub fn set_hash(&mut self, path: &Path, hash: Sha256) -> bool {
        let found = self
            .files
            .binary_search_by(|f| path_bytes(&f.0).cmp(path_bytes(path)));
        match found.ok().and_then(|i| self.hashes.get_mut(i)) {
            Some(slot) => {
                *slot = Some(hash);
                true
            }
            None => false,
        }
    }

    /// The files (path and size), and each one's hash when it was read.
    pub fn into_parts(self) -> (Vec<PathAndSize>, Vec<Option<Sha256>>) {
        (self.files, self.hashes)
    }
}

fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// Wall time per pipeline stage, summed over batches.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct StageSeconds {
    /// Open the lake, list the sources and check them against what was ingested before.
    pub discover: f64,
    /// Wait for source files still being read from storage (the read-ahead had not finished).
    pub wait: f64,
    /// Read, decompress, parse and normalize the batch's files.
    pub read: f64,
    /// Deduplicate, sort and write each partition's rows (one parallel pass over partitions).
    pub write: f64,
    /// Commit to the Delta log (quarantine, then cloudtrail).
    pub commit: f64,
    /// Compact the day partitions the run left with many small files.
    pub compact: f64,
}

/// A file that could not be read to its end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// The file's name as text (bytes that are not UTF-8 shown as U+FFFD).
    #[serde(serialize_with = "lossy")]
    pub file: PathBuf,
    pub error: String,
    /// Records recovered before the break (they were loaded).
    pub records_recovered: u64,
}

fn lossy<S: serde::Serializer>(path: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

impl Report {
    /// Whether the counts add up.
    pub fn reconciles(&self) -> bool {
        self.files_seen == self.files_skipped + self.files_loaded + self.files_failed
            && self.files_skipped
                == self.files_skipped_ingested
                    + self.files_skipped_digest
                    + self.files_skipped_other
            && self.records_read
                == self.records_written + self.records_duplicate + self.records_quarantined
    }

    pub(crate) fn add_quarantine_reason(&mut self, reason: &str) {
        let group = match reason.find('`') {
            Some(i) => format!("{}…", reason[..i].trim_end()),
            None => reason.to_string(),
        };
        *self.quarantine_reasons.entry(group).or_default() += 1;
    }

    /// Events per second of wall time.
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records_read as f64 / self.seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(path),
            size: 1,
            mtime_ns: 0,
            etag: None,
        }
    }

    #[test]
    fn a_hash_is_kept_beside_its_listed_file_and_only_there() {
        // Listed in reading order (days first), with a repeat: kept in path order, once.
        let mut listed = Listed::new(&[
            file("/t/AWSLogs/1/CloudTrail/us-east-1/2026/08/02/b.json.gz"),
            file("/t/AWSLogs/1/CloudTrail/eu-west-1/2026/08/01/a.json.gz"),
            file("/t/AWSLogs/1/CloudTrail-Digest/eu-west-1/2026/08/01/d.json.gz"),
            file("/t/AWSLogs/1/CloudTrail/us-east-1/2026/08/02/b.json.gz"),
        ]);
        assert!(listed.set_hash(
            Path::new("/t/AWSLogs/1/CloudTrail/us-east-1/2026/08/02/b.json.gz"),
            [7; 32]
        ));
        assert!(!listed.set_hash(Path::new("/t/elsewhere.json.gz"), [9; 32]));
        let (files, hashes) = listed.into_parts();
        let kept: Vec<(&str, Option<Sha256>)> = files
            .iter()
            .map(|(path, _)| path.to_str().unwrap_or_default())
            .zip(hashes)
            .collect();
        assert_eq!(
            kept,
            [
                (
                    "/t/AWSLogs/1/CloudTrail-Digest/eu-west-1/2026/08/01/d.json.gz",
                    None
                ),
                (
                    "/t/AWSLogs/1/CloudTrail/eu-west-1/2026/08/01/a.json.gz",
                    None
                ),
                (
                    "/t/AWSLogs/1/CloudTrail/us-east-1/2026/08/02/b.json.gz",
                    Some([7; 32])
                ),
            ]
        );
    }
}
