//! The ingest's own state in the lake (`_trailhouse/`: the ledger's plans, the S3 cursors):
//! small files, each replaced whole or not at all, in a local folder or as objects.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::datafile::sync_dir;
use crate::error::LakeError;
use crate::table::Lake;

const DIR: &str = "_trailhouse";

/// The folder under `_trailhouse/` where the query side keeps each `cloudtrail` data file's
/// summary of calls, at the data file's own path (`call-summary/v1/day=…/part-….parquet`); the
/// version changes with what a summary holds. A vacuum removes the summaries of the files it
/// removes.
pub const CALL_SUMMARY_DIR: &str = "call-summary/v1";

/// The state folder, as a path from the lake's root.
pub const STATE_DIR: &str = DIR;

/// The state files of one lake.
#[derive(Debug, Clone)]
pub struct State {
    lake: Lake,
}

impl Lake {
    /// The ingest's state files of this lake.
    pub fn state(&self) -> State {
        State { lake: self.clone() }
    }
}

impl State {
    /// Where `rel` (a path under `_trailhouse/`) is, for messages.
    pub fn name(&self, rel: &str) -> PathBuf {
        self.lake.root().join(DIR).join(rel)
    }

    fn rel(rel: &str) -> String {
        format!("{DIR}/{rel}")
    }

    /// The names of the files in folder `dir` (none when it does not exist).
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, LakeError> {
        if let Some(remote) = self.lake.remote_ref() {
            return remote.list(&Self::rel(dir)).await;
        }
        let path = self.name(dir);
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(LakeError::Io { path, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(LakeError::io(&path))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// The names of the files in folder `dir` that sort after `after` (in S3, listed from
    /// there: the cost is in what follows, not in what the folder holds before it).
    pub async fn list_after(&self, dir: &str, after: &str) -> Result<Vec<String>, LakeError> {
        if let Some(remote) = self.lake.remote_ref() {
            return remote.list_after(&Self::rel(dir), after).await;
        }
        let mut names = self.list(dir).await?;
        names.retain(|n| n.as_str() > after);
        Ok(names)
    }

    /// The content of `rel`; `None` when there is no such file.
    pub async fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LakeError> {
        if let Some(remote) = self.lake.remote_ref() {
            return Ok(remote.get(&Self::rel(rel)).await?.map(|b| b.to_vec()));
        }
        let path = self.name(rel);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LakeError::Io { path, source }),
        }
    }

    /// Replaces `rel` with `bytes`: a crash leaves the old content or the new, whole, never a
    /// mix (locally: a durable temporary file renamed over it; in S3 a PUT is whole).
    pub async fn write(&self, rel: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.write_with(rel, |w| w.write_all(&bytes)).await
    }

    /// [`State::write`] of what `content` writes, streamed to the file (locally; an S3 PUT
    /// takes the whole content at once).
    pub async fn write_with(
        &self,
        rel: &str,
        content: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), LakeError> {
        if let Some(remote) = self.lake.remote_ref() {
            let mut bytes = Vec::new();
            content(&mut bytes).map_err(|source| LakeError::Io {
                path: self.name(rel),
                source,
            })?;
            return remote.put(&Self::rel(rel), bytes).await;
        }
        let path = self.name(rel);
        let io = LakeError::io(&path);
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        fs::create_dir_all(&dir).map_err(io)?;
        let mut temp = path.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let mut file = std::io::BufWriter::new(fs::File::create(&temp).map_err(io)?);
        content(&mut file).map_err(io)?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, &path).map_err(io)?;
        // The rename itself is durable once the folder is.
        sync_dir(&dir).map_err(io)
    }

    /// Removes `rel` (nothing to do when it is absent).
    pub async fn remove(&self, rel: &str) -> Result<(), LakeError> {
        if let Some(remote) = self.lake.remote_ref() {
            return remote.delete(&Self::rel(rel)).await;
        }
        let path = self.name(rel);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LakeError::Io { path, source }),
        }
    }
}
