//! The `call_summary` table: who made which call, summarised per data file of `cloudtrail`:
//! for each file, one row per principal (`actor(useridentity)`), service and call, with the
//! file's first and last time of that call and how many there were.
//!
//! A question about what a principal has *ever* done (did it call this before?) reads the
//! summary instead of every call: at 20M events, 441,000 rows instead of 20M, in three text
//! columns already grouped. A principal, service and call was seen between two times when a
//! file's first time of it falls between them; a file holding calls on both sides of the first
//! time (the day it falls in: files hold one day each) answers only for calls after it, and the
//! question reads that day's calls themselves (`queries/investigate/new-behaviour.sql`).
//!
//! Data files are never changed (an ingest, a compaction or a repair writes new ones), so a
//! file's summary is right as long as the file is in the table. It is made the first time a
//! query reads it, from that file alone, and kept beside the lake
//! (`_trailhouse/call-summary/v1/` and the file's own path), where the next queries read it:
//! after an ingest, the first query pays for the files it wrote (a day's file at 20M events in
//! 90 days: a few hundredths of a second). `vacuum` removes the summaries of the files it
//! removes. A lake the process cannot write to (a read-only bucket) has each summary made again,
//! in memory, by every query that needs it. The folder can be deleted at any time: nothing is
//! lost.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::SessionState;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use trailhouse_lake::{schema, state};

use crate::lake_table::{LakeTable, Snapshot, parquet_options};

/// The table's name in SQL.
pub const TABLE_NAME: &str = "call_summary";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("principal", DataType::Utf8, true),
        Field::new("eventsource", DataType::Utf8, true),
        Field::new("eventname", DataType::Utf8, true),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time, true),
        Field::new("calls", DataType::Int64, true),
    ]))
});

/// The table's columns.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The summaries of the data files of `events` (the lake's `cloudtrail`).
#[derive(Debug)]
pub struct CallSummary {
    events: Arc<dyn TableProvider>,
}

impl CallSummary {
    pub fn new(events: Arc<dyn TableProvider>) -> Self {
        Self { events }
    }

    /// The snapshot of `cloudtrail` summarised, when it is the lake's.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.files().ok()?.snapshot()
    }

    fn files(&self) -> Result<&LakeTable> {
        self.events.downcast_ref::<LakeTable>().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "`{TABLE_NAME}` is kept only for a lake's own `{}` table",
                schema::TABLE_NAME
            ))
        })
    }
}

#[async_trait]
impl TableProvider for CallSummary {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters pick the data files whose summaries are read; the rows are filtered above.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self.files()?;
        let on_events: Vec<Expr> = filters.iter().filter_map(on_events).collect();
        let wanted = table.files_read(state, &on_events);
        let (url, location) = table.store();
        if wanted.is_empty() {
            // A scan of no file, as `cloudtrail`'s (not an `EmptyExec`: see `LakeTable::scan`).
            return parquet_scan(state, url.clone(), Vec::new(), None, projection, limit);
        }
        let store = state.runtime_env().object_store(url)?;
        let dir = summary_dir(location);
        let kept = kept_summaries(store.as_ref(), &dir).await;
        // Footers read once: checked here, kept in the session's cache for the scan.
        let footers = Arc::new(CachedParquetFileReaderFactory::new(
            Arc::clone(&store),
            state.runtime_env().cache_manager.get_file_metadata_cache(),
        ));
        let mut found = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for (path, data) in wanted {
            let summary = summary_path(location, &dir, data)?;
            match kept.get(&summary) {
                Some(size) => found.push((path.to_string(), summary, *size)),
                None => missing.push((path.to_string(), summary)),
            }
        }
        // A kept summary whose footer does not read (cut short, overwritten) is made again.
        let checked: Vec<_> = futures::stream::iter(found)
            .map(|(path, summary, size)| {
                let footers = Arc::clone(&footers);
                async move {
                    let readable = footer_reads(&footers, &summary, size).await;
                    (path, summary, size, readable)
                }
            })
            .buffer_unordered(FOOTERS_AT_ONCE)
            .collect()
            .await;
        let mut read = Vec::with_capacity(checked.len());
        for (path, summary, size, readable) in checked {
            if readable {
                read.push(PartitionedFile::new(summary.to_string(), size));
            } else {
                missing.push((path, summary));
            }
        }
        // A file's summary is made in one partition: as many files at a time as the session
        // has partitions.
        let made: Vec<_> = futures::stream::iter(missing)
            .map(|(path, summary)| {
                let store = Arc::clone(&store);
                async move {
                    let batches = summarise(state, table, &path).await?;
                    let written = write(store.as_ref(), &summary, &batches).await;
                    Ok::<_, DataFusionError>((summary, written, batches))
                }
            })
            .buffer_unordered(state.config().target_partitions().max(1))
            .try_collect()
            .await?;
        let mut unwritten = Vec::new();
        for (summary, written, batches) in made {
            match written {
                Ok(size) => read.push(PartitionedFile::new(summary.to_string(), size)),
                // Read-only: this query's answer from memory, made again by the next.
                Err(_) => unwritten.extend(batches),
            }
        }
        let mut branches: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !read.is_empty() {
            branches.push(parquet_scan(
                state,
                url.clone(),
                read,
                Some(footers),
                projection,
                limit,
            )?);
        }
        if !unwritten.is_empty() {
            branches.push(MemorySourceConfig::try_new_exec(
                &[unwritten],
                schema(),
                projection.cloned(),
            )?);
        }
        match branches.len() {
            1 => Ok(branches.remove(0)),
            _ => UnionExec::try_new(branches),
        }
    }
}

/// `filter` on the summary as a filter on the events it summarises, when the files it leaves
/// out hold no row passing it: a test of one column, the times of a summary row being those of
/// some call in its file (a test of both times is not one of a single call's time).
fn on_events(filter: &Expr) -> Option<Expr> {
    let columns = filter.column_refs();
    let [column] = columns.into_iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let name = match column.name() {
        "first_seen" | "last_seen" => schema::EVENTTIME,
        "eventsource" | "eventname" => column.name(),
        _ => return None,
    };
    let renamed = filter
        .clone()
        .transform(|e| match e {
            Expr::Column(_) => Ok(Transformed::yes(Expr::Column(Column::from_name(name)))),
            other => Ok(Transformed::no(other)),
        })
        .ok()?;
    Some(renamed.data)
}

/// The summaries' folder beside the table at `location` ([`state::CALL_SUMMARY_DIR`]). Its
/// version changes with what a summary holds (its columns, what `actor` means), so that none
/// written before is read as one of today's.
fn summary_dir(location: &Path) -> Path {
    let mut parts: Vec<_> = location.parts().collect();
    parts.pop();
    let lake: Path = parts.into_iter().collect();
    [state::STATE_DIR, state::CALL_SUMMARY_DIR]
        .iter()
        .flat_map(|d| d.split('/'))
        .fold(lake, |p, part| p.join(part))
}

/// Where the summary of the data file at `data` (in the table at `location`) is kept.
fn summary_path(location: &Path, dir: &Path, data: &Path) -> Result<Path> {
    let rest = data.prefix_match(location).ok_or_else(|| {
        DataFusionError::Internal(format!(
            "data file {data} lies outside its table {location}"
        ))
    })?;
    Ok(rest.fold(dir.clone(), |p, part| p.join(part)))
}

/// The summaries kept, with their sizes: none when the folder cannot be listed (they are made
/// again).
async fn kept_summaries(store: &dyn ObjectStore, dir: &Path) -> HashMap<Path, u64> {
    let listed: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .unwrap_or_default();
    listed.into_iter().map(|m| (m.location, m.size)).collect()
}

/// Footers of kept summaries read at a time (requests, in a bucket).
const FOOTERS_AT_ONCE: usize = 16;

/// Whether the Parquet footer of the summary at `path`, `size` bytes, reads: read through
/// `footers`, which keeps it for the scan that then reads the summary.
async fn footer_reads(footers: &CachedParquetFileReaderFactory, path: &Path, size: u64) -> bool {
    let file = PartitionedFile::new(path.to_string(), size);
    match footers.create_reader(0, file, None, &ExecutionPlanMetricsSet::new()) {
        Ok(mut reader) => reader.get_metadata(None).await.is_ok(),
        Err(_) => false,
    }
}

/// The summary of one data file (`path`, as the Delta log names it) of `table`.
async fn summarise(
    state: &dyn CatalogSession,
    table: &LakeTable,
    path: &str,
) -> Result<Vec<RecordBatch>> {
    let state = state
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| {
            DataFusionError::Internal(format!("`{TABLE_NAME}` is read in a DataFusion session"))
        })?;
    let one = table
        .clone()
        .restricted_to(&HashSet::from([path.to_string()]));
    let ctx = SessionContext::new_with_state(state.clone());
    let batches = ctx
        .read_table(Arc::new(one))?
        .aggregate(
            vec![
                crate::udf::actor()
                    .call(vec![col("useridentity")])
                    .alias("principal"),
                col("eventsource"),
                col("eventname"),
            ],
            vec![
                min(col(schema::EVENTTIME)).alias("first_seen"),
                max(col(schema::EVENTTIME)).alias("last_seen"),
                count(lit(1)).alias("calls"),
            ],
        )?
        .collect()
        .await?;
    batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(SCHEMA.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(schema(), columns)?)
        })
        .collect()
}

/// Writes `batches` as the Parquet file `path` (whole or not at all: a PUT, or on a local disk
/// a temporary file renamed); its size.
async fn write(store: &dyn ObjectStore, path: &Path, batches: &[RecordBatch]) -> Result<u64> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema(), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    let size = bytes.len() as u64;
    store.put(path, PutPayload::from(bytes)).await?;
    Ok(size)
}

/// A Parquet scan of the summaries `files`, spread over the session's partitions (one when
/// there is no file), their footers read through `footers` when given.
fn parquet_scan(
    state: &dyn CatalogSession,
    url: datafusion::execution::object_store::ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    footers: Option<Arc<CachedParquetFileReaderFactory>>,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let partitions = state.config().target_partitions().min(files.len()).max(1);
    let mut groups = vec![Vec::new(); partitions];
    for (i, file) in files.into_iter().enumerate() {
        groups[i % partitions].push(file);
    }
    let mut source = ParquetSource::new(TableSchema::builder(schema()).build())
        .with_table_parquet_options(parquet_options(state));
    if let Some(footers) = footers {
        source = source.with_parquet_file_reader_factory(footers);
    }
    let config = FileScanConfigBuilder::new(url, Arc::new(source))
        .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}
