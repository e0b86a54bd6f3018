//! The report document: what [`super::build`] gathers and [`super::html`] and
//! [`super::markdown`] render; its JSON form is the document itself (shape versioned by
//! [`super::REPORT_VERSION`]).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::sigma;

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
    /// Sigma rules of the packs that did not compile (not run, not counted), with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_rules: Vec<sigma::Refused>,
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
    pub integrity: Option<super::integrity::IntegrityShare>,
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
    /// For a Sigma rule: its level, ATT&CK tags and attribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<trailhouse_sigma::RuleInfo>>,
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

impl ControlResult {
    /// For a Sigma rule: its level, ATT&CK tags and attribution, as one line of text.
    pub fn rule_line(&self) -> Option<String> {
        let r = self.rule.as_ref()?;
        let mut parts = vec![format!(
            "Sigma rule {} · level {}{}",
            r.id.as_deref().unwrap_or("(no id)"),
            r.level.as_deref().unwrap_or("-"),
            r.status
                .as_deref()
                .map(|s| format!(" · status {s}"))
                .unwrap_or_default()
        )];
        let attack: Vec<&str> = r.attack().collect();
        if !attack.is_empty() {
            parts.push(format!("ATT&CK {}", attack.join(", ")));
        }
        if let Some(a) = &r.author {
            parts.push(format!("by {a}"));
        }
        if let Some(l) = &r.license {
            parts.push(format!("licence {l}"));
        }
        if !r.references.is_empty() {
            parts.push(format!("references {}", r.references.join(" ")));
        }
        Some(parts.join(" · "))
    }

    /// The control's name in a table: its id, with a rule's level.
    pub fn label(&self) -> String {
        match self.rule.as_ref().and_then(|r| r.level.as_deref()) {
            Some(level) => format!("{} ({level})", self.id),
            None => self.id.clone(),
        }
    }
}

impl Report {
    /// Whether any control matched.
    pub fn has_findings(&self) -> bool {
        self.summary.controls_with_findings > 0
    }
}

/// A sampled row's value as text for a table cell: strings as they are, NULL as nothing,
/// other JSON (numbers, booleans, nested values) as JSON.
pub(crate) fn value_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

pub(crate) fn time_text(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}
