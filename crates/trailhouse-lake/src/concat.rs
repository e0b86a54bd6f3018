//! Compaction by concatenation: a day's data files become one file without decoding what is
//! already well packed.
//!
//! Ingest writes a file per day and batch. A trail read in delivery order leaves each day a few
//! large files (the batches that read its folder) and several small ones (events delivered after
//! midnight, read with the next day's batches). Rewriting all of them (decode, sort nothing,
//! encode, compress) took a fifth of a 20M-event ingest. Here, a row group of
//! [`RAW_MIN_ROWS`] rows or more is copied as it is, byte for byte, with its bloom filters and
//! page indexes, and the small row groups are decoded and encoded again together into row groups
//! of up to [`ROW_GROUP_ROWS`]. Readers get one file per day either way; the file's row groups are
//! its inputs' large ones plus one or two of the small ones merged.
//!
//! A row group is copied only from a file whose Parquet schema is exactly ours: files written by
//! another writer are decoded, converted to our column types and encoded again whole.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{cast, concat_batches};
use deltalake_core::kernel::Add;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use crate::datafile::{
    FileBounds, ROW_GROUP_ROWS, add_action, finish_file, new_file_name, stats_json,
    write_row_groups, writer_properties,
};
use crate::error::LakeError;
use crate::schema;
use crate::table::Partition;

/// Row groups of at least this many rows are copied as they are; smaller ones are merged.
pub const RAW_MIN_ROWS: usize = ROW_GROUP_ROWS / 4;

/// Decoded rows of small row groups held before they are written as a row group: days are
/// merged in parallel, and a day of many small files would otherwise hold up to a full row group
/// of decoded rows each.
const MERGE_BYTES: usize = 64 << 20;

/// Writes the rows of `inputs` (data files of `partition`) as one new data file under
/// `table_root` and returns its `add` action (`dataChange` false: the same rows, rearranged).
/// The inputs are left in place; the caller commits their removal with the add.
pub fn concatenate(
    table_root: &Path,
    partition: &Partition,
    inputs: &[PathBuf],
) -> Result<Add, LakeError> {
    let rel = new_file_name(partition);
    let path = table_root.join(&rel);
    let pq = LakeError::parquet(&path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let new_dir = !dir.is_dir();
    fs::create_dir_all(dir).map_err(LakeError::io(dir))?;
    let file = File::create(&path).map_err(LakeError::io(&path))?;
    // Concatenated row groups are each sorted, the file is not: it claims no order. Text is
    // hinted as plain strings, as in every data file ingest writes: a reader that wants views
    // asks for them (pyarrow's dataset filters fail on a file hinted as views in a table of
    // strings).
    let (mut writer, columns) =
        ArrowWriter::try_new(file, schema::file_schema(), Some(writer_properties(false)))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(pq)?;
    let mut group = 0;
    let mut small: Vec<RecordBatch> = Vec::new();
    let mut small_rows = 0;
    let mut small_bytes = 0;
    for input in inputs {
        let (file, metadata) = open(input)?;
        let from = LakeError::parquet(input);
        let ours = metadata.file_metadata().schema_descr().root_schema()
            == writer.schema_descr().root_schema();
        for (index, rg) in metadata.row_groups().iter().enumerate() {
            if ours && rg.num_rows() as usize >= RAW_MIN_ROWS {
                copy_row_group(&mut writer, &file, &metadata, index).map_err(from)?;
                group += 1;
                continue;
            }
            for batch in decode_row_group(&file, &metadata, index).map_err(from)? {
                let batch = as_file_schema(batch).map_err(from)?;
                small_rows += batch.num_rows();
                small_bytes += batch.get_array_memory_size();
                small.push(batch);
            }
            if small_rows >= ROW_GROUP_ROWS || small_bytes >= MERGE_BYTES {
                let rows =
                    concat_batches(&schema::file_schema(), &small).map_err(|e| pq(e.into()))?;
                write_row_groups(&mut writer, &columns, &rows, &mut group).map_err(pq)?;
                small.clear();
                small_rows = 0;
                small_bytes = 0;
            }
        }
    }
    if small_rows > 0 {
        let rows = concat_batches(&schema::file_schema(), &small).map_err(|e| pq(e.into()))?;
        write_row_groups(&mut writer, &columns, &rows, &mut group).map_err(pq)?;
    }
    let (size, metadata) = finish_file(writer, &path, new_dir)?;
    let stats = stats_json(&footer_bounds(&metadata));
    Ok(add_action(rel, partition, size, false, stats))
}

/// A data file and its footer, page indexes included when it has them.
fn open(path: &Path) -> Result<(File, ParquetMetaData), LakeError> {
    let file = File::open(path).map_err(LakeError::io(path))?;
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&file)
        .map_err(LakeError::parquet(path))?;
    Ok((file, metadata))
}

/// Appends row group `index` of `file` to `writer` as it is encoded: each column chunk's bytes,
/// its statistics, bloom filter, column index and offset index (offsets moved to their new place).
fn copy_row_group(
    writer: &mut parquet::file::writer::SerializedFileWriter<File>,
    file: &File,
    metadata: &ParquetMetaData,
    index: usize,
) -> Result<(), ParquetError> {
    let rg = metadata.row_group(index);
    let column_indexes = metadata.column_index().and_then(|c| c.get(index));
    let offset_indexes = metadata.offset_index().and_then(|o| o.get(index));
    let mut out = writer.next_row_group()?;
    for (c, column) in rg.columns().iter().enumerate() {
        out.append_column(
            file,
            ColumnCloseResult {
                bytes_written: column.compressed_size() as u64,
                rows_written: rg.num_rows() as u64,
                metadata: column.clone(),
                bloom_filter: Sbbf::read_from_column_chunk(column, file)?,
                column_index: column_indexes.and_then(|r| r.get(c)).cloned(),
                offset_index: offset_indexes.and_then(|r| r.get(c)).cloned(),
            },
        )?;
    }
    out.close()?;
    Ok(())
}

/// The rows of row group `index` of `file`.
fn decode_row_group(
    file: &File,
    metadata: &ParquetMetaData,
    index: usize,
) -> Result<Vec<RecordBatch>, ParquetError> {
    let reader_metadata = ArrowReaderMetadata::try_new(
        Arc::new(metadata.clone()),
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip),
    )?;
    let reader =
        ParquetRecordBatchReaderBuilder::new_with_metadata(file.try_clone()?, reader_metadata)
            .with_row_groups(vec![index])
            .with_batch_size(ROW_GROUP_ROWS)
            .build()?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(ParquetError::from)
}

/// `batch` with the columns of our data files, in their types (another writer may have used
/// other physical types: string views, another time zone). A derived column the file was
/// written without ([`schema::ADDED_COLUMNS`], by an earlier trailhouse) is derived here: left
/// null it would tell a reader the rows have no ARNs, or no actor.
fn as_file_schema(batch: RecordBatch) -> Result<RecordBatch, ParquetError> {
    let want = schema::file_schema();
    if batch.schema().fields() == want.fields() {
        return Ok(RecordBatch::try_new(want, batch.columns().to_vec())?);
    }
    let mut columns = Vec::with_capacity(want.fields().len());
    for field in want.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) => cast(c, field.data_type())?,
            None if schema::ADDED_COLUMNS.contains(&field.name().as_str()) => {
                crate::derived::added_column(
                    field.name(),
                    |name| batch.column_by_name(name),
                    batch.num_rows(),
                )
                .map_err(ParquetError::General)?
            }
            None => arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(want, columns)?)
}

/// What the written file's footer says of its rows: the row groups' counts, and the nulls and
/// bounds of the statistics columns when every row group has them.
fn footer_bounds(metadata: &ParquetMetaData) -> FileBounds {
    let descr = metadata.file_metadata().schema_descr();
    let leaf =
        |name: &str| (0..descr.num_columns()).find(|&i| descr.column(i).path().string() == name);
    let mut bounds = FileBounds {
        rows: metadata
            .row_groups()
            .iter()
            .map(|rg| rg.num_rows() as u64)
            .sum(),
        ..Default::default()
    };
    if let Some(i) = leaf(schema::EVENTTIME) {
        (bounds.time_nulls, bounds.times) = column_bounds(metadata, i, |stats| match stats {
            Statistics::Int64(s) => Some((s.min_opt().copied(), s.max_opt().copied())),
            _ => None,
        });
    }
    if let Some(i) = leaf(schema::REGION) {
        (bounds.region_nulls, bounds.regions) = column_bounds(metadata, i, |stats| match stats {
            Statistics::ByteArray(s) if s.min_is_exact() && s.max_is_exact() => {
                let text = |v: Option<&parquet::data_type::ByteArray>| {
                    v.and_then(|b| b.as_utf8().ok()).map(str::to_string)
                };
                Some((text(s.min_opt()), text(s.max_opt())))
            }
            _ => None,
        });
    }
    bounds
}

/// Column `i`'s null count and bounds over all of `metadata`'s row groups, each `None` when a
/// row group lacks it. `min_max` reads a row group's bounds from its statistics (`None`: of a
/// kind that cannot bound); a row group of nulls only has nothing to bound.
fn column_bounds<T: Ord>(
    metadata: &ParquetMetaData,
    i: usize,
    min_max: impl Fn(&Statistics) -> Option<(Option<T>, Option<T>)>,
) -> (Option<u64>, Option<(T, T)>) {
    let mut nulls = Some(0u64);
    let mut bounds: Option<Option<(T, T)>> = Some(None);
    for rg in metadata.row_groups() {
        let stats = rg.column(i).statistics();
        nulls = nulls
            .zip(stats.and_then(Statistics::null_count_opt))
            .map(|(a, b)| a + b);
        bounds = match (bounds, stats) {
            (Some(acc), Some(stats)) => match min_max(stats) {
                Some((Some(lo), Some(hi))) => Some(Some(match acc {
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                    None => (lo, hi),
                })),
                Some(_) if rg.num_rows() as u64 == stats.null_count_opt().unwrap_or(u64::MAX) => {
                    Some(acc)
                }
                _ => None,
            },
            _ => None,
        };
    }
    (nulls, bounds.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    use chrono::NaiveDate;
    use parquet::file::properties::WriterProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use crate::datafile::write_data_file;

    /// `n` rows of the file schema from time `t0` (seconds), calls `Call0`…`Call6`, each row
    /// its own hash.
    fn rows(t0: i64, n: usize) -> RecordBatch {
        let schema = schema::file_schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                schema::EVENTTIME => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..n as i64).map(|i| (t0 + i) * 1_000_000),
                    )
                    .with_timezone("UTC"),
                ) as ArrayRef,
                schema::SOURCEFILE => Arc::new(StringArray::from(vec!["f"; n])),
                schema::REGION => Arc::new(StringArray::from(vec!["eu-west-1"; n])),
                schema::RECORDHASH => {
                    Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| t0 + i)))
                }
                "eventname" => Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("Call{}", i % 7)),
                )),
                _ => arrow::array::new_null_array(f.data_type(), n),
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    /// The batches of the file at `path`, as written.
    fn read_written(path: &Path) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open"))
            .expect("reader")
            .build()
            .expect("build")
            .collect::<Result<_, _>>()
            .expect("read")
    }

    /// `batch` written to `path` as another writer would (its own schema, `props`).
    fn write_other(path: &Path, batch: &RecordBatch, props: Option<WriterProperties>) {
        let mut w =
            ArrowWriter::try_new(File::create(path).expect("create"), batch.schema(), props)
                .expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
    }

    fn read_all(path: &Path) -> RecordBatch {
        let batches: Vec<RecordBatch> = read_written(path)
            .into_iter()
            .map(|b| as_file_schema(b).expect("as file schema"))
            .collect();
        concat_batches(&schema::file_schema(), &batches).expect("concat")
    }

    fn leaf(metadata: &ParquetMetaData, name: &str) -> usize {
        let descr = metadata.file_metadata().schema_descr();
        (0..descr.num_columns())
            .find(|&i| descr.column(i).path().string() == name)
            .expect("leaf")
    }

    #[test]
    fn large_row_groups_are_copied_and_small_ones_merged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let partition = Partition {
            day: NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
        };
        let parts = [
            rows(1_000_000, RAW_MIN_ROWS + 10),
            rows(500, 100),
            rows(2_000_000, 50),
        ];
        let inputs: Vec<PathBuf> = parts
            .iter()
            .map(|b| root.join(write_data_file(root, &partition, b).expect("write").path))
            .collect();
        // A file of another writer: only some columns, in the order it chose.
        let foreign = rows(3_000_000, 20);
        let foreign = foreign
            .project(&[
                schema::file_schema()
                    .index_of("eventname")
                    .expect("eventname"),
                schema::file_schema()
                    .index_of(schema::EVENTTIME)
                    .expect("time"),
                schema::file_schema()
                    .index_of(schema::SOURCEFILE)
                    .expect("file"),
                schema::file_schema()
                    .index_of(schema::REGION)
                    .expect("region"),
                schema::file_schema()
                    .index_of(schema::RECORDHASH)
                    .expect("hash"),
            ])
            .expect("project");
        let foreign_path = root.join("day=2026-11-01/other-writer.parquet");
        write_other(&foreign_path, &foreign, None);
        let mut all_inputs = inputs.clone();
        all_inputs.push(foreign_path);

        let add = concatenate(root, &partition, &all_inputs).expect("concatenate");
        assert!(!add.data_change);
        let path = root.join(&add.path);
        let (_, metadata) = open(&path).expect("open");
        let (_, first) = open(&inputs[0]).expect("open");

        // The large group as it was; the three small files' rows merged into one group.
        let groups: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [RAW_MIN_ROWS as i64 + 10, 170]);
        let name = leaf(&metadata, "eventname");
        assert_eq!(
            metadata.row_group(0).column(name).compressed_size(),
            first.row_group(0).column(name).compressed_size()
        );
        assert!(metadata.row_group(0).sorting_columns().is_none());
        // Its bloom filter and page indexes came along, at their new offsets.
        let file = File::open(&path).expect("open");
        for g in 0..2 {
            let bloom = Sbbf::read_from_column_chunk(metadata.row_group(g).column(name), &file)
                .expect("bloom")
                .expect("a bloom filter");
            assert!(bloom.check(&"Call3"), "row group {g}");
        }
        let pages = |m: &ParquetMetaData| {
            m.offset_index().expect("offset index")[0][name]
                .page_locations()
                .len()
        };
        assert_eq!(pages(&metadata), pages(&first));
        let reader = SerializedFileReader::new(File::open(&path).expect("open")).expect("reader");
        assert_eq!(reader.metadata().num_row_groups(), 2);

        // Text is hinted as plain strings, as the table's schema has it.
        let hinted = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
            .expect("reader")
            .schema()
            .clone();
        assert_eq!(hinted.fields(), schema::file_schema().fields());

        // Every row, in the inputs' order; the other writer's missing columns null.
        let foreign_rows = {
            let r = rows(3_000_000, 20);
            let columns = r
                .schema()
                .fields()
                .iter()
                .zip(r.columns())
                .map(|(f, c)| match f.name().as_str() {
                    "eventname"
                    | schema::EVENTTIME
                    | schema::SOURCEFILE
                    | schema::REGION
                    | schema::RECORDHASH => Arc::clone(c),
                    _ => arrow::array::new_null_array(f.data_type(), 20),
                })
                .collect();
            RecordBatch::try_new(r.schema(), columns).expect("batch")
        };
        let mut want: Vec<&RecordBatch> = parts.iter().collect();
        want.push(&foreign_rows);
        let want = concat_batches(&schema::file_schema(), want).expect("concat");
        assert_eq!(read_all(&path), want);

        // The add's statistics bound every row.
        let stats: serde_json::Value =
            serde_json::from_str(add.stats.as_deref().expect("stats")).expect("json");
        assert_eq!(stats["numRecords"], RAW_MIN_ROWS as u64 + 10 + 170);
        assert_eq!(stats["nullCount"][schema::EVENTTIME], 0);
        assert_eq!(
            stats["minValues"][schema::EVENTTIME],
            "1970-01-01T00:08:20.000Z"
        );
        assert_eq!(
            stats["maxValues"][schema::EVENTTIME],
            "1970-02-04T17:20:19.000Z"
        );
        assert_eq!(stats["minValues"][schema::REGION], "eu-west-1");
        assert_eq!(stats["maxValues"][schema::REGION], "eu-west-1");
    }

    /// The members of a struct type.
    fn struct_members(t: &arrow::datatypes::DataType) -> arrow::datatypes::Fields {
        match t {
            arrow::datatypes::DataType::Struct(members) => members.clone(),
            other => panic!("a struct, not {other}"),
        }
    }

    #[test]
    fn a_file_written_without_the_derived_columns_gets_them_from_its_record() {
        use arrow::array::{ListArray, StructArray};
        use arrow::buffer::OffsetBuffer;
        use arrow::datatypes::DataType;

        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let partition = Partition {
            day: NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"),
        };
        // Two buckets; a resource without an ARN; no resources.
        let file_schema = schema::file_schema();
        let DataType::List(item) = file_schema
            .field_with_name("resources")
            .expect("resources")
            .data_type()
            .clone()
        else {
            panic!("a list")
        };
        let members = struct_members(item.data_type());
        let text = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let columns = members
            .iter()
            .map(|m| match m.name().as_str() {
                "arn" => text(vec![
                    Some("arn:aws:s3:::exports"),
                    Some("arn:aws:s3:::logs"),
                    None,
                ]),
                _ => text(vec![Some("x"); 3]),
            })
            .collect();
        let resources = ListArray::new(
            item,
            OffsetBuffer::from_lengths([2, 1, 0]),
            Arc::new(StructArray::new(members, columns, None)),
            Some(vec![true, true, false].into()),
        );
        // A user, a service, and no identity at all.
        let identity_members = struct_members(
            file_schema
                .field_with_name("useridentity")
                .expect("useridentity")
                .data_type(),
        );
        let identity_columns = identity_members
            .iter()
            .map(|m| match m.name().as_str() {
                "arn" => text(vec![Some("arn:aws:iam::1:user/a"), None, None]),
                "invokedby" => text(vec![None, Some("s3.amazonaws.com"), None]),
                "type" => text(vec![Some("IAMUser"), Some("AWSService"), None]),
                _ => arrow::array::new_null_array(m.data_type(), 3),
            })
            .collect();
        let identity = StructArray::new(
            identity_members,
            identity_columns,
            Some(vec![true, true, false].into()),
        );
        let batch = rows(0, 3);
        let mut columns = batch.columns().to_vec();
        columns[file_schema.index_of("resources").expect("resources")] = Arc::new(resources);
        columns[file_schema.index_of("useridentity").expect("identity")] = Arc::new(identity);
        // As an earlier trailhouse wrote it: every column but the derived ones added since.
        let added: Vec<usize> = schema::ADDED_COLUMNS
            .iter()
            .map(|c| file_schema.index_of(c).expect("added column"))
            .collect();
        let earlier = RecordBatch::try_new(Arc::clone(&file_schema), columns)
            .expect("batch")
            .project(
                &(0..file_schema.fields().len())
                    .filter(|i| !added.contains(i))
                    .collect::<Vec<_>>(),
            )
            .expect("project");
        let earlier_path = root.join("day=2026-11-02/earlier.parquet");
        fs::create_dir_all(earlier_path.parent().expect("dir")).expect("dir");
        write_other(&earlier_path, &earlier, Some(writer_properties(false)));

        let add = concatenate(root, &partition, &[earlier_path]).expect("concatenate");
        // Read as written, not through `as_file_schema` (which would derive them again).
        let written = read_written(&root.join(&add.path));
        let stored = |name: &str| -> Vec<Option<String>> {
            written[0]
                .column_by_name(name)
                .expect("a stored column")
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("text")
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        };
        assert_eq!(
            stored(schema::RESOURCEARNS),
            [
                Some("arn:aws:s3:::exports\narn:aws:s3:::logs".to_string()),
                Some(String::new()),
                None
            ]
        );
        assert_eq!(
            stored(schema::ACTOR),
            [
                Some("arn:aws:iam::1:user/a".to_string()),
                Some("s3.amazonaws.com".to_string()),
                None
            ]
        );
    }
}
