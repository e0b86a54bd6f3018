//! Saved queries: every query checks against the schema, and every query's fixture events give
//! the expected rows — the cases that must match and the look-alikes that must not.

use std::path::{Path, PathBuf};

use crate::support::*;

/// Files under `queries/` whose names end in `suffix`, as (query name, path), sorted.
fn query_files(suffix: &str) -> Vec<(String, PathBuf)> {
    let root = repo_root().join("queries");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("queries dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(rel) = path
                .strip_prefix(&root)
                .ok()
                .and_then(|r| r.to_str())
                .and_then(|r| r.strip_suffix(suffix))
            {
                out.push((rel.to_string(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

fn fixtures() -> Vec<(String, PathBuf)> {
    query_files(".test.json")
}

/// The saved queries: `.sql` files, and the Sigma rules (`.yml`, query `sigma/<stem>`).
fn sql_files() -> Vec<String> {
    let mut names: Vec<String> = query_files(".sql")
        .into_iter()
        .chain(query_files(".yml"))
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
}

#[test]
fn every_saved_query_checks_against_the_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    ingest_json(&lake, &[&repo_root().join("sample-logs")], &[]);
    let r = trailhouse(&lake, &["queries", "--check"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let names = sql_files();
    assert!(!names.is_empty());
    for n in &names {
        assert!(
            r.stdout.contains(&format!("ok      {n}\n")),
            "{n} not checked: {}",
            r.stdout
        );
    }
    let listing = trailhouse(&lake, &["queries"]);
    for n in &names {
        assert!(listing.stdout.contains(n.as_str()), "{n} not listed");
    }
}

#[test]
fn every_saved_query_has_fixtures_with_matches_and_look_alikes() {
    let with_fixture: Vec<String> = fixtures().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        with_fixture,
        sql_files(),
        "each query needs a .test.json beside it"
    );
}

fn run_fixture(name: &str, path: &Path) {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("fixture json");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("events.ndjson");
    let events = spec["events"].as_array().expect("events");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&src, text).expect("write");
    let lake = dir.path().join("lake");
    let (run, report) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
    assert_eq!(
        report["records_written"].as_u64(),
        Some(events.len() as u64),
        "{name}: {report}"
    );

    let mut matched = std::collections::BTreeSet::new();
    for case in spec["cases"].as_array().expect("cases") {
        let args = case_args(name, case);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = trailhouse(&lake, &argv);
        assert_eq!(r.code, Some(0), "{name} {case}: {}", r.stderr);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).expect("json rows");
        let expect = case["expect"].as_array().expect("expect");
        assert_eq!(rows.len(), expect.len(), "{name} {case}: got {rows:#?}");
        for (row, want) in rows.iter().zip(expect) {
            for (k, v) in want.as_object().expect("expected row") {
                assert_eq!(
                    row.get(k).unwrap_or(&serde_json::Value::Null),
                    v,
                    "{name} {case}: column {k} of {row}"
                );
            }
            if let Some(id) = row["eventid"].as_str() {
                matched.insert(id.to_string());
            }
        }
    }
    // Look-alikes: events close to a match that no case may return.
    let lookalikes: Vec<&str> = spec["lookalikes"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: list its look-alike events under \"lookalikes\""))
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        !lookalikes.is_empty(),
        "{name}: needs at least one look-alike"
    );
    let expected_any = spec["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .any(|c| c["expect"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(expected_any, "{name}: no case expects a match");
    for id in lookalikes {
        assert!(
            events.iter().any(|e| e["eventID"] == id),
            "{name}: look-alike `{id}` is not an event"
        );
        assert!(
            !matched.contains(id),
            "{name}: look-alike `{id}` was returned"
        );
    }
}

#[test]
fn saved_query_fixtures() {
    let all = fixtures();
    assert!(!all.is_empty());
    for (name, path) in all {
        run_fixture(&name, &path);
    }
}
