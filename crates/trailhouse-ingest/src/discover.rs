//! Finds the source files under the paths a user names.
//!
//! Directories are walked recursively and in a stable order. Nothing is decided by file name
//! except what CloudTrail's own key layout says: objects under `CloudTrail-Digest/` are integrity
//! digests, not events. Whether a file holds CloudTrail at all is decided later, by its content.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;

use crate::error::IngestError;

/// A file to read, identified for incremental runs by path, size, modification time and (for
/// an S3 object) ETag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// A local path, or an S3 object as `s3://bucket/key` (see [`crate::s3`]).
    #[serde(with = "os_path")]
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<crate::etag::ETag>,
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

    /// The account and region folders of a CloudTrail key
    /// (`…/<account>/CloudTrail/<region>/…`), if any.
    pub fn account_region(&self) -> Option<(String, String)> {
        let segments: Vec<String> = self
            .path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        crate::shard::account_region(&segments).map(|(a, r)| (a.to_string(), r.to_string()))
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

    /// Whether this is where and how CloudTrail names a log file: a `.json.gz` file in a
    /// `…/CloudTrail/<region>/YYYY/MM/DD/` folder. Such a file that is not a log is damaged, not
    /// some other data kept beside the trail.
    pub fn is_log_file(&self) -> bool {
        self.key_date().is_some()
            && !self.is_digest()
            && self
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".json.gz"))
    }

    /// Whether CloudTrail's layout marks this as a digest file.
    pub fn is_digest(&self) -> bool {
        self.path
            .components()
            .any(|c| c.as_os_str() == "CloudTrail-Digest")
    }
}

/// Paths in JSON (the ledger's plans): a string when the path is UTF-8, else its bytes as
/// `{"bytes": [...]}` (a Unix file name is any bytes but `/` and NUL, and must round-trip).
pub mod os_path {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes { bytes: Vec<u8> },
    }

    impl From<&Path> for Repr {
        fn from(p: &Path) -> Self {
            match p.to_str() {
                Some(t) => Repr::Text(t.to_string()),
                None => Repr::Bytes {
                    bytes: p.as_os_str().as_bytes().to_vec(),
                },
            }
        }
    }

    impl From<Repr> for PathBuf {
        fn from(r: Repr) -> Self {
            match r {
                Repr::Text(t) => PathBuf::from(t),
                Repr::Bytes { bytes } => PathBuf::from(OsString::from_vec(bytes)),
            }
        }
    }

    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        Repr::from(path).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Repr::deserialize(d).map(PathBuf::from)
    }

    /// The same for a list of paths.
    pub mod list {
        use super::*;

        pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(paths.iter().map(|p| Repr::from(p.as_path())))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
            Vec::<Repr>::deserialize(d).map(|v| v.into_iter().map(PathBuf::from).collect())
        }
    }
}

/// What a walk found: the files, and the entries below the named inputs that could not be
/// listed or examined (reported as failed files; the run goes on).
#[derive(Debug, Default)]
pub struct Discovered {
    pub files: Vec<SourceFile>,
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files the caller's filter said the lake already had ([`Sift::Had`]): counted, not kept.
    pub left_out: u64,
}

impl Discovered {
    /// Records `path` as unreadable, with why.
    fn unreadable_at(&mut self, path: &Path, e: &std::io::Error) {
        self.unreadable
            .push((path.to_path_buf(), unreadable(path, e)));
    }
}

/// What a walk does with a file it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sift {
    /// Listed.
    Keep,
    /// Left out and counted in [`Discovered::left_out`]: the lake already has it.
    Had,
    /// Left out, not counted: not this run's to see (another shard's, older than `--since`).
    Outside,
}

/// The caller's filter on the files a walk finds.
pub type Keep<'a> = &'a (dyn Fn(&SourceFile) -> Sift + Sync);

/// Every regular file under `inputs` (which may be files or directories) that `keep` keeps, with
/// anything under `exclude` (the lake itself) left out. An input that does not exist is an
/// error; below it, an entry that cannot be read (a dangling or looping link, a folder without
/// permission) is listed in [`Discovered::unreadable`]. Directory links are followed, except
/// back into a folder being walked (a cycle: its files are found through the folder itself).
/// An input inside another is walked once, as part of the other. `keep` sees each file as it
/// is found, so what it leaves out (a lake's already-ingested files: a rerun's whole listing)
/// is never held.
pub fn discover(inputs: &[PathBuf], exclude: &Path, keep: Keep) -> Result<Discovered, IngestError> {
    walk_inputs(inputs, fs::canonicalize(exclude).ok(), keep)
}

/// Every regular file under `inputs`, as [`discover`] finds them, with nothing left out.
pub fn discover_all(inputs: &[PathBuf]) -> Result<Discovered, IngestError> {
    walk_inputs(inputs, None, &|_| Sift::Keep)
}

fn walk_inputs(
    inputs: &[PathBuf],
    exclude: Option<PathBuf>,
    keep: Keep,
) -> Result<Discovered, IngestError> {
    let abs = inputs
        .iter()
        .map(|input| {
            fs::canonicalize(input).map_err(|source| IngestError::Source {
                path: input.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let walk_of = Walk {
        exclude: exclude.as_deref(),
        keep,
    };
    let mut found = Discovered::default();
    for (i, input) in abs.iter().enumerate() {
        // Found through another input already (the same, given earlier, or a folder above it).
        let covered = abs
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && walked_within(other, input) && (other != input || j < i));
        if !covered {
            walk_of.walk(input, &[], &mut found);
        }
    }
    in_reading_order(&mut found.files);
    found.unreadable.sort();
    found.unreadable.dedup();
    Ok(found)
}

/// Sorts `files` the way a run reads them, without repeats. Delivery day first: a batch then
/// holds a few days of every account and region, so it writes a few large partition files
/// rather than one small file for each day of a stream. Files outside the layout come last, in
/// path order.
pub fn in_reading_order(files: &mut Vec<SourceFile>) {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    // Stable: paths stay in order within a day. The key is a number, not a copy of the path
    // (834,000 of them for an organization trail).
    files.par_sort_by_cached_key(|f| {
        let date = f.key_date().and_then(|d| d.parse::<u32>().ok());
        (date.is_none(), date)
    });
}

/// Why `path` cannot be examined, in words a user can act on.
fn unreadable(path: &Path, e: &std::io::Error) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(path)
                .map(|t| format!(" to `{}`", t.display()))
                .unwrap_or_default();
            format!("cannot follow the symbolic link{target}: {e}")
        }
        _ => format!("cannot be read: {e}"),
    }
}

/// Whether a walk of `outer` reaches `inner` by its own path: `inner` is `outer` or below it,
/// through no hidden folder (a walk passes those by).
fn walked_within(outer: &Path, inner: &Path) -> bool {
    inner.strip_prefix(outer).is_ok_and(|rest| {
        rest.components()
            .all(|c| !matches!(c, Component::Normal(n) if n.to_string_lossy().starts_with('.')))
    })
}

/// What a walk leaves out: the lake, and the files the caller's filter does not keep.
struct Walk<'a> {
    exclude: Option<&'a Path>,
    keep: Keep<'a>,
}

impl Walk<'_> {
    /// Adds the files under `path` (followed if a link) to `found`. `ancestors`: the (device,
    /// inode) of the folders being walked above `path`. A directory's entries are walked in
    /// parallel (a trail is ~100,000 small files: one `stat` each, latency-bound on cold
    /// metadata).
    fn walk(&self, path: &Path, ancestors: &[(u64, u64)], found: &mut Discovered) {
        if self.excluded(path) {
            return;
        }
        match fs::metadata(path) {
            Ok(meta) => self.visit(path, &meta, ancestors, found),
            Err(e) => found.unreadable_at(path, &e),
        }
    }

    /// Whether `path` is the lake or below it.
    fn excluded(&self, path: &Path) -> bool {
        self.exclude.is_some_and(|e| path.starts_with(e))
    }

    /// Adds `path`, whose metadata is `meta`, or the files under it to `found`.
    fn visit(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        ancestors: &[(u64, u64)],
        found: &mut Discovered,
    ) {
        if meta.is_dir() {
            let id = (meta.dev(), meta.ino());
            if ancestors.contains(&id) {
                return;
            }
            let listed = fs::read_dir(path).and_then(|entries| {
                entries
                    .map(|e| e.map(|e| (e.path(), e)))
                    .collect::<Result<Vec<_>, _>>()
            });
            let mut entries = match listed {
                Ok(entries) => entries,
                Err(e) => return found.unreadable_at(path, &e),
            };
            entries.retain(|(entry, _)| {
                !entry.components().next_back().is_some_and(
                    |c| matches!(c, Component::Normal(n) if n.to_string_lossy().starts_with('.')),
                )
            });
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            // Each entry's metadata is taken relative to this folder (one name looked up, not
            // every folder of its path again: the walk of a 194,000-file trail spent a thirtieth
            // of its ingest's CPU in `stat`), all of them before any is walked: the entries hold
            // the folder open, and a walk of the folders below holding theirs would keep a
            // descriptor open for every folder in progress on every thread.
            let stated: Vec<(PathBuf, Option<std::io::Result<fs::Metadata>>)> = entries
                .into_par_iter()
                .filter(|(path, _)| !self.excluded(path))
                .map(|(path, entry)| {
                    let meta = match entry.file_type() {
                        Ok(t) if !t.is_symlink() => Some(entry.metadata()),
                        _ => None,
                    };
                    (path, meta)
                })
                .collect();
            let mut below = ancestors.to_vec();
            below.push(id);
            let parts: Vec<Discovered> = stated
                .par_iter()
                .map(|(path, meta)| {
                    let mut part = Discovered::default();
                    match meta {
                        Some(Ok(meta)) => self.visit(path, meta, &below, &mut part),
                        Some(Err(e)) => part.unreadable_at(path, e),
                        // A link (or an entry of unknown type): followed.
                        None => self.walk(path, &below, &mut part),
                    }
                    part
                })
                .collect();
            // Room for them all at once: grown by doubling, the vector of a million files would
            // be copied and held at up to twice its size.
            found
                .files
                .reserve_exact(parts.iter().map(|p| p.files.len()).sum());
            for part in parts {
                found.files.extend(part.files);
                found.unreadable.extend(part.unreadable);
                found.left_out += part.left_out;
            }
        } else if meta.is_file() {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            let file = SourceFile {
                path: path.to_path_buf(),
                size: meta.len(),
                mtime_ns,
                etag: None,
            };
            match (self.keep)(&file) {
                Sift::Keep => found.files.push(file),
                Sift::Had => found.left_out += 1,
                Sift::Outside => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(p),
            size: 0,
            mtime_ns: 0,
            etag: None,
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
    fn reading_order_is_delivery_day_then_path_and_files_outside_the_layout_last() {
        let day = |account: &str, region: &str, d: &str, name: &str| {
            format!("/t/AWSLogs/{account}/CloudTrail/{region}/2026/08/{d}/{name}")
        };
        let paths = [
            "/t/notes.txt".to_string(),
            day("222", "us-east-1", "02", "a.json.gz"),
            day("111", "us-east-1", "02", "b.json.gz"),
            day("222", "eu-west-1", "01", "c.json.gz"),
            "/t/AWSLogs/111/CloudTrail/us-east-1/2026/8/01/odd.json.gz".to_string(),
            day("111", "us-east-1", "01", "d.json.gz"),
            day("111", "us-east-1", "02", "b.json.gz"),
            "/a/first.json".to_string(),
        ];
        let mut files: Vec<SourceFile> = paths.iter().map(|p| file(p)).collect();
        in_reading_order(&mut files);
        let got: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            got,
            [
                day("111", "us-east-1", "01", "d.json.gz"),
                day("222", "eu-west-1", "01", "c.json.gz"),
                day("111", "us-east-1", "02", "b.json.gz"),
                day("222", "us-east-1", "02", "a.json.gz"),
                "/a/first.json".to_string(),
                "/t/AWSLogs/111/CloudTrail/us-east-1/2026/8/01/odd.json.gz".to_string(),
                "/t/notes.txt".to_string(),
            ]
        );
    }

    #[test]
    fn files_found_in_folders_and_through_links_carry_their_own_size_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = fs::canonicalize(dir.path()).expect("abs");
        fs::create_dir_all(root.join("trail/day")).expect("mkdir");
        fs::create_dir_all(root.join("elsewhere")).expect("mkdir");
        fs::write(root.join("trail/day/a.json"), "{}").expect("write");
        fs::write(root.join("elsewhere/b.json"), "{\"Records\": []}").expect("write");
        fs::write(root.join("elsewhere/c.json"), "[]").expect("write");
        let link = |to: &str, at: &str| std::os::unix::fs::symlink(root.join(to), root.join(at));
        link("elsewhere/b.json", "trail/day/b.json").expect("link to a file");
        link("elsewhere", "trail/linked").expect("link to a folder");
        link("elsewhere/gone.json", "trail/day/gone.json").expect("dangling link");

        let found = discover_all(&[root.join("trail")]).expect("discover");
        let walked: Vec<(PathBuf, u64, i64)> = found
            .files
            .iter()
            .map(|f| (f.path.clone(), f.size, f.mtime_ns))
            .collect();
        // What `stat` says of each path, links followed.
        let expected: Vec<(PathBuf, u64, i64)> =
            ["day/a.json", "day/b.json", "linked/b.json", "linked/c.json"]
                .iter()
                .map(|p| {
                    let path = root.join("trail").join(p);
                    let meta = fs::metadata(&path).expect("stat");
                    let mtime = meta.modified().expect("mtime");
                    let ns = mtime.duration_since(UNIX_EPOCH).expect("epoch").as_nanos() as i64;
                    (path, meta.len(), ns)
                })
                .collect();
        assert_eq!(walked, expected);
        assert_eq!(
            expected[1].1, 15,
            "the link's target's size, not the link's"
        );
        let unreadable: Vec<&PathBuf> = found.unreadable.iter().map(|(p, _)| p).collect();
        assert_eq!(unreadable, [&root.join("trail/day/gone.json")]);
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
        let found =
            discover(&[root.to_path_buf()], &root.join("lake"), &|_| Sift::Keep).expect("discover");
        assert!(found.unreadable.is_empty(), "{:?}", found.unreadable);
        let names: Vec<String> = found
            .files
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

    #[test]
    fn links_that_loop_or_dangle_are_reported_and_the_walk_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = fs::canonicalize(dir.path()).expect("abs");
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        fs::write(root.join("a/b/1.json"), "{}").expect("write");
        fs::write(root.join("z.json"), "{}").expect("write");
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up")).expect("link");
        std::os::unix::fs::symlink(root.join("gone"), root.join("a/dangling")).expect("link");
        std::os::unix::fs::symlink(root.join("a/self"), root.join("a/self")).expect("link");
        let found = discover(std::slice::from_ref(&root), &root.join("lake"), &|_| {
            Sift::Keep
        })
        .expect("discover");
        let names: Vec<&Path> = found
            .files
            .iter()
            .map(|f| f.path.strip_prefix(&root).expect("prefix"))
            .collect();
        assert_eq!(names, [Path::new("a/b/1.json"), Path::new("z.json")]);
        let bad: Vec<&Path> = found
            .unreadable
            .iter()
            .map(|(p, _)| p.strip_prefix(&root).expect("prefix"))
            .collect();
        assert_eq!(bad, [Path::new("a/dangling"), Path::new("a/self")]);
        assert!(
            found.unreadable[0].1.contains("symbolic link to"),
            "{:?}",
            found.unreadable
        );
    }

    #[test]
    fn an_input_inside_another_is_walked_once_and_what_keep_leaves_out_is_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        for f in ["x.json.gz", "b/y.json.gz", ".hidden/z.json.gz"] {
            let path = a.join(f);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, b"x").expect("write");
        }
        let lake = dir.path().join("lake");
        let names = |inputs: &[PathBuf], keep: Keep| {
            let found = discover(inputs, &lake, keep).expect("discover");
            let mut names: Vec<String> = found
                .files
                .iter()
                .map(|f| {
                    f.path
                        .strip_prefix(&a)
                        .expect("under a")
                        .display()
                        .to_string()
                })
                .collect();
            names.sort();
            (names, found.left_out)
        };
        let all = |_: &SourceFile| Sift::Keep;
        let both = vec!["b/y.json.gz".to_string(), "x.json.gz".to_string()];
        assert_eq!(names(&[a.clone(), a.join("b")], &all), (both.clone(), 0));
        assert_eq!(names(&[a.join("b"), a.clone()], &all), (both.clone(), 0));
        assert_eq!(names(&[a.clone(), a.clone()], &all), (both.clone(), 0));
        assert_eq!(
            names(&[a.clone(), a.join("b/y.json.gz")], &all),
            (both.clone(), 0)
        );
        // A hidden folder is passed by unless named.
        let (named, _) = names(&[a.clone(), a.join(".hidden")], &all);
        assert_eq!(named, [".hidden/z.json.gz", "b/y.json.gz", "x.json.gz"]);
        let had_x = |f: &SourceFile| {
            if f.path.ends_with("x.json.gz") {
                Sift::Had
            } else {
                Sift::Keep
            }
        };
        assert_eq!(
            names(&[a.clone(), a.join("b")], &had_x),
            (vec!["b/y.json.gz".to_string()], 1)
        );
        // Outside the run: left out, not counted.
        let outside_x = |f: &SourceFile| {
            if f.path.ends_with("x.json.gz") {
                Sift::Outside
            } else {
                Sift::Keep
            }
        };
        assert_eq!(
            names(&[a.clone(), a.join("b")], &outside_x),
            (vec!["b/y.json.gz".to_string()], 0)
        );
    }
}
