//! `trailhouse report`: the packs' controls over fixtures with known findings, in JSON, Markdown
//! and HTML (rendered by headless Chromium where it is installed), and the exit codes cron sees.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// A lake with: a root API call, a console sign-in without MFA, trail logging stopped by an
/// assumed-role session whose key alice minted, a Decrypt (no control), and look-alikes (a
/// root call invoked by a service, a sign-in with MFA).
fn findings_lake() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, lake) = (dir.path().join("src"), dir.path().join("lake"));
    let root = json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333", "principalId": "111122223333"});
    let mut root_call = event(
        "root-call",
        "2026-11-02T08:00:00Z",
        "CreateUser",
        "us-east-1",
    );
    root_call["eventSource"] = json!("iam.amazonaws.com");
    root_call["userIdentity"] = root.clone();
    let mut root_invoked = event(
        "root-invoked",
        "2026-11-02T08:05:00Z",
        "PutObject",
        "us-east-1",
    );
    root_invoked["userIdentity"] = root;
    root_invoked["userIdentity"]["invokedBy"] = json!("cloudtrail.amazonaws.com");

    let login = |id: &str, mfa: &str, time: &str| {
        let mut e = event(id, time, "ConsoleLogin", "us-east-1");
        e["eventSource"] = json!("signin.amazonaws.com");
        e["userIdentity"] = json!({"type": "IAMUser", "arn": format!("arn:aws:iam::111122223333:user/{id}"), "userName": id});
        e["responseElements"] = json!({"ConsoleLogin": "Success"});
        e["additionalEventData"] = json!({"MFAUsed": mfa});
        e["sourceIPAddress"] = json!("203.0.113.9");
        e
    };
    let mut mint = event("mint", "2026-11-03T09:00:00Z", "AssumeRole", "us-east-1");
    mint["eventSource"] = json!("sts.amazonaws.com");
    mint["requestParameters"] =
        json!({"roleArn": "arn:aws:iam::111122223333:role/Ops", "roleSessionName": "alice"});
    mint["responseElements"] = json!({"credentials": {"accessKeyId": "ASIAOPSALICE"}});
    let mut stop = event(
        "stop-logging",
        "2026-11-03T09:10:00Z",
        "StopLogging",
        "us-east-1",
    );
    stop["eventSource"] = json!("cloudtrail.amazonaws.com");
    stop["userIdentity"] = json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Ops/alice",
                                  "accountId": "111122223333", "accessKeyId": "ASIAOPSALICE"});
    stop["sourceIPAddress"] = json!("198.51.100.44");
    let mut decrypt = event("decrypt", "2026-11-04T10:00:00Z", "Decrypt", "eu-west-1");
    decrypt["eventSource"] = json!("kms.amazonaws.com");
    decrypt["errorCode"] = json!("ThrottlingException");

    write_trail_file(
        &src,
        "us-east-1",
        2,
        "a.json.gz",
        &[
            root_call,
            root_invoked,
            login("bob", "No", "2026-11-02T09:00:00Z"),
            login("carol", "Yes", "2026-11-02T09:30:00Z"),
        ],
    );
    write_trail_file(&src, "us-east-1", 3, "b.json.gz", &[mint, stop]);
    write_trail_file(&src, "eu-west-1", 4, "c.json.gz", &[decrypt]);
    let (run, _) = ingest_json(&lake, &[&src], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    (dir, lake)
}

const WINDOW: [&str; 4] = ["--since", "2026-11-01", "--until", "2026-11-05"];

fn report(lake: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["report", "--pack", "cis-v6.0", "--pack", "security"];
    args.extend(WINDOW);
    args.extend(extra);
    trailhouse(lake, &args)
}

fn control<'a>(r: &'a Value, pack: &str, query: &str) -> &'a Value {
    r["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .find(|c| c["pack"] == pack && c["query"] == query)
        .unwrap_or_else(|| panic!("no control {pack} {query}"))
}

#[test]
fn the_json_report_names_each_finding_its_principals_and_the_origin_of_their_keys() {
    let (_dir, lake) = findings_lake();
    let run = report(&lake, &["--format", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(r["report_version"], 1);
    assert_eq!(r["packs"], json!(["cis-v6.0", "security"]));
    assert_eq!(
        r["window"],
        json!({"since": "2026-11-01T00:00:00Z", "until": "2026-11-05T00:00:00Z"})
    );
    assert_eq!(r["table"]["records"], 7);
    assert_eq!(r["table"]["records_in_window"], 7);
    assert_eq!(r["table"]["files"], 3);
    assert_eq!(r["table"]["quarantined"], 0);
    assert!(
        r["table"]["last_commit"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    // CIS v6.0 5.3, root usage: the direct call, not the one a service made on root's behalf.
    let root = control(&r, "cis-v6.0", "compliance/cis-root-account-usage");
    assert_eq!(root["id"], "5.3");
    assert_eq!(root["security_hub"], "CloudWatch.1");
    assert_eq!(root["status"], "findings");
    assert_eq!(root["count"], 1);
    assert_eq!(root["events"][0]["eventid"], "root-call");
    assert_eq!(root["first_seen"], "2026-11-02T08:00:00Z");
    assert_eq!(
        root["command"],
        format!(
            "trailhouse --lake {} run compliance/cis-root-account-usage --since 2026-11-01T00:00:00Z --until 2026-11-05T00:00:00Z",
            lake.display()
        )
    );

    // 5.5 and trail tampering: the session that stopped logging, and alice behind its key.
    for (pack, query) in [
        ("cis-v6.0", "compliance/cis-cloudtrail-changes"),
        ("security", "security/trail-tampering"),
    ] {
        let c = control(&r, pack, query);
        assert_eq!(c["count"], 1, "{query}");
        assert_eq!(
            c["principals"],
            json!([{"principal": "arn:aws:sts::111122223333:assumed-role/Ops/alice",
                    "origins": ["arn:aws:iam::111122223333:user/alice via AssumeRole"], "count": 1}]),
            "{query}"
        );
        assert_eq!(
            c["source_ips"],
            json!([{"value": "198.51.100.44", "count": 1}])
        );
    }
    // 5.2: bob without MFA; carol used MFA.
    let mfa = control(&r, "cis-v6.0", "compliance/cis-console-login-no-mfa");
    assert_eq!(mfa["count"], 1);
    assert_eq!(mfa["events"][0]["eventid"], "bob");
    for clean in [
        "compliance/cis-kms-disable-or-delete",
        "compliance/cis-iam-policy-changes",
        "compliance/cis-vpc-changes",
    ] {
        let c = control(&r, "cis-v6.0", clean);
        assert_eq!(
            (c["status"].as_str(), c["count"].as_u64()),
            (Some("clean"), Some(0)),
            "{clean}"
        );
        assert_eq!(c["events"], json!([]));
    }
    // Every CIS v6.0 monitoring control 5.1-5.15 is there (5.1 and 5.2 twice: both readings/variants).
    let ids: Vec<&str> = r["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter(|c| c["pack"] == "cis-v6.0")
        .filter_map(|c| c["id"].as_str())
        .collect();
    for n in 1..=15 {
        assert!(
            ids.contains(&format!("5.{n}").as_str()),
            "5.{n} missing: {ids:?}"
        );
    }
    // The summary reconciles with the controls.
    let controls = r["controls"].as_array().expect("controls");
    assert_eq!(r["summary"]["controls"], controls.len());
    assert_eq!(
        r["summary"]["controls_with_findings"],
        controls
            .iter()
            .filter(|c| c["count"].as_u64() > Some(0))
            .count()
    );
    assert_eq!(
        r["summary"]["findings"],
        controls
            .iter()
            .filter_map(|c| c["count"].as_u64())
            .sum::<u64>()
    );
    // Activity: events and errors per day (the Decrypt failed).
    assert_eq!(
        r["activity"]["days"],
        json!([{"day": "2026-11-02", "events": 4, "errors": 0}, {"day": "2026-11-03", "events": 2, "errors": 0},
               {"day": "2026-11-04", "events": 1, "errors": 1}])
    );
    assert_eq!(
        r["activity"]["top_source_ips"][0],
        json!({"value": "198.51.100.1", "count": 4})
    );
}

#[test]
fn exit_codes_tell_cron_whether_anything_matched() {
    let (_dir, lake) = findings_lake();
    assert_eq!(
        report(&lake, &["--format", "json", "--fail-on-findings"]).code,
        Some(1)
    );
    // A window with no events is clean: 0 even with --fail-on-findings.
    let quiet = trailhouse(
        &lake,
        &[
            "report",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-02",
            "--format",
            "json",
            "--fail-on-findings",
        ],
    );
    assert_eq!(quiet.code, Some(0), "{}", quiet.stderr);
    let r: Value = serde_json::from_str(&quiet.stdout).expect("json");
    assert_eq!(r["summary"]["controls_with_findings"], 0);
    assert_eq!(r["table"]["records_in_window"], 0);
    let bad = trailhouse(&lake, &["report", "--pack", "cis-v9", "--format", "json"]);
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("no report pack `cis-v9`") && bad.stderr.contains("cis-v5.0"),
        "{}",
        bad.stderr
    );
    let backwards = trailhouse(
        &lake,
        &["report", "--since", "2026-11-05", "--until", "2026-11-01"],
    );
    assert_eq!(backwards.code, Some(2));
    assert!(
        backwards.stderr.contains("window is empty"),
        "{}",
        backwards.stderr
    );
}

#[test]
fn older_benchmark_versions_use_their_own_patterns() {
    let (_dir, lake) = findings_lake();
    let run = trailhouse(
        &lake,
        &[
            "report",
            "--pack",
            "cis-v1.2",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-05",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r: Value = serde_json::from_str(&run.stdout).expect("json");
    let ids: Vec<&str> = r["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, (1..=14).map(|n| format!("3.{n}")).collect::<Vec<_>>());
    assert_eq!(
        control(&r, "cis-v1.2", "compliance/cis-root-account-usage")["id"],
        "3.3"
    );
    assert_eq!(
        control(&r, "cis-v1.2", "compliance/cis-security-group-changes")["id"],
        "3.10"
    );
    // `cis-v5` names cis-v5.0, whose 4.10 includes ModifySecurityGroupRules.
    let v5 = trailhouse(
        &lake,
        &[
            "report",
            "--pack",
            "cis-v5",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-05",
            "--format",
            "json",
        ],
    );
    let r: Value = serde_json::from_str(&v5.stdout).expect("json");
    assert_eq!(r["packs"], json!(["cis-v5.0"]));
    assert_eq!(
        control(&r, "cis-v5.0", "compliance/cis-security-group-changes-v5")["id"],
        "4.10"
    );
}

#[test]
fn markdown_lists_every_control_and_the_findings() {
    let (dir, lake) = findings_lake();
    let out = dir.path().join("report.md");
    let run = report(
        &lake,
        &[
            "--format",
            "markdown",
            "--output",
            out.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let md = std::fs::read_to_string(&out).expect("report");
    assert!(
        md.starts_with("# trailhouse report: cis-v6.0, security\n"),
        "{md}"
    );
    assert!(md.contains("| **FINDINGS** | cis-v6.0 | 5.3 | `compliance/cis-root-account-usage` | CloudWatch.1 | 1 |"), "{md}");
    assert!(
        md.contains(
            "| clean | cis-v6.0 | 5.7 | `compliance/cis-kms-disable-or-delete` | CloudWatch.7 | 0 |"
        ),
        "{md}"
    );
    assert!(md.contains("| arn:aws:sts::111122223333:assumed-role/Ops/alice | arn:aws:iam::111122223333:user/alice via AssumeRole | 1 |"), "{md}");
    assert!(
        md.contains("run security/trail-tampering --since 2026-11-01T00:00:00Z"),
        "{md}"
    );
    assert!(run.stderr.contains("controls matched"), "{}", run.stderr);
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// The HTML report of the findings lake, written to `report.html` in the lake's directory.
fn html_report() -> (tempfile::TempDir, PathBuf, String) {
    let (dir, lake) = findings_lake();
    let out = dir.path().join("report.html");
    let run = report(
        &lake,
        &["--format", "html", "--output", out.to_str().expect("path")],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let html = std::fs::read_to_string(&out).expect("report");
    (dir, out, html)
}

#[test]
fn the_html_report_is_self_contained() {
    let (_dir, _, html) = html_report();
    for banned in ["<script", "<link", "@import", "src=", "url("] {
        assert!(
            !html.contains(banned),
            "the report loads something: {banned}"
        );
    }
    assert!(html.matches("<svg").count() >= 6, "charts");
    assert!(html.contains("arn:aws:iam::111122223333:user/alice via AssumeRole"));
    assert!(html.contains("<span class=\"badge findings\">findings</span>"));
}

#[test]
#[cfg_attr(
    not(has_chromium),
    ignore = "Chromium was not on PATH when the tests were built (install Debian's chromium)"
)]
fn the_html_report_renders_in_chromium() {
    let (dir, out, _) = html_report();
    let browser = chromium().expect("Chromium was on PATH when the tests were built");
    let profile = dir.path().join("chromium-profile");
    let shot = dir.path().join("report.png");
    let url = format!("file://{}", out.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        // Nothing may come from the network: every host resolves to nowhere.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ];
    let user_dir = format!("--user-data-dir={}", profile.display());
    let dom = Command::new(&browser)
        .args(common)
        .arg(&user_dir)
        .args(["--dump-dom", &url])
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {stderr}");
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.contains("Findings per control") && text.contains("cis-root-account-usage"),
        "DOM: {text}"
    );
    for error in ["Failed to load resource", "Uncaught", "net::ERR_"] {
        assert!(
            !stderr.contains(error),
            "chromium reported {error}: {stderr}"
        );
    }
    let png = Command::new(&browser)
        .args(common)
        .arg(&user_dir)
        .args([
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
            &url,
        ])
        .output()
        .expect("run chromium");
    assert!(
        png.status.success(),
        "{}",
        String::from_utf8_lossy(&png.stderr)
    );
    let image = std::fs::read(&shot).expect("screenshot");
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > 20_000,
        "{} bytes",
        image.len()
    );
}

/// The report's content without what differs between runs (when it ran, how long it took), the
/// sampled rows as a sorted list (rows tied in a query's order may come in either order).
pub(crate) fn content(run: &Run) -> Value {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut r: Value = serde_json::from_str(&run.stdout).expect("json");
    r.as_object_mut().expect("object").remove("generated_at");
    for c in r["controls"].as_array_mut().expect("controls") {
        let c = c.as_object_mut().expect("control");
        c.remove("seconds");
        let mut events: Vec<String> = c["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e.to_string())
            .collect();
        events.sort();
        c.insert("events".into(), json!(events));
    }
    r
}

#[test]
fn the_shared_scan_and_a_small_memory_pool_give_the_report_each_control_gives_alone() {
    // Every pattern of every pack, over the messy third-party corpus and the sample trail.
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    ingest_json(
        &lake,
        &[&repo_root().join("sample-logs"), &corpus_dir()],
        &[],
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "report",
            "--pack",
            "cis-v1.2",
            "--pack",
            "cis-v1.4",
            "--pack",
            "cis-v5.0",
            "--pack",
            "cis-v6.0",
            "--pack",
            "security",
            "--since",
            "2000-01-01",
            "--until",
            "2026-11-29",
            "--format",
            "json",
            "--max-events",
            "10000",
        ];
        args.extend_from_slice(extra);
        trailhouse(&lake, &args)
    };
    let alone = run(&["--separate-scans"]);
    assert!(
        !alone.stderr.contains("shared one scan"),
        "{}",
        alone.stderr
    );
    let shared = run(&[]);
    // Every query but the one that reads the table twice (a baseline beside the window).
    assert!(
        shared.stderr.contains("31 of 32 queries shared one scan"),
        "{}",
        shared.stderr
    );
    // The smallest memory pool: the reductions spill to disk, the report is the same.
    let small = run(&["--memory", "64"]);
    let expected = content(&alone);
    let with_findings = expected["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter(|c| c["count"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(with_findings > 40, "{with_findings} controls with findings");
    assert_eq!(content(&shared), expected);
    assert_eq!(content(&small), expected);
}
