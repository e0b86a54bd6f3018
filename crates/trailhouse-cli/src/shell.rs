//! The interactive SQL shell of `trailhouse sql` (no statement given, on a terminal): line
//! editing and persistent history (rustyline), Tab completion ([`complete`]), statements over
//! several lines ending in `;`, backslash commands, the time each statement took, and errors that
//! do not end the session.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use trailhouse_query::saved::{Catalog, Window, parse_time};
use trailhouse_query::{Format, Session, write_stream};

use crate::cli::ProgressMode;
use crate::watch::{Interrupted, watched};

mod complete;

const HELP: &str = "\
  SQL ending in ;      run it (tables: cloudtrail, quarantine, credentials)
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
    progress: ProgressMode,
    history: Option<PathBuf>,
) -> anyhow::Result<()> {
    let shell = Shell {
        session,
        catalog,
        format,
        progress,
    };
    let mut editor: rustyline::Editor<complete::ShellHelper, FileHistory> =
        rustyline::Editor::new()?;
    editor.set_helper(Some(complete::ShellHelper {
        words: complete::Words::of(session, catalog).await,
    }));
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
            match shell.command(trimmed).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => report(&e),
            }
            continue;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        let input = Input::of(&buffer);
        if input.statements.is_empty() {
            // Comments and blank lines alone wait for nothing: back to the first prompt.
            if !input.open {
                buffer.clear();
            }
            continue;
        }
        let _ = editor.add_history_entry(buffer[..input.consumed].trim());
        for statement in &input.statements {
            if let Err(e) = shell.execute(statement, format).await {
                report(&e);
            }
        }
        buffer.drain(..input.consumed);
        if !input.open {
            buffer.clear();
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// The shell's input so far, read with the SQL tokenizer: a `;` inside a string, a quoted name
/// or a comment ends nothing, and a line may end several statements.
#[derive(Debug, PartialEq)]
struct Input {
    /// The statements the input completes, each without its `;` (those of comments alone are
    /// left out: nothing to run).
    statements: Vec<String>,
    /// Bytes of the input those statements take, their `;` included.
    consumed: usize,
    /// Whether what follows them is the start of another (SQL, or an open string or comment),
    /// not blanks and comments only.
    open: bool,
}

impl Input {
    fn of(text: &str) -> Self {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

        let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else {
            // An open string, quoted name or comment: the statement goes on.
            return Self {
                statements: Vec::new(),
                consumed: 0,
                open: true,
            };
        };
        // Byte offset of each line's start; a location's column counts characters from 1.
        let lines: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let offset = |at: Location| -> usize {
            let start = usize::try_from(at.line)
                .ok()
                .and_then(|l| lines.get(l.saturating_sub(1)))
                .copied()
                .unwrap_or(text.len());
            let column = usize::try_from(at.column).unwrap_or(1).saturating_sub(1);
            text[start..]
                .char_indices()
                .nth(column)
                .map_or(text.len(), |(i, _)| start + i)
        };
        let mut input = Self {
            statements: Vec::new(),
            consumed: 0,
            open: false,
        };
        for t in &tokens {
            match &t.token {
                Token::SemiColon => {
                    let end = offset(t.span.start);
                    if input.open {
                        let statement = text[input.consumed..end].trim();
                        input.statements.push(statement.to_string());
                    }
                    input.consumed = (end + 1).min(text.len());
                    input.open = false;
                }
                Token::Whitespace(_) => {}
                _ => input.open = true,
            }
        }
        input
    }
}

/// What the shell runs statements with.
struct Shell<'a> {
    session: &'a Session,
    catalog: &'a Catalog,
    format: Format,
    progress: ProgressMode,
}

/// An error of one statement; the session goes on. Ctrl-C during a statement stopped it.
fn report(e: &anyhow::Error) {
    if e.downcast_ref::<Interrupted>().is_some() {
        eprintln!("{e}");
    } else {
        eprintln!("error: {e}");
    }
}

impl Shell<'_> {
    /// Runs a backslash command; `Ok(true)` means quit.
    async fn command(&self, line: &str) -> anyhow::Result<bool> {
        let session = self.session;
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("\\queries"), _) => {
                for q in self.catalog.iter() {
                    println!("{}\n    {}", q.name, q.summary);
                    for p in q.describe_params() {
                        println!("    {p}");
                    }
                }
            }
            (Some("\\run"), Some(name)) => {
                let query = self.catalog.get(name)?;
                let now = chrono::Utc::now();
                let (params, window) = run_words(words, now)?;
                let bound = query.bind(&params, window, now)?;
                let started = Instant::now();
                let (text, rows) = watched(session, self.progress, |_| async {
                    let stream = session.run_saved(query, bound, false).await?;
                    render(stream, self.format).await
                })
                .await?;
                show(&text, rows, started)?;
            }
            (Some("\\q"), _) => return Ok(true),
            (Some("\\?"), _) => eprintln!("{HELP}"),
            (Some("\\d"), None) => {
                self.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
                    Format::Table,
                )
                .await?;
            }
            (Some("\\d"), Some(name)) => {
                // The name is checked against the registered tables: it is never spliced into
                // SQL unless it is one of them.
                if !session.context().table_exist(name)? {
                    anyhow::bail!("no table `{name}`");
                }
                self.execute(&format!("DESCRIBE {name}"), Format::Table)
                    .await?;
            }
            (Some(other), _) => anyhow::bail!("unknown command `{other}` (\\? for help)"),
            (None, _) => {}
        }
        Ok(false)
    }

    /// Runs one statement and shows its result; Ctrl-C stops it.
    async fn execute(&self, sql: &str, format: Format) -> anyhow::Result<()> {
        let started = Instant::now();
        let (text, rows) = watched(self.session, self.progress, |_| async {
            render(self.session.sql(sql).await?, format).await
        })
        .await?;
        show(&text, rows, started)
    }
}

/// A result as text, and its number of rows.
async fn render(
    stream: datafusion::execution::SendableRecordBatchStream,
    format: Format,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut buffer = Vec::new();
    let rows = write_stream(stream, format, &mut buffer).await?;
    Ok((buffer, rows))
}

/// Prints a result through a pager (`$PAGER`, else `less -SRFX`: wide CloudTrail rows scroll
/// sideways instead of wrapping, and a result that fits the screen is just printed).
fn show(text: &[u8], rows: usize, started: Instant) -> anyhow::Result<()> {
    let elapsed = started.elapsed().as_secs_f64();
    if !page(text) {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        out.write_all(text)?;
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
    fn statements_end_at_semicolons_outside_strings_names_and_comments() {
        fn input(text: &str) -> (Vec<String>, &str, bool) {
            let i = Input::of(text);
            (i.statements, &text[i.consumed..], i.open)
        }
        assert_eq!(
            input("SELECT 1\n"),
            (vec![], "SELECT 1\n", true),
            "no `;` yet"
        );
        assert_eq!(
            input("SELECT 1;\n"),
            (vec!["SELECT 1".to_string()], "\n", false)
        );
        assert_eq!(
            input("SELECT 'a;b', \"c;d\" FROM t; SELECT 2;  -- done; really\n"),
            (
                vec![
                    "SELECT 'a;b', \"c;d\" FROM t".to_string(),
                    "SELECT 2".to_string()
                ],
                "  -- done; really\n",
                false
            ),
            "a comment after the last statement is not one"
        );
        assert_eq!(
            input("SELECT 'it''s;\n"),
            (vec![], "SELECT 'it''s;\n", true),
            "a string still open"
        );
        assert_eq!(
            input("/* a; b */ SELECT 'é;' /* c;\n"),
            (vec![], "/* a; b */ SELECT 'é;' /* c;\n", true),
            "a comment still open"
        );
        assert_eq!(
            input("-- only a comment;\n"),
            (vec![], "-- only a comment;\n", false),
            "comments alone run nothing"
        );
        assert_eq!(
            input(";;\n"),
            (vec![], "\n", false),
            "empty statements run nothing"
        );
        assert_eq!(
            input("SELECT 'ü';\nSELECT\n  2;\nSELECT 3"),
            (
                vec!["SELECT 'ü'".to_string(), "SELECT\n  2".to_string()],
                "\nSELECT 3",
                true
            ),
            "statements over several lines, and the start of the next"
        );
    }

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
