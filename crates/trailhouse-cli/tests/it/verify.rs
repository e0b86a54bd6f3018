//! `trailhouse verify` over a trail signed the way CloudTrail signs one (the sample trail's log
//! files, hourly digests chained and signed with a test key by `trailhouse_benches::signed`), and
//! over copies of it tampered with, each in one way.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;
use trailhouse_benches::signed::{
    Sidecars, SignSpec, TestKey, Written, sign_trail, string_to_sign,
};
use trailhouse_ingest::verify::digest::{ChainId, DigestName};

use crate::support::*;

pub struct Signed {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub keys: PathBuf,
    pub key: TestKey,
    pub digests: Vec<Written>,
}

/// The sample trail's log files (its truncated file and its placeholder digest left out: a
/// digest lists whole files) signed per `spec`.
pub fn signed(spec: SignSpec) -> Signed {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("trail");
    copy_tree(
        &repo_root().join("sample-logs/AWSLogs"),
        &root.join("AWSLogs"),
    );
    for f in files_under(&root) {
        let name = f.to_string_lossy();
        if name.contains("CloudTrail-Digest") || name.ends_with("Fg8hJ0kL2mN4pQ6r.json.gz") {
            std::fs::remove_file(&f).expect("remove");
        }
    }
    let key = TestKey::generate();
    let signed = sign_trail(&root, &key, &spec).expect("sign");
    assert!(signed.skipped.is_empty(), "{:?}", signed.skipped);
    let digests = signed.digests;
    let keys = dir.path().join("public-keys.json");
    std::fs::write(&keys, key.public_keys_json()).expect("keys");
    Signed {
        _dir: dir,
        root,
        keys,
        key,
        digests,
    }
}

fn verify(s: &Signed, extra: &[&str]) -> (Run, Value) {
    let root = s.root.to_string_lossy().into_owned();
    let keys = s.keys.to_string_lossy().into_owned();
    let mut args = vec![
        "verify",
        root.as_str(),
        "--public-keys",
        keys.as_str(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = trailhouse(&s.root.join("no-lake"), &args);
    let json = run.json();
    (run, json)
}

/// One of [`problems`]: what (digest or log), its verdict, its file name.
fn problem(kind: &str, verdict: &str, name: String) -> (String, String, String) {
    (kind.to_string(), verdict.to_string(), name)
}

/// The verdicts that are not `valid`, as (kind, verdict, file name).
fn problems(r: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (kind, list) in [("digest", "digests"), ("log", "log_files")] {
        for item in r[list].as_array().expect("a list") {
            if item["verdict"] != "valid" {
                let object = item["object"].as_str().expect("object");
                out.push((
                    kind.to_string(),
                    item["verdict"].as_str().expect("verdict").to_string(),
                    object.rsplit('/').next().unwrap_or(object).to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn reasons(r: &Value, verdict: &str) -> String {
    r["digests"]
        .as_array()
        .expect("digests")
        .iter()
        .filter(|d| d["verdict"] == verdict)
        .map(|d| d["reasons"].to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn gzip_to(path: &Path, raw: &[u8]) {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(raw).expect("gzip");
    std::fs::write(path, gz.finish().expect("gzip")).expect("write");
}

/// A digest in the middle of its chain that lists at least one log file, and the index of it.
/// Changes one byte of a log file's records (a digit of its first timestamp) and gzips it again:
/// still a readable trail file, no longer the one its digest lists.
fn edit_one_byte(log: &Path) {
    let mut raw = gunzip(log);
    let at = raw.iter().position(|&b| b == b'Z').expect("a timestamp");
    raw[at - 1] = if raw[at - 1] == b'1' { b'2' } else { b'1' };
    gzip_to(log, &raw);
}

fn middle_with_logs(s: &Signed) -> usize {
    (1..s.digests.len() - 1)
        .find(|&i| {
            !s.digests[i].logs.is_empty()
                && !s.digests[i].backfill
                && !s.digests[i + 1].backfill
                && s.digests[i - 1].path.parent().and_then(Path::parent)
                    == s.digests[i + 1].path.parent().and_then(Path::parent)
        })
        .expect("a digest in the middle of a chain that lists logs")
}

#[test]
fn a_signed_trail_is_all_valid_and_each_tampering_is_named() {
    let s = signed(SignSpec::default());
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["summary"]["all_valid"], true, "{r}");
    assert_eq!(r["digests"].as_array().map(Vec::len), Some(s.digests.len()));
    let logs: usize = s.digests.iter().map(|d| d.logs.len()).sum();
    assert_eq!(r["summary"]["log_files"]["valid"], logs, "{r}");
    assert_eq!(logs, 10, "the sample's log files but the truncated one");
    assert!(problems(&r).is_empty());

    // One byte of a log file's records changed (and the file gzipped again).
    let log = s.root.join(&s.digests[middle_with_logs(&s)].logs[0]);
    let original = std::fs::read(&log).expect("read");
    edit_one_byte(&log);
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        problems(&r),
        [("log".into(), "modified".into(), file_name(&log))]
    );
    assert_eq!(r["summary"]["all_valid"], false);

    // Deleted.
    std::fs::remove_file(&log).expect("delete");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        problems(&r),
        [("log".into(), "missing".into(), file_name(&log))]
    );
    std::fs::write(&log, &original).expect("restore");

    // A log file added beside the others, named as CloudTrail names them.
    let added = log.with_file_name(file_name(&log).replace(".json.gz", "X.json.gz"));
    std::fs::write(&added, &original).expect("add");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        problems(&r),
        [("log".into(), "not-covered".into(), file_name(&added))]
    );
    std::fs::remove_file(&added).expect("remove");

    // The text output names the file and the verdict, and says so at the end.
    std::fs::write(&added, &original).expect("add");
    let keys = s.keys.to_string_lossy().into_owned();
    let text = trailhouse(
        &s.root.join("no-lake"),
        &["verify", &s.root.to_string_lossy(), "--public-keys", &keys],
    );
    assert_eq!(text.code, Some(1));
    assert!(
        text.stdout
            .contains(&format!("not-covered    {}", added.display()))
            && text.stdout.contains("PROBLEMS FOUND"),
        "{}",
        text.stdout
    );
    std::fs::remove_file(&added).expect("remove");
    assert_eq!(verify(&s, &[]).0.code, Some(0), "restored");
}

#[test]
fn a_digest_deleted_edited_or_resigned_breaks_the_chain_where_it_was() {
    let s = signed(SignSpec::default());
    let i = middle_with_logs(&s);
    let digest = s.root.join(&s.digests[i].path);
    let (before, after) = (
        file_name(&s.root.join(&s.digests[i - 1].path)),
        file_name(&s.root.join(&s.digests[i + 1].path)),
    );
    let original = std::fs::read(&digest).expect("read");

    // Deleted from the middle: the next one's link is broken, the one before has lost the
    // record of its signature, and the logs it listed are listed by no digest.
    std::fs::remove_file(&digest).expect("delete");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    let mut expected = vec![
        (
            "digest".to_string(),
            "chain-broken".to_string(),
            after.clone(),
        ),
        (
            "digest".to_string(),
            "no-signature".to_string(),
            before.clone(),
        ),
    ];
    for log in &s.digests[i].logs {
        expected.push((
            "log".into(),
            "not-covered".into(),
            file_name(Path::new(log)),
        ));
    }
    expected.sort();
    assert_eq!(problems(&r), expected);
    assert!(reasons(&r, "chain-broken").contains("is missing"), "{r}");
    assert!(
        reasons(&r, "no-signature").contains(&file_name(&digest)),
        "{r}"
    );

    // Edited (one character of its JSON, gzipped again): its signature fails, the next one's
    // record of its hash does not match, its logs are unverified.
    let raw = String::from_utf8(s.digests[i].raw.clone()).expect("UTF-8");
    let edited = raw.replacen(
        "\"hashAlgorithm\":\"SHA-256\"",
        "\"hashAlgorithm\":\"SHA-257\"",
        1,
    );
    assert_ne!(edited, raw);
    gzip_to(&digest, edited.as_bytes());
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    let mut expected = vec![
        (
            "digest".to_string(),
            "bad-signature".to_string(),
            file_name(&digest),
        ),
        (
            "digest".to_string(),
            "chain-broken".to_string(),
            after.clone(),
        ),
    ];
    for log in &s.digests[i].logs {
        expected.push(("log".into(), "unverified".into(), file_name(Path::new(log))));
    }
    expected.sort();
    assert_eq!(problems(&r), expected);
    assert!(
        reasons(&r, "chain-broken").contains("previousDigestHashValue"),
        "{r}"
    );

    // Edited and signed again with another key under the real key's fingerprint, the new
    // signature kept as its S3 metadata: the signature does not verify either.
    let other = TestKey::generate();
    let d = &s.digests[i];
    let end = d.path.to_string_lossy();
    let parsed: Value = serde_json::from_str(&edited).expect("JSON");
    let message = string_to_sign(
        parsed["digestEndTime"].as_str().expect("end"),
        parsed["digestS3Bucket"].as_str().expect("bucket"),
        &end,
        edited.as_bytes(),
        parsed["previousDigestSignature"].as_str(),
    );
    let sidecar = PathBuf::from(format!("{}.metadata.json", digest.display()));
    std::fs::write(
        &sidecar,
        serde_json::json!({"Metadata": {"signature": other.sign(message.as_bytes())}}).to_string(),
    )
    .expect("sidecar");
    let (_, r) = verify(&s, &[]);
    assert!(
        problems(&r).contains(&("digest".into(), "bad-signature".into(), file_name(&digest))),
        "{r}"
    );
    // The same, naming the other key's fingerprint: an unknown key.
    let mut own = parsed.clone();
    own["digestPublicKeyFingerprint"] = other.fingerprint().into();
    let own = serde_json::to_vec(&own).expect("JSON");
    gzip_to(&digest, &own);
    let message = string_to_sign(
        parsed["digestEndTime"].as_str().expect("end"),
        parsed["digestS3Bucket"].as_str().expect("bucket"),
        &end,
        &own,
        parsed["previousDigestSignature"].as_str(),
    );
    std::fs::write(
        &sidecar,
        serde_json::json!({"signature": other.sign(message.as_bytes())}).to_string(),
    )
    .expect("sidecar");
    let (_, r) = verify(&s, &[]);
    assert!(
        problems(&r).contains(&("digest".into(), "unknown-key".into(), file_name(&digest))),
        "{r}"
    );
    assert!(
        reasons(&r, "unknown-key").contains(other.fingerprint()),
        "{r}"
    );

    // Put back as delivered, with a correct signature beside it: valid again.
    std::fs::write(&digest, &original).expect("restore");
    std::fs::write(
        &sidecar,
        serde_json::json!({"signature": s.digests[i].signature}).to_string(),
    )
    .expect("sidecar");
    assert_eq!(verify(&s, &[]).0.code, Some(0));
    // Moved to another folder: a digest is signed for its place, and the next one links to
    // the place it was.
    let moved = digest
        .parent()
        .expect("folder")
        .join("elsewhere")
        .join(file_name(&digest));
    std::fs::create_dir_all(moved.parent().expect("folder")).expect("mkdir");
    std::fs::rename(&digest, &moved).expect("move");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    let found = problems(&r);
    for expected in [
        ("digest", "moved", &file_name(&digest)),
        ("digest", "chain-broken", &after),
    ] {
        assert!(
            found.contains(&problem(expected.0, expected.1, expected.2.clone())),
            "{found:?}"
        );
    }
    assert!(reasons(&r, "moved").contains("delivered to"), "{r}");
}

/// Each chain's newest digest (standard chains), by index into `s.digests`, as the digests'
/// names say (verify's own reading of them).
fn newest_of_each_chain(s: &Signed) -> Vec<usize> {
    let mut newest: std::collections::BTreeMap<ChainId, (DigestName, usize)> = Default::default();
    for (i, d) in s.digests.iter().enumerate() {
        let name = DigestName::parse(&file_name(&d.path)).expect("a digest's name");
        if name.backfill {
            continue;
        }
        match newest.get(&name.chain()) {
            Some((seen, _)) if seen.end >= name.end => {}
            _ => {
                newest.insert(name.chain(), (name, i));
            }
        }
    }
    newest.into_values().map(|(_, i)| i).collect()
}

#[test]
fn older_digests_are_vouched_for_by_the_chain_and_checked_by_their_own_signature_where_it_breaks() {
    // The key rotated: each chain's newest digest is signed with a new key, the only one given
    // (the old key's digests before it are CloudTrail's through the hashes chaining them).
    let s = signed(SignSpec {
        sidecars: Sidecars::Newest,
        ..SignSpec::default()
    });
    let new_key = TestKey::generate();
    for i in newest_of_each_chain(&s) {
        let d = &s.digests[i];
        let path = s.root.join(&d.path);
        let mut parsed: Value = serde_json::from_slice(&d.raw).expect("JSON");
        parsed["digestPublicKeyFingerprint"] = new_key.fingerprint().into();
        let raw = serde_json::to_vec(&parsed).expect("JSON");
        gzip_to(&path, &raw);
        let message = string_to_sign(
            parsed["digestEndTime"].as_str().expect("end"),
            parsed["digestS3Bucket"].as_str().expect("bucket"),
            parsed["digestS3Object"].as_str().expect("key"),
            &raw,
            parsed["previousDigestSignature"].as_str(),
        );
        std::fs::write(
            PathBuf::from(format!("{}.metadata.json", path.display())),
            serde_json::json!({"signature": new_key.sign(message.as_bytes())}).to_string(),
        )
        .expect("sidecar");
    }
    std::fs::write(&s.keys, new_key.public_keys_json()).expect("keys");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(0), "{:?}", problems(&r));
    let digests = r["digests"].as_array().expect("digests");
    assert_eq!(digests.len(), s.digests.len());
    assert!(digests.iter().all(|d| d["verdict"] == "valid"));

    // A digest in the middle edited: the next one no longer holds its hash, so its own
    // signature is checked, with the old key, which was not given.
    let i = middle_with_logs(&s);
    let raw = String::from_utf8(s.digests[i].raw.clone()).expect("UTF-8");
    let edited = raw.replacen(
        "\"hashAlgorithm\":\"SHA-256\"",
        "\"hashAlgorithm\":\"SHA-25\"",
        1,
    );
    assert_ne!(edited, raw);
    gzip_to(&s.root.join(&s.digests[i].path), edited.as_bytes());
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    let found = problems(&r);
    assert!(
        found.contains(&problem(
            "digest",
            "unknown-key",
            file_name(&s.digests[i].path)
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&problem(
            "digest",
            "chain-broken",
            file_name(&s.digests[i + 1].path)
        )),
        "{found:?}"
    );
    assert!(
        reasons(&r, "unknown-key").contains(s.key.fingerprint()),
        "{r}"
    );
}

#[test]
fn validation_turned_off_for_hours_is_a_restart_of_the_chain() {
    let s = signed(SignSpec {
        validation_off: Some((
            Utc.with_ymd_and_hms(2026, 11, 3, 20, 0, 0)
                .single()
                .expect("time"),
            Utc.with_ymd_and_hms(2026, 11, 4, 0, 0, 0)
                .single()
                .expect("time"),
        )),
        ..SignSpec::default()
    });
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    let restarts = reasons(&r, "chain-broken");
    assert!(restarts.contains("the chain restarts here"), "{r}");
    // Every chain restarts at midnight; the logs delivered in those hours are listed by none.
    for (kind, verdict, name) in problems(&r) {
        match (kind.as_str(), verdict.as_str()) {
            ("digest", "chain-broken") => assert!(name.contains("20261104T010000Z"), "{name}"),
            ("log", "not-covered") => assert!(name.contains("_20261103T2"), "{name}"),
            // A chain with no digest after the gap: nothing tells its last files from files
            // whose digest is still to come.
            ("log", "pending") => assert!(name.starts_with("444455556666_"), "{name}"),
            other => panic!("unexpected {other:?} {name}"),
        }
    }
    // A window starting after the gap holds no break.
    let (run, r) = verify(&s, &["--since", "2026-11-04T02:00:00Z"]);
    assert_eq!(run.code, Some(0), "{r}");
    assert!(r["digests"].as_array().is_some_and(|d| !d.is_empty()));
}

#[test]
fn a_backfill_digest_is_its_own_chain_and_lost_signatures_are_said() {
    let late = "111122223333_CloudTrail_us-east-1_20261104T0005Z_Bc4dE6fG8hJ0kL2m.json.gz";
    let s = signed(SignSpec {
        backfill: Some(late.into()),
        ..SignSpec::default()
    });
    assert!(
        s.digests
            .iter()
            .any(|d| d.backfill && d.logs.iter().any(|l| l.ends_with(late)))
    );
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(0), "{r}");
    let backfill = r["digests"]
        .as_array()
        .expect("digests")
        .iter()
        .filter(|d| d["chain"]["backfill"] == true)
        .count();
    assert_eq!(backfill, 1, "{r}");

    // An archive without any S3 metadata: the newest digest of each chain cannot be checked
    // (nothing records its signature); every other digest still is, through the chain.
    let bare = signed(SignSpec {
        sidecars: Sidecars::None,
        ..SignSpec::default()
    });
    let (run, r) = verify(&bare, &[]);
    assert_eq!(run.code, Some(1));
    let chains = r["digests"]
        .as_array()
        .expect("digests")
        .iter()
        .map(|d| d["chain"].to_string())
        .collect::<std::collections::BTreeSet<_>>();
    let unsigned: Vec<_> = problems(&r)
        .into_iter()
        .filter(|(kind, verdict, _)| kind == "digest" && verdict == "no-signature")
        .collect();
    assert_eq!(unsigned.len(), chains.len(), "{r}");
    assert_eq!(
        r["summary"]["digests"]["valid"],
        bare.digests.len() - chains.len()
    );
    assert!(
        reasons(&r, "no-signature").contains(".metadata.json"),
        "{r}"
    );

    // Without public keys nothing is valid, and the output says why.
    let run = trailhouse(
        &s.root.join("no-lake"),
        &["verify", &s.root.to_string_lossy()],
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout.contains("no public keys given"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("unknown-key"), "{}", run.stdout);

    // A source that does not exist, and bad key files, are usage errors with the file named.
    let run = trailhouse(&s.root.join("no-lake"), &["verify", "/nonexistent/trail"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("/nonexistent/trail"), "{}", run.stderr);
    let bad = s.root.join("keys.txt");
    std::fs::write(&bad, "not json").expect("write");
    let run = trailhouse(
        &s.root.join("no-lake"),
        &[
            "verify",
            &s.root.to_string_lossy(),
            "--public-keys",
            &bad.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("keys.txt") && run.stderr.contains("invalid JSON"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_trail_in_s3_is_verified_with_the_signatures_in_its_metadata() {
    use object_store::{Attribute, Attributes, ObjectStore, PutOptions};
    use trailhouse_benches::s3_server::S3Server;

    // Signed without sidecars: in S3 the signature is each digest object's metadata. (Short
    // trail and bucket names: the test server keeps an object's metadata in a file named after
    // its bucket and key in base64, which must fit in 255 bytes.)
    let s = signed(SignSpec {
        sidecars: Sidecars::None,
        trail: "t".into(),
        ..SignSpec::default()
    });
    let buckets = s.root.parent().expect("dir").join("s3");
    let bucket = buckets.join("tbk");
    for f in files_under(&s.root) {
        if !f.to_string_lossy().contains("CloudTrail-Digest") {
            let to = bucket.join(f.strip_prefix(&s.root).expect("inside"));
            std::fs::create_dir_all(to.parent().expect("folder")).expect("mkdir");
            std::fs::copy(&f, &to).expect("copy");
        }
    }
    let server = S3Server::start(&buckets);
    let store = s3_client(&server, "tbk");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let put = |w: &Written, signature: &str| {
        let bytes = std::fs::read(s.root.join(&w.path)).expect("digest");
        let attributes = Attributes::from_iter([
            (
                Attribute::Metadata("signature".into()),
                signature.to_string(),
            ),
            (
                Attribute::Metadata("signature-algorithm".into()),
                "SHA256withRSA".to_string(),
            ),
        ]);
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        let key = object_store::path::Path::from(w.path.to_string_lossy().as_ref());
        runtime
            .block_on(store.put_opts(&key, bytes.into(), options))
            .expect("put");
    };
    for w in &s.digests {
        put(w, &w.signature);
    }
    let keys = s.keys.to_string_lossy().into_owned();
    let run_verify = || {
        let run = trailhouse_env(
            &s.root.join("no-lake"),
            &["verify", "s3://tbk", "--public-keys", &keys, "--json"],
            &server.env(),
        );
        let json = run.json();
        (run, json)
    };
    let (run, r) = run_verify();
    assert_eq!(run.code, Some(0), "{r}\n{}", run.stderr);
    assert_eq!(r["summary"]["digests"]["valid"], s.digests.len(), "{r}");
    assert_eq!(r["summary"]["log_files"]["valid"], 10, "{r}");
    assert!(
        r["digests"][0]["object"]
            .as_str()
            .is_some_and(|o| o.starts_with("s3://tbk/AWSLogs/")),
        "{r}"
    );

    // The newest digest's metadata holds another digest's signature: nothing else records its
    // own, so it is a bad signature.
    let newest = s.digests.last().expect("a digest");
    put(newest, &s.digests[0].signature);
    let (run, r) = run_verify();
    assert_eq!(run.code, Some(1));
    assert_eq!(
        problems(&r)
            .into_iter()
            .filter(|(kind, ..)| kind == "digest")
            .collect::<Vec<_>>(),
        [(
            "digest".into(),
            "bad-signature".into(),
            file_name(&newest.path)
        )]
    );
}

#[test]
fn recorded_verdicts_join_the_rows_they_cover_and_the_report_gives_the_share() {
    let s = signed(SignSpec::default());
    let lake = s.root.parent().expect("dir").join("lake");
    let root = s.root.to_string_lossy().into_owned();
    let keys = s.keys.to_string_lossy().into_owned();
    let record = |lake: &Path| {
        let run = trailhouse(
            lake,
            &[
                "verify",
                &root,
                "--public-keys",
                &keys,
                "--record",
                "--json",
            ],
        );
        let json = run.json();
        (run, json)
    };
    // No lake yet: nothing to record in, said before anything is written.
    let (run, _) = (
        trailhouse(
            &lake,
            &["verify", &root, "--public-keys", &keys, "--record"],
        ),
        (),
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("recording the verdicts"),
        "{}",
        run.stderr
    );

    let (run, _) = ingest_json(&lake, &[&s.root], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let events = count(&lake, "SELECT count(*) FROM cloudtrail");
    let (run, r) = record(&lake);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["recorded"]["table"], "integrity", "{r}");
    let verified = "SELECT count(*) FROM cloudtrail c JOIN integrity i USING (sourcefile) \
                    WHERE i.verdict = 'valid'";
    assert_eq!(
        count(&lake, verified),
        events,
        "every stored event came from a valid file"
    );

    // One file changed after it was ingested: the next check records it, and the latest
    // verdict is what `integrity` shows (one row per file).
    let i = middle_with_logs(&s);
    let log = s.root.join(&s.digests[i].logs[0]);
    edit_one_byte(&log);
    let (run, r) = record(&lake);
    assert_eq!(run.code, Some(1));
    assert_eq!(r["summary"]["log_files"]["modified"], 1, "{r}");
    let from_it = count(
        &lake,
        &format!(
            "SELECT count(*) FROM cloudtrail WHERE sourcefile = '{}'",
            log.canonicalize().expect("path").display()
        ),
    );
    assert!(from_it > 0);
    assert_eq!(count(&lake, verified), events - from_it);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM integrity WHERE verdict = 'modified'"
        ),
        1
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM integrity"),
        10,
        "one row per file, the latest check"
    );

    // The report says what share of its window's events came from verified files.
    let out = lake.parent().expect("dir").join("report.json");
    let run = trailhouse(
        &lake,
        &[
            "report",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-05",
            "--format",
            "json",
            "-o",
            &out.to_string_lossy(),
        ],
    );
    assert!(run.code == Some(0) || run.code == Some(1), "{}", run.stderr);
    let report: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("JSON");
    let integrity = &report["table"]["integrity"];
    assert_eq!(
        integrity["events_verified"],
        events - from_it,
        "{integrity}"
    );
    assert_eq!(integrity["events_with_problems"], from_it, "{integrity}");
    assert_eq!(integrity["events_unchecked"], 0, "{integrity}");
    assert_eq!(integrity["by_verdict"]["modified"], from_it, "{integrity}");
}

#[test]
fn garbage_and_oversized_digests_are_refused_and_a_wrong_previous_signature_is_found() {
    let s = signed(SignSpec::default());
    let i = middle_with_logs(&s);
    let digest = s.root.join(&s.digests[i].path);
    let original = std::fs::read(&digest).expect("read");
    let unreadable = |r: &Value| reasons(r, "unreadable");

    // Not gzip at all.
    std::fs::write(&digest, b"\x1f\x8b this is not a digest").expect("write");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    assert!(unreadable(&r).contains("cannot be decompressed"), "{r}");
    // gzip, but not a digest.
    gzip_to(&digest, b"[1, 2, 3]");
    let (_, r) = verify(&s, &[]);
    assert!(unreadable(&r).contains("not a digest"), "{r}");
    // A gzip bomb: small stored, 65 MiB once decompressed; read no further than the limit.
    gzip_to(&digest, &vec![b' '; 65 << 20]);
    let (_, r) = verify(&s, &[]);
    assert!(
        unreadable(&r).contains("larger than any digest once decompressed"),
        "{r}"
    );
    // Larger than any digest as stored: not read at all.
    std::fs::write(&digest, vec![0u8; (64 << 20) + 1]).expect("write");
    let (_, r) = verify(&s, &[]);
    assert!(unreadable(&r).contains("not read"), "{r}");
    std::fs::write(&digest, &original).expect("restore");
    assert_eq!(verify(&s, &[]).0.code, Some(0));

    // The next digest signed (with the right key) over a previousDigestSignature that is not
    // the signature of the digest before it, whose own signature is kept as its metadata.
    let next = &s.digests[i + 1];
    let mut body: Value = serde_json::from_slice(&next.raw).expect("JSON");
    body["previousDigestSignature"] = s.digests[i - 1].signature.clone().into();
    let raw = serde_json::to_vec(&body).expect("JSON");
    let message = string_to_sign(
        body["digestEndTime"].as_str().expect("end"),
        body["digestS3Bucket"].as_str().expect("bucket"),
        &next.path.to_string_lossy(),
        &raw,
        body["previousDigestSignature"].as_str(),
    );
    let next_path = s.root.join(&next.path);
    gzip_to(&next_path, &raw);
    let sidecar = |p: &Path| PathBuf::from(format!("{}.metadata.json", p.display()));
    std::fs::write(
        sidecar(&next_path),
        serde_json::json!({"signature": s.key.sign(message.as_bytes())}).to_string(),
    )
    .expect("sidecar");
    std::fs::write(
        sidecar(&digest),
        serde_json::json!({"signature": s.digests[i].signature}).to_string(),
    )
    .expect("sidecar");
    let (run, r) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    // That digest, and the one after it, which recorded its hash as it was.
    let found = problems(&r);
    assert!(
        found.contains(&problem("digest", "chain-broken", file_name(&next_path))),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().all(|(_, v, _)| v == "chain-broken"),
        "{found:?}"
    );
    let broken = reasons(&r, "chain-broken");
    assert!(
        broken.contains("previousDigestSignature is not the signature of"),
        "{r}"
    );
    assert!(broken.contains("previousDigestHashValue"), "{r}");
}

#[test]
fn ingest_verify_checks_what_it_reads_by_the_hashes_it_took_and_settles_pending_files_later() {
    let s = signed(SignSpec {
        sidecars: Sidecars::All,
        ..SignSpec::default()
    });
    // The newest digest of one chain is not delivered yet: the logs of its hour are pending.
    let newest = s
        .digests
        .iter()
        .filter(|d| !d.logs.is_empty())
        .max_by_key(|d| file_name(&d.path))
        .expect("a digest listing logs");
    let held = s.root.join(&newest.path);
    let held_bytes = std::fs::read(&held).expect("read");
    std::fs::remove_file(&held).expect("hold back");
    let lake = s.root.parent().expect("dir").join("lake");
    let keys = s.keys.to_string_lossy().into_owned();
    let ingest = |lake: &Path| {
        let (run, r) = ingest_json(
            lake,
            &[&s.root],
            &["--verify", "--public-keys", keys.as_str()],
        );
        (run, r)
    };
    let (run, r) = ingest(&lake);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let pending = newest.logs.len();
    assert_eq!(r["verify"]["log_files"]["pending"], pending, "{r}");
    assert_eq!(r["verify"]["log_files"]["valid"], 10 - pending, "{r}");
    assert_eq!(r["verify"]["all_valid"], true, "{r}");
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM integrity WHERE verdict = 'pending'"
        ),
        pending as u64
    );

    // The digest arrives; the next run reads no new log file, and checks the pending ones.
    std::fs::write(&held, &held_bytes).expect("deliver");
    let (run, r) = ingest(&lake);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 0, "{r}");
    // The pending files, and any other the digests of their hours list (read from disk).
    assert_eq!(r["verify"]["log_files"]["pending"], Value::Null, "{r}");
    assert!(
        r["verify"]["log_files"]["valid"]
            .as_u64()
            .is_some_and(|n| n >= pending as u64),
        "{r}"
    );
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM integrity WHERE verdict = 'valid'"
        ),
        10
    );
}

#[test]
fn ingest_verify_without_the_keys_names_a_few_problems_of_each_verdict_and_counts_the_rest() {
    // Without public keys every digest is unknown-key: the run names the first ten with the
    // hint to give the keys, counts the others, and its own report stays readable.
    let s = signed(SignSpec::default());
    let n = s.digests.len();
    assert!(
        n > 10,
        "the fixture has {n} digests: too few to test the cap"
    );
    let lake = s.root.parent().expect("dir").join("lake");
    let (run, r) = ingest_json(&lake, &[&s.root], &["--verify"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(r["verify"]["digests"]["unknown-key"], n, "{r}");
    let named: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("verify: digest unknown-key "))
        .collect();
    assert_eq!(named.len(), 10, "{}", run.stderr);
    assert!(
        named.iter().all(|l| l.contains("--public-keys")),
        "{named:?}"
    );
    let more = format!("verify: ... and {} more digests unknown-key (", n - 10);
    assert!(
        run.stderr.lines().any(|l| l.starts_with(&more)),
        "{}",
        run.stderr
    );
    // The ten log files, each unverified, are all named: no count line for them.
    let logs = r["verify"]["log_files"]["unverified"]
        .as_u64()
        .expect("unverified log files");
    assert_eq!(logs, 10, "{r}");
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("verify: unverified "))
            .count(),
        10,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("more log files"), "{}", run.stderr);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM integrity WHERE verdict = 'unverified'"
        ),
        10
    );
}

#[test]
fn hashes_taken_while_reading_are_used_instead_of_reading_again() {
    use trailhouse_ingest::s3::S3Options;
    use trailhouse_ingest::verify::keys::PublicKeys;
    use trailhouse_ingest::verify::objects::Sources;
    use trailhouse_ingest::verify::{Window, verify};

    let s = signed(SignSpec::default());
    let keys = PublicKeys::load(&[&s.keys]).expect("keys");
    let sources =
        Sources::open(std::slice::from_ref(&s.root), &S3Options::default()).expect("sources");
    let log = s.root.join(&s.digests[middle_with_logs(&s)].logs[0]);
    let name = log.canonicalize().expect("path").display().to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let run = |known: std::collections::HashMap<String, [u8; 32]>| {
        runtime
            .block_on(verify(&sources, &keys, Window::default(), known))
            .expect("verify")
    };
    assert!(run(Default::default()).all_valid());
    // The file on disk is intact; the hash given for it (as an ingest that read other bytes
    // would have taken) is what is compared.
    let found = run([(name.clone(), [0; 32])].into_iter().collect());
    let modified: Vec<_> = found
        .log_files
        .iter()
        .filter(|l| l.verdict != trailhouse_ingest::verify::LogVerdict::Valid)
        .map(|l| (l.object.clone(), l.verdict))
        .collect();
    assert_eq!(
        modified,
        [(name, trailhouse_ingest::verify::LogVerdict::Modified)]
    );
}

#[test]
fn digests_judged_in_the_background_while_a_run_reads_get_the_verdicts_verify_gives() {
    use trailhouse_ingest::discover::discover_all;
    use trailhouse_ingest::s3::S3Options;
    use trailhouse_ingest::verify::early::{Ask, Early};
    use trailhouse_ingest::verify::keys::PublicKeys;
    use trailhouse_ingest::verify::objects::{Sources, Which};
    use trailhouse_ingest::verify::{Verification, check_logs, verify};

    let s = signed(SignSpec {
        sidecars: Sidecars::Newest,
        ..SignSpec::default()
    });
    let i = middle_with_logs(&s);
    edit_one_byte(&s.root.join(&s.digests[i].logs[0]));
    std::fs::remove_file(s.root.join(&s.digests[i + 1].path)).expect("delete");
    let keys = PublicKeys::load(&[&s.keys]).expect("keys");
    let found = discover_all(std::slice::from_ref(&s.root))
        .expect("walk")
        .files;
    let ask = Ask {
        keys: keys.clone(),
        pending: Vec::new(),
    };
    let early = Early::start(
        &found,
        found.iter().filter(|f| !f.is_digest()),
        &ask,
        1 << 30,
    );
    // Left alone (nothing else wants the cores), the background lists the chains and takes
    // every one.
    let started = std::time::Instant::now();
    while early.untaken() != Some(0) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "chains untaken after a minute: {:?}",
            early.untaken()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let judge_logs = |early: Early| {
        runtime
            .block_on(async {
                let (window, findings) = early.finish().await?.expect("log files to judge");
                let logs = Sources::listing_of(&found, Which::Logs);
                let judged = check_logs(&Sources::local_files(), logs, findings, window).await?;
                Ok::<_, trailhouse_ingest::verify::VerifyError>((window, judged))
            })
            .expect("judged")
    };
    let (window, judged) = judge_logs(early);
    let sources =
        Sources::open(std::slice::from_ref(&s.root), &S3Options::default()).expect("sources");
    let all = runtime
        .block_on(verify(&sources, &keys, window, Default::default()))
        .expect("verify");
    let verdicts = |v: &Verification| {
        let digests: Vec<(String, &str)> = v
            .digests
            .iter()
            .map(|d| (d.object.clone(), d.verdict.as_str()))
            .collect();
        let logs: Vec<(String, &str)> = v
            .log_files
            .iter()
            .map(|l| (l.object.clone(), l.verdict.as_str()))
            .collect();
        (digests, logs)
    };
    let (digests, logs) = verdicts(&judged);
    assert_eq!((&digests, &logs), (&verdicts(&all).0, &verdicts(&all).1));
    // The verdicts of one chain share its id (a 90-day chain has 2,000 digests): held once.
    for v in [&judged, &all] {
        let same_chain: Vec<_> = v
            .digests
            .windows(2)
            .filter(|pair| pair[0].chain == pair[1].chain)
            .collect();
        assert!(same_chain.len() > 1, "{} digests", v.digests.len());
        for pair in same_chain {
            assert!(
                std::sync::Arc::ptr_eq(&pair[0].chain, &pair[1].chain),
                "{}",
                pair[0].chain
            );
        }
    }

    // With no memory to hold findings in, the background takes no chain: the run's end judges
    // them all, the same.
    let held_back = Early::start(&found, found.iter().filter(|f| !f.is_digest()), &ask, 0);
    let started = std::time::Instant::now();
    while held_back.untaken().is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let chains = held_back.untaken();
    assert!(chains.is_some_and(|n| n > 1), "{chains:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(held_back.untaken(), chains);
    let (_, judged) = judge_logs(held_back);
    assert_eq!(verdicts(&judged), verdicts(&all));
    assert!(digests.iter().any(|(_, v)| *v == "valid"), "{digests:?}");
    // The deleted digest's neighbours say so.
    assert!(digests.iter().any(|(_, v)| *v != "valid"), "{digests:?}");
    assert_eq!(
        logs.iter().filter(|(_, v)| *v == "modified").count(),
        1,
        "{logs:?}"
    );
}

#[test]
fn ingest_verify_finds_what_verify_finds_in_a_tampered_trail() {
    // The log files are judged by the hashes the run took as it read them: the verdicts are
    // those of `verify` reading everything itself.
    let s = signed(SignSpec {
        sidecars: Sidecars::All,
        ..SignSpec::default()
    });
    let i = middle_with_logs(&s);
    let log = s.root.join(&s.digests[i].logs[0]);
    edit_one_byte(&log);
    // Another chain's digest deleted from its middle.
    let other = (1..s.digests.len() - 1)
        .find(|&j| {
            s.digests[j].path.parent() != s.digests[i].path.parent()
                && !s.digests[j].backfill
                && s.digests[j - 1].path.parent() == s.digests[j].path.parent()
                && s.digests[j + 1].path.parent() == s.digests[j].path.parent()
        })
        .unwrap_or(i);
    std::fs::remove_file(s.root.join(&s.digests[other].path)).expect("delete");

    let (run, checked) = verify(&s, &[]);
    assert_eq!(run.code, Some(1));
    let keys = s.keys.to_string_lossy().into_owned();
    let lake = s.root.parent().expect("dir").join("lake");
    let (run, r) = ingest_json(
        &lake,
        &[&s.root],
        &["--verify", "--public-keys", keys.as_str()],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(r["files_loaded"], 10, "{r}");
    assert_eq!(
        r["verify"]["log_files"], checked["summary"]["log_files"],
        "{r}"
    );
    assert_eq!(r["verify"]["log_files"]["modified"], 1, "{r}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("verify: modified ") && l.contains(&file_name(&log))),
        "{}",
        run.stderr
    );
    assert_eq!(
        r["verify"]["digests"]["chain-broken"], checked["summary"]["digests"]["chain-broken"],
        "{r}"
    );
    assert!(
        r["verify"]["digests"]["chain-broken"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{r}"
    );
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM integrity WHERE verdict = 'modified'"
        ),
        1
    );
}
