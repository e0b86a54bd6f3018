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

use arrow::array::{ArrayBuilder, ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use chrono::{DateTime, NaiveDate};
use serde_json::value::RawValue;
use trailhouse_lake::entries::Entries;
use trailhouse_lake::schema::{self, FieldSpec, RECORD_FIELDS};
use xxhash_rust::xxh3::xxh3_64_with_seed;

mod column;
mod hash;
mod mint;
mod scan;
mod time;

use column::Col;
pub use hash::content_hash;
use hash::members_hash;
pub use time::parse_event_time;

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

/// A hasher of short keys by one-shot xxh3, chained over the parts written.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

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
static EVENT_SOURCE: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["eventSource"]);
static EVENT_NAME: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["eventName"]);
static ERROR_CODE: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["errorCode"]);
static RESPONSE_ELEMENTS: LazyLock<usize> = LazyLock::new(|| FIELD_INDEX["responseElements"]);

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
pub(super) struct Slot {
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
    region: StringBuilder,
    minted_key: StringBuilder,
    minted_session: StringBuilder,
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
        let mut next = || hints.next().unwrap_or_default();
        let string = |(items, bytes): (usize, usize)| StringBuilder::with_capacity(items, bytes);
        let (extra, source) = (string(next()), string(next()));
        let hash = Int64Builder::with_capacity(next().0);
        let (region, minted_key, minted_session) = (string(next()), string(next()), string(next()));
        Self {
            columns,
            extra,
            source,
            hash,
            region,
            minted_key,
            minted_session,
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
        for b in [&self.region, &self.minted_key, &self.minted_session] {
            nodes.push((b.len(), b.values_slice().len()));
        }
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
        self.region.append_value(&region);
        let member = |field: usize| self.slots[field].best.map(|e| entries[e].1);
        let (key, session) = mint::minted(
            member(*EVENT_SOURCE),
            member(*EVENT_NAME),
            member(*ERROR_CODE),
            member(*RESPONSE_ELEMENTS),
        );
        self.minted_key.append_option(key);
        self.minted_session.append_option(session);
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
        arrays.push(Arc::new(self.region.finish()));
        arrays.push(Arc::new(self.minted_key.finish()));
        arrays.push(Arc::new(self.minted_session.finish()));
        let file_schema = schema::file_schema();
        let rows = arrays.first().map_or(0, |a| a.len());
        let added = schema::ADDED_COLUMNS
            .iter()
            .map(|name| {
                trailhouse_lake::derived::added_column(
                    name,
                    |c| file_schema.index_of(c).ok().and_then(|i| arrays.get(i)),
                    rows,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow::error::ArrowError::SchemaError)?;
        arrays.extend(added);
        RecordBatch::try_new(file_schema, arrays)
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

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
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
    fn the_actor_is_stored_as_the_actor_function_gives_it() {
        let records = [
            r#"{"eventTime":"2024-01-02T03:04:05Z","userIdentity":{"type":"IAMUser","principalId":"AIDA1","arn":"arn:aws:iam::1:user/alice"}}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z","userIdentity":{"type":"AWSService","invokedBy":"s3.amazonaws.com"}}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z","userIdentity":{"type":"AWSAccount","principalId":"AIDA2"}}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z","userIdentity":{"type":"Unknown"}}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z"}"#,
        ];
        let (batch, placed) = build(&records);
        assert!(placed.iter().all(Result::is_ok), "{placed:?}");
        let stored: Vec<Option<&str>> = batch
            .column_by_name(schema::ACTOR)
            .expect("the stored actor")
            .as_string::<i32>()
            .iter()
            .collect();
        assert_eq!(
            stored,
            [
                Some("arn:aws:iam::1:user/alice"),
                Some("s3.amazonaws.com"),
                Some("AIDA2"),
                Some("Unknown"),
                None,
            ]
        );
    }

    #[test]
    fn the_arns_of_the_resources_are_stored_one_per_line() {
        let records = [
            r#"{"eventTime":"2024-01-02T03:04:05Z","resources":[{"ARN":"arn:aws:s3:::exports","type":"AWS::S3::Bucket"},{"accountId":"1","type":"AWS::S3::Object"},{"ARN":"arn:aws:kms:eu-west-1:1:key/k"}]}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z"}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z","resources":[]}"#,
            r#"{"eventTime":"2024-01-02T03:04:05Z","resources":null}"#,
        ];
        let (batch, placed) = build(&records);
        assert!(placed.iter().all(Result::is_ok), "{placed:?}");
        let stored = batch
            .column_by_name(schema::RESOURCEARNS)
            .expect("the stored ARNs");
        let stored: Vec<Option<&str>> = stored
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("text")
            .iter()
            .collect();
        assert_eq!(
            stored,
            [
                Some("arn:aws:s3:::exports\narn:aws:kms:eu-west-1:1:key/k"),
                None,
                Some(""),
                None,
            ]
        );
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

    /// The scan splits `text` (a member's value) into members or items as serde_json does.
    pub(super) fn assert_same_split(text: &str) {
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
}
