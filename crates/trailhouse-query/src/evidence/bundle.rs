//! An evidence bundle on disk: a new folder holding
//!
//! - `records.ndjson`: the records, one compact JSON object per line;
//! - `records.csv`: for each line, its number, eventID, eventTime, the SHA-256 of the line
//!   (without its new line), the source object it came from and that object's integrity verdict;
//! - `query.json`: how they were found ([`Provenance`]);
//! - `SHA256SUMS`: the SHA-256 of each of those files, in the form `sha256sum -c SHA256SUMS`
//!   checks without trailhouse.
//!
//! The bundle's fingerprint is the SHA-256 of `SHA256SUMS`: whoever receives the bundle notes it
//! (in the case file, the chain-of-custody form); `trailhouse evidence check` recomputes every
//! hash and prints it, so any edited byte, added, removed or renamed file shows.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{EvidenceRecord, Provenance};
use crate::error::QueryError;

pub const RECORDS: &str = "records.ndjson";
pub const INDEX: &str = "records.csv";
pub const QUERY: &str = "query.json";
pub const SUMS: &str = "SHA256SUMS";
/// The files listed in `SHA256SUMS`, in its order.
const LISTED: [&str; 3] = [RECORDS, INDEX, QUERY];

/// Writes a bundle as its records come.
pub struct BundleWriter {
    dir: PathBuf,
    records: BufWriter<File>,
    index: csv::Writer<File>,
    lines: u64,
}

fn bad(message: String) -> QueryError {
    QueryError::Evidence(message)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

fn file_sha256(path: &Path) -> Result<String, QueryError> {
    let mut file = File::open(path)?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    Ok(hex::encode(context.finish()))
}

impl BundleWriter {
    /// Starts a bundle in `dir`, which must not exist or be an empty folder: evidence is never
    /// written over.
    pub fn create(dir: &Path) -> Result<Self, QueryError> {
        if dir.exists() {
            let empty = dir.is_dir() && fs::read_dir(dir)?.next().is_none();
            if !empty {
                return Err(bad(format!(
                    "`{}` exists and is not an empty folder: a bundle is written to a new one",
                    dir.display()
                )));
            }
        }
        fs::create_dir_all(dir)?;
        let records = BufWriter::new(File::create(dir.join(RECORDS))?);
        let mut index = csv::Writer::from_path(dir.join(INDEX)).map_err(csv_error)?;
        index
            .write_record([
                "line",
                "eventid",
                "eventtime",
                "sha256",
                "sourcefile",
                "integrity",
            ])
            .map_err(csv_error)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            records,
            index,
            lines: 0,
        })
    }

    /// Appends one record.
    pub fn add(&mut self, record: &EvidenceRecord) -> Result<(), QueryError> {
        self.lines += 1;
        self.records.write_all(record.json.as_bytes())?;
        self.records.write_all(b"\n")?;
        self.index
            .write_record([
                self.lines.to_string().as_str(),
                &record.eventid,
                &record.eventtime,
                &sha256(record.json.as_bytes()),
                &record.sourcefile,
                &record.integrity,
            ])
            .map_err(csv_error)?;
        Ok(())
    }

    /// Writes `query.json` and `SHA256SUMS`, makes every file durable, and returns the
    /// bundle's fingerprint.
    pub fn finish(mut self, provenance: &Provenance) -> Result<String, QueryError> {
        self.records.flush()?;
        self.records.get_ref().sync_all()?;
        self.index.flush()?;
        let mut query =
            serde_json::to_vec_pretty(provenance).map_err(|e| bad(format!("query.json: {e}")))?;
        query.push(b'\n');
        fs::write(self.dir.join(QUERY), &query)?;
        let mut sums = String::new();
        for name in LISTED {
            sums.push_str(&format!("{}  {name}\n", file_sha256(&self.dir.join(name))?));
        }
        fs::write(self.dir.join(SUMS), &sums)?;
        for name in [INDEX, QUERY, SUMS] {
            File::open(self.dir.join(name))?.sync_all()?;
        }
        File::open(&self.dir)?.sync_all()?;
        Ok(sha256(sums.as_bytes()))
    }
}

fn csv_error(e: csv::Error) -> QueryError {
    bad(format!("{INDEX}: {e}"))
}

/// What checking a bundle found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub records: u64,
    /// The SHA-256 of `SHA256SUMS` as it is now.
    pub fingerprint: String,
    /// Each problem, naming the file (and line).
    pub problems: Vec<String>,
}

/// Recomputes every hash of the bundle in `dir` (see the module's documentation).
pub fn check(dir: &Path) -> Result<Checked, QueryError> {
    if !dir.is_dir() {
        return Err(bad(format!("`{}` is not a bundle's folder", dir.display())));
    }
    let sums = fs::read(dir.join(SUMS))
        .map_err(|e| bad(format!("`{}`: {e}", dir.join(SUMS).display())))?;
    let mut out = Checked {
        records: 0,
        fingerprint: sha256(&sums),
        problems: Vec::new(),
    };
    let mut listed = Vec::new();
    for (n, line) in String::from_utf8_lossy(&sums).lines().enumerate() {
        let Some((hash, name)) = line.split_once("  ") else {
            out.problems
                .push(format!("{SUMS} line {}: not `<sha256>  <file>`", n + 1));
            continue;
        };
        listed.push(name.to_string());
        let path = dir.join(name);
        if !LISTED.contains(&name) || name.contains('/') {
            out.problems.push(format!(
                "{SUMS} line {}: `{name}` is not a file of a bundle",
                n + 1
            ));
        } else if !path.is_file() {
            out.problems.push(format!("{name}: missing"));
        } else if file_sha256(&path)? != hash {
            out.problems.push(format!(
                "{name}: its SHA-256 is not the one {SUMS} records (edited)"
            ));
        }
    }
    for name in LISTED {
        if !listed.iter().any(|l| l == name) {
            out.problems.push(format!("{SUMS}: does not list {name}"));
        }
    }
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != SUMS && !LISTED.contains(&name.as_str()) {
            out.problems
                .push(format!("{name}: not part of the bundle (added)"));
        }
    }

    // Each record line against its row of the index.
    let (Ok(records), Ok(index)) = (
        File::open(dir.join(RECORDS)),
        csv::Reader::from_path(dir.join(INDEX)),
    ) else {
        return Ok(out);
    };
    let mut rows = index.into_records();
    for (n, line) in BufReader::new(records).lines().enumerate() {
        let line = line?;
        let number = n as u64 + 1;
        out.records = number;
        match rows.next() {
            Some(Ok(row)) => {
                if row.get(0) != Some(number.to_string().as_str()) {
                    out.problems
                        .push(format!("{INDEX} row {number}: numbered {:?}", row.get(0)));
                }
                if row.get(3) != Some(sha256(line.as_bytes()).as_str()) {
                    out.problems.push(format!(
                        "{RECORDS} line {number}: its SHA-256 is not the one {INDEX} records (edited)"
                    ));
                }
            }
            Some(Err(e)) => out.problems.push(format!("{INDEX} row {number}: {e}")),
            None => out
                .problems
                .push(format!("{RECORDS} line {number}: no row in {INDEX}")),
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&line).is_err() {
            out.problems
                .push(format!("{RECORDS} line {number}: not a JSON record"));
        }
    }
    if rows.next().is_some() {
        out.problems.push(format!(
            "{INDEX}: more rows than {RECORDS} has lines (lines removed)"
        ));
    }
    match fs::read(dir.join(QUERY))
        .ok()
        .and_then(|q| serde_json::from_slice::<Provenance>(&q).ok())
    {
        Some(p) if p.records != out.records => out.problems.push(format!(
            "{QUERY}: says {} records, {RECORDS} has {}",
            p.records, out.records
        )),
        Some(_) => {}
        None => out
            .problems
            .push(format!("{QUERY}: not a bundle's provenance")),
    }
    Ok(out)
}
