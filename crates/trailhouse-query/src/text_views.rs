//! Data files' text read as string views.
//!
//! Our data files hint their text columns as plain strings (`Utf8`), so that every reader of
//! the Delta table (pyarrow datasets among them) sees the types of the table's schema. Decoded
//! as plain strings, each value is copied out of its page or dictionary, including the values
//! a filter then drops. Decoded as views, a value points into the page or dictionary, and only
//! what the scan keeps is cast to the table's `Utf8`. A question that picks 500,000 of 20M rows
//! by source IP took 2.8 s as plain strings and 1.8 s as views (a third of its time was
//! `memmove` out of dictionaries).
//!
//! DataFusion decodes a file's text as views only when the file's footer hints views (or the
//! table's schema has them, which would give every query view types). So the lake's scan opens
//! its files through [`TextAsViews`], which hands the reader a footer hinting views: the file
//! is not changed.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ARROW_SCHEMA_META_KEY, encode_arrow_schema, parquet_to_arrow_schema};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder};
use trailhouse_lake::schema::text_as_views;

/// Opens files through `inner`, their footers hinting text as views.
#[derive(Debug)]
pub struct TextAsViews {
    pub inner: Arc<dyn ParquetFileReaderFactory>,
}

impl ParquetFileReaderFactory for TextAsViews {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(ViewReader { inner }))
    }
}

struct ViewReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for ViewReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            hinted_as_views(metadata)
        }
        .boxed()
    }
}

/// `metadata` with its Arrow schema hint naming text as views (unchanged when it already
/// does, or has no text).
pub fn hinted_as_views(
    metadata: Arc<ParquetMetaData>,
) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    let file = metadata.file_metadata();
    let hinted = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let views = text_as_views(&hinted);
    if views == hinted {
        return Ok(metadata);
    }
    let mut key_values: Vec<KeyValue> = file
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|kv| kv.key != ARROW_SCHEMA_META_KEY)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    key_values.push(KeyValue::new(
        ARROW_SCHEMA_META_KEY.to_string(),
        encode_arrow_schema(&views),
    ));
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        Some(key_values),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut old = ParquetMetaDataBuilder::new_from_metadata(Arc::unwrap_or_clone(metadata));
    Ok(Arc::new(
        ParquetMetaDataBuilder::new(file)
            .set_row_groups(old.take_row_groups())
            .set_column_index(old.take_column_index())
            .set_offset_index(old.take_offset_index())
            .build(),
    ))
}
