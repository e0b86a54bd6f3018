//! A rule file: its attribution and metadata, its log source, and its detection as written.

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use crate::SigmaError;

/// What a rule says about itself: shown with every finding, and kept with the compiled query
/// (the Detection Rule License asks that derived work credit the rule's authors).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub references: Vec<String>,
    /// `attack.t1562.008`, `attack.defense-evasion`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub falsepositives: Vec<String>,
    /// The rule's own `license`, or the licence of the pack it came with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// A list of texts, or one text alone (rules write `falsepositives: Unknown`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl RuleInfo {
    /// The MITRE ATT&CK tags (`attack.…`), without their namespace.
    pub fn attack(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().filter_map(|t| t.strip_prefix("attack."))
    }
}

/// A parsed rule: its metadata and its `detection` section.
#[derive(Debug, Clone)]
pub struct Rule {
    pub info: RuleInfo,
    /// The search identifiers, in the order written, without `condition`.
    pub searches: Searches,
    /// The condition(s); several are ORed.
    pub conditions: Vec<String>,
}

#[derive(Deserialize)]
struct LogSource {
    product: Option<String>,
    service: Option<String>,
    category: Option<String>,
}

impl Rule {
    pub fn parse(text: &str) -> Result<Self, SigmaError> {
        let doc: Value =
            serde_norway::from_str(text).map_err(|e| SigmaError::Invalid(format!("YAML: {e}")))?;
        let Value::Mapping(map) = &doc else {
            return Err(SigmaError::Invalid("the document is not a mapping".into()));
        };
        if map.contains_key("correlation") {
            return Err(SigmaError::Unsupported(
                "correlation rules (event counts and sequences across events)".into(),
            ));
        }
        if map.contains_key("action") {
            return Err(SigmaError::Unsupported(
                "rule collections (`action: global`, `repeat`, `reset`)".into(),
            ));
        }
        let info: RuleInfo = serde_norway::from_value(doc.clone())
            .map_err(|e| SigmaError::Invalid(format!("metadata: {e}")))?;
        if info.title.trim().is_empty() {
            return Err(SigmaError::Invalid("`title` is empty".into()));
        }
        let logsource = map
            .get("logsource")
            .ok_or_else(|| SigmaError::Invalid("no `logsource`".into()))?;
        let logsource: LogSource = serde_norway::from_value(logsource.clone())
            .map_err(|e| SigmaError::Invalid(format!("logsource: {e}")))?;
        let product_ok = logsource
            .product
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("aws"));
        let service_ok = logsource
            .service
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("cloudtrail"));
        if !product_ok || !service_ok || logsource.category.is_some() {
            return Err(SigmaError::Unsupported(format!(
                "log source {} (trailhouse runs `product: aws`, `service: cloudtrail`)",
                [
                    ("product", &logsource.product),
                    ("service", &logsource.service),
                    ("category", &logsource.category),
                ]
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
                .collect::<Vec<_>>()
                .join(", ")
            )));
        }
        let detection = match map.get("detection") {
            Some(Value::Mapping(d)) => d,
            Some(_) => return Err(SigmaError::Invalid("`detection` is not a mapping".into())),
            None => return Err(SigmaError::Invalid("no `detection`".into())),
        };
        let (searches, conditions) = split_detection(detection)?;
        Ok(Self {
            info,
            searches,
            conditions,
        })
    }
}

/// A detection's search identifiers with their definitions, in the order written.
type Searches = Vec<(String, Value)>;

fn split_detection(detection: &Mapping) -> Result<(Searches, Vec<String>), SigmaError> {
    let mut searches = Vec::new();
    let mut conditions = Vec::new();
    for (k, v) in detection {
        let Some(name) = k.as_str() else {
            return Err(SigmaError::Invalid(format!(
                "detection key {} is not a name",
                yaml_text(k)
            )));
        };
        match name {
            "condition" => match v {
                Value::String(c) => conditions.push(c.clone()),
                Value::Sequence(list) => {
                    for c in list {
                        let c = c.as_str().ok_or_else(|| {
                            SigmaError::Invalid("a condition in the list is not text".into())
                        })?;
                        conditions.push(c.to_string());
                    }
                }
                _ => return Err(SigmaError::Invalid("`condition` is not text".into())),
            },
            "timeframe" => {
                return Err(SigmaError::Unsupported(
                    "`timeframe` (aggregations over time windows)".into(),
                ));
            }
            _ => searches.push((name.to_string(), v.clone())),
        }
    }
    if conditions.is_empty() {
        return Err(SigmaError::Invalid("`detection` has no `condition`".into()));
    }
    Ok((searches, conditions))
}

/// A YAML value as short text, for messages.
pub(crate) fn yaml_text(v: &Value) -> String {
    serde_norway::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "title: T\nid: r1\nlevel: high\ntags: [attack.t1562.008, attack.defense-evasion, cve.2024-1]\n\
        logsource: {product: aws, service: cloudtrail}\n\
        detection:\n  selection: {eventName: X}\n  condition: selection\n";

    #[test]
    fn metadata_and_detection_are_read() {
        let r = Rule::parse(RULE).expect("parses");
        assert_eq!(r.info.title, "T");
        assert_eq!(r.info.id.as_deref(), Some("r1"));
        assert_eq!(r.info.level.as_deref(), Some("high"));
        assert_eq!(
            r.info.attack().collect::<Vec<_>>(),
            ["t1562.008", "defense-evasion"]
        );
        assert_eq!(r.searches.len(), 1);
        assert_eq!(r.conditions, ["selection"]);
    }

    #[test]
    fn other_log_sources_and_unrunnable_shapes_are_refused_by_name() {
        let other = RULE.replace("service: cloudtrail", "service: guardduty");
        let e = Rule::parse(&other).expect_err("refused").to_string();
        assert!(e.contains("service: guardduty"), "{e}");
        let win = "title: W\nlogsource: {category: process_creation, product: windows}\n\
            detection: {s: {Image: x}, condition: s}\n";
        let e = Rule::parse(win).expect_err("refused").to_string();
        assert!(e.contains("product: windows"), "{e}");
        let timed = RULE.replace(
            "condition: selection",
            "condition: selection\n  timeframe: 5m",
        );
        let e = Rule::parse(&timed).expect_err("refused").to_string();
        assert!(e.contains("timeframe"), "{e}");
        let corr = "title: C\ncorrelation: {type: event_count}\n";
        assert!(
            Rule::parse(corr)
                .expect_err("refused")
                .to_string()
                .contains("correlation")
        );
        assert!(Rule::parse("{{ not yaml").is_err());
        let no_cond = RULE.replace("  condition: selection\n", "");
        assert!(
            Rule::parse(&no_cond)
                .expect_err("invalid")
                .to_string()
                .contains("no `condition`")
        );
    }
}
