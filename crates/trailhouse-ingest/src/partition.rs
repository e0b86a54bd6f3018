//! Groups a batch's rows by partition (UTC day of `eventTime`), drops records already stored, and
//! orders each partition's rows by event name, event source, region, source IP address, then
//! `eventTime` ([`SORT_COLUMNS`](trailhouse_lake::datafile::SORT_COLUMNS)): the rows of one kind
//! of call are contiguous, so a filter on the call prunes the pages of every column, and within
//! a call and region the rows from one address are too.
//!
//! A re-delivered record has the same content, hence the same `eventTime`, hence the same
//! partition: deduplication needs to look only there. [`DedupIndex`] holds, per partition,
//! the identities of stored records, loaded from the partition's committed files on first touch
//! and evicted (least recently used first) beyond a budget, so memory does not grow with the table.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash};
use std::path::PathBuf;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, new_null_array};
use arrow::compute::cast;
use arrow::compute::interleave;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use rayon::prelude::*;
use trailhouse_lake::{Lake, LakeError, Partition, schema};

use crate::error::IngestError;
use crate::normalize::{KeyHasher, Placed};

/// Rows of one file: the columns and, per row, where it goes.
pub struct FileRows {
    pub batch: RecordBatch,
    pub placed: Vec<Placed>,
}

/// What the sink made of one partition's new rows.
pub struct PartitionOutput<T> {
    pub partition: Partition,
    pub rows: usize,
    pub output: T,
}

/// What partitioning found.
#[derive(Debug, Default, Clone, Copy)]
pub struct DedupCounts {
    pub duplicate: u64,
    pub collision: u64,
}

#[derive(Default)]
struct PartIndex {
    /// (record hash, eventtime) of every stored record.
    seen: HashSet<(u64, i64)>,
    /// eventID hash → record hash of the first record stored with it.
    ids: HashMap<u64, u64>,
    last_used: u64,
}

impl PartIndex {
    fn len(&self) -> usize {
        self.seen.len() + self.ids.len()
    }
}

/// Identities of the stored records of recently touched partitions.
pub struct DedupIndex {
    /// Where the committed files are read from.
    lake: Lake,
    parts: HashMap<Partition, PartIndex>,
    files: HashMap<Partition, Vec<PathBuf>>,
    budget_entries: usize,
    clock: u64,
}

impl DedupIndex {
    /// `files`: the table's committed data files by partition; `budget_entries`: how many record
    /// identities to keep in memory across partitions.
    pub fn new(lake: Lake, files: HashMap<Partition, Vec<PathBuf>>, budget_entries: usize) -> Self {
        Self {
            lake,
            parts: HashMap::new(),
            files,
            budget_entries,
            clock: 0,
        }
    }

    /// Records files that have just been committed.
    pub fn add_files(&mut self, partition: &Partition, path: PathBuf) {
        self.files.entry(partition.clone()).or_default().push(path);
    }

    fn load(&mut self, wanted: &[&Partition]) -> Result<(), IngestError> {
        self.clock += 1;
        let clock = self.clock;
        let missing: Vec<(Partition, Vec<PathBuf>)> = wanted
            .iter()
            .filter(|p| !self.parts.contains_key(*p))
            .map(|p| {
                (
                    (*p).clone(),
                    self.files.get(*p).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let loaded: Vec<(Partition, PartIndex)> = missing
            .into_par_iter()
            .map(|(p, files)| load_partition(&self.lake, &files).map(|idx| (p, idx)))
            .collect::<Result<_, LakeError>>()?;
        self.parts.extend(loaded);
        for p in wanted {
            if let Some(idx) = self.parts.get_mut(*p) {
                idx.last_used = clock;
            }
        }
        Ok(())
    }

    /// Drops least recently used partitions (not those of the current batch) beyond the budget.
    fn evict(&mut self) {
        let mut total: usize = self.parts.values().map(PartIndex::len).sum();
        if total <= self.budget_entries {
            return;
        }
        let mut by_age: Vec<(u64, Partition)> = self
            .parts
            .iter()
            .filter(|(_, idx)| idx.last_used < self.clock)
            .map(|(p, idx)| (idx.last_used, p.clone()))
            .collect();
        by_age.sort();
        for (_, p) in by_age {
            if total <= self.budget_entries {
                break;
            }
            if let Some(idx) = self.parts.remove(&p) {
                total -= idx.len();
            }
        }
    }
}

fn load_partition(lake: &Lake, files: &[PathBuf]) -> Result<PartIndex, LakeError> {
    let mut idx = PartIndex::default();
    for path in files {
        let batches = lake.read_columns(
            path,
            &[schema::RECORDHASH, schema::EVENTTIME, schema::EVENTID],
        )?;
        for b in batches {
            // Files written by other writers (compaction) may use other physical types
            // (string views, another timestamp zone): read each column as the schema's type.
            let column = |name: &str, want: &DataType| -> Result<ArrayRef, LakeError> {
                let c = b.column_by_name(name).ok_or_else(|| {
                    LakeError::Schema(format!("`{}` has no column `{name}`", path.display()))
                })?;
                Ok(cast(c, want)?)
            };
            let hashes = column(schema::RECORDHASH, &DataType::Int64)?;
            let times = column(
                schema::EVENTTIME,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let ids = column(schema::EVENTID, &DataType::Utf8)?;
            let hashes = hashes.as_primitive::<Int64Type>();
            let times = times.as_primitive::<TimestampMicrosecondType>();
            let ids = ids.as_string::<i32>();
            for i in 0..b.num_rows() {
                let h = hashes.value(i) as u64;
                idx.seen.insert((h, times.value(i)));
                if ids.is_valid(i) {
                    let id = xxhash_rust::xxh3::xxh3_64(ids.value(i).as_bytes());
                    idx.ids.entry(id).or_insert(h);
                }
            }
        }
    }
    Ok(idx)
}

use arrow::array::Array;

/// The rows `keep` ((batch, row) pairs) of `batches`, in that order. A column without a value in
/// any batch (most optional fields, in most partitions) is made null at once instead of being
/// gathered row by row.
fn gather(batches: &[&RecordBatch], keep: &[(usize, usize)]) -> Result<RecordBatch, IngestError> {
    let schema = schema::file_schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        if arrays.iter().all(|a| a.null_count() == a.len()) {
            columns.push(new_null_array(field.data_type(), keep.len()));
        } else {
            columns.push(interleave(&arrays, keep)?);
        }
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A row of a batch: (rank of its (event name, event source, region) in its partition, rank of
/// its source IP address there, eventtime, file index, row index) — sorting by it orders rows by
/// call, region, address, then time, then delivery.
type RowRef = (u32, u32, i64, usize, usize);

/// Distinct keys in the order first seen, each given an id, to be ranked: each row's key is
/// hashed once, and only the distinct keys, far fewer than the rows, are sorted.
struct Ranks<K> {
    ids: HashMap<K, u32, BuildHasherDefault<KeyHasher>>,
    keys: Vec<K>,
}

impl<K: Hash + Eq + Ord + Copy> Ranks<K> {
    fn new() -> Self {
        Ranks {
            ids: HashMap::default(),
            keys: Vec::new(),
        }
    }

    /// The id of `key`: its place among the keys in the order first seen.
    fn id(&mut self, key: K) -> u32 {
        *self.ids.entry(key).or_insert_with(|| {
            self.keys.push(key);
            (self.keys.len() - 1) as u32
        })
    }

    /// Each id's rank: the position of its key among the keys, in order.
    fn ranks(self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.keys[i as usize]);
        let mut rank = vec![0u32; self.keys.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
    }
}

/// Sets each row's ranks: the position of its (event name, event source, region) among the
/// partition's, in order (a missing name or source first), and of its source IP address among
/// the partition's addresses (a missing one first). Calls and addresses are ranked apart, in two
/// small maps: a day of the 20M-event benchmark trail has 770 calls and 3,565 addresses, but
/// 27,308 (call, address) pairs, and ranking the pairs as one key cost ingest 2-3 %.
fn rank_groups(files: &[FileRows], rows: &mut [RowRef]) {
    // Each file's text column, looked up once.
    let column = |name: &str| -> Vec<Option<&StringArray>> {
        let index = schema::file_schema().index_of(name).ok();
        files
            .iter()
            .map(|f| index.and_then(|i| f.batch.column(i).as_string_opt::<i32>()))
            .collect()
    };
    let (names, sources, addresses) = (
        column("eventname"),
        column("eventsource"),
        column("sourceipaddress"),
    );
    fn text<'a>(columns: &[Option<&'a StringArray>], fi: usize, ri: usize) -> Option<&'a str> {
        columns[fi].filter(|c| c.is_valid(ri)).map(|c| c.value(ri))
    }
    let mut calls: Ranks<(Option<&str>, Option<&str>, &str)> = Ranks::new();
    let mut ips: Ranks<Option<&str>> = Ranks::new();
    for row in rows.iter_mut() {
        let (_, _, _, fi, ri) = *row;
        row.0 = calls.id((
            text(&names, fi, ri),
            text(&sources, fi, ri),
            files[fi].placed[ri].region.as_str(),
        ));
        row.1 = ips.id(text(&addresses, fi, ri));
    }
    let (calls, ips) = (calls.ranks(), ips.ranks());
    for row in rows.iter_mut() {
        row.0 = calls[row.0 as usize];
        row.1 = ips[row.1 as usize];
    }
}

/// Splits `files` into per-partition batches of new rows, in deterministic order: by event name,
/// event source, region and source IP address, then `eventtime`, then by file and position (so the first delivery of a record is the one kept),
/// and hands each batch to `sink` (the writer) as soon as it is built, in parallel across
/// partitions. Each batch is dropped once the sink is done with it, so a worker's memory cycles
/// through one partition at a time instead of the whole batch being copied before anything is
/// written. Outputs come back in partition order.
pub fn partition<T: Send>(
    files: &[FileRows],
    index: &mut DedupIndex,
    sink: impl Fn(&Partition, RecordBatch) -> Result<T, IngestError> + Sync,
) -> Result<(Vec<PartitionOutput<T>>, DedupCounts), IngestError> {
    // Group rows by partition without a key per row: a batch has few distinct partitions.
    let mut groups: HashMap<NaiveDate, Vec<RowRef>> = HashMap::new();
    for (fi, f) in files.iter().enumerate() {
        for (ri, p) in f.placed.iter().enumerate() {
            groups
                .entry(p.day)
                .or_default()
                .push((0, 0, p.event_time, fi, ri));
        }
    }
    let mut ordered: Vec<(Partition, Vec<RowRef>)> = groups
        .into_iter()
        .map(|(day, rows)| (Partition { day }, rows))
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    let wanted: Vec<&Partition> = ordered.iter().map(|(p, _)| p).collect();
    index.load(&wanted)?;

    // Partitions are independent: deduplicate them in parallel, each against its own index.
    let mut work: Vec<(Partition, Vec<RowRef>, PartIndex)> = ordered
        .into_iter()
        .map(|(p, rows)| {
            let idx = index.parts.remove(&p).unwrap_or_default();
            (p, rows, idx)
        })
        .collect();
    let batches: Vec<&RecordBatch> = files.iter().map(|f| &f.batch).collect();
    type Sunk<T> = Option<Result<(usize, T), IngestError>>;
    let results: Vec<(DedupCounts, Sunk<T>)> = work
        .par_iter_mut()
        .map(|(partition, rows, idx)| {
            let mut counts = DedupCounts::default();
            rank_groups(files, rows);
            rows.sort_unstable();
            let mut keep = Vec::with_capacity(rows.len());
            for &(_, _, time, fi, ri) in rows.iter() {
                let p = &files[fi].placed[ri];
                if !idx.seen.insert((p.record_hash, time)) {
                    counts.duplicate += 1;
                    continue;
                }
                if let Some(id) = p.event_id_hash {
                    match idx.ids.get(&id) {
                        Some(&h) if h != p.record_hash => counts.collision += 1,
                        Some(_) => {}
                        None => {
                            idx.ids.insert(id, p.record_hash);
                        }
                    }
                }
                keep.push((fi, ri));
            }
            let sunk = (!keep.is_empty()).then(|| {
                let batch = gather(&batches, &keep)?;
                let output = sink(partition, batch)?;
                Ok((keep.len(), output))
            });
            (counts, sunk)
        })
        .collect();

    let mut counts = DedupCounts::default();
    let mut out = Vec::new();
    let mut failed = None;
    for ((partition, _, idx), (c, sunk)) in work.into_iter().zip(results) {
        counts.duplicate += c.duplicate;
        counts.collision += c.collision;
        match sunk {
            Some(Ok((rows, output))) => out.push(PartitionOutput {
                partition: partition.clone(),
                rows,
                output,
            }),
            Some(Err(e)) => failed = failed.or(Some(e)),
            None => {}
        }
        index.parts.insert(partition, idx);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    index.evict();
    Ok((out, counts))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::value::RawValue;

    use super::*;
    use crate::normalize::RecordBuilder;
    use trailhouse_lake::datafile::SORT_COLUMNS;

    fn file_rows(records: &[String]) -> FileRows {
        let mut b = RecordBuilder::new(Arc::from("test.json"));
        let placed = records
            .iter()
            .map(|r| {
                let raw: &RawValue = serde_json::from_str(r).expect("valid json");
                b.push(raw, None).expect("placed")
            })
            .collect();
        FileRows {
            batch: b.finish().expect("batch"),
            placed,
        }
    }

    /// The written order is [`SORT_COLUMNS`] (name, source, region, source address, time),
    /// whatever order the records came in.
    #[test]
    fn rows_are_ordered_by_call_region_address_then_time() {
        let calls = [
            ("s3.amazonaws.com", "PutObject"),
            ("ec2.amazonaws.com", "RunInstances"),
            ("s3.amazonaws.com", "GetObject"),
            ("ec2.amazonaws.com", "DescribeInstances"),
        ];
        let regions = ["us-west-2", "eu-west-1", "us-east-1"];
        let mut records = Vec::new();
        // Each (call, region) has two records, the later one from the lower address, so the
        // address orders them against their times; one record has no address.
        for (i, second) in (0..24).rev().enumerate() {
            let (source, name) = calls[i % calls.len()];
            let region = regions[i % regions.len()];
            let address = match i {
                17 => String::new(),
                i if i < 12 => r#","sourceIPAddress":"198.51.100.1""#.to_string(),
                _ => r#","sourceIPAddress":"198.51.100.2""#.to_string(),
            };
            records.push(format!(
                r#"{{"eventTime":"2026-11-02T10:00:{second:02}Z","eventSource":"{source}","eventName":"{name}","awsRegion":"{region}","eventID":"e{i}"{address}}}"#
            ));
        }
        let files = [file_rows(&records)];
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = DedupIndex::new(Lake::new(dir.path()), HashMap::new(), 1 << 20);
        let (out, counts) = partition(&files, &mut index, |_, batch| Ok(batch)).expect("partition");
        assert_eq!((counts.duplicate, counts.collision), (0, 0));
        let [day] = out.as_slice() else {
            panic!("one day expected, got {}", out.len());
        };
        let batch = &day.output;
        // Each row as its values of SORT_COLUMNS, in that order (times zero-padded to sort as
        // text).
        let key = |name: &str, i: usize| -> String {
            let c = batch.column_by_name(name).expect(name);
            match c.as_string_opt::<i32>() {
                Some(text) => text.value(i).to_string(),
                None => format!(
                    "{:020}",
                    c.as_primitive::<TimestampMicrosecondType>().value(i)
                ),
            }
        };
        let rows: Vec<Vec<String>> = (0..batch.num_rows())
            .map(|i| SORT_COLUMNS.iter().map(|name| key(name, i)).collect())
            .collect();
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(rows.len(), 24);
        assert_eq!(rows, sorted);
        assert_eq!(rows[0][..2], ["DescribeInstances", "ec2.amazonaws.com"]);
        // Within a call and region, the address decides before the time.
        let ip = SORT_COLUMNS.iter().position(|c| *c == "sourceipaddress");
        let time = SORT_COLUMNS.iter().position(|c| *c == schema::EVENTTIME);
        let (Some(ip), Some(time)) = (ip, time) else {
            panic!("the order names the address and the time: {SORT_COLUMNS:?}");
        };
        assert!(ip < time);
        let (first, second) = (&rows[0], &rows[1]);
        assert_eq!(first[..ip], second[..ip]);
        assert_eq!(
            (first[ip].as_str(), second[ip].as_str()),
            ("198.51.100.1", "198.51.100.2")
        );
        assert!(first[time] > second[time], "{first:?} {second:?}");
    }
}
