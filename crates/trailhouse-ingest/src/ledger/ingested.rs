//! The ledger's ingested files, held by folder.
//!
//! A trail's paths share their folders (`…/<account>/CloudTrail/<region>/YYYY/MM/DD`): a few to
//! hundreds of files each. Each folder is held once and each file by its name, so a lake that
//! has taken in an organization trail's 834,000 files holds their names, not 834,000 full paths
//! (124 MB instead of 201 MB as a map of paths, measured). A path is cut after its last `/`,
//! byte for byte, so every path comes back exactly as it went in (an S3 key with `//` or `.` in
//! it included).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::discover::SourceFile;
use crate::etag::ETag;

/// What identifies a version of a file: size, modification time and (S3) ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: Option<ETag>,
}

/// Ingested files by folder; a folder's files sorted by name, in a vector of their exact size
/// (a folder of a trail holds a few to a few hundred files: a map for each would cost more than
/// the names).
#[derive(Debug, Default)]
pub struct Ingested {
    folders: HashMap<Box<OsStr>, Vec<(Box<OsStr>, Stamp)>>,
}

/// `path` as (folder, name): the bytes up to and including its last `/`, and those after it
/// (a path without `/` has the empty folder). Their concatenation is `path`, byte for byte.
fn key(path: &Path) -> (&OsStr, &OsStr) {
    let bytes = path.as_os_str().as_bytes();
    let cut = bytes.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    (
        OsStr::from_bytes(&bytes[..cut]),
        OsStr::from_bytes(&bytes[cut..]),
    )
}

/// The path whose [`key`] is (folder, name).
fn path_of(folder: &OsStr, name: &OsStr) -> PathBuf {
    let mut bytes = Vec::with_capacity(folder.len() + name.len());
    bytes.extend_from_slice(folder.as_bytes());
    bytes.extend_from_slice(name.as_bytes());
    PathBuf::from(OsString::from_vec(bytes))
}

impl Ingested {
    /// Adds files; of a path given again, the stamp given last stands.
    pub fn extend<'p>(&mut self, files: impl IntoIterator<Item = (&'p Path, Stamp)>) {
        let mut touched: HashSet<Box<OsStr>> = HashSet::new();
        for (path, stamp) in files {
            let folder = self.push(path, stamp);
            if !touched.contains(folder) {
                touched.insert(folder.into());
            }
        }
        for folder in touched {
            if let Some(names) = self.folders.get_mut(&folder) {
                settle(names);
            }
        }
    }

    /// Appends a file to its folder, unsorted (see [`settle`]); returns the folder.
    fn push<'p>(&mut self, path: &'p Path, stamp: Stamp) -> &'p OsStr {
        let (folder, name) = key(path);
        let names = match self.folders.get_mut(folder) {
            Some(names) => names,
            None => self.folders.entry(folder.into()).or_default(),
        };
        names.push((name.into(), stamp));
        folder
    }

    pub fn get(&self, path: &Path) -> Option<&Stamp> {
        let (folder, name) = key(path);
        let names = self.folders.get(folder)?;
        let at = names.binary_search_by(|(n, _)| (**n).cmp(name)).ok()?;
        Some(&names[at].1)
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.get(path).is_some()
    }

    /// Keeps the files whose path `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&Path) -> bool) {
        self.folders.retain(|folder, names| {
            names.retain(|(name, _)| keep(&path_of(folder, name)));
            names.shrink_to_fit();
            !names.is_empty()
        });
    }

    /// Every file, as (path, stamp), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (PathBuf, &Stamp)> {
        self.folders.iter().flat_map(|(folder, names)| {
            names
                .iter()
                .map(move |(name, stamp)| (path_of(folder, name), stamp))
        })
    }
}

/// Sorts a folder's files by name, keeping of a name added more than once the stamp added last,
/// and gives back the room the vector has beyond them.
fn settle(names: &mut Vec<(Box<OsStr>, Stamp)>) {
    // Stable: a name's entries stay in the order they were added.
    names.sort_by(|a, b| a.0.cmp(&b.0));
    names.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(&mut later.1, &mut kept.1);
        }
        same
    });
    names.shrink_to_fit();
}

/// Read from a list of [`SourceFile`]s (a checkpoint's), each put in its folder as it is read:
/// the list is never held whole.
impl<'de> serde::Deserialize<'de> for Ingested {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Files;
        impl<'de> serde::de::Visitor<'de> for Files {
            type Value = Ingested;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of files")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ingested, A::Error> {
                let mut ingested = Ingested::default();
                while let Some(f) = seq.next_element::<SourceFile>()? {
                    let stamp = Stamp {
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                        etag: f.etag,
                    };
                    ingested.push(&f.path, stamp);
                }
                ingested.folders.values_mut().for_each(settle);
                Ok(ingested)
            }
        }
        d.deserialize_seq(Files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> Stamp {
        Stamp {
            size,
            mtime_ns: 7,
            etag: None,
        }
    }

    #[test]
    fn every_path_comes_back_exactly() {
        let paths = [
            "/data/AWSLogs/111122223333/CloudTrail/us-east-1/2026/08/01/a.json.gz",
            "s3://bucket/AWSLogs/o-abc/111122223333/CloudTrail/eu-west-1/2026/08/01/b.json.gz",
            "s3://bucket//odd/./key",
            "s3://bucket/trailing/",
            "/top-level",
            "bare-name",
            "relative/name",
            "//top-level",
        ];
        let mut ingested = Ingested::default();
        ingested.extend(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| (Path::new(*p), stamp(i as u64))),
        );
        assert_eq!(ingested.iter().count(), paths.len());
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(ingested.get(Path::new(p)), Some(&stamp(i as u64)), "{p}");
        }
        let mut back: Vec<PathBuf> = ingested.iter().map(|(p, _)| p).collect();
        back.sort();
        let mut want: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        want.sort();
        assert_eq!(back, want);
        assert!(!ingested.contains(Path::new("/data/AWSLogs/111122223333/CloudTrail")));
        assert!(!ingested.contains(Path::new("s3://bucket/odd/key")));
        assert!(!ingested.contains(Path::new("/bare-name")));
    }

    #[test]
    fn read_from_a_list_of_source_files() {
        let text = r#"[{"path":"/a/x","size":1,"mtime_ns":2},
                       {"path":"s3://b/k/y","size":3,"mtime_ns":4,"etag":"e"},
                       {"path":{"bytes":[47,122,255]},"size":5,"mtime_ns":6}]"#;
        let ingested: Ingested = serde_json::from_str(text).expect("files");
        assert_eq!(ingested.iter().count(), 3);
        assert_eq!(
            ingested.get(Path::new("s3://b/k/y")),
            Some(&Stamp {
                size: 3,
                mtime_ns: 4,
                etag: Some(ETag::new("e"))
            })
        );
        let odd = PathBuf::from(OsString::from_vec(vec![b'/', b'z', 255]));
        assert_eq!(ingested.get(&odd).map(|s| s.size), Some(5));
    }

    #[test]
    fn a_path_again_replaces_its_stamp_and_retain_forgets_folders() {
        let mut ingested = Ingested::default();
        ingested.extend([
            (Path::new("/a/y"), stamp(3)),
            (Path::new("/a/x"), stamp(1)),
            (Path::new("/a/x"), stamp(2)),
            (Path::new("/b/z"), stamp(4)),
        ]);
        ingested.extend([
            (Path::new("/a/w"), stamp(5)),
            (Path::new("/a/x"), stamp(6)),
            (Path::new("/a/x"), stamp(7)),
        ]);
        assert_eq!(ingested.iter().count(), 4);
        assert_eq!(ingested.get(Path::new("/a/x")), Some(&stamp(7)));
        assert_eq!(ingested.get(Path::new("/a/w")), Some(&stamp(5)));
        assert_eq!(ingested.get(Path::new("/a/y")), Some(&stamp(3)));
        ingested.retain(|p| !p.starts_with("/a"));
        assert_eq!(ingested.iter().count(), 1);
        assert!(ingested.contains(Path::new("/b/z")));
        assert!(!ingested.contains(Path::new("/a/y")));
        assert_eq!(ingested.folders.len(), 1);
    }
}
