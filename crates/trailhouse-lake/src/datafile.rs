//! The data files of table `cloudtrail` (and `quarantine`): their Parquet settings, how they are
//! written (row groups of [`ROW_GROUP_ROWS`], each group's columns encoded in parallel), the Delta
//! statistics of each file, and reading a few columns back.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::Path;
use std::sync::LazyLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{max, max_string, min, min_string};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::datatypes::{DataType, Field};
use deltalake_core::kernel::Add;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::error::LakeError;
use crate::schema;
use crate::table::Partition;

/// Columns written without a dictionary: sorted, nearly unique times (a dictionary would be a
/// second copy of the column; delta packing was smaller still but slowed the queries that pick
/// rows out of pages, as a delta page is decoded from its start), per-row ids and free-form JSON
/// (trying a dictionary costs time and the writer falls back to plain anyway).
pub const PLAIN_COLUMNS: [&str; 10] = [
    schema::EVENTTIME,
    "eventid",
    "requestid",
    "sharedeventid",
    "requestparameters",
    "responseelements",
    "additionaleventdata",
    "serviceeventdetails",
    schema::EXTRA,
    schema::RECORDHASH,
];

/// Whether `field`, a column of the event table, is text stored without a dictionary (one of
/// [`PLAIN_COLUMNS`]: ids, JSON): every value is its own bytes in the page, so it is worth
/// compressing, and a reader that keeps a few rows should skip to them rather than decode all.
pub fn plain_text(field: &Field) -> bool {
    PLAIN_COLUMNS.contains(&field.name().as_str()) && field.data_type() == &DataType::Utf8
}

/// The free-form JSON columns, of [`PLAIN_COLUMNS`]: a reader searching them (a resource's name
/// in every request and response) reads them as string views, searched where they lie in the
/// page, while the ids among the plain columns are read as plain strings (see the query
/// crate's `text_views`).
pub const JSON_COLUMNS: [&str; 5] = [
    "requestparameters",
    "responseelements",
    "additionaleventdata",
    "serviceeventdetails",
    schema::EXTRA,
];

/// Columns of the event table compressed with zstd besides the [`plain_text`] ones (a name
/// stands for all the leaves under it): free-form JSON kept as dictionaries where it is rare,
/// error messages, and the leaves zstd shrinks to half or less. The other leaves (short text
/// kept as dictionaries, times, flags, hashes) are stored uncompressed: measured on a 20M-event
/// trail, zstd took them to between 0.6 and 0.9 of their size, and decompressing their pages
/// (every question reads the identity, the call, the time, the error code) cost more than
/// reading the difference: `run errors` 1.20-1.49 -> 0.95-1.07 s, `run new-behaviour` 1.72-1.81
/// -> 1.50-1.54 s (the list as it stands, alternated), for a table 8 % larger. Event ids stay
/// compressed: stored plain they made the table 24 % larger for 0.3 s off a listing of 500,000
/// calls.
pub const ZSTD_COLUMNS: [&str; 15] = [
    "addendum",
    "edgedevicedetails",
    "insightdetails",
    "eventcontext",
    "errormessage",
    "useragent",
    "resources",
    "tlsdetails.clientprovidedhostheader",
    "useridentity.sessioncontext.attributes.creationdate",
    "useridentity.sessioncontext.webidfederationdata.attributes",
    schema::SOURCEFILE,
    schema::MINTEDKEY,
    schema::MINTEDSESSION,
    schema::RESOURCEARNS,
    "annotation",
];

/// The leaves of the event table's files that zstd is not kept for, as Parquet paths.
static UNCOMPRESSED_LEAVES: LazyLock<Vec<ColumnPath>> = LazyLock::new(|| {
    let Ok(descriptor) = ArrowSchemaConverter::new().convert(&schema::file_schema()) else {
        return Vec::new();
    };
    descriptor
        .columns()
        .iter()
        .map(|leaf| leaf.path().clone())
        .filter(|path| !zstd_leaf(path))
        .collect()
});

/// Whether the event table's leaf at `path` is compressed: under a [`plain_text`] column or
/// under one of [`ZSTD_COLUMNS`].
fn zstd_leaf(path: &ColumnPath) -> bool {
    let dotted = path.string();
    let top = path.parts().first().map(String::as_str).unwrap_or_default();
    schema::file_schema()
        .field_with_name(top)
        .is_ok_and(plain_text)
        || ZSTD_COLUMNS
            .iter()
            .any(|c| dotted == *c || dotted.strip_prefix(c).is_some_and(|r| r.starts_with('.')))
}

/// Parquet settings of our data files: zstd level 1 (measured: a quarter faster to write than
/// level 3 on CloudTrail rows, files no larger) on [`ZSTD_COLUMNS`] and the columns of other
/// tables, the event table's other leaves uncompressed, rows ordered by [`SORT_COLUMNS`] with page
/// statistics on the call, region and time (a region, a call or a time range reads only its
/// pages), chunk statistics elsewhere,
/// no statistics for free-form JSON and per-row ids (nothing prunes by them; they made every
/// footer larger), and no dictionary for the columns that are nearly unique per row: trying one
/// costs time and the writer falls back to plain anyway.
pub fn writer_properties(sorted: bool) -> WriterProperties {
    writer_properties_builder(sorted).build()
}

fn writer_properties_builder(sorted: bool) -> WriterPropertiesBuilder {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from(schema::EVENTTIME), EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from(schema::REGION), EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from("eventsource"), EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from("eventname"), EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS);
    for column in JSON_COLUMNS.into_iter().chain([
        "addendum",
        "insightdetails",
        "edgedevicedetails",
        "eventcontext",
        "requestid",
        "sharedeventid",
        schema::RECORDHASH,
        schema::RESOURCEARNS,
        schema::ACTOR,
    ]) {
        b = b.set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
    }
    for path in UNCOMPRESSED_LEAVES.iter() {
        b = b.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
    }
    for column in PLAIN_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    // Bloom filters on the columns questions test for equality (`eventname IN (…)`,
    // `eventsource = …`, `errorcode IN (…)`, `sourceipaddress = …`, an access key, the key or
    // session an STS call minted): a row group that does not hold the value is skipped without
    // reading its pages. Sized for a row group's distinct values at a 1% false-positive rate.
    for (column, ndv) in [
        ("eventname", 2048),
        ("eventsource", 512),
        ("errorcode", 512),
        ("sourceipaddress", 32768),
        ("useridentity.accesskeyid", 32768),
        (schema::MINTEDKEY, 32768),
        (schema::MINTEDSESSION, 16384),
    ] {
        // `a.b` names a struct member: a path of two parts, not a column named `a.b`.
        let path = ColumnPath::new(column.split('.').map(str::to_string).collect());
        b = b
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_max_ndv(path.clone(), ndv)
            .set_column_bloom_filter_fpp(path, 0.01);
    }
    if sorted {
        let file_schema = schema::file_schema();
        let columns = SORT_COLUMNS
            .iter()
            .map(|name| SortingColumn {
                column_idx: file_schema.index_of(name).unwrap_or_default() as i32,
                descending: false,
                nulls_first: false,
            })
            .collect();
        b = b.set_sorting_columns(Some(columns));
    }
    b
}

/// The order of a data file's rows: by the call (name, then source: the rows of one call are
/// contiguous, so a filter on it prunes the pages of every column), then region, then source
/// address, then time.
/// The name comes first so that its values only grow along the rows an ingest batch writes (a
/// compacted file is a few such runs): a page's `eventname` bounds then take in the calls it
/// holds and no others. A day holds a few hundred (region, source)
/// groups of a few hundred rows; sorted by region or source first, nearly every page spanned
/// the end of one group's names and the start of the next's, and its bounds took in most calls
/// (measured on a 20M-event trail: `eventname = 'ConsoleLogin'` kept the pages of 12.0M rows
/// with the region first, 4.3M with the source first, 1.5M with the name first). Every
/// question that names a source also names its calls.
///
/// Within a call and region, rows are ordered by source IP address before time: the calls from
/// one address lie together, so a question about an address picks runs of rows out of each page
/// instead of single rows scattered through it (every row picked alone costs every column a
/// skip and a read). On a 20M-event trail, `run ip-activity` over 90 days (500,000 calls from
/// one address) took 1.04-1.17 s with rows by time and 0.84-0.89 s by address then time, the
/// table 4 % smaller; a window of an hour, which time order let skip the pages of a busy call
/// outside it, took 0.037 s against 0.032 s, and the other questions measured the same.
/// (Page statistics on the address as well measured no faster.)
pub const SORT_COLUMNS: [&str; 5] = [
    "eventname",
    "eventsource",
    schema::REGION,
    "sourceipaddress",
    schema::EVENTTIME,
];

/// Rows per data page (at most; a page also ends at 1 MiB). Rows are ordered by call, so a page
/// of a few thousand rows holds a few calls: the page index of `eventname` then leaves out most
/// of a row group for a question about some calls, and every column skips those rows' pages.
/// (The writer's default, 20,000 rows, made pages that spanned most calls of a region.)
pub const PAGE_ROWS: usize = 2048;

/// Rows per row group: a day of a busy trail is a few row groups, a quiet one a single one (each
/// row group costs every query its column metadata).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The Parquet leaf columns of `batch` that hold no value at all. Most optional CloudTrail
/// fields are absent from a whole partition's rows; their column chunks are a few bytes of
/// definition levels, and writing them without compression saves the zstd contexts the writer
/// would create for each (measured: a twentieth of ingest CPU went to creating them).
fn all_null_leaves(batch: &RecordBatch) -> Result<Vec<ColumnPath>, LakeError> {
    let descriptor = ArrowSchemaConverter::new()
        .convert(&batch.schema())
        .map_err(|e| LakeError::Schema(e.to_string()))?;
    let mut nulls = Vec::with_capacity(descriptor.num_columns());
    for column in batch.columns() {
        leaf_nulls(column.as_ref(), false, &mut nulls);
    }
    if nulls.len() != descriptor.num_columns() {
        return Err(LakeError::Schema(format!(
            "{} leaf columns in the batch, {} in its Parquet schema",
            nulls.len(),
            descriptor.num_columns()
        )));
    }
    Ok(descriptor
        .columns()
        .iter()
        .zip(nulls)
        .filter(|(_, null)| *null)
        .map(|(c, _)| c.path().clone())
        .collect())
}

/// Appends, for each leaf under `array` in Parquet's depth-first order, whether it holds no value
/// (`parent_null`: an ancestor is null on every row).
fn leaf_nulls(array: &dyn Array, parent_null: bool, out: &mut Vec<bool>) {
    let null = parent_null || array.null_count() == array.len();
    match array.data_type() {
        DataType::Struct(_) => {
            for child in array.as_struct().columns() {
                leaf_nulls(child.as_ref(), null, out);
            }
        }
        DataType::List(_) => leaf_nulls(array.as_list::<i32>().values().as_ref(), null, out),
        DataType::LargeList(_) => leaf_nulls(array.as_list::<i64>().values().as_ref(), null, out),
        _ => out.push(null),
    }
}

/// Writes one batch, its rows ordered by [`SORT_COLUMNS`], as a data file of `partition` under
/// `table_root` and returns its `add` action, with the per-file statistics Delta uses to skip
/// files by `eventtime` and `region`.
pub fn write_data_file(
    table_root: &Path,
    partition: &Partition,
    batch: &RecordBatch,
) -> Result<Add, LakeError> {
    let rel = new_file_name(partition);
    let size = write_parquet(&table_root.join(&rel), batch, true)?;
    Ok(add_action(rel, partition, size, true, file_stats(batch)?))
}

/// The path of a new data file of `partition`, relative to the table's root.
pub(crate) fn new_file_name(partition: &Partition) -> String {
    format!(
        "{}/part-{}.zstd.parquet",
        partition.dir(),
        uuid::Uuid::new_v4()
    )
}

/// The `add` action of data file `rel` of `partition` (`data_change`: new rows, or the same rows
/// rearranged).
pub(crate) fn add_action(
    rel: String,
    partition: &Partition,
    size: i64,
    data_change: bool,
    stats: String,
) -> Add {
    Add {
        path: rel,
        partition_values: HashMap::from([(
            schema::DAY.to_string(),
            Some(partition.day.format("%Y-%m-%d").to_string()),
        )]),
        size,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change,
        stats: Some(stats),
        ..Default::default()
    }
}

/// Writes quarantined records as one data file of table `quarantine`.
pub fn write_quarantine_file(table_root: &Path, batch: &RecordBatch) -> Result<Add, LakeError> {
    write_unpartitioned_file(table_root, batch)
}

/// Writes `batch` as one data file of an unpartitioned table (`quarantine`, `integrity`).
pub fn write_unpartitioned_file(table_root: &Path, batch: &RecordBatch) -> Result<Add, LakeError> {
    let rel = format!("part-{}.zstd.parquet", uuid::Uuid::new_v4());
    let size = write_parquet(&table_root.join(&rel), batch, false)?;
    Ok(unpartitioned_add(rel, size, batch.num_rows()))
}

/// Writes the batches `batches` yields (of `schema`) as one data file of an unpartitioned table,
/// each encoded as it comes: the caller holds one batch at a time, not the file's rows (the
/// verdicts of a 20M-event trail's 400,000 log files).
pub fn write_unpartitioned_batches(
    table_root: &Path,
    schema: arrow::datatypes::SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch, LakeError>>,
) -> Result<Add, LakeError> {
    let rel = format!("part-{}.zstd.parquet", uuid::Uuid::new_v4());
    let path = table_root.join(&rel);
    let (mut file_writer, columns, new_dir) =
        open_parquet(&path, schema, writer_properties_builder(false))?;
    let (mut group, mut rows) = (0, 0);
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows();
        write_row_groups(&mut file_writer, &columns, &batch, &mut group)
            .map_err(LakeError::parquet(&path))?;
    }
    let (size, _) = finish_file(file_writer, &path, new_dir)?;
    Ok(unpartitioned_add(rel, size, rows))
}

fn unpartitioned_add(path: String, size: i64, rows: usize) -> Add {
    Add {
        path,
        size,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(serde_json::json!({ "numRecords": rows }).to_string()),
        ..Default::default()
    }
}

/// Writes `batch` as a Parquet file at `path` (creating its directory); returns its size.
fn write_parquet(path: &Path, batch: &RecordBatch, sorted: bool) -> Result<i64, LakeError> {
    let mut props = writer_properties_builder(sorted);
    for column in all_null_leaves(batch)? {
        props = props.set_column_compression(column, Compression::UNCOMPRESSED);
    }
    let (mut file_writer, columns, new_dir) = open_parquet(path, batch.schema(), props)?;
    let mut group = 0;
    write_row_groups(&mut file_writer, &columns, batch, &mut group)
        .map_err(LakeError::parquet(path))?;
    finish_file(file_writer, path, new_dir).map(|(size, _)| size)
}

/// Creates the Parquet file at `path` (and its directory): the writer of the whole file (footer,
/// Arrow schema in its metadata) and of its row groups, which are encoded by
/// [`write_row_groups`], a group's leaf columns in parallel (on the caller's rayon pool): a batch
/// of an ingest touches a day or two, so encoding one file must use every core. Also says
/// whether the directory was made.
fn open_parquet(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    props: WriterPropertiesBuilder,
) -> Result<(SerializedFileWriter<File>, ArrowRowGroupWriterFactory, bool), LakeError> {
    let io = LakeError::io(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let new_dir = !dir.is_dir();
    fs::create_dir_all(dir).map_err(io)?;
    let file = File::create(path).map_err(LakeError::io(path))?;
    let (file_writer, columns) = ArrowWriter::try_new(file, schema, Some(props.build()))
        .and_then(ArrowWriter::into_serialized_writer)
        .map_err(LakeError::parquet(path))?;
    Ok((file_writer, columns, new_dir))
}

/// Encodes `batch` as row groups of at most [`ROW_GROUP_ROWS`] rows, numbered from `group`
/// (advanced past them), each group's leaf columns in parallel.
pub(crate) fn write_row_groups(
    file_writer: &mut SerializedFileWriter<File>,
    columns: &ArrowRowGroupWriterFactory,
    batch: &RecordBatch,
    group: &mut usize,
) -> Result<(), ParquetError> {
    let schema = batch.schema();
    let mut start = 0;
    while start < batch.num_rows() {
        let rows = batch.slice(start, ROW_GROUP_ROWS.min(batch.num_rows() - start));
        let mut leaves = Vec::new();
        for (field, column) in schema.fields().iter().zip(rows.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        let writers = columns.create_column_writers(*group)?;
        let chunks: Vec<ArrowColumnChunk> = writers
            .into_par_iter()
            .zip(leaves)
            .map(|(mut writer, leaf)| {
                writer.write(&leaf)?;
                writer.close()
            })
            .collect::<Result<_, _>>()?;
        let mut row_group = file_writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        start += rows.num_rows();
        *group += 1;
    }
    Ok(())
}

/// Writes the footer of the file at `path` and makes it durable: on disk before the commit
/// that names it (a commit must never outlive its data files, whatever the power does), with
/// its folder entry (and the folder's, when `new_dir`). Returns its size and its metadata.
pub(crate) fn finish_file(
    mut file_writer: SerializedFileWriter<File>,
    path: &Path,
    new_dir: bool,
) -> Result<(i64, ParquetMetaData), LakeError> {
    let io = LakeError::io(path);
    let pq = LakeError::parquet(path);
    let metadata = file_writer.finish().map_err(pq)?;
    let file = file_writer.inner_mut();
    file.sync_all().map_err(io)?;
    let size = file.metadata().map_err(io)?.len() as i64;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir).map_err(io)?;
    if new_dir && let Some(parent) = dir.parent() {
        sync_dir(parent).map_err(io)?;
    }
    Ok((size, metadata))
}

/// Makes the entries of folder `dir` (files created, renamed) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Delta per-file statistics: `numRecords`, and min/max/nullCount of `eventtime` (timestamps at
/// millisecond precision, the maximum rounded up so that it still bounds the file) and of `region`
/// (left out when a bound is longer than [`MAX_STAT_TEXT`]: a truncated maximum would not bound).
fn file_stats(batch: &RecordBatch) -> Result<String, LakeError> {
    let times = batch
        .column_by_name(schema::EVENTTIME)
        .ok_or_else(|| LakeError::Schema("batch has no eventtime".into()))?
        .as_primitive::<TimestampMicrosecondType>();
    let regions = batch
        .column_by_name(schema::REGION)
        .and_then(|c| c.as_string_opt::<i32>());
    Ok(stats_json(&FileBounds {
        rows: batch.num_rows() as u64,
        time_nulls: Some(times.null_count() as u64),
        times: min(times).zip(max(times)),
        region_nulls: regions.map(|r| r.null_count() as u64),
        regions: regions
            .and_then(|r| min_string(r).zip(max_string(r)))
            .map(|(lo, hi)| (lo.to_string(), hi.to_string())),
    }))
}

/// What a data file's `add` action says of its rows: their number, and the nulls and bounds of
/// the [`STATS_COLUMNS`] (`None`: not known, left out).
#[derive(Debug, Default)]
pub(crate) struct FileBounds {
    pub rows: u64,
    pub time_nulls: Option<u64>,
    /// Least and greatest `eventtime`, in microseconds.
    pub times: Option<(i64, i64)>,
    pub region_nulls: Option<u64>,
    pub regions: Option<(String, String)>,
}

/// The Delta statistics of `bounds`: times at millisecond precision, the maximum rounded up so
/// that it still bounds the file; a region bound longer than [`MAX_STAT_TEXT`] left out.
pub(crate) fn stats_json(bounds: &FileBounds) -> String {
    let fmt = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    let mut stats = serde_json::json!({
        "numRecords": bounds.rows,
        "nullCount": {},
        "minValues": {},
        "maxValues": {},
    });
    if let Some(n) = bounds.time_nulls {
        stats["nullCount"][schema::EVENTTIME] = serde_json::json!(n);
    }
    if let Some((lo, hi)) = bounds.times {
        let lo_ms = lo.div_euclid(1000) * 1000;
        let hi_ms = (hi + 999).div_euclid(1000) * 1000;
        stats["minValues"][schema::EVENTTIME] = serde_json::json!(fmt(lo_ms));
        stats["maxValues"][schema::EVENTTIME] = serde_json::json!(fmt(hi_ms));
    }
    if let Some(n) = bounds.region_nulls {
        stats["nullCount"][schema::REGION] = serde_json::json!(n);
    }
    if let Some((lo, hi)) = &bounds.regions
        && lo.len() <= MAX_STAT_TEXT
        && hi.len() <= MAX_STAT_TEXT
    {
        stats["minValues"][schema::REGION] = serde_json::json!(lo);
        stats["maxValues"][schema::REGION] = serde_json::json!(hi);
    }
    stats.to_string()
}

/// The columns whose bounds each data file's `add` action carries.
pub(crate) const STATS_COLUMNS: [&str; 2] = [schema::EVENTTIME, schema::REGION];

/// The longest text kept as a file's bound in the Delta log.
const MAX_STAT_TEXT: usize = 64;

/// Reads the named columns of a committed data file.
pub fn read_columns(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>, LakeError> {
    let file = File::open(path).map_err(LakeError::io(path))?;
    read_columns_of(file, path, columns)
}

/// [`read_columns`] of a file's bytes held some other way; `path` names it in errors.
pub fn read_columns_of<R: parquet::file::reader::ChunkReader + 'static>(
    reader: R,
    path: &Path,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, LakeError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let pq = LakeError::parquet(path);
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(pq)?;
    let mask = projection(builder.schema(), builder.parquet_schema(), path, columns)?;
    let reader = builder.with_projection(mask).build().map_err(pq)?;
    reader
        .map(|b| b.map_err(LakeError::from))
        .collect::<Result<Vec<_>, _>>()
}

/// The leaves of `columns` (top-level names of the file's Arrow `schema`) in a file `path`.
pub(crate) fn projection(
    schema: &arrow::datatypes::Schema,
    parquet_schema: &parquet::schema::types::SchemaDescriptor,
    path: &Path,
    columns: &[&str],
) -> Result<parquet::arrow::ProjectionMask, LakeError> {
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| {
            schema
                .index_of(c)
                .map_err(|_| LakeError::Schema(format!("`{}` has no column `{c}`", path.display())))
        })
        .collect::<Result<_, _>>()?;
    Ok(parquet::arrow::ProjectionMask::roots(
        parquet_schema,
        indices,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::Field;
    use chrono::NaiveDate;
    use parquet::basic::Encoding;
    use parquet::file::metadata::{ColumnChunkMetaData, RowGroupMetaData};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use std::sync::Arc;

    /// A batch of file-schema rows at `times` (microseconds): eventtime, sourcefile and recordhash
    /// set, other columns as `column` gives them or null.
    fn batch(times: &[i64], column: impl Fn(&Field, usize) -> Option<ArrayRef>) -> RecordBatch {
        let schema = schema::file_schema();
        let n = times.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                schema::EVENTTIME => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(times.iter().copied())
                        .with_timezone("UTC"),
                ) as ArrayRef,
                schema::SOURCEFILE => Arc::new(StringArray::from(vec!["f"; n])),
                schema::REGION => column(f, n)
                    .unwrap_or_else(|| Arc::new(StringArray::from(vec!["us-east-1"; n]))),
                schema::RECORDHASH => Arc::new(Int64Array::from_iter_values(0..n as i64)),
                _ => column(f, n).unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), n)),
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    /// Writes `batch` as a data file of 1970-01-01 under a new directory.
    fn written(batch: &RecordBatch) -> (tempfile::TempDir, Add) {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = Partition {
            day: NaiveDate::from_ymd_opt(1970, 1, 1).expect("date"),
        };
        let add = write_data_file(dir.path(), &partition, batch).expect("write");
        (dir, add)
    }

    fn row_group(path: &Path) -> RowGroupMetaData {
        let reader = SerializedFileReader::new(File::open(path).expect("open")).expect("parquet");
        reader.metadata().row_group(0).clone()
    }

    fn chunk<'a>(rg: &'a RowGroupMetaData, name: &str) -> &'a ColumnChunkMetaData {
        rg.columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column chunk {name}"))
    }

    #[test]
    fn data_files_are_sorted_with_statistics_and_zstd_on_their_long_text() {
        let batch = batch(&[1_000_000, 2_000_000, 3_500_400], |f, n| {
            let text = |v: &str| Some(Arc::new(StringArray::from(vec![v; n])) as ArrayRef);
            match f.name().as_str() {
                "eventid" => text("0c7e4f5e-2f7a-4a55-9f1e-6b8e1a2b3c4d"),
                "requestparameters" => text(r#"{"bucketName":"b"}"#),
                "eventname" => text("GetObject"),
                "errorcode" => text("AccessDenied"),
                _ => None,
            }
        });
        let (dir, add) = written(&batch);
        assert!(add.path.starts_with("day=1970-01-01/part-"), "{}", add.path);
        let stats: serde_json::Value =
            serde_json::from_str(add.stats.as_deref().expect("stats")).expect("json");
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["eventtime"], "1970-01-01T00:00:01.000Z");
        // Rounded up to the millisecond, so that it still bounds the file.
        assert_eq!(stats["maxValues"]["eventtime"], "1970-01-01T00:00:03.501Z");
        assert_eq!(stats["minValues"]["region"], "us-east-1");
        assert_eq!(stats["maxValues"]["region"], "us-east-1");
        assert_eq!(stats["nullCount"]["region"], 0);

        let rg = row_group(&dir.path().join(&add.path));
        let order: Vec<usize> = rg
            .sorting_columns()
            .expect("sorting columns declared")
            .iter()
            .map(|c| c.column_idx as usize)
            .collect();
        let index = |name| batch.schema().index_of(name).expect("col");
        assert_eq!(order, SORT_COLUMNS.map(index));
        // Long text and ids are compressed (the file records the codec, not its level); short
        // text kept as dictionaries, times and hashes are not.
        for name in ["eventid", "requestparameters", schema::SOURCEFILE] {
            assert!(
                matches!(chunk(&rg, name).compression(), Compression::ZSTD(_)),
                "{name}"
            );
        }
        for name in [
            schema::EVENTTIME,
            "eventname",
            "errorcode",
            schema::REGION,
            schema::RECORDHASH,
        ] {
            assert_eq!(
                chunk(&rg, name).compression(),
                Compression::UNCOMPRESSED,
                "{name}"
            );
        }
        let col = chunk(&rg, schema::EVENTTIME);
        assert!(col.statistics().is_some());
        // Sorted times are stored plain, not dictionary-encoded; random hashes stay as they are.
        let encodings: Vec<Encoding> = col.encodings().collect();
        assert!(encodings.contains(&Encoding::PLAIN), "{encodings:?}");
        assert!(
            !encodings.contains(&Encoding::RLE_DICTIONARY),
            "{encodings:?}"
        );
        for name in [
            "eventname",
            "eventsource",
            "errorcode",
            "sourceipaddress",
            "useridentity.accesskeyid",
            "mintedkey",
            "mintedsession",
        ] {
            assert!(
                chunk(&rg, name).bloom_filter_offset().is_some(),
                "no bloom filter on {name}"
            );
        }
        assert!(chunk(&rg, "eventid").bloom_filter_offset().is_none());
    }

    #[test]
    fn every_zstd_column_names_columns_of_the_event_table() {
        let descriptor = ArrowSchemaConverter::new()
            .convert(&schema::file_schema())
            .expect("schema");
        let paths: Vec<ColumnPath> = descriptor
            .columns()
            .iter()
            .map(|c| c.path().clone())
            .collect();
        let leaves: Vec<String> = paths.iter().map(ColumnPath::string).collect();
        for column in ZSTD_COLUMNS {
            let under = format!("{column}.");
            assert!(
                leaves.iter().any(|l| l == column || l.starts_with(&under)),
                "{column} is no column of the event table"
            );
        }
        assert_eq!(
            UNCOMPRESSED_LEAVES.len() + paths.iter().filter(|p| zstd_leaf(p)).count(),
            leaves.len()
        );
        // The plain text columns are compressed, the plain times and hashes are not.
        let zstd = |name: &str| zstd_leaf(&ColumnPath::from(name));
        for name in ["eventid", "requestid", "requestparameters", schema::EXTRA] {
            assert!(zstd(name), "{name}");
        }
        assert!(!zstd(schema::EVENTTIME) && !zstd(schema::RECORDHASH) && !zstd("eventname"));
        assert!(!UNCOMPRESSED_LEAVES.is_empty());
    }

    #[test]
    fn a_file_over_a_row_group_is_written_in_groups_that_read_back_whole() {
        let n = 2 * ROW_GROUP_ROWS + 5;
        let times: Vec<i64> = (0..n as i64).map(|i| i * 1_000).collect();
        let batch = batch(&times, |f, n| match f.name().as_str() {
            "eventname" => Some(Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("Call{}", i % 7)),
            )) as ArrayRef),
            _ => None,
        });
        let (dir, add) = written(&batch);
        let path = dir.path().join(&add.path);
        let reader = SerializedFileReader::new(File::open(&path).expect("open")).expect("parquet");
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(RowGroupMetaData::num_rows)
            .collect();
        assert_eq!(
            groups,
            [ROW_GROUP_ROWS as i64, ROW_GROUP_ROWS as i64, 5],
            "row groups"
        );
        for rg in reader.metadata().row_groups() {
            assert!(rg.sorting_columns().is_some());
            assert!(chunk(rg, "eventname").bloom_filter_offset().is_some());
        }
        // Pages of at most PAGE_ROWS rows, so that the page index prunes within a row group.
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let indexed =
            SerializedFileReader::new_with_options(File::open(&path).expect("open"), options)
                .expect("parquet");
        let offsets = indexed.metadata().offset_index().expect("offset index");
        let eventname = indexed
            .metadata()
            .row_group(0)
            .columns()
            .iter()
            .position(|c| c.column_path().string() == "eventname")
            .expect("eventname leaf");
        let pages = offsets[0][eventname].page_locations().len();
        assert_eq!(
            pages,
            ROW_GROUP_ROWS.div_ceil(PAGE_ROWS),
            "pages of eventname"
        );
        let back = read_columns(&path, &[schema::EVENTTIME, "eventname", schema::RECORDHASH])
            .expect("read back");
        let back = arrow::compute::concat_batches(&back[0].schema(), &back).expect("concat");
        assert_eq!(back.num_rows(), n);
        for (i, name) in [schema::EVENTTIME, "eventname", schema::RECORDHASH]
            .into_iter()
            .enumerate()
        {
            let column = batch.column(batch.schema().index_of(name).expect("col"));
            assert_eq!(back.column(i).as_ref(), column.as_ref(), "{name}");
        }
    }

    #[test]
    fn batches_written_as_they_come_make_one_file_of_all_their_rows() {
        let parts = [batch(&[1, 2, 3], |_, _| None), batch(&[4], |_, _| None)];
        let dir = tempfile::tempdir().expect("tempdir");
        let add = write_unpartitioned_batches(
            dir.path(),
            schema::file_schema(),
            parts.iter().cloned().map(Ok),
        )
        .expect("write");
        let stats: serde_json::Value =
            serde_json::from_str(add.stats.as_deref().expect("stats")).expect("json");
        assert_eq!(stats["numRecords"], 4);
        let path = dir.path().join(&add.path);
        assert_eq!(add.size as u64, fs::metadata(&path).expect("file").len());
        let back = read_columns(&path, &[schema::EVENTTIME]).expect("read back");
        let times: Vec<i64> = back
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(times, [1, 2, 3, 4]);
        // A batch that cannot be made stops the file with its error.
        let failed = write_unpartitioned_batches(
            dir.path(),
            schema::file_schema(),
            [
                Ok(parts[0].clone()),
                Err(LakeError::Schema("no rows".into())),
            ],
        );
        assert!(matches!(failed, Err(LakeError::Schema(why)) if why == "no rows"));
    }

    #[test]
    fn columns_without_values_are_written_uncompressed() {
        use arrow::array::{StructArray, new_null_array};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let batch = batch(&[1_000_000, 2_000_000], |f, n| {
            match (f.name().as_str(), f.data_type()) {
                ("eventname", _) => {
                    Some(Arc::new(StringArray::from(vec![Some("A"), None])) as ArrayRef)
                }
                ("eventid", _) => {
                    Some(Arc::new(StringArray::from(vec![None, Some("e-1")])) as ArrayRef)
                }
                // A struct with one member set on one row: that member's leaf has a value, its
                // siblings and nested structs have none.
                ("useridentity", DataType::Struct(children)) => {
                    let arrays = children
                        .iter()
                        .map(|c| match c.name().as_str() {
                            "type" => {
                                Arc::new(StringArray::from(vec![None, Some("Root")])) as ArrayRef
                            }
                            _ => new_null_array(c.data_type(), n),
                        })
                        .collect();
                    Some(Arc::new(StructArray::new(children.clone(), arrays, None)))
                }
                _ => None,
            }
        });
        let (dir, add) = written(&batch);
        let path = dir.path().join(&add.path);
        let rg = row_group(&path);
        // Columns zstd is kept for, with a value.
        for name in ["eventid", "sourcefile"] {
            assert!(
                matches!(chunk(&rg, name).compression(), Compression::ZSTD(_)),
                "{name}"
            );
        }
        // Without a value, a column zstd is kept for (`resources`) is not compressed either.
        for name in [
            "errorcode",
            "useridentity.arn",
            "useridentity.sessioncontext.sessionissuer.arn",
            "resources.list.element.arn",
            "tlsdetails.tlsversion",
        ] {
            assert_eq!(
                chunk(&rg, name).compression(),
                Compression::UNCOMPRESSED,
                "{name}"
            );
        }
        // The file reads back as written.
        let read: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
                .expect("reader")
                .build()
                .expect("build")
                .collect::<Result<_, _>>()
                .expect("read");
        assert_eq!(read, vec![batch]);
    }

    #[test]
    fn a_region_too_long_to_bound_has_no_statistics() {
        // A record may say anything in awsRegion; a bound the log would have to truncate would
        // not bound the file, so there is none and region filters read the file.
        let long = "x".repeat(MAX_STAT_TEXT + 1);
        let batch = batch(&[1_000_000, 2_000_000], |f, n| {
            (f.name() == schema::REGION)
                .then(|| Arc::new(StringArray::from(vec![long.as_str(); n])) as ArrayRef)
        });
        let (_dir, add) = written(&batch);
        let stats: serde_json::Value =
            serde_json::from_str(add.stats.as_deref().expect("stats")).expect("json");
        assert!(stats["minValues"].get("region").is_none(), "{stats}");
        assert!(stats["maxValues"].get("region").is_none(), "{stats}");
        assert_eq!(stats["minValues"]["eventtime"], "1970-01-01T00:00:01.000Z");
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).expect("date");
        assert_eq!(Partition { day }.dir(), "day=2024-01-02");
    }
}
