//! Turns raw CloudTrail records into Arrow columns of table `cloudtrail`, losing nothing.
//!
//! Each top-level key is matched to a field of [`RECORD_FIELDS`]: exactly, or else ignoring case
//! (some producers lower-case every key). A field stored faithfully by its typed column needs
//! nothing more. Otherwise (a case variant of the key, a repeated key, a value of another JSON
//! type, a nested object with members the schema does not know, a non-standard timestamp) every
//! occurrence is kept verbatim in `extra` under its original key, and the typed column gets a
//! best-effort reading so that queries still see the value. Unknown keys go to `extra` as they are.
//! `trailhouse_lake::rebuild` is the inverse.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, LazyLock};

use arrow::array::builder::{ArrayBuilder, NullBufferBuilder};
use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, ListArray, RecordBatch, StringBuilder, StructArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::value::RawValue;
use trailhouse_lake::entries::Entries;
use trailhouse_lake::schema::{self, FieldSpec, Kind, RECORD_FIELDS};
use xxhash_rust::xxh3::xxh3_64_with_seed;

mod scan;

pub use scan::{Scanned, trail as scan_trail};

/// Where a normalized record goes and what identifies it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub event_time: i64,
    pub day: NaiveDate,
    pub region: String,
    pub record_hash: u64,
    /// Hash of `eventID`, when the record has one (collision accounting).
    pub event_id_hash: Option<u64>,
}

/// Why a record cannot be placed in table `cloudtrail`.
pub type QuarantineReason = String;

/// Key → field lookups run for every member of every record: keys are hashed with one-shot
/// xxh3, not SipHash (which was a fiftieth of ingest CPU here).
type FieldIndex<K> = HashMap<K, usize, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

static FIELD_INDEX: LazyLock<FieldIndex<&'static str>> = LazyLock::new(|| {
    RECORD_FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| (f.key, i))
        .collect()
});
static FIELD_INDEX_LOWER: LazyLock<FieldIndex<String>> = LazyLock::new(|| {
    RECORD_FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| (f.key.to_ascii_lowercase(), i))
        .collect()
});
static EVENT_TIME: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["eventTime"]);
static AWS_REGION: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["awsRegion"]);
static EVENT_ID: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["eventID"]);

fn top_level_field(key: &str) -> Option<(usize, bool)> {
    if let Some(&i) = FIELD_INDEX.get(key) {
        return Some((i, true));
    }
    if key.len() > 40 {
        return None;
    }
    FIELD_INDEX_LOWER
        .get(&key.to_ascii_lowercase())
        .map(|&i| (i, false))
}

fn child_field(children: &[FieldSpec], key: &str) -> Option<(usize, bool)> {
    if let Some(i) = children.iter().position(|c| c.key == key) {
        return Some((i, true));
    }
    children
        .iter()
        .position(|c| c.key.eq_ignore_ascii_case(key))
        .map(|i| (i, false))
}

/// Which occurrence(s) of a field's key a record has.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// Entry to read the typed value from: the last exact-key occurrence, else the first variant.
    best: Option<usize>,
    best_exact: bool,
    count: u32,
}

impl Slot {
    fn add(&mut self, entry: usize, exact: bool) {
        self.count += 1;
        if self.best.is_none() || exact {
            self.best_exact = exact;
            self.best = Some(entry);
        }
    }
    fn faithful(&self) -> bool {
        self.count == 1 && self.best_exact
    }
}

/// Builds the columns of one file's records.
pub struct RecordBuilder {
    columns: Vec<Col>,
    extra: StringBuilder,
    source: StringBuilder,
    hash: Int64Builder,
    source_file: Arc<str>,
    slots: Vec<Slot>,
}

/// How large a builder's columns grew, per source file read into it: the next builder reserves
/// that much up front instead of growing each buffer by doubling (every doubling copies the
/// buffer and touches fresh pages; reserved pages cost nothing until written).
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    /// (items, bytes of string values) per column node, in [`RecordBuilder`]'s order, per file.
    per_file: Vec<(f64, f64)>,
}

impl RecordBuilder {
    pub fn new(source_file: Arc<str>) -> Self {
        Self::with_sizes(source_file, &Sizes::default(), 0)
    }

    /// A builder sized for `files` files like those `sizes` was measured on.
    pub fn with_sizes(source_file: Arc<str>, sizes: &Sizes, files: usize) -> Self {
        // A fifth of headroom: a chunk larger than the last one still fits.
        let scale = files as f64 * 1.2;
        let mut hints = sizes
            .per_file
            .iter()
            .map(|&(items, bytes)| ((items * scale) as usize, (bytes * scale) as usize));
        let columns = RECORD_FIELDS
            .iter()
            .map(|f| Col::new(f.kind, &mut hints))
            .collect();
        let mut string = || {
            let (items, bytes) = hints.next().unwrap_or_default();
            StringBuilder::with_capacity(items, bytes)
        };
        let (extra, source) = (string(), string());
        Self {
            columns,
            extra,
            source,
            hash: Int64Builder::with_capacity(hints.next().unwrap_or_default().0),
            source_file,
            slots: vec![Slot::default(); RECORD_FIELDS.len()],
        }
    }

    /// The sizes of the columns built so far, per file of `files` (read before [`Self::finish`]).
    pub fn sizes(&self, files: usize) -> Sizes {
        let mut nodes = Vec::new();
        for c in &self.columns {
            c.sizes(&mut nodes);
        }
        nodes.push((self.extra.len(), self.extra.values_slice().len()));
        nodes.push((self.source.len(), self.source.values_slice().len()));
        nodes.push((self.hash.len(), 0));
        let files = files.max(1) as f64;
        Sizes {
            per_file: nodes
                .into_iter()
                .map(|(items, bytes)| (items as f64 / files, bytes as f64 / files))
                .collect(),
        }
    }

    /// Sets the source file of the records appended next.
    pub fn set_source_file(&mut self, source_file: Arc<str>) {
        self.source_file = source_file;
    }

    /// Appends one record, or says why it must be quarantined (then nothing is appended).
    /// `path_region` is the region segment of the source key, the fallback for `awsRegion`.
    pub fn push(
        &mut self,
        raw: &RawValue,
        path_region: Option<&str>,
    ) -> Result<Placed, QuarantineReason> {
        let not_object = || "record is not a JSON object".to_string();
        let scanned = match scan::record(raw.get()) {
            Ok(Some(scanned)) => scanned,
            Ok(None) => return Err(not_object()),
            Err(scan::GiveUp) => {
                let entries = Entries::parse(raw).ok_or_else(not_object)?.0;
                let hash = members_hash(&entries);
                let entries = entries.into_iter().map(|(k, v)| (k, v.get())).collect();
                (entries, hash)
            }
        };
        self.push_scanned(scanned, path_region)
    }

    /// Appends one record already split into members and hashed (by [`scan_trail`]).
    pub fn push_scanned(
        &mut self,
        (entries, record_hash): Scanned<'_>,
        path_region: Option<&str>,
    ) -> Result<Placed, QuarantineReason> {
        self.slots.iter_mut().for_each(|s| *s = Slot::default());
        let mut unknown = Vec::new();
        for (i, (key, _)) in entries.iter().enumerate() {
            match top_level_field(key) {
                Some((f, exact)) => self.slots[f].add(i, exact),
                None => unknown.push(i),
            }
        }

        let time_slot = self.slots[*EVENT_TIME];
        let Some(time_entry) = time_slot.best else {
            return Err("record has no eventTime".into());
        };
        let time_raw = entries[time_entry].1;
        let Some(time_text) = json_str(time_raw) else {
            return Err(format!("eventTime `{time_raw}` is not a string"));
        };
        let Some(event_time) = parse_event_time(&time_text) else {
            return Err(format!("eventTime `{time_text}` is not a date-time"));
        };
        let Some(day) = DateTime::from_timestamp_micros(event_time).map(|t| t.date_naive()) else {
            return Err(format!("eventTime `{time_text}` is out of range"));
        };

        let region = self.slots[*AWS_REGION]
            .best
            .and_then(|e| json_str(entries[e].1))
            .filter(|r| !r.is_empty())
            .map(Cow::into_owned)
            .or_else(|| path_region.map(str::to_string))
            .unwrap_or_else(|| "unknown".to_string());
        let event_id_hash = self.slots[*EVENT_ID]
            .best
            .and_then(|e| json_str(entries[e].1))
            .map(|id| xxhash_rust::xxh3::xxh3_64(id.as_bytes()));

        let mut extra: Vec<usize> = unknown;
        for (f, slot) in self.slots.iter().enumerate() {
            let column = &mut self.columns[f];
            match slot.best {
                None => column.append_null(),
                Some(e) => {
                    let faithful = column.append(entries[e].1);
                    if !(faithful && slot.faithful()) {
                        extra.extend(
                            entries
                                .iter()
                                .enumerate()
                                .filter(|(_, (k, _))| {
                                    top_level_field(k).is_some_and(|(g, _)| g == f)
                                })
                                .map(|(i, _)| i),
                        );
                    }
                }
            }
        }
        if extra.is_empty() {
            self.extra.append_null();
        } else {
            extra.sort_unstable();
            let mut text = String::from("{");
            for (n, &i) in extra.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                let (key, value) = &entries[i];
                text.push_str(&serde_json::Value::from(key.as_ref()).to_string());
                text.push(':');
                text.push_str(value);
            }
            text.push('}');
            self.extra.append_value(text);
        }
        self.source.append_value(&self.source_file);
        self.hash.append_value(record_hash as i64);
        Ok(Placed {
            event_time,
            day,
            region,
            record_hash,
            event_id_hash,
        })
    }

    /// The columns built so far, in file-schema order.
    pub fn finish(mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Col::finish).collect();
        arrays.push(Arc::new(self.extra.finish()));
        arrays.push(Arc::new(self.source.finish()));
        arrays.push(Arc::new(self.hash.finish()));
        RecordBatch::try_new(schema::file_schema(), arrays)
    }
}

/// Whether `text`, parsed as `micros`, is written exactly as export writes it back. CloudTrail's
/// own `YYYY-MM-DDTHH:MM:SSZ` is recognised by its shape (formatting every record's time to
/// compare was a measurable share of ingest); anything else is compared with the formatted value.
fn is_canonical_time(text: &str, micros: i64) -> bool {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[17] < b'6';
    if shape && micros % 1_000_000 == 0 {
        return true;
    }
    schema::format_event_time(micros).as_deref() == Some(text)
}

/// Parses CloudTrail's `YYYY-MM-DDTHH:MM:SSZ` and the variants real producers write: fractional
/// seconds, a numeric offset, a space for `T`, no zone at all (taken as UTC).
pub fn parse_event_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    let naive = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix('z'))
        .unwrap_or(t);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(dt.timestamp_micros());
    }
    None
}

/// Content hash of a JSON value that two copies of one record share however they were written:
/// white space, the order of object members and string escapes do not change it, nor the
/// spelling of a number (`1.50` and `1.5` are one value). Computed in one pass over the text.
pub fn content_hash(raw: &RawValue) -> u64 {
    match Entries::parse(raw) {
        Some(entries) => members_hash(&entries.0),
        None => value_hash(raw),
    }
}

fn members_hash(members: &[(Cow<'_, str>, &RawValue)]) -> u64 {
    // A commutative sum of member hashes: member order does not matter.
    let sum = members.iter().fold(0u64, |acc, (k, v)| {
        acc.wrapping_add(member_hash(
            xxh3_64_with_seed(k.as_bytes(), 1),
            value_hash(v),
        ))
    });
    xxh3_64_with_seed(&sum.to_le_bytes(), 3)
}

fn member_hash(key: u64, value: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&key.to_le_bytes());
    b[8..].copy_from_slice(&value.to_le_bytes());
    xxh3_64_with_seed(&b, 2)
}

fn value_hash(raw: &RawValue) -> u64 {
    match serde_json::from_str::<Canonical>(raw.get()) {
        Ok(Canonical(h)) => h,
        // Unreachable for text serde_json already accepted; hash the text as a fallback.
        Err(_) => xxh3_64_with_seed(raw.get().as_bytes(), 4),
    }
}

/// The canonical hash of one JSON value, built by serde_json's single pass over it.
struct Canonical(u64);

/// The content hash of a record the way ingest computes it: by [`scan::record`] when it can,
/// else by serde. Equal to [`content_hash`] (tested).
#[cfg(test)]
fn scanned_hash(raw: &RawValue) -> Option<u64> {
    match scan::record(raw.get()) {
        Ok(Some((_, hash))) => Some(hash),
        _ => None,
    }
}

impl<'de> serde::Deserialize<'de> for Canonical {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CanonicalVisitor)
    }
}

struct CanonicalVisitor;

impl<'de> serde::de::Visitor<'de> for CanonicalVisitor {
    type Value = Canonical;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Canonical, E> {
        Ok(Canonical(xxh3_64_with_seed(&[u8::from(v)], 8)))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Canonical, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Canonical, E> {
        self.visit_f64(v as f64)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Canonical, E> {
        Ok(Canonical(xxh3_64_with_seed(&v.to_le_bytes(), 7)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Canonical, E> {
        Ok(Canonical(xxh3_64_with_seed(v.as_bytes(), 6)))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Canonical, E> {
        Ok(Canonical(9))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Canonical, E> {
        self.visit_unit()
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Canonical, A::Error> {
        let mut h = 5u64;
        while let Some(Canonical(item)) = seq.next_element()? {
            h = member_hash(h, item);
        }
        Ok(Canonical(xxh3_64_with_seed(&h.to_le_bytes(), 5)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Canonical, A::Error> {
        let mut sum = 0u64;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let Canonical(value) = map.next_value()?;
            sum = sum.wrapping_add(member_hash(xxh3_64_with_seed(key.as_bytes(), 1), value));
        }
        Ok(Canonical(xxh3_64_with_seed(&sum.to_le_bytes(), 3)))
    }
}

/// A JSON string's value: borrowed from the text when it has no escapes (the common case),
/// decoded otherwise; `None` when `text` is not a JSON string.
fn json_str(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<Cow<'_, str>>(text).ok()
}

/// A column under construction. `append` returns whether the typed value alone reproduces the
/// JSON exactly; when it does not, the caller keeps the original in `extra`.
enum Col {
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
    Json(StringBuilder),
    Struct {
        fields: &'static [FieldSpec],
        children: Vec<Col>,
        valid: NullBufferBuilder,
        len: usize,
    },
    List {
        fields: &'static [FieldSpec],
        item: Box<Col>,
        offsets: Vec<i32>,
        valid: NullBufferBuilder,
    },
}

impl Col {
    /// A column of `kind`, its nodes (this one, then its children depth-first) reserving the
    /// (items, string bytes) `hints` gives, as [`Col::sizes`] lists them.
    fn new(kind: Kind, hints: &mut impl Iterator<Item = (usize, usize)>) -> Col {
        let (items, bytes) = hints.next().unwrap_or_default();
        match kind {
            Kind::Str => Col::Str(StringBuilder::with_capacity(items, bytes)),
            Kind::Json => Col::Json(StringBuilder::with_capacity(items, bytes)),
            Kind::Bool => Col::Bool(BooleanBuilder::with_capacity(items)),
            Kind::Timestamp => {
                Col::Time(TimestampMicrosecondBuilder::with_capacity(items).with_timezone("UTC"))
            }
            Kind::Struct(fields) => Col::Struct {
                fields,
                children: fields.iter().map(|f| Col::new(f.kind, hints)).collect(),
                valid: NullBufferBuilder::new(items),
                len: 0,
            },
            Kind::List(fields) => {
                let mut offsets = Vec::with_capacity(items + 1);
                offsets.push(0);
                Col::List {
                    fields,
                    item: Box::new(Col::new(Kind::Struct(fields), hints)),
                    offsets,
                    valid: NullBufferBuilder::new(items),
                }
            }
        }
    }

    /// Appends (items, string bytes) of this node and its children, depth-first.
    fn sizes(&self, out: &mut Vec<(usize, usize)>) {
        match self {
            Col::Str(b) | Col::Json(b) => out.push((b.len(), b.values_slice().len())),
            Col::Bool(b) => out.push((b.len(), 0)),
            Col::Time(b) => out.push((b.len(), 0)),
            Col::Struct { children, len, .. } => {
                out.push((*len, 0));
                children.iter().for_each(|c| c.sizes(out));
            }
            Col::List { item, offsets, .. } => {
                out.push((offsets.len() - 1, 0));
                item.sizes(out);
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            Col::Str(b) | Col::Json(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::Struct {
                children,
                valid,
                len,
                ..
            } => {
                children.iter_mut().for_each(Col::append_null);
                valid.append_null();
                *len += 1;
            }
            Col::List { offsets, valid, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                valid.append_null();
            }
        }
    }

    fn append(&mut self, text: &str) -> bool {
        match self {
            Col::Json(b) => {
                b.append_value(text);
                true
            }
            Col::Str(b) => {
                if text.starts_with('"') {
                    match json_str(text) {
                        Some(s) => {
                            b.append_value(s);
                            true
                        }
                        None => {
                            b.append_null();
                            false
                        }
                    }
                } else if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
                    || text == "true"
                    || text == "false"
                {
                    b.append_value(text);
                    false
                } else {
                    b.append_null();
                    false
                }
            }
            Col::Bool(b) => {
                match text {
                    "true" => b.append_value(true),
                    "false" => b.append_value(false),
                    _ => {
                        let lenient =
                            serde_json::from_str::<Cow<'_, str>>(text)
                                .ok()
                                .and_then(|s| match s.to_ascii_lowercase().as_str() {
                                    "true" => Some(true),
                                    "false" => Some(false),
                                    _ => None,
                                });
                        b.append_option(lenient);
                        return false;
                    }
                }
                true
            }
            Col::Time(b) => {
                let parsed = json_str(text).and_then(|s| parse_event_time(&s).map(|t| (t, s)));
                match parsed {
                    Some((t, s)) => {
                        b.append_value(t);
                        is_canonical_time(&s, t)
                    }
                    None => {
                        b.append_null();
                        false
                    }
                }
            }
            Col::Struct {
                fields,
                children,
                valid,
                len,
            } => {
                let entries = match scan::members(text) {
                    Ok(members) => members,
                    Err(scan::GiveUp) => Entries::parse_str(text)
                        .map(|e| e.0.into_iter().map(|(k, v)| (k, v.get())).collect()),
                };
                let Some(entries) = entries else {
                    children.iter_mut().for_each(Col::append_null);
                    valid.append_null();
                    *len += 1;
                    return false;
                };
                let mut slots = [Slot::default(); 16];
                let mut faithful = fields.len() <= slots.len();
                for (i, (key, _)) in entries.iter().enumerate() {
                    match child_field(fields, key) {
                        Some((c, exact)) if c < slots.len() => slots[c].add(i, exact),
                        _ => faithful = false,
                    }
                }
                for (c, child) in children.iter_mut().enumerate() {
                    match slots.get(c).and_then(|s| s.best) {
                        Some(e) => {
                            let ok = child.append(entries[e].1);
                            faithful &= ok && slots[c].faithful();
                        }
                        None => child.append_null(),
                    }
                }
                valid.append_non_null();
                *len += 1;
                faithful
            }
            Col::List {
                item,
                offsets,
                valid,
                ..
            } => {
                let items = match scan::items(text) {
                    Ok(items) => items,
                    Err(scan::GiveUp) => serde_json::from_str::<Vec<&RawValue>>(text)
                        .ok()
                        .map(|items| items.into_iter().map(RawValue::get).collect()),
                };
                let Some(items) = items else {
                    let last = offsets.last().copied().unwrap_or(0);
                    offsets.push(last);
                    valid.append_null();
                    return false;
                };
                let mut faithful = true;
                for &it in &items {
                    if it == "null" {
                        item.append_null();
                    } else {
                        // A non-object item becomes a null struct and marks the list unfaithful.
                        faithful &= item.append(it);
                    }
                }
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + items.len() as i32);
                valid.append_non_null();
                faithful
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) | Col::Json(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Struct {
                fields,
                children,
                valid,
                len,
            } => {
                let arrays: Vec<ArrayRef> = children.iter_mut().map(Col::finish).collect();
                let nulls = valid.finish();
                let n = std::mem::take(len);
                if arrays.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(n, nulls));
                }
                Arc::new(StructArray::new(
                    schema::struct_fields(fields),
                    arrays,
                    nulls,
                ))
            }
            Col::List {
                fields,
                item,
                offsets,
                valid,
            } => {
                let values = item.finish();
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let field = Arc::new(Field::new(
                    "element",
                    DataType::Struct(schema::struct_fields(fields)),
                    true,
                ));
                Arc::new(ListArray::new(field, offsets, values, valid.finish()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use trailhouse_lake::rebuild::Rebuilder;

    use super::*;

    fn build(records: &[&str]) -> (RecordBatch, Vec<Result<Placed, String>>) {
        let mut b = RecordBuilder::new(Arc::from("test.json"));
        let placed = records
            .iter()
            .map(|r| {
                let raw: &RawValue = serde_json::from_str(r).expect("valid json");
                b.push(raw, Some("eu-west-1"))
            })
            .collect();
        (b.finish().expect("batch"), placed)
    }

    fn rebuilt(batch: &RecordBatch, row: usize) -> serde_json::Value {
        let mut out = String::new();
        Rebuilder::new(batch)
            .expect("rebuilder")
            .write_row(row, &mut out)
            .expect("row");
        serde_json::from_str(&out).expect("rebuilt json")
    }

    #[test]
    fn round_trips_odd_records() {
        let records = [
            r#"{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","awsRegion":"us-east-1","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s","sessionContext":{"sessionIssuer":{},"attributes":{"mfaAuthenticated":"false"}}},"requestParameters":{"n":0.0000882145,"e":1E+3},"resources":[{"ARN":"arn:x","type":"AWS::S3::Bucket"}],"readOnly":false}"#,
            r#"{"eventtime":"2022-09-25 16:16:37","eventname":"X","readOnly":"true","userAgent":["a","b"],"p_log_type":"AWS.CloudTrail","requestParameters":"text","responseElements":null}"#,
            r#"{"eventTime":"2020-01-01T00:00:00Z","readOnly":true,"eventType":"A","readOnly":false,"eventType":"B","resources":[{"arn":"lower"},"str"],"userIdentity":{"type":"IAMUser","newField":1}}"#,
        ];
        let (batch, placed) = build(&records);
        assert!(placed.iter().all(Result::is_ok), "{placed:?}");
        for (i, r) in records.iter().enumerate() {
            let want: serde_json::Value = serde_json::from_str(r).expect("json");
            assert_eq!(rebuilt(&batch, i), want, "record {i}");
        }
    }

    #[test]
    fn a_builder_sized_from_another_builds_the_same_columns() {
        let records = [
            r#"{"eventTime":"2024-01-02T03:04:05Z","awsRegion":"us-east-1","userIdentity":{"type":"Root","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}},"resources":[{"ARN":"a"},{"ARN":"b"}],"readOnly":true}"#,
            r#"{"eventTime":"2024-01-02T03:04:06Z","eventName":"X","requestParameters":{"k":[1,2]},"unknownKey":1}"#,
        ];
        let push_all = |b: &mut RecordBuilder| {
            for r in records {
                let raw: &RawValue = serde_json::from_str(r).expect("valid json");
                b.push(raw, None).expect("placed");
            }
        };
        let mut first = RecordBuilder::new(Arc::from("a.json"));
        push_all(&mut first);
        let sizes = first.sizes(1);
        // One node per column and nested member, plus extra, sourcefile and recordhash; the
        // list's items (two resources) and a string column's bytes are among them.
        assert!(sizes.per_file.len() > RECORD_FIELDS.len() + 3, "{sizes:?}");
        assert!(sizes.per_file.contains(&(2.0, 0.0)), "{sizes:?}");
        assert!(
            sizes.per_file.contains(&(2.0, 12.0)),
            "sourcefile: {sizes:?}"
        );
        let mut second = RecordBuilder::with_sizes(Arc::from("a.json"), &sizes, 3);
        push_all(&mut second);
        assert_eq!(
            second.finish().expect("batch"),
            first.finish().expect("batch")
        );
    }

    #[test]
    fn typed_columns_hold_best_effort_values() {
        let (batch, placed) = build(&[
            r#"{"eventtime":"2022-09-25 16:16:37","eventname":"X","readOnly":"true","awsRegion":""}"#,
        ]);
        let p = placed[0].as_ref().expect("placed");
        assert_eq!(p.region, "eu-west-1", "falls back to the path's region");
        assert_eq!(p.day, NaiveDate::from_ymd_opt(2022, 9, 25).expect("date"));
        let name = batch.column_by_name("eventname").expect("col");
        assert_eq!(
            arrow::array::AsArray::as_string::<i32>(name.as_ref()).value(0),
            "X"
        );
        let ro = batch.column_by_name("readonly").expect("col");
        assert!(arrow::array::AsArray::as_boolean(ro.as_ref()).value(0));
        let extra = batch.column_by_name("extra").expect("col");
        let extra = arrow::array::AsArray::as_string::<i32>(extra.as_ref()).value(0);
        assert!(
            extra.contains(r#""eventtime":"2022-09-25 16:16:37""#),
            "{extra}"
        );
        assert!(extra.contains(r#""readOnly":"true""#), "{extra}");
    }

    #[test]
    fn faithful_records_have_no_extra() {
        let (batch, _) = build(&[
            r#"{"eventTime":"2024-01-02T03:04:05Z","eventName":"GetObject","tlsDetails":{"tlsVersion":"TLSv1.3"},"responseElements":null}"#,
        ]);
        let extra = batch.column_by_name("extra").expect("col");
        assert_eq!(extra.null_count(), 1);
    }

    #[test]
    fn quarantine_reasons() {
        let (batch, placed) = build(&[
            r#"{"eventName":"NoTime"}"#,
            r#"{"eventTime":"redacted"}"#,
            r#"{"eventTime":12}"#,
            r#"[1,2]"#,
        ]);
        assert_eq!(batch.num_rows(), 0);
        let reasons: Vec<String> = placed
            .into_iter()
            .map(|p| p.expect_err("quarantine"))
            .collect();
        assert_eq!(
            reasons,
            [
                "record has no eventTime",
                "eventTime `redacted` is not a date-time",
                "eventTime `12` is not a string",
                "record is not a JSON object"
            ]
        );
    }

    #[test]
    fn canonical_times() {
        for (t, canonical) in [
            ("2024-09-09T17:51:44Z", true),
            ("2024-09-09T17:51:44.120Z", true),
            ("2024-09-09T17:51:44.12Z", false),
            ("2024-09-09 17:51:44", false),
            ("2024-09-09T19:51:44+02:00", false),
        ] {
            let micros = parse_event_time(t).expect("time");
            assert_eq!(is_canonical_time(t, micros), canonical, "{t}");
        }
    }

    #[test]
    fn event_time_variants() {
        let base = parse_event_time("2022-09-25T16:16:37Z").expect("iso");
        for t in [
            "2022-09-25 16:16:37",
            "2022-09-25 16:16:37Z",
            "2022-09-25T16:16:37",
            "2022-09-25 16:16:37.000000000",
            "2022-09-25T18:16:37+02:00",
        ] {
            assert_eq!(parse_event_time(t), Some(base), "{t}");
        }
        assert_eq!(parse_event_time("..."), None);
    }

    /// The scanner's hash must be the serde visitor's, bit for bit: stored hashes identify
    /// records across runs and versions.
    fn assert_same_hash(text: &str) {
        let raw: &RawValue = serde_json::from_str(text).expect("json");
        assert_eq!(scanned_hash(raw), Some(content_hash(raw)), "{text}");
    }

    #[test]
    fn the_scan_hashes_as_the_serde_visitor_does() {
        for text in [
            r#"{}"#,
            r#"{"a":{},"b":[],"c":[[]],"d":[{}]}"#,
            r#"{ "a" : "x y" , "b" :{"e":null,"c":[1,{"d":"\/"}]}}"#,
            r#"{"k\"q":"v\u00e9\n","\u00e9":"\ud83d\ude00","e":"é😀"}"#,
            r#"{"n":[0,-0,1.50,1.5,1e3,1E+3,-2.5e-3,0.0000882145,18446744073709551615,18446744073709551616,-9223372036854775809,123456789012345678901234567890]}"#,
            r#"{"lone":"\ud800","big":1e400,"small":1e-400,"ok":"x"}"#,
            r#"{"b":true,"f":false,"z":null,"nested":{"lone":["\udc00"]},"t":"\t\"\\"}"#,
            r#"{"a":1,"a":2,"A":"3"}"#,
            "{\"ws\":\t[ 1 ,\r\n 2 ] ,\n\"o\" : { \"p\" : \"q\" } }",
        ] {
            assert_same_hash(text);
        }
        // Not an object: the scan says so, the caller quarantines.
        for text in ["[1]", "\"s\"", "3", "null"] {
            let raw: &RawValue = serde_json::from_str(text).expect("json");
            assert!(matches!(scan::record(raw.get()), Ok(None)), "{text}");
        }
        // A key serde_json cannot decode: the scan gives up and serde decides.
        let raw: &RawValue = serde_json::from_str(r#"{"\ud800":1}"#).expect("json");
        assert!(scan::record(raw.get()).is_err());
    }

    /// The scan splits `text` (a member's value) into members or items as serde_json does.
    fn assert_same_split(text: &str) {
        let members = scan::members(text).expect("scan");
        let serde_members = Entries::parse_str(text).map(|e| {
            e.0.into_iter()
                .map(|(k, v)| (k, v.get()))
                .collect::<Vec<_>>()
        });
        assert_eq!(members, serde_members, "{text}");
        let items = scan::items(text).expect("scan");
        let serde_items = serde_json::from_str::<Vec<&RawValue>>(text)
            .ok()
            .map(|items| items.into_iter().map(RawValue::get).collect::<Vec<_>>());
        assert_eq!(items, serde_items, "{text}");
    }

    #[test]
    fn the_scan_splits_nested_values_as_serde_does() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#"{ "a" : 1 , "b" : [ 1 , { "c" : null } ] }"#,
            r#"{"k\"q":"v\u00e9","\u00e9":{"x":[true,false]},"a":1,"a":2}"#,
            r#"[{"type":"AWS::S3::Bucket","ARN":"arn:x"},null,"str",1.5e3,[]]"#,
            r#""text""#,
            "3",
            "null",
        ] {
            assert_same_split(text);
        }
        // A key serde_json cannot decode: the scan gives up and serde decides.
        assert!(scan::members(r#"{"\ud800":1}"#).is_err());
    }

    #[test]
    fn the_scan_hashes_every_corpus_and_sample_record_as_the_serde_visitor_does() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut stack = vec![root.join("tests/corpus"), root.join("sample-logs")];
        let (mut records, mut scanned) = (0, 0);
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let stored = std::fs::read(&path).expect("read");
                let Ok(content) = crate::decompress::decode(stored, 1 << 30, Vec::new()) else {
                    continue;
                };
                let Ok(crate::parse::Parsed::Events { records: rs, .. }) =
                    crate::parse::parse(&content.bytes, content.gzip)
                else {
                    continue;
                };
                for r in rs {
                    let raw = match &r {
                        crate::parse::RecordText::Borrowed(raw) => *raw,
                        crate::parse::RecordText::Owned(raw) => raw.as_ref(),
                        crate::parse::RecordText::Scanned(text, (_, hash)) => {
                            // Read by the trail scan: its hash is the serde visitor's too.
                            let raw: &RawValue = serde_json::from_str(text).expect("valid JSON");
                            assert_eq!(*hash, content_hash(raw), "{}: {text}", path.display());
                            scanned += 1;
                            raw
                        }
                        crate::parse::RecordText::Reject(..) => continue,
                    };
                    if raw.get().starts_with('{') {
                        for (_, value) in Entries::parse(raw).expect("object").0 {
                            assert_same_split(value.get());
                        }
                        assert_eq!(
                            scanned_hash(raw),
                            Some(content_hash(raw)),
                            "{}: {}",
                            path.display(),
                            raw.get()
                        );
                        records += 1;
                    }
                }
            }
        }
        assert!(records > 1000, "only {records} records found");
        assert!(
            scanned > 500,
            "only {scanned} records read by the trail scan"
        );
    }

    #[test]
    fn hash_is_the_same_for_copies_of_one_record() {
        let h = |t: &str| content_hash(serde_json::from_str::<&RawValue>(t).expect("json"));
        let a = h(r#"{"a":"x y","b":{"c":[1,{"d":"/"}],"e":null}}"#);
        assert_eq!(
            a,
            h("{ \"b\": {\"e\": null, \"c\": [1, {\"d\": \"\\/\"}]},\n \"a\" : \"x y\" }")
        );
        assert_ne!(a, h(r#"{"a":"xy","b":{"c":[1,{"d":"/"}],"e":null}}"#));
        assert_ne!(
            a,
            h(r#"{"a":"x y","b":{"c":[{"d":"/"},1],"e":null}}"#),
            "array order matters"
        );
        assert_ne!(h(r#"{"a":1}"#), h(r#"{"a":"1"}"#));
        assert_ne!(h(r#"{"a":{"b":1}}"#), h(r#"{"b":{"a":1}}"#));
    }
}
