//! Sigma rules as the saved queries of report pack `sigma`: each rule compiled by
//! `trailhouse-sigma` into a predicate, wrapped in the same query shape as the other packs'
//! controls (the window, the columns a finding shows, newest first), so that `detect`, `report
//! --pack sigma` and `run sigma/<rule>` run it like any control, in the report's shared scan.
//!
//! The bundled rules are SigmaHQ's CloudTrail rules (`queries/sigma/`), under the Detection Rule
//! License 1.1, which asks that what is derived from them credit their authors: each compiled
//! query keeps its rule's title, id, author, references and licence, and findings show them.

use std::path::Path;
use std::sync::Arc;

use crate::saved::{Control, SavedQuery};

/// The report pack the rules make.
pub const PACK: &str = "sigma";

/// The licence of the bundled rules.
pub const BUNDLED_LICENSE: &str = "DRL-1.1 (Detection Rule License, SigmaHQ)";

/// The columns a finding shows, as every pack's controls show them.
const COLUMNS: &str = "eventtime,
       eventname,
       eventsource,
       actor(useridentity) AS principal,
       useridentity.accesskeyid AS accesskeyid,
       sourceipaddress,
       useragent,
       awsregion AS region,
       recipientaccountid AS account,
       errorcode,
       eventid";

/// A rule the compiler refused, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refused {
    /// `sigma/<file stem>`.
    pub query: String,
    /// Where the rule came from (the file, or `bundled`).
    pub file: String,
    pub title: Option<String>,
    pub reason: String,
}

/// What compiling one rule file gave.
pub enum Outcome {
    Compiled {
        query: SavedQuery,
        warnings: Vec<String>,
    },
    Refused(Refused),
}

/// The query name of a rule file: `sigma/<file stem>`.
pub fn query_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{PACK}/{stem}")
}

/// Whether a path is a rule file (`.yml` or `.yaml`).
pub fn is_rule_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

/// Compiles a rule into the saved query `name` (`sigma/<stem>`); `license` is the rule's when it
/// has none of its own.
pub fn compile(name: &str, file: &str, text: &str, license: Option<&str>) -> Outcome {
    let compiled = match trailhouse_sigma::compile(text) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Refused(Refused {
                query: name.to_string(),
                file: file.to_string(),
                title: trailhouse_sigma::title(text).map(|t| one_line(&t)),
                reason: e.to_string(),
            });
        }
    };
    let mut info = compiled.info;
    if info.license.is_none() {
        info.license = license.map(str::to_string);
    }
    let id = name.strip_prefix(&format!("{PACK}/")).unwrap_or(name);
    let summary = one_line(&info.title);
    let sql = format!(
        "-- summary: {summary}\n-- control: {PACK} {id}\n-- Sigma rule {}{}, compiled by trailhouse\n\
         SELECT {COLUMNS}\nFROM cloudtrail\nWHERE eventtime >= $since AND eventtime < $until\n  \
         AND {}\nORDER BY eventtime DESC, eventid\n",
        one_line(info.id.as_deref().unwrap_or("(no id)")),
        info.author
            .as_deref()
            .map(|a| format!(" by {}", one_line(a)))
            .unwrap_or_default(),
        compiled.predicate,
    );
    Outcome::Compiled {
        query: SavedQuery {
            name: name.to_string(),
            summary,
            params: Vec::new(),
            controls: vec![Control {
                pack: PACK.to_string(),
                id: id.to_string(),
            }],
            security_hub: None,
            settings: Vec::new(),
            sql,
            rule: Some(Arc::new(info)),
            dir: None,
        },
        warnings: compiled.warnings,
    }
}

/// Text on one line (a title in a SQL comment, a cell).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_becomes_a_control_of_pack_sigma_with_its_attribution() {
        let text = "title: Bucket\n  deleted\nid: abc\nauthor: A. Person\nlevel: high\n\
            logsource: {product: aws, service: cloudtrail}\n\
            detection: {s: {eventName: DeleteBucket}, condition: s}\n";
        let Outcome::Compiled { query, warnings } =
            compile("sigma/bucket", "x.yml", text, Some(BUNDLED_LICENSE))
        else {
            panic!("compiles");
        };
        assert!(warnings.is_empty());
        assert_eq!(query.summary, "Bucket deleted");
        assert_eq!(
            query.controls,
            [Control {
                pack: "sigma".into(),
                id: "bucket".into()
            }]
        );
        let parsed = SavedQuery::parse(&query.name, &query.sql).expect("its SQL is a saved query");
        assert_eq!(parsed.summary, query.summary);
        assert_eq!(parsed.controls, query.controls);
        assert!(query.sql.contains(
            "AND (eventname IS NOT NULL AND eventname ILIKE 'DeleteBucket' ESCAPE '\\')"
        ));
        let rule = query.rule.expect("rule");
        assert_eq!(rule.level.as_deref(), Some("high"));
        assert_eq!(rule.license.as_deref(), Some(BUNDLED_LICENSE));
    }

    #[test]
    fn a_refused_rule_keeps_its_title_and_reason() {
        let text = "title: Words\nlogsource: {product: aws, service: cloudtrail}\n\
            detection: {k: [evil], condition: k}\n";
        let Outcome::Refused(r) = compile("sigma/words", "w.yml", text, None) else {
            panic!("refused");
        };
        assert_eq!(r.title.as_deref(), Some("Words"));
        assert!(r.reason.contains("keyword search"), "{}", r.reason);
    }
}
