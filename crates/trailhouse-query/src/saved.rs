//! Saved queries: one `.sql` file each under `queries/<pack>/<name>.sql`, runnable in any SQL tool,
//! with a comment header that declares what the query answers and its typed parameters:
//!
//! ```sql
//! -- summary: Who deleted a resource, newest first
//! -- param: resource string            -- bucket, instance id, ARN or a fragment of one
//! -- param: limit integer default 100
//! SELECT … WHERE … strpos(…, $resource) > 0 … LIMIT $limit
//! ```
//!
//! Parameters are DataFusion placeholders bound with `ParamValues`: a value is never formatted
//! into SQL text, so a value containing quotes or SQL is just a value. The queries of `queries/`
//! are compiled into the binary; `--queries DIR` adds a user's own.
//!
//! A query may also pin a DataFusion setting for itself alone, where the planner would choose
//! badly from what it can estimate (`-- setting: datafusion.optimizer.join_reordering = false`
//! keeps a join's build side where the SQL puts it: first).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::common::ScalarValue;

use crate::sigma;

/// Parameters every saved query takes and must use, bound from `--since` and `--until`
/// (unbounded when not given): `eventtime >= $since AND eventtime < $until`.
pub const WINDOW_PARAMS: [&str; 2] = ["since", "until"];

/// A time window, in microseconds since the epoch (`since` inclusive, `until` exclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    /// `$since` and `$until` as bound values; an open end is year 1 or year 9999, wider than
    /// any CloudTrail record.
    pub fn params(self) -> HashMap<String, ScalarValue> {
        let ts = |v: i64| ScalarValue::TimestampMicrosecond(Some(v), Some("UTC".into()));
        HashMap::from([
            (
                "since".to_string(),
                ts(self.since.unwrap_or(-62_135_596_800_000_000)),
            ),
            (
                "until".to_string(),
                ts(self.until.unwrap_or(253_402_300_799_000_000)),
            ),
        ])
    }
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/queries.rs"));
}

/// What went wrong with a saved query or its parameters.
#[derive(Debug, thiserror::Error)]
pub enum SavedQueryError {
    #[error("saved query `{name}`: {message}")]
    Definition { name: String, message: String },
    #[error(
        "no saved query `{name}`{} (list them with `trailhouse queries`)",
        nearest.as_ref().map(|n| format!(": did you mean `{n}`?")).unwrap_or_default()
    )]
    Unknown {
        name: String,
        /// The saved query whose name is closest, when one is close (a typo).
        nearest: Option<String>,
    },
    #[error("no report pack `{0}` (packs: {1})")]
    UnknownPack(String, String),
    #[error("`{0}` matches several saved queries: {1}")]
    Ambiguous(String, String),
    #[error("missing parameter `{name}` ({ty}) of `{query}`: pass --param {name}=VALUE")]
    Missing {
        query: String,
        name: String,
        ty: ParamType,
    },
    #[error("parameter `{name}` must be {ty}: `{value}` {why}")]
    Invalid {
        name: String,
        ty: ParamType,
        value: String,
        why: String,
    },
    #[error("`{query}` has no parameter `{name}` (it takes: {takes})")]
    NotAParameter {
        query: String,
        name: String,
        takes: String,
    },
    #[error("failed to read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Timestamp,
    Integer,
    Boolean,
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParamType::String => "a string",
            ParamType::Timestamp => {
                "a timestamp (2026-10-01, 2026-10-01T12:00:00Z, or 7d/12h/30m ago)"
            }
            ParamType::Integer => "an integer",
            ParamType::Boolean => "a boolean (true/false)",
        })
    }
}

impl ParamType {
    fn keyword(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Timestamp => "timestamp",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    /// Text of the default value; `None` means required.
    pub default: Option<String>,
    pub description: String,
}

/// A report control a query implements: `-- control: PACK ID` (e.g. `cis-v5.0 4.3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub pack: String,
    pub id: String,
}

/// One saved query.
#[derive(Debug, Clone)]
pub struct SavedQuery {
    /// `pack/name`.
    pub name: String,
    pub summary: String,
    pub params: Vec<Param>,
    /// The report controls it implements (none for investigation queries).
    pub controls: Vec<Control>,
    /// The AWS Security Hub control it corresponds to (`-- securityhub: CloudWatch.1`).
    pub security_hub: Option<String>,
    /// DataFusion settings (`-- setting: KEY = VALUE`) that hold while this query is planned
    /// and run, and for no other query.
    pub settings: Vec<(String, String)>,
    pub sql: String,
    /// The Sigma rule the query was compiled from (pack `sigma`).
    pub rule: Option<Arc<trailhouse_sigma::RuleInfo>>,
    /// The directory a user's query was loaded from (`--queries`, `--rules`); `None` when built in.
    pub dir: Option<std::path::PathBuf>,
}

impl SavedQuery {
    /// Parses a query file's text.
    pub fn parse(name: &str, text: &str) -> Result<Self, SavedQueryError> {
        let bad = |message: String| SavedQueryError::Definition {
            name: name.to_string(),
            message,
        };
        let mut summary = None;
        let mut params: Vec<Param> = Vec::new();
        let mut controls = Vec::new();
        let mut security_hub = None;
        let mut settings = Vec::new();
        for line in text.lines() {
            let Some(comment) = line.trim().strip_prefix("--") else {
                if line.trim().is_empty() {
                    continue;
                }
                break;
            };
            let comment = comment.trim();
            if let Some(s) = comment.strip_prefix("summary:") {
                summary = Some(s.trim().to_string());
            } else if let Some(c) = comment.strip_prefix("control:") {
                match c.split_whitespace().collect::<Vec<_>>().as_slice() {
                    [pack, id] => controls.push(Control {
                        pack: pack.to_string(),
                        id: id.to_string(),
                    }),
                    _ => return Err(bad(format!("cannot read `-- control:{c}`: PACK ID"))),
                }
            } else if let Some(c) = comment.strip_prefix("securityhub:") {
                security_hub = Some(c.trim().to_string());
            } else if let Some(c) = comment.strip_prefix("setting:") {
                settings.push(setting(c).map_err(bad)?);
            } else if let Some(p) = comment.strip_prefix("param:") {
                let (decl, description) = match p.split_once("--") {
                    Some((d, desc)) => (d.trim(), desc.trim().to_string()),
                    None => (p.trim(), String::new()),
                };
                let words: Vec<&str> = decl.split_whitespace().collect();
                let (name_, ty, default) = match words.as_slice() {
                    [n, t] => (*n, *t, None),
                    [n, t, "default", d @ ..] if !d.is_empty() => (*n, *t, Some(d.join(" "))),
                    _ => {
                        return Err(bad(format!(
                            "cannot read `-- param:{p}`: NAME TYPE [default VALUE]"
                        )));
                    }
                };
                let ty = match ty {
                    "string" => ParamType::String,
                    "timestamp" => ParamType::Timestamp,
                    "integer" => ParamType::Integer,
                    "boolean" => ParamType::Boolean,
                    other => return Err(bad(format!("unknown parameter type `{other}`"))),
                };
                if !name_
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err(bad(format!(
                        "parameter name `{name_}` must be lower-case letters, digits, _"
                    )));
                }
                if params.iter().any(|q| q.name == name_) || matches!(name_, "since" | "until") {
                    return Err(bad(format!(
                        "parameter `{name_}` is declared twice or reserved"
                    )));
                }
                if let Some(d) = &default {
                    convert(name_, ty, d, Utc::now())?;
                }
                params.push(Param {
                    name: name_.to_string(),
                    ty,
                    default,
                    description,
                });
            }
        }
        let summary = summary.ok_or_else(|| bad("no `-- summary:` line".into()))?;
        Ok(Self {
            name: name.to_string(),
            summary,
            params,
            controls,
            security_hub,
            settings,
            sql: text.to_string(),
            rule: None,
            dir: None,
        })
    }

    /// Binds `given` (`name=value` pairs) to typed values, with the declared defaults, and the
    /// window to `$since`/`$until`.
    pub fn bind(
        &self,
        given: &[(String, String)],
        window: Window,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, ScalarValue>, SavedQueryError> {
        for (name, _) in given {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(SavedQueryError::NotAParameter {
                    query: self.name.clone(),
                    name: name.clone(),
                    takes: if self.params.is_empty() {
                        "no parameters".into()
                    } else {
                        self.params
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
            }
        }
        let mut out = window.params();
        for p in &self.params {
            let value = given
                .iter()
                .rev()
                .find(|(n, _)| n == &p.name)
                .map(|(_, v)| v.as_str())
                .or(p.default.as_deref());
            let Some(value) = value else {
                return Err(SavedQueryError::Missing {
                    query: self.name.clone(),
                    name: p.name.clone(),
                    ty: p.ty,
                });
            };
            out.insert(p.name.clone(), convert(&p.name, p.ty, value, now)?);
        }
        Ok(out)
    }

    /// One line per parameter, for listings.
    pub fn describe_params(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|p| {
                let mut s = format!("{} {}", p.name, p.ty.keyword());
                match &p.default {
                    Some(d) => s.push_str(&format!(" (default {d})")),
                    None => s.push_str(" (required)"),
                }
                if !p.description.is_empty() {
                    s.push_str(&format!(": {}", p.description));
                }
                s
            })
            .collect()
    }
}

/// `KEY = VALUE` of a `-- setting:` line: a DataFusion setting that exists, with a value it
/// takes.
fn setting(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("cannot read `-- setting:{text}`: KEY = VALUE"));
    };
    let (key, value) = (key.trim(), value.trim());
    if !key.starts_with("datafusion.") {
        return Err(format!(
            "`-- setting:{text}`: only DataFusion's settings (datafusion.…) can be set"
        ));
    }
    let mut options = datafusion::config::ConfigOptions::new();
    if !options.entries().iter().any(|entry| entry.key == key) {
        return Err(format!(
            "`-- setting:{text}`: DataFusion has no setting `{key}` \
             (they are listed by `SELECT name FROM information_schema.df_settings`)"
        ));
    }
    options
        .set(key, value)
        .map_err(|e| format!("`-- setting:{text}`: `{value}` is not a value of `{key}`: {e}"))?;
    Ok((key.to_string(), value.to_string()))
}

fn convert(
    name: &str,
    ty: ParamType,
    value: &str,
    now: DateTime<Utc>,
) -> Result<ScalarValue, SavedQueryError> {
    let invalid = |why: &str| SavedQueryError::Invalid {
        name: name.to_string(),
        ty,
        value: value.to_string(),
        why: why.to_string(),
    };
    Ok(match ty {
        ParamType::String => ScalarValue::Utf8(Some(value.to_string())),
        ParamType::Integer => ScalarValue::Int64(Some(
            value
                .trim()
                .parse()
                .map_err(|_| invalid("is not a whole number"))?,
        )),
        ParamType::Boolean => {
            ScalarValue::Boolean(Some(match value.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => return Err(invalid("is not true or false")),
            }))
        }
        ParamType::Timestamp => ScalarValue::TimestampMicrosecond(
            Some(
                parse_time(value, now)
                    .ok_or_else(|| invalid("is not a date, a date-time or a duration ago"))?,
            ),
            Some("UTC".into()),
        ),
    })
}

/// A point in time: `2026-10-01` (midnight UTC), RFC 3339, a date-time without a zone (UTC, as
/// CloudTrail writes `eventTime`: `2026-10-01T13:05:00`, `2026-10-01 13:05`, fractions allowed),
/// or a duration before `now` (`90d`, `12h`, `30m`, `2w`, optionally with a leading `-`).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Option<i64> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc().timestamp_micros());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    let rel = t.strip_prefix('-').unwrap_or(t);
    let unit = rel.chars().last()?;
    let n: i64 = rel[..rel.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86_400,
        'w' => n * 7 * 86_400,
        _ => return None,
    };
    Some(now.timestamp_micros() - secs.checked_mul(1_000_000)?)
}

/// The saved queries available to a run.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    queries: BTreeMap<String, SavedQuery>,
    /// Sigma rules that did not compile, by query name.
    refused: BTreeMap<String, sigma::Refused>,
    /// What compiled rules warn of: (query, warning).
    warnings: Vec<(String, String)>,
}

impl Catalog {
    /// The queries compiled into the binary.
    pub fn builtin() -> Result<Self, SavedQueryError> {
        let mut c = Catalog::default();
        for (name, text) in builtin::BUILTIN {
            c.insert(SavedQuery::parse(name, text)?);
        }
        for (path, text) in builtin::BUILTIN_RULES {
            let name = sigma::query_name(Path::new(path));
            c.add_rule(&name, "bundled", text, Some(sigma::BUNDLED_LICENSE));
        }
        Ok(c)
    }

    /// Compiles a Sigma rule into query `name`, replacing one of that name; a rule that does not
    /// compile is listed in [`Catalog::refused`] instead.
    fn add_rule(&mut self, name: &str, file: &str, text: &str, license: Option<&str>) {
        self.warnings.retain(|(q, _)| q != name);
        match sigma::compile(name, file, text, license) {
            sigma::Outcome::Compiled { query, warnings } => {
                self.refused.remove(name);
                self.warnings
                    .extend(warnings.into_iter().map(|w| (name.to_string(), w)));
                self.insert(query);
            }
            sigma::Outcome::Refused(r) => {
                self.queries.remove(name);
                self.refused.insert(name.to_string(), r);
            }
        }
    }

    /// The Sigma rules that did not compile, with the reason.
    pub fn refused(&self) -> impl Iterator<Item = &sigma::Refused> {
        self.refused.values()
    }

    /// What the compiled rules warn of, as (query, warning).
    pub fn warnings(&self) -> &[(String, String)] {
        &self.warnings
    }

    /// Adds every `.sql` file under `dir` (`dir/<pack>/<name>.sql`) and every Sigma rule
    /// (`.yml`, `.yaml`: query `sigma/<file stem>`); a user's query of the same name replaces
    /// the built-in one. Two rule files of the same stem are refused: one would hide the other.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), SavedQueryError> {
        let mut rules: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let io = |source| SavedQueryError::Io {
                path: d.display().to_string(),
                source,
            };
            for entry in std::fs::read_dir(&d).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "sql") {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| SavedQueryError::Io {
                            path: path.display().to_string(),
                            source,
                        })?;
                    let rel = path.strip_prefix(dir).unwrap_or(&path).with_extension("");
                    let name = rel.to_string_lossy().replace('\\', "/");
                    let mut q = SavedQuery::parse(&name, &text)?;
                    q.dir = Some(dir.to_path_buf());
                    self.insert(q);
                } else if sigma::is_rule_file(&path) {
                    let name = sigma::query_name(&path);
                    if let Some(other) = rules.insert(name.clone(), path.clone()) {
                        return Err(SavedQueryError::Definition {
                            name,
                            message: format!(
                                "two rule files have that name: {} and {}",
                                other.display(),
                                path.display()
                            ),
                        });
                    }
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| SavedQueryError::Io {
                            path: path.display().to_string(),
                            source,
                        })?;
                    self.add_rule(&name, &path.display().to_string(), &text, None);
                    if let Some(q) = self.queries.get_mut(&name) {
                        q.dir = Some(dir.to_path_buf());
                    }
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, q: SavedQuery) {
        self.queries.insert(q.name.clone(), q);
    }

    /// Keeps the queries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&SavedQuery) -> bool) {
        self.queries.retain(|_, q| keep(q));
    }

    pub fn iter(&self) -> impl Iterator<Item = &SavedQuery> {
        self.queries.values()
    }

    /// The report packs the queries declare (`-- control: PACK ID`), sorted.
    pub fn packs(&self) -> Vec<String> {
        let mut packs: Vec<String> = self
            .iter()
            .flat_map(|q| q.controls.iter().map(|c| c.pack.clone()))
            .collect();
        packs.sort();
        packs.dedup();
        packs
    }

    /// The controls of a pack with their queries, in control order (4.2 before 4.10). A pack is
    /// named as declared (`cis-v5.0`) or without a trailing `.0` (`cis-v5`).
    pub fn pack(&self, name: &str) -> Result<Vec<(&Control, &SavedQuery)>, SavedQueryError> {
        let packs = self.packs();
        let full = if packs.iter().any(|p| p == name) {
            name.to_string()
        } else if packs.iter().any(|p| *p == format!("{name}.0")) {
            format!("{name}.0")
        } else {
            return Err(SavedQueryError::UnknownPack(
                name.to_string(),
                packs.join(", "),
            ));
        };
        let mut controls: Vec<(&Control, &SavedQuery)> = self
            .iter()
            .flat_map(|q| q.controls.iter().map(move |c| (c, q)))
            .filter(|(c, _)| c.pack == full)
            .collect();
        controls.sort_by(|a, b| {
            control_order(&a.0.id)
                .cmp(&control_order(&b.0.id))
                .then_with(|| a.1.name.cmp(&b.1.name))
        });
        Ok(controls)
    }

    /// Finds a query by `pack/name`, or by `name` alone when only one pack has it.
    pub fn get(&self, name: &str) -> Result<&SavedQuery, SavedQueryError> {
        if let Some(q) = self.queries.get(name) {
            return Ok(q);
        }
        let suffix = format!("/{name}");
        let found: Vec<&SavedQuery> = self
            .queries
            .values()
            .filter(|q| q.name.ends_with(&suffix))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(SavedQueryError::Unknown {
                name: name.to_string(),
                nearest: self.nearest(name),
            }),
            many => Err(SavedQueryError::Ambiguous(
                name.to_string(),
                many.iter()
                    .map(|q| q.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }
}

impl Catalog {
    /// The name (as `name` was written: with its pack or without) of the saved query closest to
    /// `name` by edits, when it is a few edits away.
    fn nearest(&self, name: &str) -> Option<String> {
        let candidates = self.queries.keys().map(|full| {
            if name.contains('/') {
                full.as_str()
            } else {
                full.rsplit('/').next().unwrap_or(full)
            }
        });
        let most = (name.chars().count() / 3).max(2);
        candidates
            .map(|c| (strsim::levenshtein(name, c), c))
            .filter(|(edits, _)| *edits <= most)
            .min()
            .map(|(_, c)| c.to_string())
    }
}

/// Sort key of a control id: numeric parts as numbers (`4.10` after `4.9`), others as text.
fn control_order(id: &str) -> Vec<(u64, String)> {
    id.split('.')
        .map(|p| match p.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, p.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .expect("t")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_unknown_name_a_typo_away_from_a_saved_query_is_told_which() {
        let catalog = Catalog::builtin().expect("catalog");
        let nearest = |name: &str| {
            let e = catalog.get(name).map(|q| &q.name).expect_err(name);
            let text = e.to_string();
            let SavedQueryError::Unknown { nearest, .. } = e else {
                panic!("{name}: {text}");
            };
            (nearest, text)
        };
        let (found, text) = nearest("who-delete");
        assert_eq!(found.as_deref(), Some("who-deleted"));
        assert!(text.contains("did you mean `who-deleted`?"), "{text}");
        assert_eq!(
            nearest("investigate/who-delted").0.as_deref(),
            Some("investigate/who-deleted"),
            "written with its pack: suggested with it"
        );
        assert_eq!(nearest("acess-key").0.as_deref(), Some("access-key"));
        let (found, text) = nearest("lateral-movement");
        assert_eq!(found, None, "nothing close: no guess");
        assert!(!text.contains("did you mean"), "{text}");
    }

    const Q: &str = "-- summary: test query\n-- param: resource string -- a name\n-- param: limit integer default 10\n-- param: since_x timestamp default 7d\nSELECT $resource, $limit, $since_x";

    #[test]
    fn header_and_binding() {
        let q = SavedQuery::parse("p/q", Q).expect("parse");
        assert_eq!(q.summary, "test query");
        assert_eq!(q.describe_params()[0], "resource string (required): a name");
        let window = Window {
            since: Some(5),
            until: None,
        };
        let v = q
            .bind(
                &[("resource".into(), "it's'; DROP TABLE x; --".into())],
                window,
                now(),
            )
            .expect("bind");
        assert_eq!(
            v["since"],
            ScalarValue::TimestampMicrosecond(Some(5), Some("UTC".into()))
        );
        assert_eq!(
            v["resource"],
            ScalarValue::Utf8(Some("it's'; DROP TABLE x; --".into()))
        );
        assert_eq!(v["limit"], ScalarValue::Int64(Some(10)));
        let week_ago = now().timestamp_micros() - 7 * 86_400 * 1_000_000;
        assert_eq!(
            v["since_x"],
            ScalarValue::TimestampMicrosecond(Some(week_ago), Some("UTC".into()))
        );
    }

    #[test]
    fn clear_errors() {
        let q = SavedQuery::parse("p/q", Q).expect("parse");
        let e = q.bind(&[], Window::default(), now()).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "missing parameter `resource` (a string) of `p/q`: pass --param resource=VALUE"
        );
        let e = q
            .bind(
                &[
                    ("resource".into(), "x".into()),
                    ("limit".into(), "ten".into()),
                ],
                Window::default(),
                now(),
            )
            .expect_err("ill-typed");
        assert_eq!(
            e.to_string(),
            "parameter `limit` must be an integer: `ten` is not a whole number"
        );
        let e = q
            .bind(
                &[("resource".into(), "x".into()), ("nope".into(), "1".into())],
                Window::default(),
                now(),
            )
            .expect_err("unknown");
        assert!(e.to_string().contains("has no parameter `nope`"), "{e}");
        assert!(
            SavedQuery::parse("p/q", "SELECT 1").is_err(),
            "a summary is required"
        );
        assert!(SavedQuery::parse("p/q", "-- summary: x\n-- param: a float\nSELECT 1").is_err());
    }

    #[test]
    fn settings_are_datafusions_own_with_values_they_take() {
        let q = SavedQuery::parse(
            "p/q",
            "-- summary: x\n-- setting: datafusion.optimizer.join_reordering = false\nSELECT 1",
        )
        .expect("parse");
        assert_eq!(
            q.settings,
            [(
                "datafusion.optimizer.join_reordering".to_string(),
                "false".to_string()
            )]
        );
        let err = |header: &str| {
            SavedQuery::parse("p/q", &format!("-- summary: x\n{header}\nSELECT 1"))
                .expect_err(header)
                .to_string()
        };
        let e = err("-- setting: datafusion.optimizer.join_reordering");
        assert!(e.starts_with("saved query `p/q`: cannot read"), "{e}");
        assert!(e.contains("KEY = VALUE"), "{e}");
        let e = err("-- setting: datafusion.optimizer.no_such_thing = 1");
        assert!(
            e.contains("DataFusion has no setting `datafusion.optimizer.no_such_thing`"),
            "{e}"
        );
        let e = err("-- setting: datafusion.optimizer.join_reordering = sometimes");
        assert!(
            e.contains("`sometimes` is not a value of `datafusion.optimizer.join_reordering`"),
            "{e}"
        );
        let e = err("-- setting: trailhouse.memory = 1");
        assert!(e.contains("only DataFusion's settings"), "{e}");
    }

    #[test]
    fn times() {
        let n = now();
        assert_eq!(
            parse_time("2026-10-01", n),
            Some(
                DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z")
                    .expect("t")
                    .timestamp_micros()
            )
        );
        assert_eq!(
            parse_time("90m", n),
            Some(n.timestamp_micros() - 90 * 60 * 1_000_000)
        );
        assert_eq!(parse_time("-2d", n), parse_time("48h", n));
        assert_eq!(parse_time("yesterday", n), None);
        let utc = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("t")
                .timestamp_micros()
        };
        assert_eq!(
            parse_time("2026-10-22T23:59:56", n),
            Some(utc("2026-10-22T23:59:56Z"))
        );
        assert_eq!(
            parse_time("2026-10-22 23:59:56.250", n),
            Some(utc("2026-10-22T23:59:56.250Z"))
        );
        assert_eq!(
            parse_time("2026-10-22T23:59", n),
            Some(utc("2026-10-22T23:59:00Z"))
        );
        assert_eq!(
            parse_time("2026-10-22T09:00:00+02:00", n),
            Some(utc("2026-10-22T07:00:00Z"))
        );
        assert_eq!(parse_time("2026-10-22T25:00:00", n), None);
    }
}
