//! `trailhouse evidence`: the events a question matched, bundled with their hashes and how they
//! were found, and `evidence check` finding any change to a bundle.

use std::path::Path;

use serde_json::Value;
use trailhouse_benches::signed::SignSpec;

use crate::support::*;
use crate::verify::signed;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// The signed sample trail ingested, its verdicts recorded: (trail, lake).
fn verified_lake() -> (crate::verify::Signed, std::path::PathBuf) {
    let s = signed(SignSpec::default());
    let lake = s.root.parent().expect("dir").join("lake");
    let (run, _) = ingest_json(&lake, &[&s.root], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = trailhouse(
        &lake,
        &[
            "verify",
            &s.root.to_string_lossy(),
            "--public-keys",
            &s.keys.to_string_lossy(),
            "--record",
        ],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    (s, lake)
}

/// `evidence who-deleted` of the sample bucket over the sample trail's days, into `out`.
fn who_deleted_bundle(lake: &Path, out: &Path) -> Run {
    trailhouse(
        lake,
        &[
            "evidence",
            "who-deleted",
            "--param",
            "resource=customer-exports-prod",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-05",
            "-o",
            &out.to_string_lossy(),
        ],
    )
}

/// `evidence` of a saved query whose rows are not events (refused).
fn summary_bundle(lake: &Path, out: &Path) -> Run {
    trailhouse(
        lake,
        &[
            "evidence",
            "principal-summary",
            "-p",
            "principal=bob",
            "-o",
            &out.to_string_lossy(),
        ],
    )
}

fn fingerprint(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint: {}\n{}", run.stdout, run.stderr))
        .to_string()
}

fn check(bundle: &Path) -> (Run, Value) {
    let run = trailhouse(
        Path::new("/nonexistent-lake"),
        &["evidence", "check", &bundle.to_string_lossy(), "--json"],
    );
    let json = run.json();
    (run, json)
}

#[test]
fn a_saved_querys_events_are_bundled_as_delivered_with_their_hashes_and_provenance() {
    let (s, lake) = verified_lake();
    let bundle = s.root.parent().expect("dir").join("bundle");
    let run = who_deleted_bundle(&lake, &bundle);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let noted = fingerprint(&run);

    // The records are the events the query lists, each as `export` writes it (the lossless
    // rebuild of what CloudTrail delivered), with the line's hash, its file and its verdict.
    let listed = sql_csv(
        &lake,
        "SELECT count(*) FROM cloudtrail WHERE eventname IN ('DeleteBucket', 'DeleteObjects')",
    );
    let records = std::fs::read_to_string(bundle.join("records.ndjson")).expect("records");
    let lines: Vec<&str> = records.lines().collect();
    assert_eq!(
        lines.len().to_string(),
        listed.lines().nth(1).expect("count").trim()
    );
    let exported = export_sorted(&lake);
    let mut index = csv::Reader::from_path(bundle.join("records.csv")).expect("index");
    for (line, row) in lines.iter().zip(index.records()) {
        let row = row.expect("row");
        let record: Value = serde_json::from_str(line).expect("JSON");
        assert!(
            exported.contains(&canonical(&record)),
            "not an exported record: {line}"
        );
        assert_eq!(row.get(1), record["eventID"].as_str());
        assert_eq!(row.get(3), Some(sha256(line.as_bytes()).as_str()));
        assert!(
            row.get(4).is_some_and(|f| f.ends_with(".json.gz")),
            "{row:?}"
        );
        assert_eq!(row.get(5), Some("valid"));
    }
    assert_eq!(
        serde_json::from_str::<Value>(lines.last().expect("a record")).expect("JSON")["eventName"],
        "DeleteBucket",
        "in time order"
    );
    let query: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("query.json")).expect("query"))
            .expect("JSON");
    assert_eq!(query["query"], "investigate/who-deleted");
    assert_eq!(query["parameters"]["resource"], "customer-exports-prod");
    assert_eq!(query["since"], "2026-11-01T00:00:00Z");
    assert_eq!(query["records"], lines.len());
    assert_eq!(query["integrity"]["valid"], lines.len());
    assert!(
        query["sql"]
            .as_str()
            .is_some_and(|q| q.contains("$resource")),
        "{query}"
    );
    assert!(query["table_version"].is_u64(), "{query}");
    // SHA256SUMS in the form `sha256sum -c` reads, and the fingerprint is its hash.
    let sums = std::fs::read(bundle.join("SHA256SUMS")).expect("sums");
    assert_eq!(sha256(&sums), noted);
    for line in String::from_utf8_lossy(&sums).lines() {
        let (hash, name) = line.split_once("  ").expect("two fields");
        assert_eq!(
            hash,
            sha256(&std::fs::read(bundle.join(name)).expect("file")),
            "{name}"
        );
    }

    // Intact: every hash matches, and the fingerprint is the one noted.
    let (run, r) = check(&bundle);
    assert_eq!(run.code, Some(0), "{r}");
    assert_eq!(r["fingerprint"], noted.as_str());
    assert_eq!(r["records"], lines.len());

    // One byte of one record changed: named, by file and line.
    let edited = records.replacen("DeleteBucket", "DeleteBucker", 1);
    std::fs::write(bundle.join("records.ndjson"), &edited).expect("edit");
    let (run, r) = check(&bundle);
    assert_eq!(run.code, Some(1));
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("records.ndjson: its SHA-256"),
        "{problems}"
    );
    assert!(problems.contains("records.ndjson line"), "{problems}");
    std::fs::write(bundle.join("records.ndjson"), &records).expect("restore");
    // Its hashes recomputed to match: the fingerprint is no longer the one noted.
    let mut fixed = String::new();
    for line in String::from_utf8_lossy(&sums).lines() {
        let (_, name) = line.split_once("  ").expect("two fields");
        let bytes = if name == "records.ndjson" {
            edited.clone().into_bytes()
        } else {
            std::fs::read(bundle.join(name)).expect("file")
        };
        fixed.push_str(&format!("{}  {name}\n", sha256(&bytes)));
    }
    std::fs::write(bundle.join("records.ndjson"), &edited).expect("edit");
    std::fs::write(bundle.join("SHA256SUMS"), &fixed).expect("edit");
    let (_, r) = check(&bundle);
    assert_ne!(r["fingerprint"], noted.as_str());
    assert!(
        r["problems"].to_string().contains("records.ndjson line"),
        "{r}"
    );
    // A file added to the bundle.
    std::fs::write(bundle.join("records.ndjson"), &records).expect("restore");
    std::fs::write(bundle.join("SHA256SUMS"), &sums).expect("restore");
    std::fs::write(bundle.join("notes.txt"), "x").expect("add");
    let (run, r) = check(&bundle);
    assert_eq!(run.code, Some(1));
    assert!(
        r["problems"]
            .to_string()
            .contains("notes.txt: not part of the bundle"),
        "{r}"
    );
    std::fs::remove_file(bundle.join("notes.txt")).expect("remove");
    assert_eq!(check(&bundle).0.code, Some(0));

    // Never written over.
    let run = trailhouse(
        &lake,
        &[
            "evidence",
            "who-deleted",
            "-p",
            "resource=x",
            "-o",
            &bundle.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("not an empty folder"), "{}", run.stderr);
}

#[test]
fn a_statement_can_be_bundled_and_an_aggregate_cannot() {
    let (s, lake) = verified_lake();
    let dir = s.root.parent().expect("dir");
    let out = dir.join("by-sql");
    let run = trailhouse(
        &lake,
        &[
            "evidence",
            "--sql",
            "SELECT eventid, eventtime FROM cloudtrail WHERE eventname = $name \
             AND eventtime >= $since AND eventtime < $until",
            "--param",
            "name=ConsoleLogin",
            "-o",
            &out.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let logins = count(
        &lake,
        "SELECT count(*) FROM cloudtrail WHERE eventname = 'ConsoleLogin'",
    );
    let records = std::fs::read_to_string(out.join("records.ndjson")).expect("records");
    assert_eq!(records.lines().count() as u64, logins);
    assert!(logins > 0);
    let query: Value =
        serde_json::from_slice(&std::fs::read(out.join("query.json")).expect("query"))
            .expect("JSON");
    assert_eq!(query["query"], Value::Null);
    assert_eq!(query["parameters"]["name"], "ConsoleLogin");

    // A lake never verified: the records' files are `unchecked`.
    let plain = dir.join("plain-lake");
    let (run, _) = ingest_json(&plain, &[&s.root], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let out = dir.join("unchecked");
    let run = trailhouse(
        &plain,
        &[
            "evidence",
            "who-deleted",
            "-p",
            "resource=customer-exports-prod",
            "-o",
            &out.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let index = std::fs::read_to_string(out.join("records.csv")).expect("index");
    assert!(
        index.lines().skip(1).all(|l| l.ends_with(",unchecked")),
        "{index}"
    );

    // A query whose rows are not events is refused, saying why.
    let run = summary_bundle(&lake, &dir.join("summary"));
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no `eventid` column"), "{}", run.stderr);
    assert!(
        !dir.join("summary").exists(),
        "no half-written bundle is left"
    );
}

/// The entries of an archive: (name, bytes), in its order.
fn unzip(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(path).expect("archive")).expect("a zip");
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).expect("entry");
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("unpacks");
            (entry.name().to_string(), bytes)
        })
        .collect()
}

/// An archive of `entries`, as any zip tool would write it.
fn rezip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("create"));
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .expect("entry");
        std::io::Write::write_all(&mut zip, bytes).expect("write");
    }
    zip.finish().expect("finish");
}

#[test]
fn a_bundle_can_be_one_zip_archive_with_the_folders_files_and_its_changes_are_found() {
    let (s, lake) = verified_lake();
    let dir = s.root.parent().expect("dir");
    let bundle = |out: &Path| who_deleted_bundle(&lake, out);
    let folder = dir.join("folder");
    assert_eq!(bundle(&folder).code, Some(0));
    let archive = dir.join("case").join("case-4711.ZIP");
    let run = bundle(&archive);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let noted = fingerprint(&run);
    assert!(
        !dir.join("case").join("case-4711.ZIP.partial").exists(),
        "only the finished archive is left"
    );

    // The folder's four files, in the order they are listed; the records and their index are
    // byte for byte the folder's, and SHA256SUMS holds each entry's hash (its own hash is the
    // fingerprint), so `unzip && sha256sum -c SHA256SUMS` checks it without trailhouse.
    let entries = unzip(&archive);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["records.ndjson", "records.csv", "query.json", "SHA256SUMS"]
    );
    for (name, bytes) in &entries[..2] {
        assert_eq!(
            bytes,
            &std::fs::read(folder.join(name)).expect("folder's file"),
            "{name}"
        );
    }
    let sums = String::from_utf8(entries[3].1.clone()).expect("text");
    assert_eq!(sha256(sums.as_bytes()), noted);
    for ((name, bytes), line) in entries.iter().zip(sums.lines()) {
        assert_eq!(line, format!("{}  {name}", sha256(bytes)));
    }
    assert!(!entries[0].1.is_empty());

    let (run, r) = check(&archive);
    assert_eq!(run.code, Some(0), "{r}");
    assert_eq!(r["fingerprint"], noted.as_str());
    assert_eq!(
        r["records"],
        String::from_utf8_lossy(&entries[0].1).lines().count()
    );

    // Re-packed with one record's byte changed: named by file and line.
    let edited_path = dir.join("edited.zip");
    let mut edited = entries.clone();
    let records = String::from_utf8(edited[0].1.clone()).expect("text");
    edited[0].1 = records
        .replacen("DeleteBucket", "DeleteBucker", 1)
        .into_bytes();
    rezip(&edited_path, &edited);
    let (run, r) = check(&edited_path);
    assert_eq!(run.code, Some(1), "{r}");
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("records.ndjson: its SHA-256"),
        "{problems}"
    );
    assert!(problems.contains("records.ndjson line"), "{problems}");

    // An entry added.
    let added_path = dir.join("added.zip");
    let mut added = entries.clone();
    added.push(("notes.txt".into(), b"x".to_vec()));
    rezip(&added_path, &added);
    let problems = check(&added_path).1["problems"].to_string();
    assert!(
        problems.contains("notes.txt: not part of the bundle (added)"),
        "{problems}"
    );
    // An entry removed.
    let removed_path = dir.join("removed.zip");
    rezip(&removed_path, &[&entries[..1], &entries[2..]].concat());
    let (run, r) = check(&removed_path);
    assert_eq!(run.code, Some(1), "{r}");
    assert!(
        r["problems"].to_string().contains("records.csv: missing"),
        "{r}"
    );

    // A byte of the archive itself flipped inside the records' compressed data: the entry does
    // not unpack (or unpacks to other bytes), and the check says so.
    let mut raw = std::fs::read(&archive).expect("archive");
    raw[200] ^= 0x55;
    let flipped = dir.join("flipped.zip");
    std::fs::write(&flipped, &raw).expect("write");
    let (run, r) = check(&flipped);
    assert_eq!(run.code, Some(1), "{r}");
    assert!(r["problems"].to_string().contains("records.ndjson"), "{r}");

    // Never written over.
    let run = bundle(&archive);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("exists"), "{}", run.stderr);
    assert_eq!(check(&archive).0.code, Some(0));

    // A query refused after the archive was started: nothing is left, not even the partial file.
    let refused = dir.join("summary.zip");
    let run = summary_bundle(&lake, &refused);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(!refused.exists() && !dir.join("summary.zip.partial").exists());
}
