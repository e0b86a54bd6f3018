//! Scheduled reports: every control of one or more packs (`-- control: PACK ID` in the saved
//! queries) run over a window, with per control its status, count, first/last seen, the
//! principals involved (with the origin of their temporary credentials) and source IPs, and a
//! capped sample of the matching rows; plus the activity of the window (events and errors per
//! day, top principals and source IPs) and the state of the table.
//!
//! The [`Report`] value is the JSON document (its shape is versioned by [`REPORT_VERSION`]);
//! [`html`] and [`markdown`] render it.

pub mod html;
pub mod markdown;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::common::ParamValues;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, cast as cast_expr};
use datafusion::prelude::{DataFrame, col, lit};
use futures::StreamExt;
use serde::Serialize;

use crate::credentials;
use crate::error::QueryError;
use crate::saved::{Catalog, SavedQuery, Window};
use crate::session::Session;

/// The version of the JSON shape; bumped when a field changes meaning or disappears (new
/// fields may be added without a bump).
pub const REPORT_VERSION: u32 = 1;

/// The columns a control's matches are grouped by, when its query has them.
const GROUP_COLUMNS: [&str; 3] = ["principal", "accesskeyid", "sourceipaddress"];

/// Columns of summary queries that count events (a row per principal and day, say).
const WEIGHT_COLUMNS: [&str; 3] = ["calls", "decrypts", "events"];

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
    let mut results: HashMap<String, Matches> = HashMap::new();
    for (_, _, q) in &planned {
        if results.contains_key(&q.name) {
            continue;
        }
        let started = std::time::Instant::now();
        let params = q.bind(&[], window, now)?;
        let query = session.saved_dataframe(q, params).await?;
        let mut m = Matches::run(query, opts.max_events).await?;
        m.seconds = started.elapsed().as_secs_f64();
        results.insert(q.name.clone(), m);
    }

    let keys: BTreeSet<&str> = results
        .values()
        .flat_map(|m| m.principals.values().flat_map(|p| p.keys.iter()))
        .map(String::as_str)
        .collect();
    let origins = origins(session, &keys).await?;

    let window_text = WindowInfo {
        since: time_text(opts.since),
        until: time_text(opts.until),
    };
    let mut finding_principals: BTreeMap<String, u64> = BTreeMap::new();
    let mut finding_ips: BTreeMap<String, u64> = BTreeMap::new();
    let mut counted = BTreeSet::new();
    let mut controls = Vec::new();
    for (pack, id, q) in &planned {
        let Some(m) = results.get(&q.name) else {
            continue;
        };
        if counted.insert(q.name.clone()) {
            for (p, c) in &m.principals {
                *finding_principals.entry(p.clone()).or_default() += c.count;
            }
            for (ip, n) in &m.source_ips {
                *finding_ips.entry(ip.clone()).or_default() += n;
            }
        }
        controls.push(m.control(pack, id, q, &origins, opts, &window_text));
    }

    let table = table_info(session, opts).await?;
    let (top_principals, top_source_ips) = top_actors(session, window).await?;
    let activity = Activity {
        days: days(session, window).await?,
        top_principals,
        top_source_ips,
        finding_principals: top(finding_principals),
        finding_source_ips: top(finding_ips),
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
    })
}

fn top(counts: BTreeMap<String, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(value, count)| Count { value, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v.truncate(TOP);
    v
}

#[derive(Default)]
struct PrincipalAcc {
    count: u64,
    keys: BTreeSet<String>,
}

/// One query's matches, reduced by an aggregate in the engine: memory is bounded by the sample
/// and the number of distinct principals, keys and IPs, not by the number of matches.
#[derive(Default)]
struct Matches {
    count: u64,
    first: Option<i64>,
    last: Option<i64>,
    columns: Vec<String>,
    events: Vec<serde_json::Map<String, serde_json::Value>>,
    principals: BTreeMap<String, PrincipalAcc>,
    source_ips: BTreeMap<String, u64>,
    seconds: f64,
}

fn utf8_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<arrow::array::ArrayRef>, QueryError> {
    batch
        .column_by_name(name)
        .map(|c| cast(c, &DataType::Utf8))
        .transpose()
        .map_err(QueryError::from)
}

impl Matches {
    /// Runs a control's query twice over: an aggregate on top of it (count, first/last seen, by
    /// principal, key and source IP, reading only those columns) and, when it matched, its own
    /// first `max_events` rows in its own order (a top-k, cheap however many rows match).
    async fn run(query: DataFrame, max_events: usize) -> Result<Self, QueryError> {
        let present: Vec<String> = query
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let has = |c: &str| present.iter().any(|p| p == c);
        let group: Vec<Expr> = GROUP_COLUMNS
            .iter()
            .filter(|c| has(c))
            .map(|c| col(*c))
            .collect();
        // Summary queries (a row per principal and day, say) weigh each row by its count.
        let weight = match WEIGHT_COLUMNS.iter().find(|c| has(c)) {
            Some(w) => sum(cast_expr(col(*w), DataType::Int64)),
            None => count(lit(1)),
        };
        let mut aggregates = vec![count(lit(1)).alias("rows_"), weight.alias("weight_")];
        if has("eventtime") {
            aggregates.push(min(col("eventtime")).alias("first_"));
            aggregates.push(max(col("eventtime")).alias("last_"));
        } else if has("first_seen") && has("last_seen") {
            aggregates.push(min(col("first_seen")).alias("first_"));
            aggregates.push(max(col("last_seen")).alias("last_"));
        }
        let mut m = Matches {
            columns: present.clone(),
            ..Default::default()
        };
        for batch in query
            .clone()
            .aggregate(group, aggregates)?
            .collect()
            .await?
        {
            m.add_groups(&batch)?;
        }
        if m.count > 0 && max_events > 0 {
            for batch in query.limit(0, Some(max_events))?.collect().await? {
                m.add_sample(&batch)?;
            }
        }
        Ok(m)
    }

    fn add_sample(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut buf = Vec::new();
        {
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut buf);
            w.write(batch)?;
            w.finish()?;
        }
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&buf)
            .map_err(|e| QueryError::Io(std::io::Error::other(format!("report rows: {e}"))))?;
        self.events.extend(rows);
        Ok(())
    }

    fn add_groups(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let principal = utf8_column(batch, "principal")?;
        let key = utf8_column(batch, "accesskeyid")?;
        let ip = utf8_column(batch, "sourceipaddress")?;
        let times = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| match c.data_type() {
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        Some(c.as_primitive::<TimestampMicrosecondType>().clone())
                    }
                    _ => None,
                })
        };
        let (first, last) = (times("first_"), times("last_"));
        for i in 0..batch.num_rows() {
            self.count += int(batch, "rows_", i);
            let w = int(batch, "weight_", i);
            if let Some(t) = first.as_ref().filter(|t| t.is_valid(i)) {
                let v = t.value(i);
                self.first = Some(self.first.map_or(v, |f| f.min(v)));
            }
            if let Some(t) = last.as_ref().filter(|t| t.is_valid(i)) {
                let v = t.value(i);
                self.last = Some(self.last.map_or(v, |l| l.max(v)));
            }
            if let Some(p) = principal.as_ref().map(|c| c.as_string::<i32>()) {
                let name = if p.is_valid(i) {
                    p.value(i)
                } else {
                    "(unknown)"
                };
                let acc = self.principals.entry(name.to_string()).or_default();
                acc.count += w;
                if let Some(k) = key.as_ref().map(|c| c.as_string::<i32>())
                    && k.is_valid(i)
                    && k.value(i).starts_with("ASIA")
                {
                    acc.keys.insert(k.value(i).to_string());
                }
            }
            if let Some(a) = ip.as_ref().map(|c| c.as_string::<i32>())
                && a.is_valid(i)
            {
                *self.source_ips.entry(a.value(i).to_string()).or_default() += w;
            }
        }
        Ok(())
    }

    fn control(
        &self,
        pack: &str,
        id: &str,
        q: &SavedQuery,
        origins: &HashMap<String, String>,
        opts: &ReportOptions,
        window: &WindowInfo,
    ) -> ControlResult {
        let mut principals: Vec<PrincipalCount> = self
            .principals
            .iter()
            .map(|(p, acc)| {
                let mut o: Vec<String> = acc
                    .keys
                    .iter()
                    .filter_map(|k| origins.get(k).cloned())
                    .collect();
                o.sort();
                o.dedup();
                PrincipalCount {
                    principal: p.clone(),
                    origins: o,
                    count: acc.count,
                }
            })
            .collect();
        principals.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.principal.cmp(&b.principal))
        });
        principals.truncate(TOP);
        ControlResult {
            pack: pack.to_string(),
            id: id.to_string(),
            query: q.name.clone(),
            title: q.summary.clone(),
            security_hub: q.security_hub.clone(),
            status: if self.count > 0 { "findings" } else { "clean" }.to_string(),
            count: self.count,
            first_seen: self.first.map(time_text),
            last_seen: self.last.map(time_text),
            principals,
            source_ips: top(self.source_ips.clone()),
            columns: self.columns.clone(),
            events: self.events.clone(),
            command: format!(
                "trailhouse --lake {} run {} --since {} --until {}",
                shell_word(&opts.lake),
                q.name,
                window.since,
                window.until
            ),
            seconds: self.seconds,
        }
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

/// The origin of each temporary key seen in the findings, from the `credentials` table.
async fn origins(
    session: &Session,
    keys: &BTreeSet<&str>,
) -> Result<HashMap<String, String>, QueryError> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT minted_key, origin || ' via ' || origin_call AS origin FROM {} \
         WHERE minted_key IS NOT NULL AND origin IS NOT NULL",
        credentials::TABLE_NAME
    );
    let mut stream = session.sql(&sql).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (Some(k), Some(o)) = (
            utf8_column(&batch, "minted_key")?,
            utf8_column(&batch, "origin")?,
        ) else {
            continue;
        };
        let (k, o) = (k.as_string::<i32>(), o.as_string::<i32>());
        for i in 0..batch.num_rows() {
            if k.is_valid(i) && o.is_valid(i) && keys.contains(k.value(i)) {
                out.insert(k.value(i).to_string(), o.value(i).to_string());
            }
        }
    }
    Ok(out)
}

async fn rows(
    session: &Session,
    sql: &str,
    params: Option<ParamValues>,
) -> Result<Vec<RecordBatch>, QueryError> {
    let mut df = session.dataframe(sql).await?;
    if let Some(p) = params {
        df = df.with_param_values(p)?;
    }
    Ok(df.collect().await?)
}

fn int(batch: &RecordBatch, name: &str, row: usize) -> u64 {
    batch
        .column_by_name(name)
        .and_then(|c| cast(c, &DataType::Int64).ok())
        .map(|c| {
            let c = c.as_primitive::<Int64Type>();
            if c.is_valid(row) {
                c.value(row).max(0) as u64
            } else {
                0
            }
        })
        .unwrap_or(0)
}

/// Events and errors per day of the window.
async fn days(session: &Session, window: Window) -> Result<Vec<DayCount>, QueryError> {
    let sql = "SELECT CAST(day AS VARCHAR) AS day, count(*) AS events, count(errorcode) AS errors \
               FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until \
               GROUP BY day ORDER BY day";
    let mut out = Vec::new();
    for b in rows(session, sql, Some(ParamValues::from(window.params()))).await? {
        let Some(day) = utf8_column(&b, "day")? else {
            continue;
        };
        let day = day.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push(DayCount {
                day: day.value(i).to_string(),
                events: int(&b, "events", i),
                errors: int(&b, "errors", i),
            });
        }
    }
    Ok(out)
}

/// The window's busiest principals and source IPs, in one scan.
async fn top_actors(
    session: &Session,
    window: Window,
) -> Result<(Vec<Count>, Vec<Count>), QueryError> {
    let sql = "SELECT principal, sourceipaddress, count(*) AS events, \
                      grouping(sourceipaddress) AS by_principal \
               FROM (SELECT coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid, \
                                     useridentity.type) AS principal, sourceipaddress \
                     FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until) \
               GROUP BY GROUPING SETS ((principal), (sourceipaddress))";
    let mut principals = BTreeMap::new();
    let mut ips = BTreeMap::new();
    for b in rows(session, sql, Some(ParamValues::from(window.params()))).await? {
        let (Some(p), Some(ip)) = (
            utf8_column(&b, "principal")?,
            utf8_column(&b, "sourceipaddress")?,
        ) else {
            continue;
        };
        let (p, ip) = (p.as_string::<i32>(), ip.as_string::<i32>());
        for i in 0..b.num_rows() {
            let n = int(&b, "events", i);
            if int(&b, "by_principal", i) == 1 {
                let name = if p.is_valid(i) {
                    p.value(i)
                } else {
                    "(unknown)"
                };
                principals.insert(name.to_string(), n);
            } else if ip.is_valid(i) {
                ips.insert(ip.value(i).to_string(), n);
            }
        }
    }
    Ok((top(principals), top(ips)))
}

async fn table_info(session: &Session, opts: &ReportOptions) -> Result<TableInfo, QueryError> {
    let b = rows(
        session,
        "SELECT count(*) AS records, count(DISTINCT sourcefile) AS files FROM cloudtrail",
        None,
    )
    .await?;
    let (records, files) = b
        .first()
        .map_or((0, 0), |b| (int(b, "records", 0), int(b, "files", 0)));
    let quarantined = if session
        .context()
        .table_exist(trailhouse_lake::schema::QUARANTINE_TABLE_NAME)?
    {
        rows(session, "SELECT count(*) AS n FROM quarantine", None)
            .await?
            .first()
            .map_or(0, |b| int(b, "n", 0))
    } else {
        0
    };
    Ok(TableInfo {
        lake: opts.lake.clone(),
        version: session.table_version(),
        last_commit: session
            .last_commit_millis()
            .await
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        files,
        records,
        records_in_window: 0,
        quarantined,
    })
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
