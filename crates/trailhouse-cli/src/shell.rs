//! The interactive SQL shell of `trailhouse sql` (no statement given, on a terminal): line
//! editing and persistent history (rustyline), statements over several lines ending in `;`,
//! backslash commands, the time each statement took, and errors that do not end the session.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use trailhouse_query::saved::{Catalog, Window, parse_time};
use trailhouse_query::{Format, Session, write_stream};

const HELP: &str = "\
  SQL ending in ;      run it (tables: cloudtrail, quarantine)
  \\d                   list tables
  \\d NAME              columns of a table
  \\run NAME k=v …      a saved query with its parameters (\\queries lists them);
                       --param k=v, --since and --until work as on the command line
  \\queries             the saved queries
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
    catalog: &Catalog,
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
            match command(session, catalog, format, trimmed).await {
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
async fn command(
    session: &Session,
    catalog: &Catalog,
    format: Format,
    line: &str,
) -> anyhow::Result<bool> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\queries"), _) => {
            for q in catalog.iter() {
                println!("{}\n    {}", q.name, q.summary);
                for p in q.describe_params() {
                    println!("    {p}");
                }
            }
        }
        (Some("\\run"), Some(name)) => {
            let query = catalog.get(name)?;
            let now = chrono::Utc::now();
            let (params, window) = run_words(words, now)?;
            let bound = query.bind(&params, window, now)?;
            let started = Instant::now();
            let stream = session.run_saved(query, bound, false).await?;
            show(stream, format, started).await?;
        }
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
    show(stream, format, started).await
}

/// Prints a result through a pager (`$PAGER`, else `less -SRFX`: wide CloudTrail rows scroll
/// sideways instead of wrapping, and a result that fits the screen is just printed).
async fn show(
    stream: datafusion::execution::SendableRecordBatchStream,
    format: Format,
    started: Instant,
) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let rows = write_stream(stream, format, &mut buffer).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if !page(&buffer) {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        out.write_all(&buffer)?;
        out.flush()?;
    }
    eprintln!(
        "{rows} row{} in {elapsed:.3} s",
        if rows == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Sends `text` to the pager; false when there is none (then the caller prints it).
fn page(text: &[u8]) -> bool {
    use std::process::{Command, Stdio};
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less -SRFX".to_string());
    let mut words = pager.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let Ok(mut child) = Command::new(program)
        .args(words)
        .stdin(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager quit early closes its input: not an error.
        let _ = stdin.write_all(text);
    }
    child.wait().is_ok()
}

/// The words after `\run NAME`: `k=v`, or as on the command line `--param k=v`, `--since T`,
/// `--until T` (also `--flag=value`).
fn run_words<'a>(
    words: impl Iterator<Item = &'a str>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(Vec<(String, String)>, Window)> {
    let mut params = Vec::new();
    let mut window = Window::default();
    let mut words = words.peekable();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (Some(f), Some(v)),
            _ if word.starts_with("--") => (Some(word), None),
            _ => (None, None),
        };
        let Some(flag) = flag else {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("expected NAME=VALUE, got `{word}`"))?;
            params.push((k.to_string(), v.to_string()));
            continue;
        };
        let value = match inline {
            Some(v) => v,
            None => words
                .next()
                .ok_or_else(|| anyhow::anyhow!("`{flag}` needs a value"))?,
        };
        match flag {
            "--param" | "-p" => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("expected NAME=VALUE after {flag}, got `{value}`")
                })?;
                params.push((k.to_string(), v.to_string()));
            }
            "--since" | "--until" => {
                let t = parse_time(value, now).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{flag} `{value}` is not a date (2026-10-01), a date-time or a duration ago (7d, 12h)"
                    )
                })?;
                if flag == "--since" {
                    window.since = Some(t);
                } else {
                    window.until = Some(t);
                }
            }
            _ => anyhow::bail!(
                "unknown option `{flag}` (\\run takes k=v, --param k=v, --since, --until)"
            ),
        }
    }
    Ok((params, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_the_command_line_forms_too() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-10T00:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let words = "resource=a --param principal=b --param=key=c=d --since 7d --until=2026-11-09";
        let (params, window) = run_words(words.split_whitespace(), now).expect("parsed");
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            params,
            pairs(&[("resource", "a"), ("principal", "b"), ("key", "c=d")])
        );
        assert_eq!(window.since, parse_time("2026-11-03", now));
        assert_eq!(window.until, parse_time("2026-11-09", now));

        for (bad, why) in [
            ("--since", "needs a value"),
            ("--since never", "is not a date"),
            ("--limit 3", "unknown option `--limit`"),
            ("resource", "expected NAME=VALUE"),
            ("--param resource", "expected NAME=VALUE after --param"),
        ] {
            let err = run_words(bad.split_whitespace(), now).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }
}
