//! The share of a report's window that came from log files verified against CloudTrail's signed
//! digests (table `integrity`, kept by `trailhouse verify --record` and `ingest --verify`).

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use datafusion::common::ParamValues;
use serde::Serialize;

use super::activity::{int, rows, utf8_column};
use crate::error::QueryError;
use crate::saved::Window;
use crate::session::Session;

/// How much of the window's events came from log files verified against CloudTrail's signed
/// digests.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrityShare {
    /// Events from files whose latest check said `valid`.
    pub events_verified: u64,
    /// Events from files whose latest check found a problem (modified, not covered by a
    /// digest, its digest not verified).
    pub events_with_problems: u64,
    /// Events from files never checked.
    pub events_unchecked: u64,
    /// Events per verdict (`unchecked` for files never checked).
    pub by_verdict: std::collections::BTreeMap<String, u64>,
    /// When the newest of those checks ran.
    pub last_checked: Option<String>,
}

impl IntegrityShare {
    /// The verified events' share of the window's, in percent.
    pub fn percent_verified(&self) -> f64 {
        let all = self.events_verified + self.events_with_problems + self.events_unchecked;
        if all == 0 {
            0.0
        } else {
            100.0 * self.events_verified as f64 / all as f64
        }
    }
}

/// The window's events by the latest integrity verdict of their log file, when the lake has
/// recorded checks: the events are counted per file first, so the join is with one row per file
/// of the window, whatever the number of events.
pub(super) async fn integrity(
    session: &Session,
    window: Window,
) -> Result<Option<IntegrityShare>, QueryError> {
    if !session
        .context()
        .table_exist(trailhouse_lake::schema::INTEGRITY_TABLE_NAME)?
    {
        return Ok(None);
    }
    let sql = "SELECT coalesce(i.verdict, 'unchecked') AS verdict, sum(f.events) AS events, \
                      CAST(max(i.checked_at) AS VARCHAR) AS checked \
               FROM (SELECT sourcefile, count(*) AS events FROM cloudtrail \
                     WHERE eventtime >= $since AND eventtime < $until GROUP BY sourcefile) f \
               LEFT JOIN integrity i ON f.sourcefile = i.sourcefile \
               GROUP BY 1";
    let batches = rows(session, sql, Some(ParamValues::from(window.params()))).await?;
    let mut share = IntegrityShare {
        events_verified: 0,
        events_with_problems: 0,
        events_unchecked: 0,
        by_verdict: BTreeMap::new(),
        last_checked: None,
    };
    for b in &batches {
        let (Some(verdict), Some(checked)) =
            (utf8_column(b, "verdict")?, utf8_column(b, "checked")?)
        else {
            continue;
        };
        let (verdict, checked) = (verdict.as_string::<i32>(), checked.as_string::<i32>());
        for row in 0..b.num_rows() {
            let name = verdict.value(row);
            let n = int(b, "events", row);
            match name {
                "valid" => share.events_verified += n,
                "unchecked" => share.events_unchecked += n,
                _ => share.events_with_problems += n,
            }
            *share.by_verdict.entry(name.to_string()).or_default() += n;
            if checked.is_valid(row) {
                let t = checked.value(row).to_string();
                if share.last_checked.as_ref().is_none_or(|l| *l < t) {
                    share.last_checked = Some(t);
                }
            }
        }
    }
    Ok(Some(share))
}
