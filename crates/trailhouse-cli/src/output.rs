//! Where a command's results go: a file named by `--output`, or standard output.
//!
//! A file is written beside its destination under a temporary name and renamed over it once
//! complete: a reader (a dashboard, the next cron step) sees the previous file or the new one,
//! never half of one, and a command that fails leaves the previous file as it was. A destination
//! that exists and is not a regular file (`/dev/null`, a FIFO, a terminal) is written to as it
//! is: renaming over it would replace the device or pipe with a file.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use datafusion::execution::SendableRecordBatchStream;
use tempfile::NamedTempFile;

use crate::cli::OutputFormat;

/// The format of a query's result: `format` when given, else an aligned table on a terminal and
/// CSV elsewhere (a file, a pipe).
pub fn result_format(format: Option<OutputFormat>, path: Option<&Path>) -> OutputFormat {
    match format {
        Some(f) => f,
        None if path.is_none() && std::io::stdout().is_terminal() => OutputFormat::Table,
        None => OutputFormat::Csv,
    }
}

/// Writes a query's result to `path` (or standard output) in `format`; returns its rows.
pub async fn write_result(
    stream: SendableRecordBatchStream,
    format: OutputFormat,
    path: Option<&Path>,
) -> anyhow::Result<usize> {
    let mut out = open(path)?;
    let rows = trailhouse_query::write_stream(stream, format.into(), &mut out).await?;
    out.finish()?;
    Ok(rows)
}

/// A command's output being written.
pub enum Output {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    /// A device or a pipe, written in place.
    Special(BufWriter<std::fs::File>),
    File {
        writer: BufWriter<NamedTempFile>,
        path: PathBuf,
    },
}

/// The output to `path`, or to standard output when there is none.
pub fn open(path: Option<&Path>) -> anyhow::Result<Output> {
    Ok(match path {
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("failed to open `{}`", path.display()))?;
            Output::Special(BufWriter::new(file))
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            // Permissions as a newly created file gets them (0666 less the umask).
            let temp = tempfile::Builder::new()
                .prefix(".trailhouse-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(dir)
                .with_context(|| format!("failed to create a file in `{}`", dir.display()))?;
            Output::File {
                writer: BufWriter::new(temp),
                path: path.to_path_buf(),
            }
        }
        None => Output::Stdout(BufWriter::new(std::io::stdout().lock())),
    })
}

impl Output {
    /// Flushes the output; a file is made durable and takes its name.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::Special(mut w) => Ok(w.flush()?),
            Output::File { writer, path } => {
                let temp = writer
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("failed to write `{}`", path.display()))?;
                temp.as_file()
                    .sync_all()
                    .with_context(|| format!("failed to write `{}`", path.display()))?;
                temp.persist(&path)
                    .with_context(|| format!("failed to create `{}`", path.display()))?;
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::Special(w) => w.write(buf),
            Output::File { writer, .. } => writer.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::Special(w) => w.flush(),
            Output::File { writer, .. } => writer.flush(),
        }
    }
}
