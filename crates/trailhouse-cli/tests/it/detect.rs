//! Sigma detections end to end: `detect` runs the bundled rules as a report pack, takes a user's
//! rules and lists what it refuses; and a differential test: every bundled rule, evaluated by a
//! small reference matcher written here from the Sigma specification (it shares no code with
//! the compiler), selects the same records of the lake as `detect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

fn rule_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("queries/sigma"))
        .expect("queries/sigma")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

/// A lake of the corpus, the sample trail and every rule's fixture events.
fn detection_lake(dir: &Path) -> PathBuf {
    let fixtures = dir.join("fixtures.ndjson");
    let mut text = String::new();
    for rule in rule_files() {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(rule.with_extension("test.json")).expect("fixture"),
        )
        .expect("fixture json");
        for e in spec["events"].as_array().expect("events") {
            text.push_str(&format!("{e}\n"));
        }
    }
    std::fs::write(&fixtures, text).expect("write");
    let lake = dir.join("lake");
    let (run, _) = ingest_json(
        &lake,
        &[&corpus_dir(), &repo_root().join("sample-logs"), &fixtures],
        &[],
    );
    assert!(matches!(run.code, Some(0 | 1)), "{}", run.stderr);
    lake
}

const WINDOW: [&str; 4] = ["--since", "2000-01-01", "--until", "2100-01-01"];

fn detect_json(lake: &Path, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["detect", "--format", "json", "--max-events", "100000"];
    args.extend(WINDOW);
    args.extend(extra);
    let r = trailhouse(lake, &args);
    let doc = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r, doc)
}

#[test]
fn detect_runs_the_bundled_rules_with_their_attribution_and_agrees_with_a_reference_matcher() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = detection_lake(dir.path());
    let (r, doc) = detect_json(&lake, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let controls = doc["controls"].as_array().expect("controls");
    assert_eq!(controls.len(), 57, "every bundled rule runs");
    assert!(
        doc.get("refused_rules").is_none(),
        "{}",
        doc["refused_rules"]
    );
    assert_eq!(doc["packs"], serde_json::json!(["sigma"]));
    let bucket = controls
        .iter()
        .find(|c| c["id"] == "aws_cloudtrail_bucket_deleted")
        .expect("bucket rule");
    assert_eq!(bucket["rule"]["level"], "medium");
    assert_eq!(bucket["rule"]["id"], "39c9f26d-6e3b-4dbb-9c7a-4154b0281112");
    assert!(
        bucket["rule"]["license"]
            .as_str()
            .is_some_and(|l| l.starts_with("DRL-1.1"))
    );
    assert!(bucket["count"].as_u64().is_some_and(|n| n >= 3));

    // The reference matcher over the records as the lake holds them.
    let records: Vec<Value> = export_sorted(&lake)
        .iter()
        .map(|l| serde_json::from_str(l).expect("exported record"))
        .collect();
    assert!(records.len() > 1000, "{}", records.len());
    let mut disagreements = Vec::new();
    let mut matched_any = 0;
    for file in rule_files() {
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("stem");
        let rule: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&file).expect("rule")).expect("yaml");
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        for rec in &records {
            if reference::matches(&rule["detection"], rec) {
                *want.entry(event_id(rec)).or_default() += 1;
            }
        }
        let control = controls
            .iter()
            .find(|c| c["id"] == stem)
            .unwrap_or_else(|| panic!("no control {stem}"));
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for e in control["events"].as_array().expect("events") {
            *got.entry(e["eventid"].as_str().unwrap_or("(none)").to_string())
                .or_default() += 1;
        }
        assert_eq!(
            control["count"].as_u64(),
            Some(got.values().sum::<usize>() as u64)
        );
        if !want.is_empty() {
            matched_any += 1;
        }
        if want != got {
            disagreements.push(format!("{stem}: reference {want:?}, detect {got:?}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert_eq!(matched_any, 57, "every rule's fixtures give it matches");

    // For cron: findings are exit status 1 with --fail-on-findings.
    let (r, _) = detect_json(&lake, &["--fail-on-findings"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
}

/// A record's event id as the table reads it (the key in any case).
fn event_id(rec: &Value) -> String {
    let mut ids = Vec::new();
    reference::values(rec, &["eventID"], &mut ids);
    ids.into_iter().next().unwrap_or_else(|| "(none)".into())
}

#[test]
fn users_add_and_replace_rules_and_see_what_is_refused_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("events.ndjson");
    let events = [
        event("e-1", "2026-11-02T08:00:00Z", "DeleteBucket", "us-east-1"),
        event("e-2", "2026-11-02T09:00:00Z", "PutBucketAcl", "eu-west-1"),
    ];
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&src, text).expect("write");
    let lake = dir.path().join("lake");
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("team")).expect("mkdir");
    let rule = |title: &str, level: &str, detection: &str| {
        format!(
            "title: {title}\nid: 00000000-0000-0000-0000-00000000000{}\nlevel: {level}\n\
             tags: [attack.t1098]\nlogsource: {{product: aws, service: cloudtrail}}\n\
             detection:\n{detection}",
            title.len() % 10
        )
    };
    std::fs::write(
        rules.join("team/acl_changes.yml"),
        rule(
            "ACL changed",
            "high",
            "  sel: {eventName|startswith: putbucket}\n  condition: sel\n",
        ),
    )
    .expect("write");
    // A rule of a bundled rule's name replaces it.
    std::fs::write(
        rules.join("aws_cloudtrail_bucket_deleted.yml"),
        rule(
            "Bucket deleted in Europe",
            "low",
            "  sel: {eventName: DeleteBucket, awsRegion: eu-*}\n  condition: sel\n",
        ),
    )
    .expect("write");
    std::fs::write(
        rules.join("keywords.yml"),
        rule("Words", "low", "  k: [evil]\n  condition: k\n"),
    )
    .expect("write");
    let rules_arg = rules.to_str().expect("utf-8");

    let list = trailhouse(&lake, &["detect", "--rules", rules_arg, "--list"]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    assert!(
        list.stdout.contains("58 rules run; 1 refused"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("refused  sigma/keywords (")
            && list.stdout.contains("keyword search over the whole record"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout
            .contains("warning  sigma/aws_delete_saml_provider: field `status`"),
        "{}",
        list.stdout
    );

    let (r, doc) = detect_json(&lake, &["--rules", rules_arg, "--min-level", "low"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "rule not run: sigma/keywords ({}): not supported: keyword search",
            rules.join("keywords.yml").display()
        )),
        "{}",
        r.stderr
    );
    let by_id = |id: &str| {
        doc["controls"]
            .as_array()
            .expect("controls")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id("acl_changes")["count"], 1, "{doc}");
    assert_eq!(by_id("acl_changes")["events"][0]["eventid"], "e-2");
    // The command that lists a finding's events finds the user's rule.
    let command = by_id("acl_changes")["command"]
        .as_str()
        .expect("command")
        .to_string();
    assert!(
        command.contains(&format!("run sigma/acl_changes --queries {rules_arg} ")),
        "{command}"
    );
    let words: Vec<&str> = command.split_whitespace().collect();
    let again = trailhouse(&lake, &[&words[3..], &["--format", "json"]].concat());
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.contains("\"e-2\""), "{}", again.stdout);
    assert_eq!(by_id("aws_cloudtrail_bucket_deleted")["count"], 0);
    assert_eq!(
        by_id("aws_cloudtrail_bucket_deleted")["title"],
        "Bucket deleted in Europe"
    );
    assert_eq!(doc["refused_rules"][0]["query"], "sigma/keywords");

    // Levels filter the rules; Markdown (the default) shows level and ATT&CK.
    let high = trailhouse(
        &lake,
        &[
            "detect",
            "--rules",
            rules_arg,
            "--min-level",
            "high",
            "--since",
            "2000-01-01",
        ],
    );
    assert_eq!(high.code, Some(0), "{}", high.stderr);
    assert!(
        high.stdout.contains("acl\\_changes (high)"),
        "{}",
        high.stdout
    );
    assert!(high.stdout.contains("ATT\\&CK t1098"), "{}", high.stdout);
    assert!(
        high.stdout.contains("| `sigma/acl_changes` |"),
        "{}",
        high.stdout
    );
    assert!(!high.stdout.contains("aws\\_cloudtrail\\_bucket\\_deleted"));

    let html = trailhouse(
        &lake,
        &[
            "detect",
            "--rules",
            rules_arg,
            "--since",
            "2000-01-01",
            "--format",
            "html",
        ],
    );
    assert_eq!(html.code, Some(0), "{}", html.stderr);
    assert!(
        html.stdout.contains("level high · ATT&amp;CK t1098"),
        "{}",
        html.stdout
    );

    let bad = trailhouse(&lake, &["detect", "--rules", "/no/such/dir"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("/no/such/dir"), "{}", bad.stderr);
}

/// Sigma's semantics over a raw CloudTrail record, written from the specification alone.
mod reference {
    use serde_json::Value;
    use serde_norway::Value as Yaml;

    pub fn matches(detection: &Yaml, record: &Value) -> bool {
        let map = detection.as_mapping().expect("detection");
        let searches: Vec<(String, &Yaml)> = map
            .iter()
            .filter_map(|(k, v)| {
                let k = k.as_str()?;
                (k != "condition").then(|| (k.to_string(), v))
            })
            .collect();
        let condition = detection["condition"].as_str().expect("one condition");
        let words: Vec<String> = condition
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut at = 0;
        let result = or(&words, &mut at, &searches, record);
        assert_eq!(at, words.len(), "condition {condition}");
        result
    }

    type Searches<'a> = [(String, &'a Yaml)];

    fn or(w: &[String], at: &mut usize, s: &Searches, r: &Value) -> bool {
        let mut v = and(w, at, s, r);
        while w.get(*at).is_some_and(|t| t == "or") {
            *at += 1;
            let rhs = and(w, at, s, r);
            v = v || rhs;
        }
        v
    }

    fn and(w: &[String], at: &mut usize, s: &Searches, r: &Value) -> bool {
        let mut v = not(w, at, s, r);
        while w.get(*at).is_some_and(|t| t == "and") {
            *at += 1;
            let rhs = not(w, at, s, r);
            v = v && rhs;
        }
        v
    }

    fn not(w: &[String], at: &mut usize, s: &Searches, r: &Value) -> bool {
        if w[*at] == "not" {
            *at += 1;
            return !not(w, at, s, r);
        }
        if w[*at] == "(" {
            *at += 1;
            let v = or(w, at, s, r);
            assert_eq!(w[*at], ")");
            *at += 1;
            return v;
        }
        if w.get(*at + 1).is_some_and(|t| t == "of") {
            let all = w[*at] == "all";
            let pattern = &w[*at + 2];
            *at += 3;
            let chosen = s.iter().filter(|(name, _)| {
                if pattern == "them" {
                    !name.starts_with('_')
                } else {
                    let prefix = pattern.trim_end_matches('*');
                    if pattern.ends_with('*') {
                        name.starts_with(prefix)
                    } else {
                        name == pattern
                    }
                }
            });
            let results: Vec<bool> = chosen.map(|(_, y)| search(y, r)).collect();
            assert!(!results.is_empty(), "no search matches {pattern}");
            return if all {
                results.iter().all(|b| *b)
            } else {
                results.iter().any(|b| *b)
            };
        }
        let name = &w[*at];
        *at += 1;
        let (_, y) = s
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no search {name}"));
        search(y, r)
    }

    fn search(y: &Yaml, r: &Value) -> bool {
        match y {
            Yaml::Sequence(maps) => maps.iter().any(|m| search(m, r)),
            Yaml::Mapping(m) => m.iter().all(|(k, v)| field(k.as_str().expect("key"), v, r)),
            other => panic!("the reference has no keyword search: {other:?}"),
        }
    }

    /// The texts at a dotted path of the record: keys in any case, arrays element by element,
    /// objects as their JSON, null as nothing.
    pub fn values(r: &Value, path: &[&str], out: &mut Vec<String>) {
        match r {
            Value::Array(items) => items.iter().for_each(|i| values(i, path, out)),
            Value::Null => {}
            Value::Object(map) if !path.is_empty() => {
                for (k, v) in map {
                    if k.to_lowercase() == path[0].to_lowercase() {
                        values(v, &path[1..], out);
                    }
                }
            }
            _ if !path.is_empty() => {}
            Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }

    fn field(key: &str, v: &Yaml, r: &Value) -> bool {
        let mut parts = key.split('|');
        let name = parts.next().expect("name");
        let mods: Vec<&str> = parts.collect();
        let path: Vec<&str> = name.split('.').collect();
        let mut found = Vec::new();
        values(r, &path, &mut found);
        let wanted: Vec<&Yaml> = match v {
            Yaml::Sequence(s) => s.iter().collect(),
            one => vec![one],
        };
        let test = |want: &Yaml| -> bool {
            if want.is_null() {
                return found.is_empty();
            }
            let text = match want {
                Yaml::String(s) => s.clone(),
                Yaml::Bool(b) => b.to_string(),
                Yaml::Number(n) => n.to_string(),
                other => panic!("value {other:?}"),
            };
            if mods.contains(&"re") {
                let re = regex::Regex::new(&text).expect("regex");
                return found.iter().any(|f| re.is_match(f));
            }
            if mods.contains(&"fieldref") {
                let mut other = Vec::new();
                let p: Vec<&str> = text.split('.').collect();
                values(r, &p, &mut other);
                return match other.first() {
                    Some(o) => found.iter().any(|f| f.to_lowercase() == o.to_lowercase()),
                    None => false,
                };
            }
            let mut pattern = glob(&text);
            if mods.contains(&"contains") || mods.contains(&"endswith") {
                pattern.insert(0, Glob::Any);
            }
            if mods.contains(&"contains") || mods.contains(&"startswith") {
                pattern.push(Glob::Any);
            }
            for m in &mods {
                assert!(
                    ["contains", "startswith", "endswith", "all"].contains(m),
                    "the reference has no modifier {m}"
                );
            }
            found.iter().any(|f| {
                let f: Vec<char> = f.to_lowercase().chars().collect();
                glob_match(&pattern, &f)
            })
        };
        if mods.contains(&"all") {
            wanted.into_iter().all(test)
        } else {
            wanted.into_iter().any(test)
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Glob {
        Char(char),
        Any,
        One,
    }

    /// The value lower-cased, its wildcards and escapes read as the specification says.
    fn glob(text: &str) -> Vec<Glob> {
        let chars: Vec<char> = text.to_lowercase().chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\\' if matches!(chars.get(i + 1), Some('*' | '?' | '\\')) => {
                    out.push(Glob::Char(chars[i + 1]));
                    i += 2;
                    continue;
                }
                '*' => out.push(Glob::Any),
                '?' => out.push(Glob::One),
                c => out.push(Glob::Char(c)),
            }
            i += 1;
        }
        out
    }

    fn glob_match(p: &[Glob], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((Glob::Any, rest)) => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
            Some((Glob::One, rest)) => !s.is_empty() && glob_match(rest, &s[1..]),
            Some((Glob::Char(c), rest)) => s.first() == Some(c) && glob_match(rest, &s[1..]),
        }
    }
}
