//! Writes query results: an aligned table, CSV, a JSON array, or NDJSON.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
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
            let schema = stream.schema();
            let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            let mut wrote = false;
            while let Some(b) = stream.next().await {
                let b = flatten_nested(&b?)?;
                rows += b.num_rows();
                w.write(&b)?;
                wrote = true;
            }
            if !wrote {
                let empty = RecordBatch::new_empty(flatten_schema(&stream.schema()));
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
                .map(|f| markdown_cell(f.name()))
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
                        .map(|f| markdown_cell(&f.value(row).to_string()))
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

/// A Markdown table cell: pipes escaped, line breaks as spaces.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _)
    )
}

fn flatten_schema(schema: &Schema) -> Arc<Schema> {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if is_nested(f.data_type()) {
                    Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ))
}

/// CSV has no nested values: structs and lists are written as their display text.
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if !is_nested(c.data_type()) {
                return Ok(c.clone());
            }
            let f = ArrayFormatter::try_new(c.as_ref(), &options)?;
            let values: StringArray = (0..c.len())
                .map(|i| c.is_valid(i).then(|| f.value(i).to_string()))
                .collect();
            Ok(Arc::new(values) as ArrayRef)
        })
        .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?;
    Ok(RecordBatch::try_new(
        flatten_schema(&batch.schema()),
        columns,
    )?)
}

use arrow::array::Array;
