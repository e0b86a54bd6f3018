//! Finds the source files under the paths a user names.
//!
//! Directories are walked recursively and in a stable order. Nothing is decided by file name
//! except what CloudTrail's own key layout says: objects under `CloudTrail-Digest/` are integrity
//! digests, not events. Whether a file holds CloudTrail at all is decided later, by its content.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;

use crate::error::IngestError;

/// A file to read, identified for incremental runs by path, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

impl SourceFile {
    /// The region segment of a CloudTrail key (`…/CloudTrail/<region>/YYYY/…`), if any.
    pub fn key_region(&self) -> Option<String> {
        let mut parts = self
            .path
            .components()
            .map(|c| c.as_os_str().to_string_lossy());
        while let Some(part) = parts.next() {
            if part == "CloudTrail" || part.starts_with("CloudTrail-") {
                return parts.next().map(|r| r.into_owned());
            }
        }
        None
    }

    /// The delivery date folders of a CloudTrail key (`…/<region>/YYYY/MM/DD/…`), as `YYYYMMDD`.
    pub fn key_date(&self) -> Option<String> {
        let parts: Vec<String> = self
            .path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let at = parts
            .iter()
            .position(|p| p == "CloudTrail" || p.starts_with("CloudTrail-"))?;
        let date = parts.get(at + 2..at + 5)?;
        let digits = |s: &String, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        (digits(&date[0], 4) && digits(&date[1], 2) && digits(&date[2], 2)).then(|| date.concat())
    }

    /// Whether CloudTrail's layout marks this as a digest file.
    pub fn is_digest(&self) -> bool {
        self.path
            .components()
            .any(|c| c.as_os_str() == "CloudTrail-Digest")
    }
}

/// Every regular file under `inputs` (which may be files or directories), sorted by path, with
/// anything under `exclude` (the lake itself) left out.
pub fn discover(inputs: &[PathBuf], exclude: &Path) -> Result<Vec<SourceFile>, IngestError> {
    let exclude = fs::canonicalize(exclude).ok();
    let mut out = Vec::new();
    for input in inputs {
        let abs = fs::canonicalize(input).map_err(|source| IngestError::Source {
            path: input.clone(),
            source,
        })?;
        walk(&abs, exclude.as_deref(), &mut out)?;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    // Delivery day first: a batch then holds a few days of every account and region, so it
    // writes a few large partition files rather than one small file for each day of a stream.
    // Files outside the layout come last, in path order.
    out.par_sort_by_cached_key(|f| {
        let date = f.key_date();
        (date.is_none(), date, f.path.clone())
    });
    Ok(out)
}

/// Appends the files under `path` to `out`, in path order. A directory's entries are walked in
/// parallel (a trail is ~100,000 small files: one `stat` each, latency-bound on cold metadata).
fn walk(path: &Path, exclude: Option<&Path>, out: &mut Vec<SourceFile>) -> Result<(), IngestError> {
    if exclude.is_some_and(|e| path.starts_with(e)) {
        return Ok(());
    }
    let err = |source| IngestError::Source {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(err)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        entries.retain(|entry| {
            !entry.components().next_back().is_some_and(
                |c| matches!(c, Component::Normal(n) if n.to_string_lossy().starts_with('.')),
            )
        });
        entries.sort();
        let found: Vec<Vec<SourceFile>> = entries
            .par_iter()
            .map(|entry| {
                let mut found = Vec::new();
                walk(entry, exclude, &mut found).map(|()| found)
            })
            .collect::<Result<_, _>>()?;
        out.extend(found.into_iter().flatten());
    } else if meta.is_file() {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        out.push(SourceFile {
            path: path.to_path_buf(),
            size: meta.len(),
            mtime_ns,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(p),
            size: 0,
            mtime_ns: 0,
        }
    }

    #[test]
    fn key_region_and_digest() {
        let f = file("/b/AWSLogs/o-abc/111122223333/CloudTrail/eu-west-1/2024/01/02/x.json.gz");
        assert_eq!(f.key_region().as_deref(), Some("eu-west-1"));
        assert!(!f.is_digest());
        let d = file("/b/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/01/02/x.json.gz");
        assert!(d.is_digest());
        assert_eq!(file("/tmp/x.json").key_region(), None);
        assert_eq!(f.key_date().as_deref(), Some("20240102"));
        assert_eq!(file("/x/CloudTrail/eu-west-1/2024/1/02/y").key_date(), None);
    }

    #[test]
    fn walks_sorted_and_excludes_the_lake() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("b/c")).expect("mkdir");
        fs::create_dir_all(root.join("lake")).expect("mkdir");
        fs::create_dir_all(root.join(".hidden")).expect("mkdir");
        for f in [
            "b/c/2.json",
            "a.json",
            "b/1.json",
            "lake/x.parquet",
            ".hidden/y",
        ] {
            fs::write(root.join(f), "{}").expect("write");
        }
        let found = discover(&[root.to_path_buf()], &root.join("lake")).expect("discover");
        let names: Vec<String> = found
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(fs::canonicalize(root).expect("abs"))
                    .expect("prefix")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["a.json", "b/1.json", "b/c/2.json"]);
    }
}
