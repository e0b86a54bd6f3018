//! A command's query work, watched: the progress of its jobs on a cluster on the terminal, and
//! Ctrl-C, which stops the work (and cancels the jobs on the cluster) instead of leaving them
//! running there.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use trailhouse_query::Session;
#[cfg(feature = "cluster")]
use trailhouse_query::cluster::jobs::Progress;

use crate::cli::ProgressMode;

/// The work was stopped by Ctrl-C (exit status 130, as shells report SIGINT).
#[derive(Debug)]
pub struct Interrupted {
    /// Jobs cancelled on the cluster.
    pub cancelled: Vec<String>,
    /// Why cancelling failed, if it did: the jobs may still be running.
    pub cancel_failed: Option<String>,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted")?;
        if let Some(e) = &self.cancel_failed {
            return write!(f, "; the cluster's jobs may still be running: {e}");
        }
        match self.cancelled.as_slice() {
            [] => Ok(()),
            [job] => write!(f, "; job {job} cancelled on the cluster"),
            jobs => write!(f, "; jobs {} cancelled on the cluster", jobs.join(", ")),
        }
    }
}

impl std::error::Error for Interrupted {}

/// The progress line on standard error: drawn while jobs run, gone before output is written.
#[derive(Clone, Default)]
pub struct Watch {
    line: Arc<Mutex<Line>>,
}

#[derive(Default)]
struct Line {
    /// Whether a line is on the terminal now.
    shown: bool,
    /// Output has begun: nothing more is drawn.
    quiet: bool,
}

impl Watch {
    /// Takes the progress line away for good: output follows.
    pub fn quiet(&self) {
        let Ok(mut line) = self.line.lock() else {
            return;
        };
        line.quiet = true;
        if line.shown {
            eprint!("\r\x1b[2K");
            line.shown = false;
        }
    }

    /// `stream`, taking the progress line away when its first rows arrive.
    pub fn until_output(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let watch = self.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.inspect(move |_| watch.quiet()),
        ))
    }

    /// Shows `text` as the progress: on a terminal, one line redrawn in place; otherwise one
    /// line per change.
    fn show(&self, text: &str, terminal: bool) {
        let Ok(mut line) = self.line.lock() else {
            return;
        };
        if line.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
        line.shown = terminal;
    }

    fn clear(&self) {
        let Ok(mut line) = self.line.lock() else {
            return;
        };
        if line.shown {
            eprint!("\r\x1b[2K");
            line.shown = false;
        }
    }
}

/// Runs `work` on `session`: while it runs, the progress of the session's jobs on a cluster is
/// shown on standard error as `progress` says, and Ctrl-C stops it with [`Interrupted`] after
/// cancelling those jobs.
///
/// Ctrl-C is heard on a thread of its own: work that computes without pause (a join of
/// everything with everything, on this machine) holds this task and the runtime's workers. Such
/// work is given [`STOP_GRACE`] to notice it is dropped; then the process ends with status 130.
pub async fn watched<T, F, Fut>(
    session: &Session,
    progress: ProgressMode,
    work: F,
) -> anyhow::Result<T>
where
    F: FnOnce(Watch) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let watch = Watch::default();
    let display = display(session, progress, watch.clone());
    let (heard, mut interrupted) = tokio::sync::oneshot::channel();
    let signalled = Arc::new(AtomicBool::new(false));
    // Dropped when the work ends, which tells the listener to go.
    let (_finish, finished) = tokio::sync::oneshot::channel::<()>();
    listen(
        cluster_jobs(session),
        Arc::clone(&signalled),
        heard,
        finished,
    )?;
    let (stalled, mut stall) = tokio::sync::oneshot::channel();
    // Why the watchdog cancelled the jobs, set before it does: the work may fail of it first.
    let stall_note = Arc::new(Mutex::new(None));
    let watchdog = watchdog(session, Arc::clone(&stall_note), stalled);
    let outcome = tokio::select! {
        outcome = work(watch.clone()) => match outcome {
            // Work that failed because Ctrl-C cancelled its jobs was interrupted: it says so.
            Err(_) if signalled.load(Ordering::SeqCst) => match interrupted.await {
                Ok(stopped) => Err(stopped.into()),
                Err(_) => outcome,
            },
            // Likewise work whose stuck jobs the watchdog cancelled.
            Err(e) => match stall_note.lock().ok().and_then(|note| note.clone()) {
                Some(note) => Err(anyhow::anyhow!(note)),
                None => Err(e),
            },
            outcome => outcome,
        },
        Ok(stopped) = &mut interrupted => Err(stopped.into()),
        Ok(stopped) = &mut stall => Err(anyhow::anyhow!(stopped)),
    };
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if let Some(display) = display {
        display.abort();
    }
    watch.quiet();
    outcome
}

/// Waits on a thread of its own for Ctrl-C or `finished`; on Ctrl-C, sets `signalled`, cancels
/// `jobs` and sends what it did on `heard`, then ends the process if the work is not finished
/// within [`STOP_GRACE`].
fn listen(
    jobs: Option<ClusterJobs>,
    signalled: Arc<AtomicBool>,
    heard: tokio::sync::oneshot::Sender<Interrupted>,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = &mut finished => return,
                    signal = tokio::signal::ctrl_c() => {
                        if signal.is_err() {
                            // No handler could be set: Ctrl-C ends the process as it would.
                            return;
                        }
                    }
                }
                signalled.store(true, Ordering::SeqCst);
                let stopped = interrupt(jobs).await;
                let message = stopped.to_string();
                if heard.send(stopped).is_err() {
                    return;
                }
                if tokio::time::timeout(STOP_GRACE, finished).await.is_err() {
                    eprintln!("{message}");
                    std::process::exit(130);
                }
            });
        })?;
    Ok(())
}

/// How long interrupted work has to stop once dropped.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts showing the progress of `session`'s cluster jobs, if it has any and `progress` wants
/// it shown.
#[cfg(feature = "cluster")]
fn display(
    session: &Session,
    progress: ProgressMode,
    watch: Watch,
) -> Option<tokio::task::JoinHandle<()>> {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let shown = match progress {
        ProgressMode::Auto => terminal,
        ProgressMode::Always => true,
        ProgressMode::Never => false,
    };
    let jobs = session.cluster_jobs()?.clone();
    shown.then(|| {
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut last = String::new();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                // The scheduler not answering its REST API stops the display, not the work.
                let Ok(now) = jobs.progress().await else {
                    watch.clear();
                    return;
                };
                match now {
                    // A terminal's line is redrawn with the time; a log gets a line per change.
                    Some(p) if terminal || p.to_string() != last => {
                        last = p.to_string();
                        let seconds = started.elapsed().as_secs();
                        watch.show(&format!("cluster: {last} ({seconds} s)"), terminal);
                    }
                    Some(_) => {}
                    None => watch.clear(),
                }
            }
        })
    })
}

/// How long, after an executor was lost while its jobs ran, a session's jobs may stay as they
/// are (no task started, finished or failed) before they are taken as stuck: [`STALL`] when no
/// task runs (nothing is left to change them), [`STALL_RUNNING`] when the scheduler shows tasks
/// running (they may be long tasks; or reports Ballista refused, which leave a finished task
/// "running" for good).
#[cfg(feature = "cluster")]
const STALL: std::time::Duration = std::time::Duration::from_secs(30);
#[cfg(feature = "cluster")]
const STALL_RUNNING: std::time::Duration = std::time::Duration::from_secs(120);

/// Watches `session`'s jobs on a cluster for the ways Ballista 55 leaves a job hanging after an
/// executor is lost mid-job: the lost tasks reset and never run again, or the surviving
/// executors' reports of a stage it rolled back refused with the rest of their batch. When the
/// jobs have stood still for [`STALL`] (or [`STALL_RUNNING`]) they are cancelled and `stalled`
/// says so (the statement fails with that message; rerun, it runs on the executors there are).
#[cfg(feature = "cluster")]
fn watchdog(
    session: &Session,
    note: Arc<Mutex<Option<String>>>,
    stalled: tokio::sync::oneshot::Sender<String>,
) -> Option<tokio::task::JoinHandle<()>> {
    let jobs = session.cluster_jobs()?.clone();
    Some(tokio::spawn(async move {
        let mut before: Option<Vec<String>> = None;
        let mut lost = false;
        let mut still = Stillness::default();
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            // The scheduler not answering is not a stall; the statement's own call will say.
            let Ok(executors) = jobs.executors().await else {
                continue;
            };
            let ids: Vec<String> = executors.into_iter().map(|(id, _)| id).collect();
            match &before {
                None => before = Some(ids),
                Some(known) => lost |= known.iter().any(|id| !ids.contains(id)),
            }
            let Ok(progress) = jobs.progress().await else {
                continue;
            };
            let Some((bound, then)) =
                still.observe(progress.filter(|_| lost), std::time::Instant::now())
            else {
                continue;
            };
            let message = format!(
                "cluster: an executor was lost while the statement ran, and its jobs have not \
                 moved since, for {} s ({then}): they were cancelled; run it again",
                bound.as_secs()
            );
            if let Ok(mut note) = note.lock() {
                *note = Some(message.clone());
            }
            let cancelled = jobs.cancel().await.unwrap_or_default();
            let _ = stalled.send(format!("{message} (jobs {})", cancelled.join(", ")));
            return;
        }
    }))
}

/// Where a session's jobs stand, and since when.
#[cfg(feature = "cluster")]
#[derive(Default)]
struct Stillness {
    since: Option<(std::time::Instant, Progress)>,
}

#[cfg(feature = "cluster")]
impl Stillness {
    /// Takes the jobs' progress seen at `at` (`None`: no job, or none to watch); when they have
    /// stood where they are for their bound, returns it and where they stand.
    fn observe(
        &mut self,
        now: Option<Progress>,
        at: std::time::Instant,
    ) -> Option<(std::time::Duration, Progress)> {
        let Some(now) = now else {
            self.since = None;
            return None;
        };
        match &self.since {
            Some((since, then)) if *then == now => {
                let bound = if now.tasks_running == 0 {
                    STALL
                } else {
                    STALL_RUNNING
                };
                (at.duration_since(*since) >= bound).then_some((bound, now))
            }
            _ => {
                self.since = Some((at, now));
                None
            }
        }
    }
}

#[cfg(not(feature = "cluster"))]
fn watchdog(
    _: &Session,
    _: Arc<Mutex<Option<String>>>,
    _: tokio::sync::oneshot::Sender<String>,
) -> Option<tokio::task::JoinHandle<()>> {
    None
}

#[cfg(not(feature = "cluster"))]
fn display(_: &Session, _: ProgressMode, _: Watch) -> Option<tokio::task::JoinHandle<()>> {
    None
}

#[cfg(feature = "cluster")]
type ClusterJobs = trailhouse_query::cluster::jobs::Jobs;
#[cfg(not(feature = "cluster"))]
type ClusterJobs = std::convert::Infallible;

/// The session's jobs on a cluster, with a connection of their own (the session's runtime may
/// be busy when they are cancelled).
#[cfg(feature = "cluster")]
fn cluster_jobs(session: &Session) -> Option<ClusterJobs> {
    session.cluster_jobs().and_then(|jobs| jobs.detached().ok())
}

#[cfg(not(feature = "cluster"))]
fn cluster_jobs(_: &Session) -> Option<ClusterJobs> {
    None
}

/// What Ctrl-C leaves: the session's jobs on a cluster cancelled.
#[cfg(feature = "cluster")]
async fn interrupt(jobs: Option<ClusterJobs>) -> Interrupted {
    let Some(jobs) = jobs else {
        return Interrupted {
            cancelled: Vec::new(),
            cancel_failed: None,
        };
    };
    // A statement sent just before Ctrl-C may reach the scheduler's list a moment after the
    // first look: a second look cancels it too.
    let mut cancelled = Vec::new();
    for pause in [0, 300] {
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        match jobs.cancel().await {
            Ok(ids) => {
                for id in ids {
                    if !cancelled.contains(&id) {
                        cancelled.push(id);
                    }
                }
            }
            Err(e) => {
                return Interrupted {
                    cancelled,
                    cancel_failed: Some(e.to_string()),
                };
            }
        }
    }
    Interrupted {
        cancelled,
        cancel_failed: None,
    }
}

#[cfg(not(feature = "cluster"))]
async fn interrupt(_: Option<ClusterJobs>) -> Interrupted {
    Interrupted {
        cancelled: Vec::new(),
        cancel_failed: None,
    }
}

#[cfg(all(test, feature = "cluster"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The jobs as seen `seconds` after `start`: `running` tasks running, `done` finished.
    fn at(
        start: Instant,
        seconds: u64,
        running: usize,
        done: usize,
    ) -> (Instant, Option<Progress>) {
        let progress = Progress {
            jobs: 1,
            stages: 3,
            tasks_done: done,
            tasks_running: running,
            ..Progress::default()
        };
        (start + Duration::from_secs(seconds), Some(progress))
    }

    fn observe(
        still: &mut Stillness,
        (when, progress): (Instant, Option<Progress>),
    ) -> Option<u64> {
        still
            .observe(progress, when)
            .map(|(bound, _)| bound.as_secs())
    }

    #[test]
    fn jobs_standing_still_after_a_loss_are_stuck_after_their_bound() {
        let start = Instant::now();
        // Nothing running: 30 s without a change.
        let mut still = Stillness::default();
        assert_eq!(observe(&mut still, at(start, 0, 0, 3)), None);
        assert_eq!(observe(&mut still, at(start, 29, 0, 3)), None);
        assert_eq!(observe(&mut still, at(start, 30, 0, 3)), Some(30));

        // Tasks shown running (a long task, or a report Ballista refused): 120 s.
        let mut still = Stillness::default();
        assert_eq!(observe(&mut still, at(start, 0, 1, 3)), None);
        assert_eq!(observe(&mut still, at(start, 60, 1, 3)), None);
        assert_eq!(observe(&mut still, at(start, 119, 1, 3)), None);
        assert_eq!(observe(&mut still, at(start, 120, 1, 3)), Some(120));
    }

    #[test]
    fn any_move_of_the_jobs_or_no_job_starts_the_wait_again() {
        let start = Instant::now();
        let mut still = Stillness::default();
        assert_eq!(observe(&mut still, at(start, 0, 0, 3)), None);
        // A task finished: the wait starts again from there.
        assert_eq!(observe(&mut still, at(start, 20, 0, 4)), None);
        assert_eq!(observe(&mut still, at(start, 40, 0, 4)), None);
        assert_eq!(observe(&mut still, at(start, 50, 0, 4)), Some(30));

        // A task failing is a move too.
        let mut still = Stillness::default();
        assert_eq!(observe(&mut still, at(start, 0, 1, 3)), None);
        let (when, failed) = at(start, 100, 1, 3);
        let failed = failed.map(|p| Progress {
            tasks_failed: 1,
            ..p
        });
        assert_eq!(observe(&mut still, (when, failed)), None);
        assert_eq!(observe(&mut still, at(start, 130, 1, 3)), None);

        // No job to watch (or no executor lost) forgets where they stood.
        let mut still = Stillness::default();
        assert_eq!(observe(&mut still, at(start, 0, 0, 3)), None);
        assert_eq!(still.observe(None, at(start, 20, 0, 3).0), None);
        assert_eq!(observe(&mut still, at(start, 40, 0, 3)), None);
        assert_eq!(observe(&mut still, at(start, 69, 0, 3)), None);
        assert_eq!(observe(&mut still, at(start, 70, 0, 3)), Some(30));
    }
}
