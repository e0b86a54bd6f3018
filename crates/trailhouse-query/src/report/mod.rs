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
mod document;
pub mod html;
pub mod integrity;
mod keys;
pub mod markdown;
mod reduce;
pub mod shared_scan;

use std::collections::{BTreeSet, HashMap};

use chrono::{SecondsFormat, Utc};
use datafusion::common::DataFusionError;
use datafusion::common::runtime::SpawnedTask;
use futures::StreamExt;

use crate::credentials::Want;
use crate::error::QueryError;
use crate::saved::{Catalog, SavedQuery, Window};
use crate::session::Session;
pub use document::*;
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

    // The table's totals first, on their own: counting its distinct source files holds their
    // names (641 MiB for the 830,000 files of a 20M-event organization trail), which on top of
    // the controls' aggregates took the report's peak to 863-954 MiB.
    let mut table = activity::table_info(session, opts).await?;

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
    let refused_rules = if packs.iter().any(|p| p == crate::sigma::PACK) {
        catalog.refused().cloned().collect()
    } else {
        Vec::new()
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
        refused_rules,
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
            "trailhouse --lake {} run {}{} --since {} --until {}",
            shell_word(&opts.lake),
            q.name,
            q.dir
                .as_ref()
                .map(|d| format!(" --queries {}", shell_word(&d.display().to_string())))
                .unwrap_or_default(),
            window.since,
            window.until
        ),
        seconds: sampled.seconds,
        keys_per_principal: (sampled.keys_per_principal < keys::KEYS_PER_PRINCIPAL)
            .then_some(sampled.keys_per_principal),
        rule: q.rule.clone(),
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
