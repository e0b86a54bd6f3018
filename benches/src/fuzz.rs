//! Mutation fuzzer of the read path: decompress → parse → scan → normalize, as ingest reads a
//! file ([`trailhouse_ingest::read_bytes`]), on stable Rust (the `fuzz-read` binary runs it).
//!
//! Seeds are the repository's third-party corpus (`tests/corpus`) and the sample trail
//! (`sample-logs`), decompressed. Each input is a seed mutated (bytes replaced, inserted,
//! deleted; spans duplicated, spliced from another seed or cut; deep nesting, odd escapes, huge
//! numbers, odd times) or, for half the inputs, its records' values mutated so that the file stays
//! valid JSON; fed as text or as gzip (whose bytes are sometimes damaged too). Every input must
//! read without a panic and within a time limit, and account for its records. When serde_json
//! reads the text as a trail file (`{"Records": [...]}`), the file must load whole and each record
//! must either be quarantined with a reason or come back from its row (through the export's
//! rebuild) equal to serde_json's reading of it. An input that breaks a rule is written out.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use trailhouse_ingest::decompress;
use trailhouse_lake::rebuild::Rebuilder;

/// How long and how hard to fuzz.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    pub duration: Duration,
    /// At most this many inputs (0: no limit).
    pub inputs: u64,
    pub seed: u64,
    /// Where inputs that break a rule are written.
    pub out: PathBuf,
    /// An input taking longer than this is a hang.
    pub hang: Duration,
    /// Print a progress line every this many inputs (0: never).
    pub progress_every: u64,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct FuzzSummary {
    pub inputs: u64,
    pub findings: Vec<(PathBuf, String)>,
    /// Inputs by how they read (loaded and compared with serde_json, failed, not CloudTrail, …).
    pub tally: BTreeMap<&'static str, u64>,
}

/// Fuzzes the read path with seeds from the repository at `root`.
pub fn run(root: &Path, opts: &FuzzOptions) -> anyhow::Result<FuzzSummary> {
    let seeds = seeds(&[root.join("tests/corpus"), root.join("sample-logs")])?;
    anyhow::ensure!(
        !seeds.is_empty(),
        "no seeds under tests/corpus and sample-logs"
    );
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let deadline = Instant::now() + opts.duration;
    let mut summary = FuzzSummary::default();
    while Instant::now() < deadline && (opts.inputs == 0 || summary.inputs < opts.inputs) {
        summary.inputs += 1;
        let n = summary.inputs;
        // Half the inputs stay valid JSON (values mutated), so the oracle applies to them.
        let text = if rng.random_bool(0.5)
            && let Some(t) = mutate_values(&mut rng, &seeds)
        {
            t
        } else {
            mutate(&mut rng, &seeds)
        };
        let (bytes, as_gzip) = if rng.random_bool(0.3) {
            let mut gz = gzip(&text);
            if rng.random_bool(0.3) {
                damage(&mut rng, &mut gz);
            }
            (gz, true)
        } else {
            (text.clone(), false)
        };
        let started = Instant::now();
        let verdict = catch_unwind(AssertUnwindSafe(|| check(&bytes, &text, as_gzip)));
        let took = started.elapsed();
        let problem = match verdict {
            Err(panic) => Some(format!("panic: {}", panic_text(&panic))),
            Ok(Err(e)) => Some(e),
            Ok(Ok(kind)) => {
                *summary.tally.entry(kind).or_default() += 1;
                (took > opts.hang).then(|| format!("took {:.1} s (a hang)", took.as_secs_f64()))
            }
        };
        if let Some(problem) = problem {
            std::fs::create_dir_all(&opts.out)?;
            let path = opts.out.join(format!("finding-{}-{n}.bin", opts.seed));
            std::fs::write(&path, &bytes)?;
            println!("FINDING {}: {problem}", path.display());
            summary.findings.push((path, problem));
        }
        if opts.progress_every > 0 && n.is_multiple_of(opts.progress_every) {
            println!(
                "{n} inputs, {} findings, {:?}",
                summary.findings.len(),
                summary.tally
            );
        }
    }
    Ok(summary)
}

/// Reads `bytes` as ingest does and checks the rules; `text` is what was (maybe) compressed.
fn check(bytes: &[u8], text: &[u8], as_gzip: bool) -> Result<&'static str, String> {
    let reading =
        trailhouse_ingest::read_bytes(Path::new("fuzz.json"), bytes.to_vec(), 64 << 20, 32 << 20);
    let rows = reading.rows.as_ref().map_or(0, |b| b.num_rows()) as u64;
    let quarantined = reading.quarantined.len() as u64;
    if rows + quarantined != reading.records {
        return Err(format!(
            "{} records read, {rows} rows + {quarantined} quarantined",
            reading.records
        ));
    }
    if let Some((i, reason, _)) = reading.quarantined.iter().find(|q| q.1.is_empty()) {
        return Err(format!(
            "record {i} quarantined without a reason: {reason:?}"
        ));
    }
    // The oracle applies when the input is a whole, valid trail file (gzip intact).
    let Ok(Value::Object(file)) = serde_json::from_slice::<Value>(text) else {
        return Ok(kind(&reading.outcome, "other"));
    };
    let Some(Value::Array(records)) = file.get("Records") else {
        return Ok(kind(&reading.outcome, "other"));
    };
    if file.len() != 1 || (as_gzip && gunzip(bytes).as_deref() != Some(text)) {
        return Ok(kind(&reading.outcome, "other"));
    }
    if let Err(e) = &reading.outcome {
        return Err(format!("a valid trail file failed: {e}"));
    }
    if reading.records != records.len() as u64 {
        return Err(format!(
            "serde_json reads {} records, ingest {}",
            records.len(),
            reading.records
        ));
    }
    let quarantined: BTreeMap<i64, &str> = reading
        .quarantined
        .iter()
        .map(|(i, _, t)| (*i, t.as_str()))
        .collect();
    let rebuilder = match &reading.rows {
        Some(b) => Some(Rebuilder::new(b).map_err(|e| format!("rebuild: {e}"))?),
        None => None,
    };
    let mut row = 0;
    for (i, want) in records.iter().enumerate() {
        let got: Value = if let Some(text) = quarantined.get(&(i as i64)) {
            serde_json::from_str(text).map_err(|e| format!("record {i} quarantined as {e}"))?
        } else {
            let Some(rebuilder) = &rebuilder else {
                return Err(format!("record {i}: no row and not quarantined"));
            };
            let mut line = String::new();
            rebuilder
                .write_row(row, &mut line)
                .map_err(|e| format!("record {i}: rebuild: {e}"))?;
            row += 1;
            serde_json::from_str(&line).map_err(|e| format!("record {i} rebuilt as {e}: {line}"))?
        };
        if &got != want {
            return Err(format!(
                "record {i} differs:\n  serde: {want}\n  ours:  {got}"
            ));
        }
    }
    Ok(kind(&reading.outcome, "trail, compared"))
}

fn kind(outcome: &Result<&'static str, String>, label: &'static str) -> &'static str {
    match outcome {
        Ok("loaded") => label,
        Ok(other) => other,
        Err(_) => "failed or cut short",
    }
}

/// The decompressed seeds: every file under `dirs` that decompresses.
fn seeds(dirs: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut stack = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "gz" || e == "json")
                && let Ok(c) = decompress::decode(std::fs::read(&path)?, 64 << 20, Vec::new())
            {
                out.push(c.bytes);
            }
        }
    }
    out.sort();
    Ok(out)
}

const ALPHABET: &[u8] = b"{}[]:,\"\\ \t\nnulltruefalse0123456789-+.eEuZT\x00\x01\x7f\xc3\xa9\xff";

/// Snippets that reach the odd corners of JSON and of CloudTrail's fields.
const SNIPPETS: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "1e999999",
    "-0.0",
    "123456789012345678901234567890",
    "\"2026-11-01T00:00:00.123456789+05:30\"",
    "\"2026-13-45T25:61:61Z\"",
    "\"eventTime\":\"9999-12-31T23:59:59Z\"",
    "\"eventtime\":\"2026-01-01T00:00:00Z\"",
    "\"EventTime\":1700000000",
    "\"userIdentity\":\"a string\"",
    "\"resources\":{\"not\":\"a list\"}",
    "\"readOnly\":\"true\"",
    "\"eventID\":null",
    "\"awsRegion\":\"../../x\"",
    "\"requestParameters\":[1,2,3]",
    "\"tlsDetails\":{\"tlsVersion\":7}",
    "\"userAgent\":[\"a\"]",
    "{\"eventTime\":\"2026-11-01T00:00:00Z\"}",
];

/// A seed, mutated 1–8 times.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        let len = b.len().max(1);
        let at = rng.random_range(0..len).min(b.len());
        match rng.random_range(0..10) {
            0 => {
                if at < b.len() {
                    b[at] = ALPHABET[rng.random_range(0..ALPHABET.len())];
                }
            }
            1 => b.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]),
            2 => {
                if at < b.len() {
                    b.remove(at);
                }
            }
            3 => {
                let end = (at + rng.random_range(1..64)).min(b.len());
                let span = b[at..end].to_vec();
                b.splice(at..at, span);
            }
            4 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..other.len().max(1)).min(other.len());
                let end = (from + rng.random_range(1..512)).min(other.len());
                b.splice(at..at, other[from..end].iter().copied());
            }
            5 => {
                let end = (at + rng.random_range(1..256)).min(b.len());
                b.drain(at..end);
            }
            6 => {
                let depth = rng.random_range(1..5000);
                let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                b.splice(at..at, nested.into_bytes());
            }
            7 | 8 => {
                let s = SNIPPETS[rng.random_range(0..SNIPPETS.len())];
                b.splice(at..at, s.bytes());
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Keys records are read by, in several spellings, and keys CloudTrail never wrote.
const KEYS: &[&str] = &[
    "eventTime",
    "eventtime",
    "EVENTTIME",
    "eventID",
    "eventName",
    "eventSource",
    "awsRegion",
    "userIdentity",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "resources",
    "readOnly",
    "managementEvent",
    "tlsDetails",
    "errorCode",
    "recipientAccountId",
    "eventVersion",
    "vpcEndpointId",
    "sessionCredentialFromConsole",
    "unknownField",
    "Records",
    "",
    "ü\u{0}",
];

/// A random JSON value: odd strings, numbers of every kind, nesting up to `depth`.
fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..9) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => serde_json::json!(rng.random::<i64>()),
        3 => serde_json::json!(rng.random::<f64>() * 1e300),
        4 => {
            let pick = [
                "",
                "\u{0}\u{1b}[31m",
                "ǅ\u{202e}x",
                "\\\"",
                "2026-11-01T00:00:00Z",
                "2026-11-01 00:00:00",
                "1700000000",
                "arn:aws:iam::1:user/a",
                "AKIA1234",
            ];
            Value::String(pick[rng.random_range(0..pick.len())].to_string())
        }
        5 if depth > 0 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        6 if depth > 0 => Value::Object(
            (0..rng.random_range(0..4))
                .map(|_| {
                    (
                        KEYS[rng.random_range(0..KEYS.len())].to_string(),
                        random_value(rng, depth - 1),
                    )
                })
                .collect(),
        ),
        7 => {
            let d = rng.random_range(1..60);
            (0..d).fold(Value::Null, |v, _| Value::Array(vec![v]))
        }
        _ => Value::String("x".repeat(rng.random_range(0..3000))),
    }
}

/// A trail seed with its records' values mutated, written compact or pretty: still valid JSON.
fn mutate_values(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Option<Vec<u8>> {
    let seed = &seeds[rng.random_range(0..seeds.len())];
    let mut file: Value = serde_json::from_slice(seed).ok()?;
    let records = file.get_mut("Records")?.as_array_mut()?;
    if records.is_empty() {
        return None;
    }
    for _ in 0..rng.random_range(1..6) {
        let i = rng.random_range(0..records.len());
        match rng.random_range(0..5) {
            0 => {
                let copy = records[i].clone();
                records.insert(rng.random_range(0..=records.len()), copy);
            }
            1 => records[i] = random_value(rng, 3),
            2 => {
                if let Some(o) = records[i].as_object_mut()
                    && let Some(k) = o.keys().nth(rng.random_range(0..o.len().max(1))).cloned()
                {
                    o.remove(&k);
                }
            }
            _ => {
                if let Some(o) = records[i].as_object_mut() {
                    let key = KEYS[rng.random_range(0..KEYS.len())].to_string();
                    o.insert(key, random_value(rng, 4));
                }
            }
        }
    }
    if rng.random_bool(0.5) {
        serde_json::to_vec_pretty(&file).ok()
    } else {
        serde_json::to_vec(&file).ok()
    }
}

/// Flips, zeroes or cuts bytes of a gzip stream.
fn damage(rng: &mut StdRng, gz: &mut Vec<u8>) {
    if gz.is_empty() {
        return;
    }
    match rng.random_range(0..3) {
        0 => {
            let at = rng.random_range(0..gz.len());
            gz[at] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let at = rng.random_range(0..gz.len());
            gz.truncate(at);
        }
        _ => {
            let extra = gzip(b"{\"Records\":[]}");
            gz.extend(extra);
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(data), &mut out).ok()?;
    Some(out)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short run with a fixed seed (the long runs are the binary's): nothing found, and both
    /// the oracle's comparisons and broken inputs are exercised.
    #[test]
    fn a_short_fuzz_run_finds_nothing() {
        let out = tempfile::tempdir().expect("tempdir");
        let opts = FuzzOptions {
            duration: Duration::from_secs(600),
            inputs: 20_000,
            seed: 20261203,
            out: out.path().to_path_buf(),
            hang: Duration::from_secs(30),
            progress_every: 0,
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let summary = run(&root, &opts).expect("run");
        assert!(summary.findings.is_empty(), "{:?}", summary.findings);
        let compared = summary.tally.get("trail, compared").copied().unwrap_or(0);
        let broken = summary
            .tally
            .get("failed or cut short")
            .copied()
            .unwrap_or(0);
        assert!(compared > 5_000 && broken > 5_000, "{:?}", summary.tally);
    }
}
