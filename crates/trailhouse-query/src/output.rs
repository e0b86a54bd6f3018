//! Writes query results: an aligned table, CSV, a JSON array, NDJSON, Markdown or Parquet.
//! Text formats neutralise attacker text on the way out (see [`crate::escape`]).

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::error::QueryError;

/// Output formats of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
    /// A GitHub-flavoured Markdown table (for tickets and chat).
    Markdown,
    /// A Parquet file (zstd).
    Parquet,
}

/// Streams `stream` to `out` in `format`; returns the number of rows.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize, QueryError> {
    let mut rows = 0;
    match format {
        Format::Table => {
            // An aligned table needs every row's width: collect, then print.
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                batches.push(b);
            }
            let schema = displayed_schema(&stream.schema(), Columns::All);
            let batches = batches
                .iter()
                .map(|b| displayed(b, Columns::All, crate::escape::terminal))
                .collect::<Result<Vec<_>, _>>()?;
            let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            let mut wrote = false;
            while let Some(b) = stream.next().await {
                let b = displayed(&b?, Columns::TextAndNested, crate::escape::spreadsheet)?;
                rows += b.num_rows();
                w.write(&b)?;
                wrote = true;
            }
            if !wrote {
                let empty = RecordBatch::new_empty(displayed_schema(
                    &stream.schema(),
                    Columns::TextAndNested,
                ));
                w.write(&empty)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                w.write(&b)?;
            }
            // An empty result is `[]` too.
            w.finish()?;
            writeln!(out)?;
        }
        Format::Markdown => {
            let schema = stream.schema();
            let header: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| crate::escape::markdown(f.name()))
                .collect();
            writeln!(out, "| {} |", header.join(" | "))?;
            writeln!(out, "|{}", " --- |".repeat(header.len()))?;
            let options = FormatOptions::default().with_null("");
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                let formatters = b
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                for row in 0..b.num_rows() {
                    let cells: Vec<String> = formatters
                        .iter()
                        .map(|f| crate::escape::markdown(&f.value(row).to_string()))
                        .collect();
                    writeln!(out, "| {} |", cells.join(" | "))?;
                }
            }
        }
        Format::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            // The writer needs a `Send` sink; the result is assembled, then written out.
            let mut buffer = Vec::new();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut buffer, stream.schema(), Some(props))?;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                w.write(&b)?;
            }
            w.close()?;
            out.write_all(&buffer)?;
        }
        Format::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                w.write(&b)?;
            }
            w.finish()?;
        }
    }
    Ok(rows)
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _)
    )
}

/// Which columns [`displayed`] turns into text.
#[derive(Clone, Copy)]
enum Columns {
    All,
    /// Strings and nested values (CSV has no nested values; numbers and times stay typed).
    TextAndNested,
}

impl Columns {
    fn shown(self, t: &DataType) -> bool {
        match self {
            Columns::All => true,
            Columns::TextAndNested => {
                is_nested(t)
                    || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            }
        }
    }
}

/// The schema of [`displayed`] batches.
fn displayed_schema(schema: &Schema, which: Columns) -> Arc<Schema> {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if which.shown(f.data_type()) {
                    Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ))
}

/// `which` columns as the text a reader sees (structs and lists as their display, nulls kept),
/// each value passed through `neutralise`: for a text format whose reader would act on some text.
fn displayed(
    batch: &RecordBatch,
    which: Columns,
    neutralise: impl Fn(&str) -> Cow<'_, str>,
) -> Result<RecordBatch, QueryError> {
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if !which.shown(c.data_type()) {
                return Ok(Arc::clone(c));
            }
            // Most text needs nothing: such a column is passed on as it is, not copied.
            if c.data_type() == &DataType::Utf8
                && c.as_string::<i32>()
                    .iter()
                    .flatten()
                    .all(|v| matches!(neutralise(v), Cow::Borrowed(_)))
            {
                return Ok(Arc::clone(c));
            }
            let f = ArrayFormatter::try_new(c.as_ref(), &options)?;
            let values: StringArray = (0..c.len())
                .map(|i| {
                    c.is_valid(i)
                        .then(|| neutralise(&f.value(i).to_string()).into_owned())
                })
                .collect();
            Ok(Arc::new(values) as ArrayRef)
        })
        .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?;
    Ok(RecordBatch::try_new(
        displayed_schema(&batch.schema(), which),
        columns,
    )?)
}

use arrow::array::Array;
