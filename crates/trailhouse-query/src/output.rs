//! Writes query results: an aligned table, CSV, a JSON array, NDJSON, Markdown or Parquet.
//! Text formats neutralise attacker text on the way out (see [`crate::escape`]).

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};

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
            let schema = stream.schema();
            let (spares, mut batches) = formatted(stream, csv);
            let mut wrote = false;
            while let Some(b) = batches.next().await {
                let (n, bytes) = b?;
                rows += n;
                out.write_all(&bytes)?;
                spares.give_back(bytes);
                wrote = true;
            }
            if !wrote {
                out.write_all(&csv(&RecordBatch::new_empty(schema), true, Vec::new())?)?;
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
            let (spares, mut batches) = formatted(stream, |batch, _, mut spare: Vec<u8>| {
                spare.clear();
                let mut w = arrow::json::LineDelimitedWriter::new(spare);
                w.write(batch)?;
                w.finish()?;
                Ok(w.into_inner())
            });
            while let Some(b) = batches.next().await {
                let (n, bytes) = b?;
                rows += n;
                out.write_all(&bytes)?;
                spares.give_back(bytes);
            }
        }
    }
    Ok(rows)
}

/// `batch` as CSV, after a header when `header`, its text neutralised for spreadsheets, written
/// into `spare` (emptied first).
fn csv(batch: &RecordBatch, header: bool, mut spare: Vec<u8>) -> Result<Vec<u8>, QueryError> {
    let batch = displayed(batch, Columns::TextAndNested, crate::escape::spreadsheet)?;
    spare.clear();
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(header)
        .build(spare);
    w.write(&batch)?;
    Ok(w.into_inner())
}

/// Batches formatted at once, besides the one the query is producing: a large result's text is
/// made on other threads while the query merges its next rows (the last step of a sorted result
/// runs on one thread, which also formatted every row after it: `run ip-activity` listing
/// 500,000 of 20M events, 1.63-1.79 -> 1.40-1.42 s; one or two at once measured 1.46-1.78 s).
const FORMATTED_AHEAD: usize = 4;

/// `stream`'s batches as their rows and what `format` makes of them (told whether the batch is
/// the first: its text, or anything else), in order, each formatted on a blocking thread; and
/// the spares `format` is handed to write into.
///
/// `format` is given a buffer an earlier batch was written into (or a new one), to empty and
/// fill: what the consumer has written it gives back to the spares. A batch's text is megabytes,
/// and a new buffer for each was pages the kernel faulted in and zeroed again every time
/// (`export` of 2M events: system time 0.6 s with buffers used again, 3.4 s without). At most
/// [`FORMATTED_AHEAD`] and the one being written are in use, so the spares hold no more.
pub(crate) fn formatted<F, T>(
    stream: SendableRecordBatchStream,
    format: F,
) -> (
    Spares<T>,
    impl Stream<Item = Result<(usize, T), QueryError>>,
)
where
    F: Fn(&RecordBatch, bool, T) -> Result<T, QueryError> + Send + Sync + 'static,
    T: Default + Send + 'static,
{
    let spares = Spares(Arc::default());
    let format = Arc::new(format);
    let handed = spares.clone();
    let made = stream
        .enumerate()
        .map(move |(i, batch)| {
            let format = Arc::clone(&format);
            let spare = handed.take();
            async move {
                let batch = batch?;
                let rows = batch.num_rows();
                let made = SpawnedTask::spawn_blocking(move || format(&batch, i == 0, spare))
                    .join_unwind()
                    .await
                    .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??;
                Ok((rows, made))
            }
        })
        .buffered(FORMATTED_AHEAD);
    (spares, made)
}

/// Buffers [`formatted`] wrote into and their consumer has written out, to be written into
/// again.
pub(crate) struct Spares<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Spares<T> {
    fn clone(&self) -> Self {
        Spares(Arc::clone(&self.0))
    }
}

impl<T: Default> Spares<T> {
    /// A buffer written out, for a later batch.
    pub(crate) fn give_back(&self, spare: T) {
        if let Ok(mut spares) = self.0.lock() {
            spares.push(spare);
        }
    }

    /// A spare, or a new buffer when none is.
    fn take(&self) -> T {
        self.0
            .lock()
            .ok()
            .and_then(|mut spares| spares.pop())
            .unwrap_or_default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    /// Batches of `sizes` rows, numbered on from 0 across them; every seventh name is a formula.
    fn batches(sizes: &[usize]) -> Vec<RecordBatch> {
        let mut next = 0i64;
        sizes
            .iter()
            .map(|&size| {
                let n: Vec<i64> = (next..next + size as i64).collect();
                next += size as i64;
                let names: StringArray = n
                    .iter()
                    .map(|i| {
                        Some(if i % 7 == 0 {
                            format!("=x{i}")
                        } else {
                            format!("x{i}")
                        })
                    })
                    .collect();
                RecordBatch::try_new(
                    schema(),
                    vec![Arc::new(Int64Array::from(n)), Arc::new(names)],
                )
                .expect("batch")
            })
            .collect()
    }

    async fn written(batches: Vec<RecordBatch>, format: Format) -> (usize, String) {
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema(),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ));
        let mut out = Vec::new();
        let rows = write_stream(stream, format, &mut out)
            .await
            .expect("written");
        (rows, String::from_utf8(out).expect("utf-8"))
    }

    #[tokio::test]
    async fn csv_of_many_batches_has_one_header_and_every_row_in_order() {
        // More batches than are formatted at once, an empty one among them.
        let sizes = [3, 0, 1000, 1, 250, 2, 2, 2, 9];
        let (rows, csv) = written(batches(&sizes), Format::Csv).await;
        assert_eq!(rows, sizes.iter().sum::<usize>());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "n,name");
        assert_eq!(lines.len(), rows + 1);
        for (i, line) in lines[1..].iter().enumerate() {
            // Formulas neutralised for spreadsheets, as before.
            let name = if i % 7 == 0 {
                format!("'=x{i}")
            } else {
                format!("x{i}")
            };
            assert_eq!(*line, format!("{i},{name}"));
        }
    }

    #[tokio::test]
    async fn formatting_writes_into_the_buffers_given_back() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sizes = [5; 40];
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema(),
            futures::stream::iter(batches(&sizes).into_iter().map(Ok)),
        ));
        let new_buffers = Arc::new(AtomicUsize::new(0));
        let (spares, mut made) = formatted(stream, {
            let new_buffers = Arc::clone(&new_buffers);
            move |batch, first, spare: Vec<u8>| {
                if spare.capacity() == 0 {
                    new_buffers.fetch_add(1, Ordering::Relaxed);
                }
                csv(batch, first, spare)
            }
        });
        let mut out = Vec::new();
        while let Some(b) = made.next().await {
            let (_, bytes) = b.expect("formatted");
            out.extend_from_slice(&bytes);
            spares.give_back(bytes);
        }
        // Forty batches written with the buffers in flight at once, each emptied before use.
        let new = new_buffers.load(Ordering::Relaxed);
        assert!(
            new <= FORMATTED_AHEAD + 1,
            "{new} new buffers for 40 batches"
        );
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 1 + 5 * 40);
        assert_eq!(text.lines().nth(200), Some("199,x199"));
    }

    #[tokio::test]
    async fn csv_of_no_rows_is_its_header() {
        assert_eq!(
            written(Vec::new(), Format::Csv).await,
            (0, "n,name\n".into())
        );
        assert_eq!(
            written(batches(&[0]), Format::Csv).await,
            (0, "n,name\n".into())
        );
    }

    #[tokio::test]
    async fn ndjson_of_many_batches_is_one_object_per_row_in_order() {
        let sizes = [5, 0, 700, 1, 1, 1, 40];
        let (rows, ndjson) = written(batches(&sizes), Format::Ndjson).await;
        assert_eq!(rows, sizes.iter().sum::<usize>());
        let lines: Vec<&str> = ndjson.lines().collect();
        assert_eq!(lines.len(), rows);
        for (i, line) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            assert_eq!(v["n"], i as i64, "{line}");
        }
        assert_eq!(
            written(Vec::new(), Format::Ndjson).await,
            (0, String::new())
        );
    }
}
