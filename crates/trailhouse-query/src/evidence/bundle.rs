//! An evidence bundle: a new folder, or a new zip archive holding the same files,
//!
//! - `records.ndjson`: the records, one compact JSON object per line;
//! - `records.csv`: for each line, its number, eventID, eventTime, the SHA-256 of the line
//!   (without its new line), the source object it came from and that object's integrity verdict;
//! - `query.json`: how they were found ([`Provenance`]);
//! - `SHA256SUMS`: the SHA-256 of each of those files, in the form `sha256sum -c SHA256SUMS`
//!   checks without trailhouse (in the folder, or where the archive was unpacked).
//!
//! The bundle's fingerprint is the SHA-256 of `SHA256SUMS`: whoever receives the bundle notes it
//! (in the case file, the chain-of-custody form); `trailhouse evidence check` recomputes every
//! hash and prints it, so any edited byte, added, removed or renamed file shows. A folder and an
//! archive of the same records have the same files, so the same hashes.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{Context, SHA256};
use chrono::{Datelike, Timelike, Utc};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::{EvidenceRecord, Provenance};
use crate::error::QueryError;

pub const RECORDS: &str = "records.ndjson";
pub const INDEX: &str = "records.csv";
pub const QUERY: &str = "query.json";
pub const SUMS: &str = "SHA256SUMS";
/// The files listed in `SHA256SUMS`, in its order.
const LISTED: [&str; 3] = [RECORDS, INDEX, QUERY];

fn bad(message: String) -> QueryError {
    QueryError::Evidence(message)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&SHA256, bytes))
}

fn file_sha256(path: &Path) -> Result<String, QueryError> {
    let mut hashing = Hashing::new(io::sink());
    io::copy(&mut File::open(path)?, &mut hashing)?;
    Ok(hashing.finish().1)
}

/// Whether `path` names a zip archive (by its extension, as users name them).
pub fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// A writer that hashes what goes through it, so no file is read again to hash it.
struct Hashing<W> {
    inner: W,
    context: Context,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            context: Context::new(&SHA256),
        }
    }

    /// The writer and the hex SHA-256 of everything written.
    fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.context.finish()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.context.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where the bundle goes, and the records' writer there as they come: their file in a folder,
/// or the first entry of an archive written as `partial` beside `path` and renamed to it once
/// complete.
enum Records {
    Folder {
        dir: PathBuf,
        file: BufWriter<File>,
    },
    Zip {
        path: PathBuf,
        partial: PathBuf,
        zip: Box<ZipWriter<BufWriter<File>>>,
    },
}

impl Write for Records {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Records::Folder { file, .. } => file.write(buf),
            Records::Zip { zip, .. } => zip.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Records::Folder { file, .. } => file.flush(),
            Records::Zip { zip, .. } => zip.flush(),
        }
    }
}

/// Writes a bundle as its records come.
pub struct BundleWriter {
    records: Hashing<Records>,
    /// In the folder, or in an unnamed temporary file until the archive takes it.
    index: csv::Writer<Hashing<File>>,
    lines: u64,
}

fn zip_error(e: zip::result::ZipError) -> QueryError {
    bad(format!("writing the archive: {e}"))
}

/// The options of every entry: deflated, zip64 where needed, dated now.
fn entry_options() -> SimpleFileOptions {
    let now = Utc::now();
    let mut options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(true);
    if let Ok(time) = zip::DateTime::from_date_and_time(
        u16::try_from(now.year()).unwrap_or(1980),
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
    ) {
        options = options.last_modified_time(time);
    }
    options
}

impl BundleWriter {
    /// Starts a bundle at `path`: a zip archive when it ends in `.zip` (which must not exist),
    /// otherwise a folder, which must not exist or be empty: evidence is never written over.
    pub fn create(path: &Path) -> Result<Self, QueryError> {
        let (records, index) = if is_zip(path) {
            if path.exists() {
                return Err(bad(format!(
                    "`{}` exists: a bundle is written to a new archive",
                    path.display()
                )));
            }
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            fs::create_dir_all(&parent)?;
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let mut zip = ZipWriter::new(BufWriter::new(File::create(&partial)?));
            zip.start_file(RECORDS, entry_options())
                .map_err(zip_error)?;
            let index = tempfile::tempfile_in(&parent)?;
            let records = Records::Zip {
                path: path.to_path_buf(),
                partial,
                zip: Box::new(zip),
            };
            (records, index)
        } else {
            if path.exists() {
                let empty = path.is_dir() && fs::read_dir(path)?.next().is_none();
                if !empty {
                    return Err(bad(format!(
                        "`{}` exists and is not an empty folder: a bundle is written to a new one",
                        path.display()
                    )));
                }
            }
            fs::create_dir_all(path)?;
            let records = Records::Folder {
                dir: path.to_path_buf(),
                file: BufWriter::new(File::create(path.join(RECORDS))?),
            };
            (records, File::create(path.join(INDEX))?)
        };
        let mut index = csv::Writer::from_writer(Hashing::new(index));
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
            records: Hashing::new(records),
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

    /// Writes `query.json` and `SHA256SUMS`, makes every file durable (an archive appears
    /// under its name only then), and returns the bundle's fingerprint.
    pub fn finish(self, provenance: &Provenance) -> Result<String, QueryError> {
        let Self { records, index, .. } = self;
        let (records, records_sha) = records.finish();
        let (mut index, index_sha) = index
            .into_inner()
            .map_err(|e| bad(format!("{INDEX}: {}", e.error())))?
            .finish();
        let mut query =
            serde_json::to_vec_pretty(provenance).map_err(|e| bad(format!("query.json: {e}")))?;
        query.push(b'\n');
        let sums = format!(
            "{records_sha}  {RECORDS}\n{index_sha}  {INDEX}\n{}  {QUERY}\n",
            sha256(&query)
        );
        match records {
            Records::Folder { dir, mut file } => {
                file.flush()?;
                file.get_ref().sync_all()?;
                index.sync_all()?;
                fs::write(dir.join(QUERY), &query)?;
                fs::write(dir.join(SUMS), &sums)?;
                for name in [QUERY, SUMS] {
                    File::open(dir.join(name))?.sync_all()?;
                }
                File::open(&dir)?.sync_all()?;
            }
            Records::Zip {
                path,
                partial,
                mut zip,
            } => {
                zip.start_file(INDEX, entry_options()).map_err(zip_error)?;
                index.rewind()?;
                io::copy(&mut index, &mut zip)?;
                zip.start_file(QUERY, entry_options()).map_err(zip_error)?;
                zip.write_all(&query)?;
                zip.start_file(SUMS, entry_options()).map_err(zip_error)?;
                zip.write_all(sums.as_bytes())?;
                let file = zip
                    .finish()
                    .map_err(zip_error)?
                    .into_inner()
                    .map_err(|e| e.into_error())?;
                file.sync_all()?;
                fs::rename(&partial, &path)?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    File::open(parent)?.sync_all()?;
                }
            }
        }
        Ok(sha256(sums.as_bytes()))
    }

    /// Removes what was written: a bundle that was not finished is no bundle (the folder, new
    /// or empty before, goes; an archive was never under its name).
    pub fn abandon(self) {
        let _ = match self.records.finish().0 {
            Records::Folder { dir, file } => {
                drop(file);
                fs::remove_dir_all(dir)
            }
            Records::Zip { partial, zip, .. } => {
                drop(zip);
                fs::remove_file(partial)
            }
        };
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

/// Recomputes every hash of the bundle at `path`, a folder or a zip archive (see the module's
/// documentation).
pub fn check(path: &Path) -> Result<Checked, QueryError> {
    if path.is_dir() {
        check_folder(path, path)
    } else if path.is_file() {
        check_zip(path)
    } else {
        Err(bad(format!(
            "`{}` is not a bundle (a folder or a zip archive)",
            path.display()
        )))
    }
}

/// An archive's entries are unpacked into a temporary folder (the bundle's files only) and
/// checked there; entries that are not the bundle's or that do not unpack (their
/// CRC or compressed bytes damaged) are problems of their own.
fn check_zip(path: &Path) -> Result<Checked, QueryError> {
    let mut archive = ZipArchive::new(File::open(path)?)
        .map_err(|e| bad(format!("`{}` is not a zip archive: {e}", path.display())))?;
    let unpacked = tempfile::tempdir()?;
    let mut problems = Vec::new();
    let mut damaged = Vec::new();
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!("entry {}: unreadable ({e})", i + 1));
                continue;
            }
        };
        let name = entry.name().to_string();
        if name != SUMS && !LISTED.contains(&name.as_str()) {
            problems.push(format!("{name}: not part of the bundle (added)"));
            continue;
        }
        let target = unpacked.path().join(&name);
        let copied = File::create(&target).and_then(|mut out| io::copy(&mut entry, &mut out));
        if let Err(e) = copied {
            problems.push(format!("{name}: does not unpack ({e})"));
            fs::remove_file(&target)?;
            damaged.push(format!("{name}: missing"));
        }
    }
    let mut checked = check_folder(unpacked.path(), path)?;
    // An entry that does not unpack was said so, not that it is missing.
    checked.problems.retain(|p| !damaged.contains(p));
    problems.append(&mut checked.problems);
    checked.problems = problems;
    Ok(checked)
}

/// Checks the bundle's files in `dir`; `shown` names the bundle in messages.
fn check_folder(dir: &Path, shown: &Path) -> Result<Checked, QueryError> {
    let sums =
        fs::read(dir.join(SUMS)).map_err(|e| bad(format!("`{}`: {SUMS}: {e}", shown.display())))?;
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
