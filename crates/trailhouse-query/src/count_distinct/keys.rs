//! The distinct values of a string column, held compactly and spilled as sorted runs.
//!
//! A value is held by its class, and the classes share no string, so the distinct count is the
//! sum of theirs:
//!
//! - *short*: at most 15 bytes, held in 16 (its bytes, then its length);
//! - *uuid*: a UUID as CloudTrail writes event and request ids (36 characters, lowercase
//!   hexadecimal, hyphens at 8, 13, 18 and 23), held as the 16 bytes it spells;
//! - *long*: any other, held as its bytes beside their hash.
//!
//! Each class is split into [`BUCKETS`] by a hash, so that the values of a bucket are sorted
//! and compared apart from the others. A value's class and bucket follow from its bytes alone:
//! runs collected apart (one per input partition, one per spill) meet bucket by bucket.

use std::io::{BufWriter, Write};
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SpillFile;
use futures::{Stream, StreamExt};
use xxhash_rust::xxh3::xxh3_64;

/// Buckets per class.
pub(crate) const BUCKETS: usize = 256;

/// Short values' buckets come first in [`Keys::fixed`], then the UUIDs'.
const FIXED: usize = 2 * BUCKETS;

/// A value that is not short, as held: its hash, where its bytes start in the bucket's
/// bytes, and their length.
type Entry = (u64, usize, usize);

/// The long values of one bucket.
#[derive(Default)]
struct Long {
    entries: Vec<Entry>,
    bytes: Vec<u8>,
}

impl Long {
    fn push(&mut self, hash: u64, value: &[u8]) {
        self.entries.push((hash, self.bytes.len(), value.len()));
        self.bytes.extend_from_slice(value);
    }

    fn value(&self, (_, start, len): Entry) -> &[u8] {
        &self.bytes[start..start + len]
    }

    /// Sorts the values by hash, then bytes, and keeps one of each.
    fn compact(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.value(*a).cmp(self.value(*b)))
        });
        entries.dedup_by(|a, b| a.0 == b.0 && self.value(*a) == self.value(*b));
        let mut kept = Long {
            entries: Vec::with_capacity(entries.len()),
            bytes: Vec::with_capacity(entries.iter().map(|e| e.2).sum()),
        };
        for e in entries {
            kept.push(e.0, self.value(e));
        }
        *self = kept;
    }

    fn size(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>() + self.bytes.capacity()
    }
}

/// Values written to a file, every bucket sorted and without repeats, in bucket order (the
/// fixed buckets, then the long ones), and how many values each bucket has there.
struct Run {
    file: Arc<dyn SpillFile>,
    values: Vec<usize>,
}

/// A run's file read from its start, a chunk at a time.
struct RunReader {
    chunks: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
    chunk: Bytes,
}

impl RunReader {
    fn new(run: &Run) -> Result<Self> {
        Ok(Self {
            chunks: run.file.read_stream()?,
            chunk: Bytes::new(),
        })
    }

    async fn read_exact(&mut self, mut into: &mut [u8]) -> Result<()> {
        while !into.is_empty() {
            if self.chunk.is_empty() {
                self.chunk = match self.chunks.next().await {
                    Some(chunk) => chunk?,
                    None => {
                        return Err(DataFusionError::Execution(
                            "count(DISTINCT …): a spilled run ends early".into(),
                        ));
                    }
                };
            }
            let n = into.len().min(self.chunk.len());
            self.chunk.copy_to_slice(&mut into[..n]);
            into = &mut into[n..];
        }
        Ok(())
    }
}

/// One collector's values.
pub(crate) struct Keys {
    fixed: Vec<Vec<u128>>,
    long: Vec<Long>,
    /// For each bucket (fixed, then long), how many values it may reach before it is sorted
    /// and its repeats dropped ([`next_settling`]).
    settle_at: Vec<usize>,
    /// The values seen last, one per slot of a hash ([`RECENT`] slots), each with its class
    /// (0 for none): a repeat of a recent value is not held again.
    recent: Vec<(u128, u8)>,
    recent_long: Vec<(u64, Vec<u8>)>,
    /// Whether the recent values are looked at: not once [`TRIAL`] values found less than one
    /// in [`TRIAL_HITS`] among them (ids: every value new).
    recall: bool,
    /// Values looked for among the recent ones, and found there, in the trial.
    looked: usize,
    found: usize,
    /// Where a large bucket is dealt by its keys' top byte ([`settle`]).
    scratch: Vec<u128>,
    runs: Vec<Run>,
}

/// The longest value kept among the recent ones: longer ones (request and response JSON) are
/// not copied there, so the table holds at most a megabyte.
const RECENT_LONG_BYTES: usize = 256;

/// How many values try the recent ones before they are given up, and the share they must find
/// (one in this many) to be kept.
const TRIAL: usize = 1 << 16;
const TRIAL_HITS: usize = 64;

/// Slots of the recent values: a column of a few thousand values (addresses, principals,
/// event names) repeats within them, and is held about once a value.
const RECENT: usize = 1 << 12;

impl Default for Keys {
    fn default() -> Self {
        Self {
            fixed: (0..FIXED).map(|_| Vec::new()).collect(),
            long: (0..BUCKETS).map(|_| Long::default()).collect(),
            settle_at: vec![FIRST_SETTLING; FIXED + BUCKETS],
            recent: vec![(0, 0); RECENT],
            recent_long: vec![(0, Vec::new()); RECENT],
            recall: true,
            looked: 0,
            found: 0,
            scratch: Vec::new(),
            runs: Vec::new(),
        }
    }
}

/// The values a bucket holds before its repeats are first dropped.
const FIRST_SETTLING: usize = 1024;

/// When a bucket that held `before` values, `after` once sorted without repeats, is sorted
/// again: at twice its size while repeats halve it (a column of few values stays small as
/// it streams), else only at eight times (a column of ids, each value new, is sorted about
/// once, at the end).
fn next_settling(before: usize, after: usize) -> usize {
    if after * 2 <= before {
        (after * 2).max(FIRST_SETTLING)
    } else {
        before.saturating_mul(8)
    }
}

/// Sorts `bucket` and drops its repeats. A large bucket whose keys spread over their top
/// byte (UUIDs do) is first dealt by that byte into `scratch`, which it then swaps with: 256
/// small sorts instead of one large one.
fn settle(bucket: &mut Vec<u128>, scratch: &mut Vec<u128>) {
    const DEAL_FROM: usize = 4096;
    let top = |key: u128| (key >> 120) as usize;
    let mut counts = [0usize; 256];
    if bucket.len() >= DEAL_FROM {
        bucket.iter().for_each(|&key| counts[top(key)] += 1);
    }
    let spread = counts
        .iter()
        .max()
        .is_some_and(|&most| most * 4 <= bucket.len());
    if bucket.len() < DEAL_FROM || !spread {
        bucket.sort_unstable();
        bucket.dedup();
        return;
    }
    let mut starts = [0usize; 256];
    let mut at = 0;
    for (start, count) in starts.iter_mut().zip(counts) {
        *start = at;
        at += count;
    }
    scratch.clear();
    scratch.resize(bucket.len(), 0);
    let mut next = starts;
    for &key in bucket.iter() {
        let slot = &mut next[top(key)];
        scratch[*slot] = key;
        *slot += 1;
    }
    for (start, count) in starts.into_iter().zip(counts) {
        scratch[start..start + count].sort_unstable();
    }
    std::mem::swap(bucket, scratch);
    bucket.dedup();
}

/// A short value as 16 bytes: its bytes, zeros, and its length in the last byte.
fn short_key(value: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[..value.len()].copy_from_slice(value);
    bytes[15] = value.len() as u8;
    u128::from_le_bytes(bytes)
}

/// Each byte's value as a lowercase hexadecimal digit; 0x10 for any other byte.
const HEX: [u8; 256] = {
    let mut table = [0x10u8; 256];
    let mut c = 0;
    while c < 16 {
        table[b"0123456789abcdef"[c] as usize] = c as u8;
        c += 1;
    }
    table
};

/// Where a UUID's 32 digits are in its 36 characters.
const DIGITS: [usize; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 21, 22, 24, 25, 26, 27, 28, 29,
    30, 31, 32, 33, 34, 35,
];

/// The 16 bytes a UUID in CloudTrail's spelling stands for; `None` for any other string (an
/// uppercase or unhyphenated UUID is another string, and stays a long value).
fn uuid_key(value: &[u8]) -> Option<u128> {
    let value: &[u8; 36] = value.try_into().ok()?;
    if value[8] != b'-' || value[13] != b'-' || value[18] != b'-' || value[23] != b'-' {
        return None;
    }
    // Two halves read apart (no step waits on the other's), every digit checked at the end.
    let (mut high, mut low, mut bad) = (0u64, 0u64, 0u8);
    for i in 0..16 {
        let h = HEX[value[DIGITS[i]] as usize];
        let l = HEX[value[DIGITS[i + 16]] as usize];
        bad |= h | l;
        high = (high << 4) | u64::from(h);
        low = (low << 4) | u64::from(l);
    }
    (bad & 0x10 == 0).then_some((u128::from(high) << 64) | u128::from(low))
}

/// A fixed key's hash: its top bits pick its bucket, lower ones its slot among the recent
/// values (short values are far from uniform in any of their bytes).
fn fixed_hash(key: u128) -> u64 {
    let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    folded.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn bucket_of(hash: u64) -> usize {
    (hash >> 56) as usize
}

/// From this length on (where xxh3 takes its slower path; the name of a log file in S3 is
/// longer), a value is hashed whole only when it is held, not to look for it among the recent
/// values.
const SAMPLED_FROM: usize = 129;

/// A long value's slot among the recent ones, from its length and eight words of it spread
/// over it from its first byte to its last: a repeat is found without hashing all of it. Values
/// that agree on those words share a slot and are told apart by their bytes, as any two values
/// in a slot; a column whose values differ only between the words (over 64 bytes long, within
/// a gap) only loses repeats found among the recent values.
fn sampled_hash(value: &[u8]) -> u64 {
    const WORDS: usize = 8;
    // Only for values of 16 bytes or more (shorter ones are held as fixed keys), so every word
    // lies inside the value.
    let n = value.len();
    let last = n.saturating_sub(8);
    let word = |i: usize| {
        let at = last * i / (WORDS - 1);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&value[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    // Two lanes, so that neither waits on the other's multiplication.
    let (mut a, mut b) = (n as u64, 0x9E37_79B9_7F4A_7C15u64);
    for i in (0..WORDS).step_by(2) {
        a = (a ^ word(i))
            .wrapping_mul(0xA076_1D64_78BD_642F)
            .rotate_left(23);
        b = (b ^ word(i + 1))
            .wrapping_mul(0xE703_7ED1_A0B4_28DB)
            .rotate_left(29);
    }
    fixed_hash((u128::from(a) << 64) | u128::from(b))
}

/// The top bits again: a multiplicative hash mixes every bit of the key only into its top bits.
fn slot_of(hash: u64) -> usize {
    (hash >> (64 - RECENT.trailing_zeros())) as usize
}

fn spill_error(e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("count(DISTINCT …): spilling: {e}"))
}

impl Keys {
    pub(crate) fn insert(&mut self, value: &[u8]) {
        if value.len() <= 15 {
            self.push_fixed(short_key(value), 1);
        } else if let Some(key) = uuid_key(value) {
            self.push_fixed(key, 2);
        } else {
            // A value of `SAMPLED_FROM` bytes or more is looked for among the recent ones by a
            // hash of part of it, and hashed whole only when it is held.
            let whole = (value.len() < SAMPLED_FROM).then(|| xxh3_64(value));
            if self.recall && value.len() <= RECENT_LONG_BYTES {
                let slot_hash = whole.unwrap_or_else(|| sampled_hash(value));
                let recent = &mut self.recent_long[slot_of(slot_hash)];
                let hit = recent.0 == slot_hash && recent.1 == value;
                if !hit {
                    recent.0 = slot_hash;
                    recent.1.clear();
                    recent.1.extend_from_slice(value);
                }
                if self.recalled(hit) {
                    return;
                }
            }
            let hash = whole.unwrap_or_else(|| xxh3_64(value));
            let b = bucket_of(hash);
            let bucket = &mut self.long[b];
            bucket.push(hash, value);
            let before = bucket.entries.len();
            if before >= self.settle_at[FIXED + b] {
                bucket.compact();
                self.settle_at[FIXED + b] = next_settling(before, bucket.entries.len());
            }
        }
    }

    /// Counts a look among the recent values (`hit`: found there), gives them up at the end of
    /// a trial that found too few, and says `hit`.
    fn recalled(&mut self, hit: bool) -> bool {
        if self.looked < TRIAL {
            self.looked += 1;
            self.found += usize::from(hit);
            if self.looked == TRIAL && self.found < TRIAL / TRIAL_HITS {
                self.recall = false;
                self.recent = Vec::new();
                self.recent_long = Vec::new();
            }
        }
        hit
    }

    /// Holds `key` of class 1 (short) or 2 (UUID), unless it is a recent value.
    fn push_fixed(&mut self, key: u128, class: u8) {
        let hash = fixed_hash(key);
        if self.recall {
            let recent = &mut self.recent[slot_of(hash)];
            let hit = *recent == (key, class);
            *recent = (key, class);
            if self.recalled(hit) {
                return;
            }
        }
        let b = usize::from(class - 1) * BUCKETS + bucket_of(hash);
        let bucket = &mut self.fixed[b];
        if bucket.len() == bucket.capacity() {
            // Room up to where the bucket is next settled, in one step: a column of ids grows a
            // bucket eightfold between settlings, and growing it by halves copied it a dozen
            // times, each copy into pages never touched before (a tenth of counting 20M event
            // ids). Room not written to is address space, not memory: `size` counts the keys.
            let room = self.settle_at[b].saturating_sub(bucket.len());
            bucket.reserve_exact(room.max(64));
        }
        bucket.push(key);
        let before = bucket.len();
        if before >= self.settle_at[b] {
            settle(bucket, &mut self.scratch);
            self.settle_at[b] = next_settling(before, bucket.len());
        }
    }

    /// The bytes held in memory: a fixed bucket's keys and the page its room begins in (room
    /// reserved beyond is not written to, so no memory backs it).
    pub(crate) fn size(&self) -> usize {
        const PAGE_KEYS: usize = 4096 / size_of::<u128>();
        let fixed: usize = self
            .fixed
            .iter()
            .map(|b| b.capacity().min(b.len() + PAGE_KEYS))
            .sum();
        let long: usize = self.long.iter().map(Long::size).sum();
        let recent: usize = self.recent_long.iter().map(|(_, v)| v.capacity()).sum();
        (fixed + self.scratch.capacity()) * size_of::<u128>()
            + self.recent.capacity() * size_of::<(u128, u8)>()
            + self.recent_long.capacity() * size_of::<(u64, Vec<u8>)>()
            + long
            + recent
    }

    /// Sorts every bucket and keeps one of each value, giving back what repeats held.
    pub(crate) fn compact(&mut self) {
        for bucket in &mut self.fixed {
            settle(bucket, &mut self.scratch);
            if bucket.len() < bucket.capacity() / 2 {
                bucket.shrink_to_fit();
            }
        }
        for bucket in &mut self.long {
            bucket.compact();
        }
        self.scratch = Vec::new();
    }

    /// Writes the values held to `file` as a sorted run, and holds none: the bytes written.
    pub(crate) fn spill(&mut self, file: Arc<dyn SpillFile>) -> Result<usize> {
        self.compact();
        let mut out = BufWriter::new(file.open_writer()?);
        let mut values = Vec::with_capacity(FIXED + BUCKETS);
        let mut written = 0;
        for bucket in &mut self.fixed {
            for key in bucket.iter() {
                out.write_all(&key.to_le_bytes()).map_err(spill_error)?;
            }
            written += bucket.len() * size_of::<u128>();
            values.push(bucket.len());
            *bucket = Vec::new();
        }
        for bucket in &mut self.long {
            for &(hash, start, len) in &bucket.entries {
                out.write_all(&hash.to_le_bytes()).map_err(spill_error)?;
                out.write_all(&(len as u64).to_le_bytes())
                    .map_err(spill_error)?;
                out.write_all(&bucket.bytes[start..start + len])
                    .map_err(spill_error)?;
                written += 16 + len;
            }
            values.push(bucket.entries.len());
            *bucket = Long::default();
        }
        out.into_inner()
            .map_err(|e| spill_error(e.into_error()))?
            .finish()?;
        self.runs.push(Run { file, values });
        self.settle_at.fill(FIRST_SETTLING);
        Ok(written)
    }
}

/// The number of distinct values the collectors hold together, counted on `tasks` tasks when
/// nothing was spilled (a spilled run is read once, from its start). Quickest when each was
/// [`Keys::compact`]ed (on its own task, where it collected): the count then merges runs.
pub(crate) async fn count(collectors: Vec<Keys>, tasks: usize) -> Result<u64> {
    let collectors = Arc::new(collectors);
    if tasks <= 1 || collectors.iter().any(|k| !k.runs.is_empty()) {
        return count_buckets(&collectors, 0, 1).await;
    }
    let spawned: Vec<_> = (0..tasks)
        .map(|first| {
            let collectors = Arc::clone(&collectors);
            SpawnedTask::spawn(async move { count_buckets(&collectors, first, tasks).await })
        })
        .collect();
    let mut distinct = 0;
    for task in spawned {
        distinct += task
            .join_unwind()
            .await
            .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??;
    }
    Ok(distinct)
}

/// The number of values in the union of `runs`, each sorted without repeats: a merge that
/// only counts.
fn union_len(runs: &[&[u128]]) -> u64 {
    match runs {
        [] => 0,
        [only] => only.len() as u64,
        [a, b] => {
            let (mut i, mut j, mut n) = (0, 0, 0u64);
            while i < a.len() && j < b.len() {
                let (x, y) = (a[i], b[j]);
                i += usize::from(x <= y);
                j += usize::from(y <= x);
                n += 1;
            }
            n + (a.len() - i + b.len() - j) as u64
        }
        _ => {
            let mut at = vec![0usize; runs.len()];
            let mut n = 0u64;
            // Each step takes the least value at the runs' heads, and passes it in every run.
            while let Some(least) = runs.iter().zip(&at).filter_map(|(r, &i)| r.get(i)).min() {
                let least = *least;
                for (run, i) in runs.iter().zip(at.iter_mut()) {
                    if run.get(*i) == Some(&least) {
                        *i += 1;
                    }
                }
                n += 1;
            }
            n
        }
    }
}

/// The distinct values of every `step`th bucket of each class from bucket `first` on, the
/// spilled runs read along (all of them: only with `step` 1).
async fn count_buckets(collectors: &[Keys], first: usize, step: usize) -> Result<u64> {
    let mut readers = Vec::new();
    for keys in collectors {
        for run in &keys.runs {
            if step != 1 {
                return Err(DataFusionError::Internal(
                    "count(DISTINCT …): spilled runs are read in one pass".into(),
                ));
            }
            readers.push((RunReader::new(run)?, &run.values));
        }
    }
    let mut distinct = 0u64;
    let mut all: Vec<u128> = Vec::new();
    for b in (first..FIXED).step_by(step) {
        let held: Vec<&[u128]> = collectors
            .iter()
            .map(|k| k.fixed[b].as_slice())
            .filter(|b| !b.is_empty())
            .collect();
        let spilled = readers.iter().filter(|(_, values)| values[b] > 0).count();
        if spilled == 0 && held.iter().all(|run| run.is_sorted_by(|x, y| x < y)) {
            distinct += union_len(&held);
            continue;
        }
        all.clear();
        for keys in collectors {
            all.extend_from_slice(&keys.fixed[b]);
        }
        let mut key = [0u8; 16];
        for (reader, values) in &mut readers {
            for _ in 0..values[b] {
                reader.read_exact(&mut key).await?;
                all.push(u128::from_le_bytes(key));
            }
        }
        // Sorted runs one after another: the stable sort merges them.
        all.sort();
        all.dedup();
        distinct += all.len() as u64;
    }
    let mut merged = Long::default();
    for b in (first..BUCKETS).step_by(step) {
        merged.entries.clear();
        merged.bytes.clear();
        for keys in collectors {
            let bucket = &keys.long[b];
            for &e in &bucket.entries {
                merged.push(e.0, bucket.value(e));
            }
        }
        let mut word = [0u8; 8];
        let mut value = Vec::new();
        for (reader, values) in &mut readers {
            for _ in 0..values[FIXED + b] {
                reader.read_exact(&mut word).await?;
                let hash = u64::from_le_bytes(word);
                reader.read_exact(&mut word).await?;
                let len = usize::try_from(u64::from_le_bytes(word))
                    .map_err(|e| DataFusionError::Execution(format!("count(DISTINCT …): {e}")))?;
                value.resize(len, 0);
                reader.read_exact(&mut value).await?;
                merged.push(hash, &value);
            }
        }
        merged.compact();
        distinct += merged.entries.len() as u64;
    }
    Ok(distinct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use datafusion::execution::disk_manager::DiskManager;

    #[test]
    fn uuids_are_read_only_as_cloudtrail_spells_them() {
        let id = b"3038ebd2-c98a-4c65-9b6e-e22506292313";
        assert_eq!(
            uuid_key(id),
            Some(0x3038ebd2_c98a_4c65_9b6e_e22506292313_u128)
        );
        assert_eq!(uuid_key(b"3038EBD2-C98A-4C65-9B6E-E22506292313"), None);
        assert_eq!(uuid_key(b"3038ebd2c98a4c659b6ee22506292313"), None);
        assert_eq!(uuid_key(b"3038ebd2-c98a-4c65-9b6e+e22506292313"), None);
        assert_eq!(uuid_key(b"3038ebd2-c98a-4c65-9b6e-e2250629231g"), None);
        assert_eq!(uuid_key(b"{3038ebd2-c98a-4c65-9b6e-e2250629231}"), None);
    }

    #[test]
    fn buckets_are_sorted_without_repeats_whether_dealt_or_not() {
        let mut scratch = Vec::new();
        // Spread over the top byte (dealt), all under one top byte (not), and small.
        let spread: Vec<u128> = (0..20_000u128)
            .map(|i| {
                ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) % 9_000) << 112)
                    | (i % 7_000)
            })
            .collect();
        let narrow: Vec<u128> = (0..20_000u128).map(|i| (i * 7_919) % 9_001).collect();
        for values in [spread, narrow, vec![5, 3, 5, 1]] {
            let mut expected = values.clone();
            expected.sort_unstable();
            expected.dedup();
            let mut bucket = values;
            settle(&mut bucket, &mut scratch);
            assert_eq!(bucket, expected);
        }
    }

    #[test]
    fn a_union_of_sorted_runs_is_counted_by_merging() {
        let (a, b, c) = ([1u128, 3, 5, 7], [2u128, 3, 7, 9, 11], [0u128, 7, 12]);
        assert_eq!(union_len(&[]), 0);
        assert_eq!(union_len(&[&a]), 4);
        assert_eq!(union_len(&[&a, &b]), 7);
        assert_eq!(union_len(&[&b, &a]), 7);
        assert_eq!(union_len(&[&a, &b, &c]), 9);
        assert_eq!(union_len(&[&a, &[], &a]), 4);
    }

    #[test]
    fn short_values_differ_by_length_as_well_as_bytes() {
        assert_ne!(short_key(b""), short_key(b"\0"));
        assert_ne!(short_key(b"a"), short_key(b"a\0"));
        assert_eq!(short_key(b"10.0.0.1"), short_key(b"10.0.0.1"));
    }

    /// Every kind of value, with repeats: a short one, its UUID-looking cousins, long ones.
    fn values(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| match i % 5 {
                0 => format!("10.0.{}.{}", i % 7, i % 251),
                1 => format!("{:08x}-c98a-4c65-9b6e-{:012x}", i % 9973, i % 7919),
                2 => format!("{:08X}-C98A-4C65-9B6E-{:012X}", i % 9973, i % 7919),
                3 => format!("arn:aws:iam::123456789012:role/service-role-{}", i % 4001),
                _ => String::new(),
            })
            .collect()
    }

    #[tokio::test]
    async fn counts_what_a_set_counts_in_memory_spilled_and_split() -> Result<()> {
        let values = values(60_000);
        let expected = values.iter().collect::<HashSet<_>>().len() as u64;
        let disk = Arc::new(DiskManager::builder().build()?);
        // One collector; three that spill now and then; values in memory beside spilled ones.
        let mut one = Keys::default();
        values.iter().for_each(|v| one.insert(v.as_bytes()));
        assert_eq!(count(vec![one], 1).await?, expected, "not compacted");
        let mut one = Keys::default();
        values.iter().for_each(|v| one.insert(v.as_bytes()));
        one.compact();
        assert_eq!(count(vec![one], 3).await?, expected);
        let mut two: Vec<Keys> = (0..2).map(|_| Keys::default()).collect();
        for (i, v) in values.iter().enumerate() {
            two[i % 2].insert(v.as_bytes());
        }
        two.iter_mut().for_each(Keys::compact);
        assert_eq!(count(two, 2).await?, expected);
        let mut three: Vec<Keys> = (0..3).map(|_| Keys::default()).collect();
        for (i, v) in values.iter().enumerate() {
            let keys = &mut three[i % 3];
            keys.insert(v.as_bytes());
            if i % 7_001 == 7_000 {
                keys.spill(disk.create_tmp_file("test")?)?;
            }
        }
        assert!(three.iter().all(|k| !k.runs.is_empty()));
        three.iter_mut().for_each(Keys::compact);
        assert_eq!(count(three, 2).await?, expected);
        assert_eq!(count(vec![Keys::default(), Keys::default()], 2).await?, 0);
        Ok(())
    }

    #[test]
    fn few_values_stay_few_as_they_stream_and_ids_are_sorted_about_once() {
        let mut keys = Keys::default();
        for i in 0..200_000 {
            keys.insert(format!("198.51.100.{}", i % 7).as_bytes());
            keys.insert(format!("arn:aws:iam::123456789012:user/u{}", i % 5).as_bytes());
        }
        let held: usize = keys.fixed.iter().map(Vec::len).sum::<usize>()
            + keys.long.iter().map(|l| l.entries.len()).sum::<usize>();
        assert!(held < 20 * FIRST_SETTLING, "{held} values held for 12");
        // Distinct values: a bucket sorted at 1,024 values finds no repeats and waits for
        // eight times as many.
        assert_eq!(next_settling(1_024, 1_024), 8_192);
        assert_eq!(next_settling(1_024, 12), FIRST_SETTLING);
        assert_eq!(next_settling(100_000, 40_000), 80_000);
    }

    #[test]
    fn ids_give_up_the_recent_values_and_few_values_keep_them() {
        let mut ids = Keys::default();
        let mut few = Keys::default();
        for i in 0..TRIAL as u64 + 10 {
            ids.insert(format!("{:08x}-c98a-4c65-9b6e-{:012x}", i >> 20, i).as_bytes());
            few.insert(format!("10.0.0.{}", i % 200).as_bytes());
        }
        assert!(!ids.recall && ids.recent.is_empty());
        assert!(few.recall && few.found > TRIAL / 2);
        // Given up, the values are still all held.
        assert_eq!(ids.fixed.iter().map(Vec::len).sum::<usize>(), TRIAL + 10);
    }

    #[tokio::test]
    async fn long_values_alike_where_sampled_are_told_apart_and_repeats_found() -> Result<()> {
        // 200 bytes, alike but for byte 10, which no sampled word covers: one slot among the
        // recent values for all, each told apart by its bytes.
        let alike: Vec<Vec<u8>> = (0..10u8)
            .map(|i| {
                let mut v = vec![b'a'; 200];
                v[10] = b'0' + i;
                v
            })
            .collect();
        assert!(
            alike
                .iter()
                .all(|v| sampled_hash(v) == sampled_hash(&alike[0]))
        );
        assert_ne!(xxh3_64(&alike[0]), xxh3_64(&alike[1]));
        // The same value over and over is found among the recent ones and held once.
        let mut keys = Keys::default();
        for _ in 0..1000 {
            keys.insert(&alike[3]);
        }
        let held: usize = keys.long.iter().map(|l| l.entries.len()).sum();
        assert_eq!(held, 1);
        for round in 0..50 {
            for v in alike.iter().skip(round % 3) {
                keys.insert(v);
            }
        }
        assert_eq!(count(vec![keys], 1).await?, 10);
        // Any change a sampled word covers moves the slot.
        let mut other = alike[0].clone();
        other[199] = b'b';
        assert_ne!(sampled_hash(&other), sampled_hash(&alike[0]));
        Ok(())
    }

    #[test]
    fn ids_grow_a_bucket_to_its_next_settling_at_once_and_are_counted_by_what_they_hold() {
        let mut keys = Keys::default();
        let ids: Vec<String> = (0..600_000u128)
            .map(|i| {
                let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
                let x = format!("{h:032x}");
                format!(
                    "{}-{}-{}-{}-{}",
                    &x[..8],
                    &x[8..12],
                    &x[12..16],
                    &x[16..20],
                    &x[20..]
                )
            })
            .collect();
        ids.iter().for_each(|id| keys.insert(id.as_bytes()));
        let uuids = &keys.fixed[BUCKETS..];
        assert_eq!(uuids.iter().map(Vec::len).sum::<usize>(), 600_000);
        // About 2,300 a bucket: settled at 1,024 (no repeats), then room made for 8,192 at once.
        for (b, bucket) in uuids.iter().enumerate() {
            assert_eq!(keys.settle_at[BUCKETS + b], 8 * FIRST_SETTLING);
            assert_eq!(bucket.capacity(), 8 * FIRST_SETTLING, "bucket {b}");
        }
        // The room beyond a bucket's keys is not counted: its keys and a page at most.
        let keys_bytes = 600_000 * size_of::<u128>();
        let fixed_overhead = FIXED * 4096 + keys.scratch.capacity() * size_of::<u128>();
        let recent = RECENT * (size_of::<(u128, u8)>() + size_of::<(u64, Vec<u8>)>());
        assert!(keys.size() <= keys_bytes + fixed_overhead + recent);
        assert!(keys.size() >= keys_bytes);
    }

    #[test]
    fn long_values_are_kept_among_the_recent_ones_only_up_to_a_size() {
        let mut keys = Keys::default();
        let big = "x".repeat(RECENT_LONG_BYTES + 1);
        let small = "y".repeat(RECENT_LONG_BYTES);
        for _ in 0..3 {
            keys.insert(big.as_bytes());
            keys.insert(small.as_bytes());
        }
        let recent: usize = keys.recent_long.iter().map(|(_, v)| v.len()).sum();
        assert_eq!(recent, RECENT_LONG_BYTES);
        // The big one is held each time (repeats go when the bucket settles), the small once.
        let held: usize = keys.long.iter().map(|l| l.entries.len()).sum();
        assert_eq!(held, 4);
    }

    #[test]
    fn compacting_gives_back_what_repeats_held() {
        let mut keys = Keys::default();
        // Three passes over more values than the recent ones, under any bucket's first
        // settling (about 240 values a bucket): every repeat is still held.
        for _ in 0..3 {
            for i in 0..20_000 {
                keys.insert(format!("10.0.{}.{}", i / 256, i % 256).as_bytes());
            }
        }
        let before = keys.size();
        keys.compact();
        assert!(keys.size() * 2 < before, "{} -> {}", before, keys.size());
        assert_eq!(keys.fixed.iter().map(Vec::len).sum::<usize>(), 20_000);
    }
}
