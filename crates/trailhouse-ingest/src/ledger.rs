//! The record of which source files have been ingested, for incremental and crash-safe runs.
//!
//! Each batch gets a sequence number. Before anything of batch `n` is committed, its plan (the
//! files it read and which of them failed) is written to `_trailhouse/ledger/<n>.json`. The
//! batch's Delta commit carries the marker `txn(appId, n)`, so the table itself says which plans
//! took effect: those up to the table's marker. A plan one past the marker belongs to a run that
//! stopped before its commit and is replayed exactly; nothing else is trusted.
//!
//! A run loads the last checkpoint (`checkpoint.json`: the ledger up to a batch, in one file)
//! and the plans after it, not every plan ever written: every [`CHECKPOINT_EVERY`] plans, a run
//! writes a new one. Files an S3 run can never list again (keys before their region folder's
//! cursor, less its overlap) are left out of it, so the ledger of a bucket read every few
//! minutes for years stays the size of the overlap; local files stay (every run lists them).
//! The plans stay too: `check --repair` reads one to have its files read again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use trailhouse_lake::State;

use crate::discover::SourceFile;
use crate::error::IngestError;
use crate::etag::ETag;

mod ingested;

use ingested::{Ingested, Stamp};

/// Files of one batch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub seq: i64,
    pub files: Vec<SourceFile>,
    /// Files that failed; they are not counted as ingested, so a later run tries them again.
    #[serde(with = "crate::discover::os_path::list")]
    pub failed: Vec<PathBuf>,
}

/// The ledger up to batch `seq`, in one file.
#[derive(Debug, serde::Deserialize)]
struct Checkpoint {
    seq: i64,
    /// Files ingested (path, size, time, ETag), read into the ledger one by one.
    files: Ingested,
    #[serde(with = "crate::discover::os_path::list")]
    retried: Vec<PathBuf>,
}

const CHECKPOINT: &str = "checkpoint.json";

/// [`Checkpoint`] as written: borrowed from the ledger.
#[derive(serde::Serialize)]
struct CheckpointOf<'a> {
    seq: i64,
    files: IngestedFiles<'a>,
    #[serde(serialize_with = "paths_of")]
    retried: &'a HashSet<PathBuf>,
}

fn paths_of<S: serde::Serializer>(paths: &&HashSet<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(PathOf))
}

/// A path as [`crate::discover::os_path`] writes it.
struct PathOf<'a>(&'a PathBuf);

impl serde::Serialize for PathOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::discover::os_path::serialize(self.0, s)
    }
}

/// The ledger's files, serialized as [`SourceFile`]s.
struct IngestedFiles<'a>(&'a Ingested);

impl serde::Serialize for IngestedFiles<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(path, stamp)| FileOf {
            path,
            size: stamp.size,
            mtime_ns: stamp.mtime_ns,
            etag: stamp.etag.as_ref(),
        }))
    }
}

/// A [`SourceFile`] as written, borrowed.
#[derive(serde::Serialize)]
struct FileOf<'a> {
    #[serde(serialize_with = "crate::discover::os_path::serialize")]
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a ETag>,
}

/// Plans loaded or written past the checkpoint before a run writes a new one.
pub const CHECKPOINT_EVERY: usize = 64;

/// The ingested files, as of the table's last commit.
#[derive(Debug)]
pub struct Ledger {
    state: State,
    dir: String,
    /// Plans past the checkpoint (loaded, or recorded by this run).
    loose: usize,
    ingested: Ingested,
    /// Files a committed batch read but recorded as failed: what they gave before their break
    /// is in the lake, and a later run reads them again.
    retried: HashSet<PathBuf>,
    /// The plan of a batch that was not committed, to be replayed first.
    pub pending: Option<Plan>,
    pub committed_seq: i64,
}

fn plan_name(dir: &str, seq: i64) -> String {
    format!("{dir}/{seq:020}.json")
}

impl Ledger {
    /// Loads the plans of state folder `dir` that took effect (`seq <= committed_seq`) and the
    /// pending one.
    pub async fn load(state: &State, dir: &str, committed_seq: i64) -> Result<Self, IngestError> {
        let err = |message: String| IngestError::Ledger {
            path: state.name(dir),
            message,
        };
        let mut ledger = Ledger {
            state: state.clone(),
            dir: dir.to_string(),
            loose: 0,
            ingested: Ingested::default(),
            retried: HashSet::new(),
            pending: None,
            committed_seq,
        };
        let checkpoint_rel = format!("{dir}/{CHECKPOINT}");
        let mut base = 0;
        if let Some(text) = state
            .read(&checkpoint_rel)
            .await
            .map_err(|e| err(e.to_string()))?
        {
            let checkpoint: Checkpoint = serde_json::from_slice(&text)
                .map_err(|e| err(format!("`{}`: {e}", state.name(&checkpoint_rel).display())))?;
            if checkpoint.seq <= committed_seq {
                base = checkpoint.seq;
                ledger.ingested = checkpoint.files;
                ledger.retried.extend(checkpoint.retried);
            } else {
                // Ahead of the table (a lake restored from an older copy): the plans decide.
                state
                    .remove(&checkpoint_rel)
                    .await
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        let mut names = state
            .list_after(dir, &format!("{base:020}.json"))
            .await
            .map_err(|e| err(e.to_string()))?;
        names.sort();
        for name in names {
            let rel = format!("{dir}/{name}");
            if name.ends_with(".tmp") {
                // A plan being replaced when the process died; the plan it replaced stands.
                state.remove(&rel).await.map_err(|e| err(e.to_string()))?;
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|seq| *seq > base)
            else {
                continue;
            };
            if seq > committed_seq + 1 {
                // Written by no run that could have committed it: plans are written one at a
                // time, each after the previous batch committed.
                state.remove(&rel).await.map_err(|e| err(e.to_string()))?;
                continue;
            }
            let Some(text) = state.read(&rel).await.map_err(|e| err(e.to_string()))? else {
                continue;
            };
            let plan: Plan = match serde_json::from_slice(&text) {
                Ok(p) => p,
                // A plan cut short by a crash while it was written was never acted on.
                Err(_) if seq == committed_seq + 1 => {
                    state.remove(&rel).await.map_err(|e| err(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(err(format!("`{}`: {e}", state.name(&rel).display()))),
            };
            if seq == committed_seq + 1 {
                ledger.pending = Some(plan);
            } else {
                ledger.record(&plan);
            }
        }
        Ok(ledger)
    }

    /// Whether a committed batch read this file and recorded it as failed (so some of its
    /// records may be in the lake already).
    pub fn was_tried(&self, path: &Path) -> bool {
        self.retried.contains(path)
    }

    /// Whether a committed batch ingested a file by this name (any version of it).
    pub fn is_ingested(&self, path: &Path) -> bool {
        self.ingested.contains(path)
    }

    /// Whether this exact file (path, size, mtime and ETag) was ingested.
    pub fn contains(&self, file: &SourceFile) -> bool {
        self.ingested.get(&file.path).is_some_and(|s| {
            (s.size, s.mtime_ns, s.etag.as_ref()) == (file.size, file.mtime_ns, file.etag.as_ref())
        })
    }

    /// Persists a plan before its batch is committed, replacing the plan of the same batch
    /// (a replayed batch whose files fared differently this time) atomically: a crash leaves
    /// either plan whole, never a mix.
    pub async fn write_plan(&self, plan: &Plan) -> Result<(), IngestError> {
        write_plan(&self.state, &self.dir, plan).await
    }

    /// Has the next run read the source files of committed batch `seq` again (their plan now
    /// lists them all as failed: the table lost rows they gave, see `trailhouse check`). Returns
    /// the files; none when the plan is not in the ledger.
    pub async fn read_again(
        state: &State,
        dir: &str,
        seq: i64,
    ) -> Result<Vec<PathBuf>, IngestError> {
        let rel = plan_name(dir, seq);
        let err = |message: String| IngestError::Ledger {
            path: state.name(&rel),
            message,
        };
        let Some(text) = state.read(&rel).await.map_err(|e| err(e.to_string()))? else {
            return Ok(Vec::new());
        };
        let mut plan: Plan = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        plan.failed = plan.files.iter().map(|f| f.path.clone()).collect();
        write_plan(state, dir, &plan).await?;
        // The checkpoint may count them as ingested: the next run rebuilds it from the plans.
        state
            .remove(&format!("{dir}/{CHECKPOINT}"))
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(plan.failed)
    }

    /// Writes a checkpoint of the ledger when [`CHECKPOINT_EVERY`] plans have gathered past the
    /// last one, leaving out (and forgetting) the files `expired` says no run will list again.
    /// Call it once every batch is committed. Returns whether it wrote one.
    pub async fn checkpoint(
        &mut self,
        expired: &dyn Fn(&Path) -> bool,
    ) -> Result<bool, IngestError> {
        if self.loose < CHECKPOINT_EVERY {
            return Ok(false);
        }
        self.ingested.retain(|path| !expired(path));
        let rel = format!("{}/{CHECKPOINT}", self.dir);
        let err = |message: String| IngestError::Ledger {
            path: self.state.name(&rel),
            message,
        };
        // Serialized from the ledger itself, straight to the file: a copy of an organization
        // trail's 834,000 files and the JSON text in memory were most of a 20M-event ingest's
        // peak.
        let checkpoint = CheckpointOf {
            seq: self.committed_seq,
            files: IngestedFiles(&self.ingested),
            retried: &self.retried,
        };
        self.state
            .write_with(&rel, |w| {
                serde_json::to_writer(w, &checkpoint).map_err(std::io::Error::other)
            })
            .await
            .map_err(|e| err(e.to_string()))?;
        self.loose = 0;
        Ok(true)
    }

    /// Marks a committed plan's files as ingested.
    pub fn record(&mut self, plan: &Plan) {
        self.loose += 1;
        let failed: HashSet<&Path> = plan.failed.iter().map(PathBuf::as_path).collect();
        for f in plan
            .files
            .iter()
            .filter(|f| failed.contains(f.path.as_path()))
        {
            self.retried.insert(f.path.clone());
        }
        self.ingested.extend(
            plan.files
                .iter()
                .filter(|f| !failed.contains(f.path.as_path()))
                .map(|f| {
                    let stamp = Stamp {
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                        etag: f.etag.clone(),
                    };
                    (f.path.as_path(), stamp)
                }),
        );
        self.committed_seq = self.committed_seq.max(plan.seq);
    }
}

/// Writes `plan` into ledger folder `dir` (see [`Ledger::write_plan`]).
async fn write_plan(state: &State, dir: &str, plan: &Plan) -> Result<(), IngestError> {
    let rel = plan_name(dir, plan.seq);
    let err = |message: String| IngestError::Ledger {
        path: state.name(&rel),
        message,
    };
    let text = serde_json::to_vec(plan).map_err(|e| err(e.to_string()))?;
    state
        .write(&rel, text)
        .await
        .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &str, size: u64) -> SourceFile {
        SourceFile {
            path: PathBuf::from(p),
            size,
            mtime_ns: 7,
            etag: None,
        }
    }

    #[tokio::test]
    async fn only_committed_plans_count_and_the_next_is_pending() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = trailhouse_lake::Lake::new(root.path()).state();
        let l = Ledger::load(&state, "ledger", 0).await.expect("load");
        for (seq, name) in [(1, "/a"), (2, "/b"), (3, "/c")] {
            l.write_plan(&Plan {
                seq,
                files: vec![f(name, 1), f("/bad", 1)],
                failed: vec![PathBuf::from("/bad")],
            })
            .await
            .expect("plan");
        }
        let dir = root.path().join("_trailhouse/ledger");
        std::fs::write(dir.join(format!("{:020}.json", 4)), "{").expect("junk");
        let l = Ledger::load(&state, "ledger", 1).await.expect("load");
        assert!(l.contains(&f("/a", 1)));
        assert!(!l.contains(&f("/a", 2)), "a changed size means a new file");
        assert!(!l.contains(&f("/bad", 1)), "failed files are retried");
        assert!(!l.contains(&f("/b", 1)), "plan 2 was not committed");
        assert_eq!(l.pending.as_ref().map(|p| p.seq), Some(2));
        assert!(!dir.join(format!("{:020}.json", 3)).exists());
        assert!(!dir.join(format!("{:020}.json", 4)).exists());
    }

    #[tokio::test]
    async fn a_checkpoint_replaces_the_plans_before_it_and_forgets_what_expired() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = trailhouse_lake::Lake::new(root.path()).state();
        let dir = root.path().join("_trailhouse/ledger");
        let mut l = Ledger::load(&state, "ledger", 0).await.expect("load");
        let total = CHECKPOINT_EVERY as i64 + 3;
        for seq in 1..=total {
            let plan = Plan {
                seq,
                files: vec![f(&format!("/old/{seq}"), 1), f(&format!("/new/{seq}"), 1)],
                failed: if seq == 2 {
                    vec![PathBuf::from("/new/2")]
                } else {
                    vec![]
                },
            };
            l.write_plan(&plan).await.expect("plan");
            l.record(&plan);
        }
        assert!(
            l.checkpoint(&|p| p.starts_with("/old"))
                .await
                .expect("checkpoint")
        );
        assert!(!l.contains(&f("/old/1", 1)), "expired files are forgotten");
        assert!(
            !l.checkpoint(&|_| false).await.expect("none due"),
            "not again at once"
        );

        // Plans before the checkpoint are not read again: a damaged one does not matter.
        std::fs::write(dir.join(format!("{:020}.json", 5)), "{").expect("damage");
        let next = Plan {
            seq: total + 1,
            files: vec![f("/old/after", 1)],
            failed: vec![],
        };
        l.write_plan(&next).await.expect("plan");
        let l = Ledger::load(&state, "ledger", total + 1)
            .await
            .expect("load");
        assert!(l.contains(&f("/new/7", 1)));
        assert!(
            l.contains(&f("/old/after", 1)),
            "plans after the checkpoint are read"
        );
        assert!(!l.contains(&f("/old/7", 1)));
        assert!(!l.contains(&f("/new/2", 1)) && l.was_tried(Path::new("/new/2")));
        assert_eq!(l.loose, 1);

        // Reading a batch again takes the checkpoint away: the plans decide again.
        std::fs::write(
            dir.join(format!("{:020}.json", 5)),
            serde_json::to_vec(&Plan {
                seq: 5,
                files: vec![f("/new/5", 1)],
                failed: vec![],
            })
            .expect("json"),
        )
        .expect("restore");
        let again = Ledger::read_again(&state, "ledger", 5)
            .await
            .expect("again");
        assert_eq!(again, vec![PathBuf::from("/new/5")]);
        assert!(!dir.join(CHECKPOINT).exists());
        let l = Ledger::load(&state, "ledger", total + 1)
            .await
            .expect("load");
        assert!(!l.contains(&f("/new/5", 1)) && l.was_tried(Path::new("/new/5")));
        assert!(l.contains(&f("/new/6", 1)));
    }
}
