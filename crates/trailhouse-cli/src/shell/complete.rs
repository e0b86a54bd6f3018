//! Tab completion in the shell: the backslash commands, saved queries and their parameters after
//! `\run`, tables after `\d`, and in SQL the tables, columns (a struct's members as
//! `useridentity.arn`), functions and keywords. What is offered comes from the session itself,
//! so a column or function added to the engine is offered without a list kept here.

use datafusion::arrow::datatypes::{DataType, Field};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use trailhouse_query::Session;
use trailhouse_query::saved::Catalog;

/// The shell's backslash commands.
const COMMANDS: [&str; 5] = ["\\d", "\\run", "\\queries", "\\q", "\\?"];

/// The SQL words a question over the lake uses most.
const KEYWORDS: &[&str] = &[
    "all",
    "analyze",
    "and",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "date",
    "desc",
    "describe",
    "distinct",
    "else",
    "end",
    "except",
    "exists",
    "explain",
    "false",
    "from",
    "full",
    "group",
    "having",
    "ilike",
    "in",
    "inner",
    "interval",
    "is",
    "join",
    "left",
    "like",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "right",
    "select",
    "then",
    "timestamp",
    "true",
    "union",
    "when",
    "where",
    "with",
];

/// What the shell can complete, read from the session and the saved queries once.
#[derive(Default)]
pub struct Words {
    tables: Vec<String>,
    /// Every column of every table, and every member of a struct column by its path.
    columns: Vec<String>,
    functions: Vec<String>,
    /// Saved queries by the short name `\run` takes, with their parameters' names.
    queries: Vec<(String, Vec<String>)>,
}

impl Words {
    pub async fn of(session: &Session, catalog: &Catalog) -> Self {
        let ctx = session.context();
        let state = ctx.state();
        let mut words = Words::default();
        let names = &state.config_options().catalog;
        let schema = ctx
            .catalog(&names.default_catalog)
            .and_then(|c| c.schema(&names.default_schema));
        if let Some(schema) = schema {
            words.tables = schema.table_names();
            for table in &words.tables {
                if let Ok(Some(provider)) = schema.table(table).await {
                    for field in provider.schema().fields() {
                        paths(field, "", &mut words.columns);
                    }
                }
            }
        }
        words
            .functions
            .extend(state.scalar_functions().keys().cloned());
        words
            .functions
            .extend(state.aggregate_functions().keys().cloned());
        words
            .functions
            .extend(state.window_functions().keys().cloned());
        words.queries = catalog
            .iter()
            .map(|q| {
                let short = q.name.rsplit('/').next().unwrap_or(&q.name).to_string();
                (short, q.params.iter().map(|p| p.name.clone()).collect())
            })
            .collect();
        for list in [&mut words.tables, &mut words.columns, &mut words.functions] {
            list.sort();
            list.dedup();
        }
        words.queries.sort();
        words
    }

    /// Where the word before `pos` in `line` starts, and what it may become.
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        if before.trim_start().starts_with('\\') {
            return self.command(before);
        }
        let start = word_start(before, |c| c.is_alphanumeric() || c == '_' || c == '.');
        let word = &before[start..];
        if word.is_empty() {
            return (pos, Vec::new());
        }
        let lower = word.to_lowercase();
        // Keywords and functions in the case the word was typed in.
        let cased = |w: &str| {
            if word.chars().any(char::is_uppercase) {
                w.to_uppercase()
            } else {
                w.to_string()
            }
        };
        let mut found: Vec<String> = if word.contains('.') {
            self.columns
                .iter()
                .filter(|c| c.starts_with(&lower))
                .cloned()
                .collect()
        } else {
            let names = self.tables.iter().chain(
                self.columns
                    .iter()
                    .filter(|c| !c.contains('.'))
                    .chain(&self.functions),
            );
            names
                .filter(|n| n.starts_with(&lower))
                .cloned()
                .chain(
                    KEYWORDS
                        .iter()
                        .filter(|k| k.starts_with(&lower))
                        .map(|k| cased(k)),
                )
                .collect()
        };
        found.sort();
        found.dedup();
        (start, found)
    }

    /// Completion in a backslash command.
    fn command(&self, before: &str) -> (usize, Vec<String>) {
        let start = word_start(before, |c| !c.is_whitespace());
        let word = &before[start..];
        let earlier: Vec<&str> = before[..start].split_whitespace().collect();
        let matching = |all: &mut dyn Iterator<Item = String>| -> Vec<String> {
            let mut found: Vec<String> = all.filter(|w| w.starts_with(word)).collect();
            found.sort();
            found
        };
        let found = match earlier.as_slice() {
            [] => matching(&mut COMMANDS.iter().map(|c| c.to_string())),
            ["\\d"] => matching(&mut self.tables.iter().cloned()),
            ["\\run"] => matching(&mut self.queries.iter().map(|(q, _)| q.clone())),
            ["\\run", name, ..] => {
                let params = self
                    .queries
                    .iter()
                    .find(|(q, _)| q == name)
                    .map_or(&[][..], |(_, p)| p.as_slice());
                matching(
                    &mut params
                        .iter()
                        .map(|p| format!("{p}="))
                        .chain(["--since".to_string(), "--until".to_string()]),
                )
            }
            _ => Vec::new(),
        };
        (start, found)
    }
}

/// Byte offset where the word ending `text` starts: the last run of characters `in_word` takes.
fn word_start(text: &str, in_word: impl Fn(char) -> bool) -> usize {
    text.char_indices()
        .rev()
        .take_while(|(_, c)| in_word(*c))
        .last()
        .map_or(text.len(), |(i, _)| i)
}

/// `field`'s name under `prefix`, and its members' paths if it is a struct.
fn paths(field: &Field, prefix: &str, out: &mut Vec<String>) {
    let path = format!("{prefix}{}", field.name().to_lowercase());
    if let DataType::Struct(members) = field.data_type() {
        for member in members {
            paths(member, &format!("{path}."), out);
        }
    }
    out.push(path);
}

/// The shell's rustyline helper: completion; no hints, highlighting or validation.
pub struct ShellHelper {
    pub words: Words,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = self.words.complete(line, pos);
        Ok((
            start,
            found
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Words {
        let identity = Field::new(
            "useridentity",
            DataType::Struct(
                vec![
                    Field::new("arn", DataType::Utf8, true),
                    Field::new("accesskeyid", DataType::Utf8, true),
                ]
                .into(),
            ),
            true,
        );
        let mut columns = Vec::new();
        for f in [
            identity,
            Field::new("eventname", DataType::Utf8, true),
            Field::new("eventsource", DataType::Utf8, true),
        ] {
            paths(&f, "", &mut columns);
        }
        columns.sort();
        Words {
            tables: vec!["cloudtrail".into(), "credentials".into()],
            columns,
            functions: vec!["actor".into(), "count".into()],
            queries: vec![
                ("who-deleted".into(), vec!["resource".into()]),
                ("whoami".into(), vec![]),
            ],
        }
    }

    fn complete(line: &str) -> (usize, Vec<String>) {
        words().complete(line, line.len())
    }

    fn list(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn sql_words_are_completed_from_the_tables_columns_functions_and_keywords() {
        assert_eq!(complete("SELECT eventn"), (7, list(&["eventname"])));
        assert_eq!(
            complete("SELECT count(*) FROM c"),
            (
                21,
                list(&["case", "cast", "cloudtrail", "count", "credentials"])
            )
        );
        assert_eq!(
            complete("SELECT useridentity.a"),
            (7, list(&["useridentity.accesskeyid", "useridentity.arn"]))
        );
        assert_eq!(
            complete("SELECT * FROM cloudtrail WH"),
            (25, list(&["WHEN", "WHERE"])),
            "a keyword typed in capitals stays in capitals"
        );
        assert_eq!(complete("select * fr"), (9, list(&["from"])));
        assert_eq!(complete("SELECT "), (7, list(&[])), "nothing typed");
        assert_eq!(
            complete("SELECT 'é' AS ü, ac"),
            (19, list(&["actor"])),
            "offsets are bytes, past letters of any script"
        );
    }

    #[test]
    fn backslash_commands_take_their_own_arguments() {
        assert_eq!(complete("\\q"), (0, list(&["\\q", "\\queries"])));
        assert_eq!(complete("\\d cl"), (3, list(&["cloudtrail"])));
        assert_eq!(complete("\\run who"), (5, list(&["who-deleted", "whoami"])));
        assert_eq!(complete("\\run who-deleted r"), (17, list(&["resource="])));
        assert_eq!(
            complete("\\run who-deleted resource=x --s"),
            (28, list(&["--since"]))
        );
        assert_eq!(complete("\\queries x"), (9, list(&[])));
    }
}
