//! The third-party corpus: every record is stored or quarantined, and export gives them back.

use std::collections::BTreeMap;
use std::io::Read;

use crate::support::*;

/// Every record of every corpus file, as (file, parsed record).
fn corpus_records() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut stack = vec![corpus_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "gz") {
                let mut text = String::new();
                flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).expect("open"))
                    .read_to_string(&mut text)
                    .expect("gunzip");
                let doc: serde_json::Value =
                    serde_json::from_str(&text).expect("corpus file is JSON");
                for r in doc["Records"].as_array().expect("Records") {
                    out.push((path.display().to_string(), r.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn corpus_every_record_is_accounted_for_and_round_trips() {
    let records = corpus_records();
    assert_eq!(records.len(), 882, "the corpus README counts 882 records");
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, r) = ingest_json(&lake, &[&corpus_dir()], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_failed"], 0, "{r}");
    assert_eq!(r["files_loaded"], 267, "{r}");
    assert_eq!(r["records_read"], 882, "{r}");
    assert_eq!(
        r["records_read"].as_u64(),
        Some(
            r["records_written"].as_u64().unwrap_or(0)
                + r["records_duplicate"].as_u64().unwrap_or(0)
                + r["records_quarantined"].as_u64().unwrap_or(0)
        )
    );
    // malformed/ holds the records the corpus found no `eventTime` in. Seven of them spell every
    // key in lower case (`eventtime`): trailhouse matches keys case-insensitively, so those are
    // stored (their original keys kept in `extra`); the rest are quarantined with a reason.
    let malformed: Vec<&serde_json::Value> = records
        .iter()
        .filter(|(f, _)| f.contains("/malformed/"))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(malformed.len(), 146);
    let lower_case: Vec<&serde_json::Value> = malformed
        .iter()
        .copied()
        .filter(|r| r.get("eventtime").is_some())
        .collect();
    assert_eq!(lower_case.len(), 7);
    let quarantined = (malformed.len() - lower_case.len()) as u64;
    assert_eq!(r["records_quarantined"].as_u64(), Some(quarantined), "{r}");
    assert_eq!(count(&lake, "SELECT count(*) FROM quarantine"), quarantined);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM quarantine WHERE reason = 'record has no eventTime'"
        ),
        quarantined
            - count(
                &lake,
                "SELECT count(*) FROM quarantine WHERE reason LIKE 'eventTime `%'"
            )
    );
    assert!(
        r["records_collision"].as_u64().unwrap_or(0) > 0,
        "the corpus reuses eventIDs: {r}"
    );

    // Export rebuilds every stored record exactly once, semantically equal to its input.
    let mut want: Vec<String> = records
        .iter()
        .filter(|(f, _)| !f.contains("/malformed/"))
        .map(|(_, r)| r)
        .chain(lower_case.iter().copied())
        .map(canonical)
        .collect();
    want.sort();
    want.dedup();
    let got = export_sorted(&lake);
    assert_eq!(
        got.len() as u64,
        r["records_written"].as_u64().expect("written")
    );
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| got.binary_search(w).is_err())
        .take(3)
        .collect();
    assert!(
        missing.is_empty(),
        "records not exported as ingested: {missing:#?}"
    );
    let extra: Vec<&String> = got
        .iter()
        .filter(|g| want.binary_search(g).is_err())
        .take(3)
        .collect();
    assert!(
        extra.is_empty(),
        "exported records that were not ingested: {extra:#?}"
    );
    assert_eq!(got.len(), want.len());

    // Quarantined records come back verbatim too.
    let q = trailhouse(&lake, &["export", "--quarantine"]);
    assert_eq!(q.code, Some(0));
    assert_eq!(
        q.stdout.lines().count() as u64,
        r["records_written"].as_u64().expect("w") + quarantined
    );
}

#[test]
fn corpus_columns_answer_queries_in_either_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, _) = ingest_json(&lake, &[&corpus_dir()], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // Athena users write lower case, CloudTrail Lake users camelCase: both resolve.
    let a = sql_csv(
        &lake,
        "SELECT eventName, count(*) AS n FROM cloudtrail GROUP BY eventName ORDER BY n DESC, eventName LIMIT 5",
    );
    let b = sql_csv(
        &lake,
        "SELECT eventname, count(*) AS n FROM cloudtrail GROUP BY eventname ORDER BY n DESC, eventname LIMIT 5",
    );
    assert_eq!(
        a.lines().skip(1).collect::<Vec<_>>(),
        b.lines().skip(1).collect::<Vec<_>>()
    );
    let roles = count(
        &lake,
        "SELECT count(*) FROM cloudtrail WHERE userIdentity.sessionContext.sessionIssuer.userName IS NOT NULL",
    );
    assert!(roles > 100, "{roles}");
    // Lower-case-keyed records are typed too (their original keys are kept in `extra`).
    let lower = count(
        &lake,
        "SELECT count(*) FROM cloudtrail WHERE extra LIKE '%\"eventname\"%' AND eventname IS NOT NULL",
    );
    assert!(lower >= 1, "{lower}");
    // Types by source: how many records per eventType, none lost.
    let by_type: BTreeMap<String, u64> = sql_csv(
        &lake,
        "SELECT coalesce(eventtype, '(none)'), count(*) FROM cloudtrail GROUP BY 1",
    )
    .lines()
    .skip(1)
    .filter_map(|l| {
        l.rsplit_once(',')
            .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
    })
    .collect();
    assert!(
        by_type.get("AwsApiCall").copied().unwrap_or(0) > 500,
        "{by_type:?}"
    );
}

#[test]
fn corpus_distinct_counts_of_strings_match_a_group_by() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let (run, _) = ingest_json(&lake, &[&corpus_dir()], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // Reused eventIDs, ids in other spellings, short and long values, nulls: each string
    // column counted by CountDistinct and by a group-by of its values.
    for column in [
        "eventid",
        "requestid",
        "sharedeventid",
        "sourceipaddress",
        "useragent",
        "requestparameters",
        "useridentity.arn",
        "upper(eventid)",
    ] {
        let plan = sql_csv(
            &lake,
            &format!("EXPLAIN SELECT count(DISTINCT {column}), count(*) FROM cloudtrail"),
        );
        assert!(plan.contains("CountDistinctExec"), "{column}: {plan}");
        let ours = count(
            &lake,
            &format!("SELECT count(DISTINCT {column}) FROM cloudtrail"),
        );
        let grouped = count(
            &lake,
            &format!(
                "SELECT count(*) FROM (SELECT {column} AS v FROM cloudtrail \
                 WHERE {column} IS NOT NULL GROUP BY 1)"
            ),
        );
        assert_eq!(ours, grouped, "{column}");
        assert!(ours > 0, "{column}");
    }
    // The corpus reuses eventIDs across different records: fewer ids than rows.
    let rows = count(&lake, "SELECT count(*) FROM cloudtrail");
    let ids = count(&lake, "SELECT count(DISTINCT eventid) FROM cloudtrail");
    assert!(ids < rows, "{ids} ids, {rows} rows");
}
