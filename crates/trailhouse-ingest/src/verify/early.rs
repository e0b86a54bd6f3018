//! The digests of `ingest --verify` judged while the run reads the log files, on threads of
//! the idle scheduling class: they take the time the run leaves idle (its walk's end, its commits,
//! the files written one partition at a time) instead of the cores it uses. The log files'
//! hashes are taken as the run reads them; what is left of the digests when it ends is judged
//! then, at normal priority ([`Early::finish`]).

use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};

use super::digest::log_delivery_time;
use super::keys::PublicKeys;
use super::objects::{Listing, Sources, Which};
use super::{DigestFindings, Judging, VerifyError, Window};
use crate::discover::SourceFile;
use crate::report::PathAndSize;

/// Chains a background thread judges at once: one reading, one judged.
const BACKGROUND_CHAINS: usize = 2;

/// What `ingest --verify` asks of the run to judge its digests early: the public keys, and the
/// log files an earlier run left pending their digest (checked again by this one).
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub keys: PublicKeys,
    pub pending: Vec<String>,
}

/// Digests being judged in the background.
pub struct Early {
    /// The chains to judge, once the background has listed them: `None` inside when there is
    /// no log file to judge digests for.
    judging: Mutex<Option<Option<Arc<Judging>>>>,
    /// Where the background hands them over.
    listed: Mutex<Receiver<Option<Arc<Judging>>>>,
    thread: Mutex<Option<JoinHandle<Result<(), VerifyError>>>>,
}

impl std::fmt::Debug for Early {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Early").finish_non_exhaustive()
    }
}

/// What the background lists the chains from, copied from the run's walk.
struct Inputs {
    /// The digests (and sidecars) found, by path and size.
    digests: Vec<PathAndSize>,
    /// The names of the log files the run reads, and of those pending their digest.
    logs: Vec<Box<str>>,
    keys: PublicKeys,
}

impl Inputs {
    /// The chains of the digests, for the window of the log files.
    fn judging(&self) -> Option<Arc<Judging>> {
        let window = window_of(self.logs.iter().map(|n| &**n))?;
        let Listing { objects, .. } = Sources::listing_of_paths(&self.digests, &[], Which::Digests);
        Some(Arc::new(Judging::new(objects, &self.keys, window)))
    }
}

impl Early {
    /// Starts judging the digests among `found` (a walk of local sources) for the log files
    /// `reading` names (those the run is to read) and those `ask` holds pending. The run's
    /// thread only copies their names: reading the digests' names and the log files' times is
    /// the background's too. It takes no more chains once what it found takes `budget` bytes
    /// (at 20M events the digests list 400,000 log files, held while the run reads); the run's
    /// end judges the rest.
    pub fn start<'a>(
        found: &[SourceFile],
        reading: impl Iterator<Item = &'a SourceFile>,
        ask: &Ask,
        budget: usize,
    ) -> Self {
        let inputs = Inputs {
            digests: found
                .iter()
                .filter(|f| f.path.to_str().is_some_and(|p| Which::Digests.may_hold(p)))
                .map(|f| (f.path.as_path().into(), f.size))
                .collect(),
            logs: reading
                .filter_map(|f| f.path.file_name()?.to_str())
                .chain(
                    ask.pending
                        .iter()
                        .map(|p| p.rsplit('/').next().unwrap_or(p)),
                )
                .map(Box::from)
                .collect(),
            keys: ask.keys.clone(),
        };
        let (hand_over, listed) = std::sync::mpsc::channel();
        // Without a thread (none could be started) nothing is handed over: the run's end says so.
        let thread = std::thread::Builder::new()
            .name("digests".into())
            .spawn(move || {
                lower_priority();
                let judging = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(|_| "digests".into())
                    .start_handler(|_| lower_priority())
                    .build()
                    .map_or_else(
                        |_| inputs.judging(),
                        |pool| pool.install(|| inputs.judging()),
                    );
                drop(inputs);
                // The run's end may have stopped waiting: then it judges nothing itself.
                if hand_over.send(judging.clone()).is_err() {
                    return Ok(());
                }
                let Some(judging) = judging else {
                    return Ok(());
                };
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .max_blocking_threads(BACKGROUND_CHAINS)
                    .thread_name("digests")
                    .on_thread_start(lower_priority)
                    .enable_all()
                    .build()
                else {
                    return Ok(());
                };
                runtime.block_on(judging.drain_within(
                    &Sources::local_files(),
                    BACKGROUND_CHAINS,
                    budget,
                ))
            })
            .ok();
        Self {
            judging: Mutex::new(None),
            listed: Mutex::new(listed),
            thread: Mutex::new(thread),
        }
    }

    /// The chains, once listed; `wait` for them.
    fn judging(&self, wait: bool) -> Result<Option<Option<Arc<Judging>>>, VerifyError> {
        let mut judging = super::lock(&self.judging);
        if judging.is_none() {
            let listed = super::lock(&self.listed);
            let got = if wait {
                listed.recv().map_err(|_| stopped())?
            } else {
                match listed.try_recv() {
                    Ok(got) => got,
                    Err(TryRecvError::Empty) => return Ok(None),
                    Err(TryRecvError::Disconnected) => return Err(stopped()),
                }
            };
            *judging = Some(got);
        }
        Ok(judging.clone())
    }

    /// How many chains the background has still to take; `None` before it has listed them.
    pub fn untaken(&self) -> Option<usize> {
        match self.judging(false) {
            Ok(Some(Some(judging))) => Some(judging.untaken()),
            Ok(Some(None)) => Some(0),
            _ => None,
        }
    }

    /// Judges the chains the background has not taken (here, at the caller's priority), waits
    /// for those it has, and returns what was found and the window it was judged for; `None`
    /// when there was no log file to judge digests for.
    pub async fn finish(&self) -> Result<Option<(Window, DigestFindings)>, VerifyError> {
        // Waited for when still listing (a run shorter than the listing: a moment).
        let judging = self.judging(true)?.flatten();
        if let Some(judging) = &judging {
            judging
                .drain(&Sources::local_files(), super::CHAINS_IN_FLIGHT)
                .await?;
        }
        let thread = super::lock(&self.thread).take();
        if let Some(thread) = thread {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            match joined {
                Ok(Ok(judged)) => judged?,
                _ => return Err(stopped()),
            }
        }
        Ok(judging.map(|j| (j.window(), j.take_findings())))
    }
}

fn stopped() -> VerifyError {
    VerifyError::Source {
        location: "digests".into(),
        message: "checking stopped: the thread judging them failed".into(),
    }
}

/// The window of a validation of the log files `names` (file names): from the first delivery
/// to a minute after the last; `None` when none has a delivery time.
pub fn window_of<'a>(names: impl Iterator<Item = &'a str>) -> Option<Window> {
    let (first, last) = names.filter_map(log_delivery_time).fold(
        (None, None),
        |(first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>), t| {
            (
                Some(first.map_or(t, |f| f.min(t))),
                Some(last.map_or(t, |l| l.max(t))),
            )
        },
    );
    Some(Window {
        since: Some(first?),
        until: Some(last? + chrono::Duration::minutes(1)),
    })
}

/// The calling thread yields its core to any other: the idle scheduling class (Linux's
/// `SCHED_IDLE`; elsewhere the lowest priority of the normal class). Not raised again (an
/// unprivileged process cannot): the run's end judges what is left on threads of its own.
fn lower_priority() {
    #[cfg(unix)]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        // Best effort: at normal priority the digests are judged all the same.
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
    }
}
