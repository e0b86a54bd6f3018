//! The record of which source files have been ingested, for incremental and crash-safe runs.
//!
//! Each batch gets a sequence number. Before anything of batch `n` is committed, its plan (the
//! files it read and which of them failed) is written to `_trailhouse/ledger/<n>.json`. The
//! batch's Delta commit carries the marker `txn(appId, n)`, so the table itself says which plans
//! took effect: those up to the table's marker. A plan one past the marker belongs to a run that
//! stopped before its commit and is replayed exactly; nothing else is trusted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use trailhouse_lake::State;

use crate::discover::SourceFile;
use crate::error::IngestError;

/// Files of one batch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub seq: i64,
    pub files: Vec<SourceFile>,
    /// Files that failed; they are not counted as ingested, so a later run tries them again.
    #[serde(with = "crate::discover::os_path::list")]
    pub failed: Vec<PathBuf>,
}

/// The ingested files, as of the table's last commit.
#[derive(Debug)]
pub struct Ledger {
    state: State,
    dir: String,
    ingested: HashMap<PathBuf, (u64, i64, Option<String>)>,
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
            ingested: HashMap::new(),
            retried: HashSet::new(),
            pending: None,
            committed_seq,
        };
        let mut names = state.list(dir).await.map_err(|e| err(e.to_string()))?;
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
        self.ingested.contains_key(path)
    }

    /// Whether this exact file (path, size, mtime and ETag) was ingested.
    pub fn contains(&self, file: &SourceFile) -> bool {
        self.ingested
            .get(&file.path)
            .is_some_and(|(size, mtime, etag)| {
                (*size, *mtime, etag) == (file.size, file.mtime_ns, &file.etag)
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
        Ok(plan.failed)
    }

    /// Marks a committed plan's files as ingested.
    pub fn record(&mut self, plan: &Plan) {
        for f in &plan.files {
            if plan.failed.contains(&f.path) {
                self.retried.insert(f.path.clone());
            } else {
                self.ingested
                    .insert(f.path.clone(), (f.size, f.mtime_ns, f.etag.clone()));
            }
        }
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
}
