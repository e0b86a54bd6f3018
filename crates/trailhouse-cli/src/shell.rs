//! The interactive SQL shell of `trailhouse sql` (no statement given, on a terminal): line
//! editing and persistent history (rustyline), statements over several lines ending in `;`,
//! backslash commands, the time each statement took, and errors that do not end the session.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use trailhouse_query::{Format, Session, write_stream};

const HELP: &str = "\
  SQL ending in ;      run it (tables: cloudtrail, quarantine)
  \\d                   list tables
  \\d NAME              columns of a table
  \\q                   quit (or Ctrl-D)
  \\?                   this help";

/// Where the shell keeps its history: `$TRAILHOUSE_HISTORY`, else `~/.trailhouse_history`.
pub fn history_path() -> Option<PathBuf> {
    std::env::var_os("TRAILHOUSE_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".trailhouse_history")))
}

pub async fn run(
    session: &Session,
    format: Format,
    history: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    if let Some(h) = &history {
        // No history yet is not an error.
        let _ = editor.load_history(h);
    }
    eprintln!(
        "trailhouse SQL shell (table version {}). End statements with ;  \\? for help, \\q to quit.",
        session
            .table_version()
            .map_or_else(|| "-".to_string(), |v| v.to_string())
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "trailhouse> "
        } else {
            "        ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match command(session, trimmed).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => eprintln!("error: {e}"),
            }
            continue;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let statement = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(statement.trim());
        if let Err(e) = execute(session, statement.trim().trim_end_matches(';'), format).await {
            eprintln!("error: {e}");
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// Runs a backslash command; `Ok(true)` means quit.
async fn command(session: &Session, line: &str) -> anyhow::Result<bool> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), _) => return Ok(true),
        (Some("\\?"), _) => eprintln!("{HELP}"),
        (Some("\\d"), None) => {
            execute(
                session,
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
                Format::Table,
            )
            .await?;
        }
        (Some("\\d"), Some(name)) => {
            // The name is checked against the registered tables: it is never spliced into SQL
            // unless it is one of them.
            if !session.context().table_exist(name)? {
                anyhow::bail!("no table `{name}`");
            }
            execute(session, &format!("DESCRIBE {name}"), Format::Table).await?;
        }
        (Some(other), _) => anyhow::bail!("unknown command `{other}` (\\? for help)"),
        (None, _) => {}
    }
    Ok(false)
}

async fn execute(session: &Session, sql: &str, format: Format) -> anyhow::Result<()> {
    let started = Instant::now();
    let stream = session.sql(sql).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let rows = write_stream(stream, format, &mut out).await?;
    out.flush()?;
    eprintln!(
        "{rows} row{} in {:.3} s",
        if rows == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
