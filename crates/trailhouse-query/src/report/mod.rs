//! Scheduled reports: every control of one or more packs (`-- control: PACK ID` in the saved
//! queries) run over a window, with per control its status, count, first/last seen, the
//! principals involved (with the origin of their temporary credentials) and source IPs, and a
//! capped sample of the matching rows; plus the activity of the window (events and errors per
//! day, top principals and source IPs) and the state of the table.
//!
//! The [`Report`] value is the JSON document (its shape is versioned by [`REPORT_VERSION`]);
//! [`html`] and [`markdown`] render it.

mod activity;
mod channel;
mod control;
pub mod html;
pub mod integrity;
mod keys;
pub mod markdown;
mod reduce;
pub mod shared_scan;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::common::DataFusionError;
use datafusion::common::runtime::SpawnedTask;
use futures::StreamExt;
use serde::Serialize;

use crate::credentials::Want;
use crate::error::QueryError;
use crate::saved::{Catalog, SavedQuery, Window};
use crate::session::Session;
use shared_scan::SharedScan;

/// The version of the JSON shape; bumped when a field changes meaning or disappears (new
/// fields may be added without a bump).
pub const REPORT_VERSION: u32 = 1;

/// How many principals and source IPs a control or chart lists.
const TOP: usize = 10;

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Pack names as `Catalog::pack` accepts them (`cis-v5`, `cis-v6.0`, `security`).
    pub packs: Vec<String>,
    /// The window, both ends resolved (microseconds since the epoch).
    pub since: i64,
    pub until: i64,
    /// Matching rows kept per control (the count is always the total).
    pub max_events: usize,
    /// How the lake is named in the commands that reproduce a finding.
    pub lake: String,
    /// Whether the controls share one scan of the lake ([`shared_scan`]); otherwise each reads
    /// the lake itself (the same report, more reading).
    pub share_scan: bool,
}

/// The report document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub generated_at: String,
    pub trailhouse_version: String,
    pub window: WindowInfo,
    pub table: TableInfo,
    pub packs: Vec<String>,
    pub summary: Summary,
    pub controls: Vec<ControlResult>,
    pub activity: Activity,
    /// How the controls read the lake (not part of the document).
    #[serde(skip)]
    pub shared_scan: Option<SharedScanInfo>,
}

/// The controls' shared scan: how many queries read it, out of how many, and how many rows
/// it handed them.
#[derive(Debug, Clone)]
pub struct SharedScanInfo {
    pub queries: usize,
    pub of: usize,
    pub rows: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowInfo {
    pub since: String,
    pub until: String,
}

/// The state of the lake the report read: how complete its input is.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub lake: String,
    pub version: Option<u64>,
    /// Time of the last commit (the last ingest, compaction or vacuum).
    pub last_commit: Option<String>,
    /// Source files with at least one stored record.
    pub files: u64,
    pub records: u64,
    pub records_in_window: u64,
    /// Records kept aside by ingest (no usable eventTime, not an object); see `quarantine`.
    pub quarantined: u64,
    /// The window's events by the integrity verdict of the log file each came from, when
    /// `trailhouse verify --record` has run on the lake (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<integrity::IntegrityShare>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub controls: usize,
    pub controls_with_findings: usize,
    /// The controls' counts added up: an event matching two controls (or one query serving a
    /// control in two packs) counts twice.
    pub findings: u64,
}

/// One control's result.
#[derive(Debug, Clone, Serialize)]
pub struct ControlResult {
    pub pack: String,
    pub id: String,
    pub query: String,
    pub title: String,
    pub security_hub: Option<String>,
    /// `findings` or `clean`.
    pub status: String,
    pub count: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub principals: Vec<PrincipalCount>,
    pub source_ips: Vec<Count>,
    /// The columns of `events`, in the query's order.
    pub columns: Vec<String>,
    /// The first `max_events` matching rows, in the query's order (newest first).
    pub events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The command that lists every matching row.
    pub command: String,
    /// How long its query took.
    pub seconds: f64,
    /// Set when the memory pool could not hold [`keys::KEYS_PER_PRINCIPAL`] temporary keys for
    /// each principal: the origins were looked up for this many most recently used keys of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_per_principal: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrincipalCount {
    pub principal: String,
    /// For principals acting with temporary keys: the first caller of each key's STS chain.
    pub origins: Vec<String>,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCount {
    pub day: String,
    pub events: u64,
    pub errors: u64,
}

/// The window's activity, for the charts.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub days: Vec<DayCount>,
    pub top_principals: Vec<Count>,
    pub top_source_ips: Vec<Count>,
    /// Principals and source IPs across every control's findings.
    pub finding_principals: Vec<Count>,
    pub finding_source_ips: Vec<Count>,
}

impl Report {
    /// Whether any control matched.
    pub fn has_findings(&self) -> bool {
        self.summary.controls_with_findings > 0
    }
}

/// A sampled row's value as text for a table cell: strings as they are, NULL as nothing,
/// other JSON (numbers, booleans, nested values) as JSON.
fn value_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn time_text(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// Runs the packs' controls and gathers the report.
pub async fn build(
    session: &Session,
    catalog: &Catalog,
    opts: &ReportOptions,
) -> Result<Report, QueryError> {
    let window = Window {
        since: Some(opts.since),
        until: Some(opts.until),
    };
    let now = Utc::now();
    let mut packs = Vec::new();
    let mut planned: Vec<(String, String, &SavedQuery)> = Vec::new();
    for name in &opts.packs {
        let controls = catalog.pack(name)?;
        let full = controls
            .first()
            .map(|(c, _)| c.pack.clone())
            .unwrap_or_else(|| name.clone());
        if packs.contains(&full) {
            continue;
        }
        packs.push(full);
        planned.extend(
            controls
                .into_iter()
                .map(|(c, q)| (c.pack.clone(), c.id.clone(), q)),
        );
    }

    // A query serving several packs' controls runs once.
    let mut distinct: Vec<&SavedQuery> = Vec::new();
    for (_, _, q) in &planned {
        if !distinct.iter().any(|d| d.name == q.name) {
            distinct.push(q);
        }
    }
    let mut bound = Vec::with_capacity(distinct.len());
    let mut frames = Vec::with_capacity(distinct.len());
    for q in &distinct {
        let params = q.bind(&[], window, now)?;
        frames.push(session.saved_dataframe(q, params.clone()).await?);
        bound.push(params);
    }
    let scan = if opts.share_scan {
        SharedScan::plan(session, &frames).await?
    } else {
        None
    };

    // Every control runs at once: those the shared scan serves read its rows as it hands them
    // out, the others the lake; all send their rows to the one aggregate that reduces them.
    let (reduce_rows, reduce_feed) = channel::table(reduce::schema())?;
    let reducing = {
        let ctx = reduce::context(session.context())?;
        let controls = distinct.len();
        SpawnedTask::spawn(async move { reduce::reduce(ctx, reduce_rows, controls).await })
    };
    let mut feeds = Vec::new();
    let mut runs = Vec::with_capacity(distinct.len());
    for (i, frame) in frames.into_iter().enumerate() {
        let frame = match &scan {
            Some(s) if s.serves(i) => {
                let (rows, feed) = channel::table(s.schema())?;
                feeds.push(feed);
                session
                    .with_cloudtrail(rows)
                    .await?
                    .saved_dataframe(distinct[i], bound[i].clone())
                    .await?
            }
            _ => frame,
        };
        runs.push(SpawnedTask::spawn(control::run(
            frame,
            opts.max_events,
            i as u32,
            reduce_feed.clone(),
        )));
    }
    drop(reduce_feed);
    let mut shared_scan = None;
    if let Some(scan) = scan {
        let queries = scan.served();
        let mut rows = 0;
        let mut stream = scan.stream().await?;
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(batch) => {
                    rows += batch.num_rows();
                    for feed in feeds.iter_mut() {
                        feed.send(batch.clone()).await;
                    }
                }
                Err(e) => {
                    for feed in feeds.drain(..) {
                        feed.fail(DataFusionError::Execution(format!(
                            "the controls' shared scan failed: {e}"
                        )))
                        .await;
                    }
                    return Err(e.into());
                }
            }
        }
        drop(feeds);
        shared_scan = Some(SharedScanInfo {
            queries,
            of: distinct.len(),
            rows,
        });
    }
    let mut samples = Vec::with_capacity(runs.len());
    for run in runs {
        samples.push(joined(run).await??);
    }
    let totals = joined(reducing).await??;
    let results: HashMap<String, (control::Sampled, reduce::Reduced)> = distinct
        .iter()
        .map(|q| q.name.clone())
        .zip(samples.into_iter().zip(totals.controls).map(with_keys))
        .collect();

    let origins = origins(session, &results).await?;
    let window_text = WindowInfo {
        since: time_text(opts.since),
        until: time_text(opts.until),
    };
    let mut controls = Vec::new();
    for (pack, id, q) in &planned {
        let Some(m) = results.get(&q.name) else {
            continue;
        };
        controls.push(control_result(m, pack, id, q, &origins, opts, &window_text));
    }

    let mut table = activity::table_info(session, opts).await?;
    table.integrity = integrity::integrity(session, window).await?;
    let (days, top_principals, top_source_ips) = activity::activity(session, window).await?;
    let activity = Activity {
        days,
        top_principals,
        top_source_ips,
        finding_principals: totals.principals,
        finding_source_ips: totals.ips,
    };
    let summary = Summary {
        controls: controls.len(),
        controls_with_findings: controls.iter().filter(|c| c.count > 0).count(),
        findings: controls.iter().map(|c| c.count).sum(),
    };
    Ok(Report {
        report_version: REPORT_VERSION,
        generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        trailhouse_version: env!("CARGO_PKG_VERSION").to_string(),
        window: window_text,
        table: TableInfo {
            records_in_window: activity.days.iter().map(|d| d.events).sum(),
            ..table
        },
        packs,
        summary,
        controls,
        activity,
        shared_scan,
    })
}

/// A control's listed principals given their most recently used temporary keys; the other
/// principals' keys are let go.
fn with_keys(
    (mut sampled, mut reduced): (control::Sampled, reduce::Reduced),
) -> (control::Sampled, reduce::Reduced) {
    let mut keys = std::mem::take(&mut sampled.keys);
    for p in &mut reduced.principals {
        p.keys = keys.take(&p.principal);
    }
    drop(keys);
    sampled.keys_memory.free();
    (sampled, reduced)
}

/// The result of a spawned task.
async fn joined<T: Send + 'static>(task: SpawnedTask<T>) -> Result<T, QueryError> {
    task.join()
        .await
        .map_err(|e| QueryError::Io(std::io::Error::other(format!("report task: {e}"))))
}

fn top(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(value, count)| Count { value, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v.truncate(TOP);
    v
}

/// A control's part of the report.
fn control_result(
    (sampled, m): &(control::Sampled, reduce::Reduced),
    pack: &str,
    id: &str,
    q: &SavedQuery,
    origins: &HashMap<String, String>,
    opts: &ReportOptions,
    window: &WindowInfo,
) -> ControlResult {
    let principals = m
        .principals
        .iter()
        .map(|p| {
            let o: BTreeSet<&String> = p.keys.iter().filter_map(|(k, _)| origins.get(k)).collect();
            PrincipalCount {
                principal: p.principal.clone(),
                origins: o.into_iter().cloned().collect(),
                count: p.count,
            }
        })
        .collect();
    ControlResult {
        pack: pack.to_string(),
        id: id.to_string(),
        query: q.name.clone(),
        title: q.summary.clone(),
        security_hub: q.security_hub.clone(),
        status: if m.rows > 0 { "findings" } else { "clean" }.to_string(),
        count: m.rows,
        first_seen: m.first.map(time_text),
        last_seen: m.last.map(time_text),
        principals,
        source_ips: m.ips.clone(),
        columns: sampled.columns.clone(),
        events: sampled.events.clone(),
        command: format!(
            "trailhouse --lake {} run {} --since {} --until {}",
            shell_word(&opts.lake),
            q.name,
            window.since,
            window.until
        ),
        seconds: sampled.seconds,
        keys_per_principal: (sampled.keys_per_principal < keys::KEYS_PER_PRINCIPAL)
            .then_some(sampled.keys_per_principal),
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@=".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// The origin of each temporary key of the listed principals: the first caller of the chain of
/// STS calls behind it, looked up as of the key's last use.
async fn origins(
    session: &Session,
    results: &HashMap<String, (control::Sampled, reduce::Reduced)>,
) -> Result<HashMap<String, String>, QueryError> {
    let wants: Vec<Want> = results
        .values()
        .flat_map(|(_, m)| m.principals.iter())
        .flat_map(|p| p.keys.iter())
        .map(|(k, t)| match t {
            Some(t) => Want::used_at(k.as_str(), *t),
            None => Want::anytime(k.as_str()),
        })
        .collect();
    if wants.is_empty() {
        return Ok(HashMap::new());
    }
    let found = session.credentials().credentials(&wants).await?;
    Ok(found
        .into_iter()
        .filter_map(|(key, c)| Some((key, format!("{} via {}", c.origin?, c.origin_call?))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/var/lake"), "/var/lake");
        assert_eq!(shell_word("my lake"), "'my lake'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
