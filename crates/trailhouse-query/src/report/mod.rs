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
pub mod shared_scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::common::ParamValues;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use serde::Serialize;

use crate::credentials;
use crate::error::QueryError;
use crate::saved::{Catalog, SavedQuery, Window};
use crate::session::Session;
use shared_scan::SharedScan;

/// The version of the JSON shape; bumped when a field changes meaning or disappears (new
/// fields may be added without a bump).
pub const REPORT_VERSION: u32 = 1;

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
    /// Memory for the rows the controls share, read from the lake in one scan
    /// ([`shared_scan`]); over it, or at 0, each control reads the lake itself.
    pub shared_scan_bytes: usize,
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

/// The controls' shared scan: how many queries read it, out of how many, and what it held.
#[derive(Debug, Clone)]
pub struct SharedScanInfo {
    pub queries: usize,
    pub of: usize,
    pub rows: usize,
    pub bytes: usize,
    pub chunks: usize,
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
    let mut matches: Vec<Option<Matches>> = distinct.iter().map(|_| None).collect();
    let mut shared_scan = None;
    if opts.shared_scan_bytes > 0
        && let Some(mut scan) = SharedScan::start(session, &frames, opts.shared_scan_bytes).await?
    {
        while scan.next_chunk().await? {
            // Every query the scan serves reads a chunk that holds all the shared rows; when
            // the rows come in several chunks, only the row-level ones do.
            let whole = scan.chunks == 1 && scan.finished();
            for (i, q) in distinct.iter().enumerate() {
                if !scan.serves(i) || !(whole || scan.row_level(i)) {
                    continue;
                }
                let query = scan.session().saved_dataframe(q, bound[i].clone()).await?;
                let m = Matches::run(query, opts.max_events).await?;
                match &mut matches[i] {
                    Some(acc) => acc.merge(m)?,
                    slot => *slot = Some(m),
                }
            }
        }
        shared_scan = Some(SharedScanInfo {
            queries: matches.iter().filter(|m| m.is_some()).count(),
            of: distinct.len(),
            rows: scan.rows,
            bytes: scan.bytes,
            chunks: scan.chunks,
        });
    }
    let mut results: HashMap<String, Matches> = HashMap::new();
    for ((q, frame), m) in distinct.iter().zip(frames).zip(matches) {
        let mut m = match m {
            Some(m) => m,
            None => Matches::run(frame, opts.max_events).await?,
        };
        m.finish()?;
        results.insert(q.name.clone(), m);
    }

    let mut keys: BTreeMap<&str, i64> = BTreeMap::new();
    for (k, t) in results
        .values()
        .flat_map(|m| m.principals.values().flat_map(|p| p.keys.iter()))
    {
        let at = keys.entry(k.as_str()).or_insert(*t);
        *at = (*at).max(*t);
    }
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
    let (days, top_principals, top_source_ips) = activity(session, window).await?;
    let activity = Activity {
        days,
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
        shared_scan,
    })
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

#[derive(Default)]
struct PrincipalAcc {
    count: u64,
    /// Temporary keys the principal used, with the last time each was used (open when the
    /// query has no times).
    keys: FastMap<String, i64>,
}

/// One query's matches, reduced by an aggregate in the engine: memory is bounded by the sample
/// and the number of distinct principals, keys and IPs, not by the number of matches.
#[derive(Default)]
struct Matches {
    count: u64,
    first: Option<i64>,
    last: Option<i64>,
    columns: Vec<String>,
    /// The first rows in the query's order (`max_events` at most), and that order's keys when
    /// it is an ORDER BY of the query's columns.
    sample: Vec<RecordBatch>,
    order: Option<Vec<(usize, SortOptions)>>,
    max_events: usize,
    events: Vec<serde_json::Map<String, serde_json::Value>>,
    // Hash maps (DataFusion's, hashbrown with foldhash): a broad control adds hundreds of
    // thousands of rows, and an ordered map's string comparisons per row were a visible share of
    // the report. Every list taken from them is sorted by count, then value.
    principals: FastMap<String, PrincipalAcc>,
    source_ips: FastMap<String, u64>,
    seconds: f64,
}

type FastMap<K, V> = datafusion::common::HashMap<K, V>;

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
    /// Runs a control's query once, reducing its rows as they stream: count, first/last seen,
    /// by principal, key and source IP, and its first `max_events` rows in its own order. When
    /// the query ends in an ORDER BY of its columns (they all do), the rows are taken unsorted
    /// and the first ones kept in a bounded top-k, so memory holds the sample and the distinct
    /// principals and IPs, however many rows match.
    async fn run(query: DataFrame, max_events: usize) -> Result<Self, QueryError> {
        let started = std::time::Instant::now();
        let columns: Vec<String> = query
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut m = Matches {
            columns,
            max_events,
            ..Default::default()
        };
        let (state, plan) = query.into_parts();
        let (input, mut top) = match TopK::for_plan(&plan, max_events) {
            Some((input, top)) => (input, Some(top)),
            None => (plan, None),
        };
        m.order = top.as_ref().map(|t| t.keys.clone());
        let mut stream = DataFrame::new(state, input).execute_stream().await?;
        let mut kept = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            m.add_rows(&batch)?;
            match top.as_mut() {
                Some(t) => t.push(batch)?,
                None if kept < max_events => {
                    let n = (max_events - kept).min(batch.num_rows());
                    kept += n;
                    m.sample.push(batch.slice(0, n));
                }
                None => {}
            }
        }
        if let Some(t) = top {
            m.sample.extend(t.into_batch());
        }
        m.seconds = started.elapsed().as_secs_f64();
        Ok(m)
    }

    /// Adds the matches of the same query over other rows (the next chunk of a shared scan).
    fn merge(&mut self, other: Matches) -> Result<(), QueryError> {
        self.count += other.count;
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (p, acc) in other.principals {
            let mine = self.principals.entry(p).or_default();
            mine.count += acc.count;
            for (k, t) in acc.keys {
                let at = mine.keys.entry(k).or_insert(t);
                *at = (*at).max(t);
            }
        }
        for (ip, n) in other.source_ips {
            *self.source_ips.entry(ip).or_default() += n;
        }
        self.seconds += other.seconds;
        let batches = std::mem::take(&mut self.sample)
            .into_iter()
            .chain(other.sample);
        match &self.order {
            Some(keys) => {
                let mut top = TopK {
                    limit: self.max_events,
                    keys: keys.clone(),
                    best: None,
                };
                for b in batches {
                    top.push(b)?;
                }
                self.sample.extend(top.into_batch());
            }
            None => {
                let mut kept = 0;
                for b in batches {
                    let n = (self.max_events - kept).min(b.num_rows());
                    if n > 0 {
                        self.sample.push(b.slice(0, n));
                        kept += n;
                    }
                }
            }
        }
        Ok(())
    }

    /// Turns the sample into the report's rows.
    fn finish(&mut self) -> Result<(), QueryError> {
        for b in std::mem::take(&mut self.sample) {
            self.add_sample(&b)?;
        }
        Ok(())
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

    /// Adds matching rows to the count, first/last seen, principals (with their temporary
    /// keys) and source IPs. Summary queries (a row per principal and day, say) weigh each row
    /// by its count column.
    fn add_rows(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let principal = utf8_column(batch, "principal")?;
        let key = utf8_column(batch, "accesskeyid")?;
        let ip = utf8_column(batch, "sourceipaddress")?;
        let weight = WEIGHT_COLUMNS
            .iter()
            .find_map(|w| batch.column_by_name(w))
            .map(|c| cast(c, &DataType::Int64))
            .transpose()?;
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
        let (first, last) = match times("eventtime") {
            Some(t) => (Some(t.clone()), Some(t)),
            None => (times("first_seen"), times("last_seen")),
        };
        let principal = principal.as_ref().map(|c| c.as_string::<i32>());
        let key = key.as_ref().map(|c| c.as_string::<i32>());
        let ip = ip.as_ref().map(|c| c.as_string::<i32>());
        let weight = weight.as_ref().map(|c| c.as_primitive::<Int64Type>());
        for i in 0..batch.num_rows() {
            self.count += 1;
            let w = weight.map_or(1, |c| {
                if c.is_valid(i) {
                    c.value(i).max(0) as u64
                } else {
                    0
                }
            });
            if let Some(t) = first.as_ref().filter(|t| t.is_valid(i)) {
                let v = t.value(i);
                self.first = Some(self.first.map_or(v, |f| f.min(v)));
            }
            if let Some(t) = last.as_ref().filter(|t| t.is_valid(i)) {
                let v = t.value(i);
                self.last = Some(self.last.map_or(v, |l| l.max(v)));
            }
            if let Some(p) = principal {
                let name = if p.is_valid(i) {
                    p.value(i)
                } else {
                    "(unknown)"
                };
                let acc = match self.principals.get_mut(name) {
                    Some(acc) => acc,
                    None => self.principals.entry(name.to_string()).or_default(),
                };
                acc.count += w;
                if let Some(k) = key
                    && k.is_valid(i)
                    && k.value(i).starts_with("ASIA")
                {
                    let t = last
                        .as_ref()
                        .filter(|t| t.is_valid(i))
                        .map_or(i64::MAX, |t| t.value(i));
                    match acc.keys.get_mut(k.value(i)) {
                        Some(at) => *at = (*at).max(t),
                        None => {
                            acc.keys.insert(k.value(i).to_string(), t);
                        }
                    }
                }
            }
            if let Some(a) = ip
                && a.is_valid(i)
            {
                match self.source_ips.get_mut(a.value(i)) {
                    Some(n) => *n += w,
                    None => {
                        self.source_ips.insert(a.value(i).to_string(), w);
                    }
                }
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
                    .keys()
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

/// The first `limit` rows of a stream in the order of an ORDER BY over its columns, kept as
/// the rows arrive (a bounded top-k), so the stream need not be sorted whole.
struct TopK {
    limit: usize,
    keys: Vec<(usize, SortOptions)>,
    best: Option<RecordBatch>,
}

impl TopK {
    /// For a plan that ends in an ORDER BY of its own columns (no LIMIT): the plan below the
    /// sort and the top-k that replaces it.
    fn for_plan(plan: &LogicalPlan, limit: usize) -> Option<(LogicalPlan, Self)> {
        let LogicalPlan::Sort(sort) = plan else {
            return None;
        };
        if sort.fetch.is_some() {
            return None;
        }
        let schema = sort.input.schema();
        let keys = sort
            .expr
            .iter()
            .map(|e| match &e.expr {
                Expr::Column(c) => schema.index_of_column(c).ok().map(|i| {
                    (
                        i,
                        SortOptions {
                            descending: !e.asc,
                            nulls_first: e.nulls_first,
                        },
                    )
                }),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some((
            sort.input.as_ref().clone(),
            Self {
                limit,
                keys,
                best: None,
            },
        ))
    }

    fn push(&mut self, batch: RecordBatch) -> Result<(), QueryError> {
        if self.limit == 0 {
            return Ok(());
        }
        let all = match self.best.take() {
            Some(best) => concat_batches(&batch.schema(), [&best, &batch])?,
            None => batch,
        };
        let columns: Vec<SortColumn> = self
            .keys
            .iter()
            .map(|(i, options)| SortColumn {
                values: all.column(*i).clone(),
                options: Some(*options),
            })
            .collect();
        let order = lexsort_to_indices(&columns, Some(self.limit))?;
        self.best = Some(take_record_batch(&all, &order)?);
        Ok(())
    }

    fn into_batch(self) -> Option<RecordBatch> {
        self.best
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

/// The origin of each temporary key seen in the findings: the first caller of the chain of STS
/// calls behind it, looked up as of the key's last use.
async fn origins(
    session: &Session,
    keys: &BTreeMap<&str, i64>,
) -> Result<HashMap<String, String>, QueryError> {
    let wants: Vec<credentials::Want> = keys
        .iter()
        .map(|(k, t)| match *t {
            i64::MAX => credentials::Want::anytime(*k),
            t => credentials::Want::used_at(*k, t),
        })
        .collect();
    let found = session.credentials().credentials(&wants).await?;
    Ok(found
        .into_iter()
        .filter_map(|(key, c)| {
            Some((key, format!("{} via {}", c.origin?, c.origin_call?)))
        })
        .collect())
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

/// The window's activity in one scan: events and errors per day, and the busiest principals
/// and source IPs.
async fn activity(
    session: &Session,
    window: Window,
) -> Result<(Vec<DayCount>, Vec<Count>, Vec<Count>), QueryError> {
    let sql = "SELECT day, principal, sourceipaddress, count(*) AS events, \
                      count(errorcode) AS errors, \
                      grouping(day) AS not_by_day, grouping(principal) AS not_by_principal \
               FROM (SELECT CAST(day AS VARCHAR) AS day, actor(useridentity) AS principal, \
                            sourceipaddress, errorcode \
                     FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until) \
               GROUP BY GROUPING SETS ((day), (principal), (sourceipaddress))";
    let mut days = BTreeMap::new();
    let mut principals = BTreeMap::new();
    let mut ips = BTreeMap::new();
    for b in rows(session, sql, Some(ParamValues::from(window.params()))).await? {
        let (Some(d), Some(p), Some(ip)) = (
            utf8_column(&b, "day")?,
            utf8_column(&b, "principal")?,
            utf8_column(&b, "sourceipaddress")?,
        ) else {
            continue;
        };
        let (d, p, ip) = (
            d.as_string::<i32>(),
            p.as_string::<i32>(),
            ip.as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            let n = int(&b, "events", i);
            if int(&b, "not_by_day", i) == 0 {
                days.insert(d.value(i).to_string(), (n, int(&b, "errors", i)));
            } else if int(&b, "not_by_principal", i) == 0 {
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
    let days = days
        .into_iter()
        .map(|(day, (events, errors))| DayCount {
            day,
            events,
            errors,
        })
        .collect();
    Ok((days, top(principals), top(ips)))
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
