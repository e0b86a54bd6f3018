//! A client's jobs on a cluster: how far they are, and cancelling them.
//!
//! Every statement a session runs on a cluster becomes a Ballista job carrying the session's
//! name (`ballista.job.name`, one name per session). The scheduler's REST API (served on its
//! gRPC port) lists jobs with their names, shows each job's stages and tasks, and cancels a job:
//! that is all a client needs to show progress and to stop what it started, whichever of its
//! statements (a report runs many) is running.

use std::fmt;
use std::time::Duration;

use ballista_api_types::dto::{JobResponse, QueryStagesResponse, TaskStatus};
use serde::de::DeserializeOwned;

use crate::error::QueryError;

/// The jobs one session submits to a cluster.
#[derive(Debug, Clone)]
pub struct Jobs {
    http: reqwest::Client,
    /// `http://HOST:PORT` of the scheduler.
    base: String,
    name: String,
}

/// Where a session's running jobs are, summed over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Jobs queued or running.
    pub jobs: usize,
    /// Stages of those jobs, and how many have finished.
    pub stages: usize,
    pub stages_done: usize,
    /// Tasks finished, running and failed in those stages.
    pub tasks_done: usize,
    pub tasks_running: usize,
    pub tasks_failed: usize,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.jobs > 1 {
            write!(f, "{} jobs, ", self.jobs)?;
        }
        if self.stages == 0 {
            return write!(f, "queued");
        }
        write!(
            f,
            "stages {} of {} done, tasks {} done, {} running",
            self.stages_done, self.stages, self.tasks_done, self.tasks_running
        )?;
        if self.tasks_failed > 0 {
            write!(f, ", {} failed", self.tasks_failed)?;
        }
        Ok(())
    }
}

fn client() -> Result<reqwest::Client, QueryError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| QueryError::Cluster(format!("cannot make an HTTP client: {e}")))
}

/// A job is over once the scheduler says so in one of these words.
fn active(job: &JobResponse) -> bool {
    matches!(job.status.as_str(), "Queued" | "Running")
}

impl Jobs {
    /// The jobs of a new session on the scheduler at `host:port`.
    pub(crate) fn new(host: &str, port: u16) -> Result<Self, QueryError> {
        Ok(Self {
            http: client()?,
            base: format!("http://{host}:{port}"),
            name: format!("trailhouse {}", uuid::Uuid::new_v4()),
        })
    }

    /// The same jobs, reached through connections of their own (for use from another runtime:
    /// an HTTP client's pooled connections belong to the runtime that opened them).
    pub fn detached(&self) -> Result<Self, QueryError> {
        Ok(Self {
            http: client()?,
            ..self.clone()
        })
    }

    /// The name the session's jobs carry on the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, QueryError> {
        let url = format!("{}{path}", self.base);
        let failed = |e: &dyn fmt::Display| QueryError::Cluster(format!("GET {url}: {e}"));
        let response = self.http.get(&url).send().await.map_err(|e| failed(&e))?;
        let response = response.error_for_status().map_err(|e| failed(&e))?;
        let body = response.bytes().await.map_err(|e| failed(&e))?;
        serde_json::from_slice(&body).map_err(|e| failed(&e))
    }

    /// The executors the scheduler has now: their ids and task slots (cores).
    pub async fn executors(&self) -> Result<Vec<(String, usize)>, QueryError> {
        #[derive(serde::Deserialize)]
        struct Executor {
            id: String,
            specification: Specification,
        }
        #[derive(serde::Deserialize)]
        struct Specification {
            vcores: usize,
        }
        let executors: Vec<Executor> = self.get("/api/executors").await?;
        Ok(executors
            .into_iter()
            .map(|e| (e.id, e.specification.vcores))
            .collect())
    }

    /// How many tasks the cluster's executors run at once, in all.
    pub async fn slots(&self) -> Result<usize, QueryError> {
        Ok(self.executors().await?.iter().map(|(_, n)| n).sum())
    }

    /// This session's jobs the scheduler knows, finished or not.
    pub async fn list(&self) -> Result<Vec<JobResponse>, QueryError> {
        let jobs: Vec<JobResponse> = self.get("/api/jobs").await?;
        Ok(jobs
            .into_iter()
            .filter(|j| j.job_name == self.name)
            .collect())
    }

    /// Where this session's queued and running jobs are; `None` when it has none.
    pub async fn progress(&self) -> Result<Option<Progress>, QueryError> {
        let mut progress = Progress::default();
        for job in self.list().await?.iter().filter(|j| active(j)) {
            progress.jobs += 1;
            let stages: QueryStagesResponse =
                match self.get(&format!("/api/job/{}/stages", job.job_id)).await {
                    Ok(stages) => stages,
                    // A job between the list and this call may have gone (finished and
                    // cleaned up): it is counted, without stages.
                    Err(_) => continue,
                };
            for stage in &stages.stages {
                progress.stages += 1;
                if stage.stage_status == "Successful" {
                    progress.stages_done += 1;
                }
                for task in stage.tasks.iter().flatten() {
                    match task.status {
                        TaskStatus::Successful => progress.tasks_done += 1,
                        TaskStatus::Running => progress.tasks_running += 1,
                        TaskStatus::Failed { .. } => progress.tasks_failed += 1,
                    }
                }
            }
        }
        Ok((progress.jobs > 0).then_some(progress))
    }

    /// Cancels this session's queued and running jobs; returns their ids.
    pub async fn cancel(&self) -> Result<Vec<String>, QueryError> {
        let mut cancelled = Vec::new();
        for job in self.list().await?.into_iter().filter(active) {
            let url = format!("{}/api/job/{}", self.base, job.job_id);
            let failed = |e: &dyn fmt::Display| {
                QueryError::Cluster(format!("cancelling job {}: {e}", job.job_id))
            };
            let response = self.http.patch(&url).send().await.map_err(|e| failed(&e))?;
            // 409: the job ended meanwhile, which is what cancelling wanted.
            if response.status() != reqwest::StatusCode::CONFLICT {
                response.error_for_status().map_err(|e| failed(&e))?;
            }
            cancelled.push(job.job_id);
        }
        Ok(cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_line() {
        let p = Progress {
            jobs: 1,
            stages: 3,
            stages_done: 1,
            tasks_done: 5,
            tasks_running: 2,
            tasks_failed: 0,
        };
        assert_eq!(p.to_string(), "stages 1 of 3 done, tasks 5 done, 2 running");
        let p = Progress {
            tasks_failed: 3,
            ..p
        };
        assert_eq!(
            p.to_string(),
            "stages 1 of 3 done, tasks 5 done, 2 running, 3 failed"
        );
        let p = Progress {
            jobs: 2,
            ..Progress::default()
        };
        assert_eq!(p.to_string(), "2 jobs, queued");
    }
}
