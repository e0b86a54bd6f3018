//! Finds the CloudTrail records in a decompressed file, whatever envelope carries them.
//!
//! Envelopes: a trail log file `{"Records":[…]}`; NDJSON of records (CloudWatch Logs exports,
//! CloudTrail Lake exports); EventBridge events (the record is `detail`); `lookup-events` output
//! (`Events[].CloudTrailEvent` is the record as a JSON *string*); CloudWatch Logs subscription
//! payloads (`logEvents[].message`); a plain JSON array of records. Records are returned as raw
//! JSON text borrowed from the input where possible, so nothing is re-formatted.
//!
//! A file that breaks off (truncated gzip, invalid JSON part-way through `Records` or an NDJSON
//! stream) still yields the records before the break, together with the error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use trailhouse_lake::entries::Entries;

use crate::error::FileError;
use crate::normalize::{Scanned, scan_trail};

/// The envelope a file's records came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Envelope {
    Trail,
    Ndjson,
    Array,
    EventBridge,
    LookupEvents,
    CloudWatchLogs,
    Record,
}

/// One record found in a file.
#[derive(Debug)]
pub enum RecordText<'a> {
    /// Raw JSON text borrowed from the file.
    Borrowed(&'a RawValue),
    /// Raw JSON text decoded from a string inside the file (`CloudTrailEvent`, `message`).
    Owned(Box<RawValue>),
    /// A trail file's record as the validating scan read it: its text, members and hash.
    Scanned(&'a str, Scanned<'a>),
    /// Something in the place of a record that cannot be one, with the reason.
    Reject(Cow<'a, str>, String),
}

impl RecordText<'_> {
    /// The record's text, as it stands in the file (or in the string that carried it).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            RecordText::Borrowed(raw) => Cow::Borrowed(raw.get()),
            RecordText::Owned(raw) => Cow::Borrowed(raw.get()),
            RecordText::Scanned(text, _) => Cow::Borrowed(text),
            RecordText::Reject(text, _) => Cow::Borrowed(text.as_ref()),
        }
    }
}

/// What a file turned out to hold.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// CloudTrail records, and the error that cut the file short, if any.
    Events {
        envelope: Envelope,
        records: Vec<RecordText<'a>>,
        broken: Option<FileError>,
    },
    /// A CloudTrail digest file: integrity data, not events.
    Digest,
    /// Not CloudTrail at all (a README, a manifest, an empty file).
    NotCloudTrail(&'static str),
}

const RECORD_KEYS: [&str; 6] = [
    "eventVersion",
    "eventTime",
    "eventName",
    "eventSource",
    "eventID",
    "userIdentity",
];

/// Finds the records in `bytes`. `strict` (the file was gzip, as CloudTrail delivers) makes an
/// unrecognised JSON document a failure instead of a skipped non-CloudTrail file.
pub fn parse(bytes: &[u8], strict: bool) -> Result<Parsed<'_>, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return if strict {
            Err(FileError::Envelope("the file is empty".into()))
        } else {
            Ok(Parsed::NotCloudTrail("empty file"))
        };
    };
    if !matches!(bytes[start], b'{' | b'[') {
        return if strict {
            Err(FileError::Envelope("not JSON".into()))
        } else {
            Ok(Parsed::NotCloudTrail("not JSON"))
        };
    }
    let (text, utf8_break) = match std::str::from_utf8(bytes) {
        Ok(t) => (t, None),
        Err(e) => {
            let valid = e.valid_up_to();
            // valid_up_to is a char boundary by definition.
            let t = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            (t, Some(FileError::NotUtf8(valid)))
        }
    };
    // A whole, valid trail log file (nearly every file) is read in one pass; anything else, or
    // a file that breaks off, takes serde_json's path, which finds the break.
    if utf8_break.is_none()
        && let Some(records) = scan_trail(text)
    {
        return Ok(Parsed::Events {
            envelope: Envelope::Trail,
            records: records
                .into_iter()
                .map(|(text, scanned)| RecordText::Scanned(text, scanned))
                .collect(),
            broken: None,
        });
    }
    let parsed = parse_text(text, strict)?;
    Ok(match (parsed, utf8_break) {
        (
            Parsed::Events {
                envelope,
                records,
                broken: None,
            },
            Some(e),
        ) => Parsed::Events {
            envelope,
            records,
            broken: Some(e),
        },
        (p, _) => p,
    })
}

fn parse_text(text: &str, strict: bool) -> Result<Parsed<'_>, FileError> {
    let mut top = Top::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let first = TopSeed(&mut top).deserialize(&mut de);
    match first {
        Err(e)
            if top.saw_records
                && top.records.is_empty()
                && e.classify() == serde_json::error::Category::Data =>
        {
            Err(FileError::Envelope(format!(
                "`Records` is not an array ({e})"
            )))
        }
        Err(e) if top.saw_records || top.is_array => {
            let n = top.records.len();
            Ok(Parsed::Events {
                envelope: if top.is_array {
                    Envelope::Array
                } else {
                    Envelope::Trail
                },
                records: top.records.into_iter().map(RecordText::Borrowed).collect(),
                broken: Some(FileError::Truncated {
                    records: n,
                    source: e,
                }),
            })
        }
        Err(e) => Err(FileError::Json(e)),
        Ok(()) if de.end().is_err() => parse_stream(text),
        Ok(()) if top.is_array => Ok(Parsed::Events {
            envelope: Envelope::Array,
            records: top.records.into_iter().map(RecordText::Borrowed).collect(),
            broken: None,
        }),
        Ok(()) if top.saw_records => Ok(Parsed::Events {
            envelope: Envelope::Trail,
            records: top.records.into_iter().map(RecordText::Borrowed).collect(),
            broken: None,
        }),
        Ok(()) => {
            let raw: &RawValue = serde_json::from_str(text.trim()).map_err(FileError::Json)?;
            let mut records = Vec::new();
            match classify(raw, &top.others, &mut records)? {
                Some(envelope) => Ok(Parsed::Events {
                    envelope,
                    records,
                    broken: None,
                }),
                None if is_digest(&top.others) => Ok(Parsed::Digest),
                None if strict => Err(FileError::Envelope(
                    "a JSON object with no Records, Events, detail or logEvents, and no CloudTrail fields"
                        .into(),
                )),
                None => Ok(Parsed::NotCloudTrail("JSON that is not CloudTrail")),
            }
        }
    }
}

/// NDJSON: one JSON value per line, each a record or an envelope of records.
fn parse_stream(text: &str) -> Result<Parsed<'_>, FileError> {
    let mut records = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let mut broken = None;
    for value in &mut stream {
        match value {
            Ok(raw) => match Entries::parse(raw) {
                Some(entries) => {
                    if classify(raw, &entries.0, &mut records)?.is_none() {
                        records.push(RecordText::Borrowed(raw));
                    }
                }
                None => records.push(RecordText::Reject(
                    Cow::Borrowed(raw.get()),
                    "record is not a JSON object".into(),
                )),
            },
            Err(e) => {
                broken = Some(FileError::Truncated {
                    records: records.len(),
                    source: e,
                });
                break;
            }
        }
    }
    Ok(Parsed::Events {
        envelope: Envelope::Ndjson,
        records,
        broken,
    })
}

fn find<'a>(entries: &[(Cow<'a, str>, &'a RawValue)], key: &str) -> Option<&'a RawValue> {
    entries
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
}

/// Recognises one JSON object: pushes its records and names its envelope, or returns `None`
/// when it is none of the known envelopes and does not look like a record.
fn classify<'a>(
    whole: &'a RawValue,
    entries: &[(Cow<'a, str>, &'a RawValue)],
    out: &mut Vec<RecordText<'a>>,
) -> Result<Option<Envelope>, FileError> {
    if let Some(events) = find(entries, "Events") {
        let items: Vec<&RawValue> = serde_json::from_str(events.get())
            .map_err(|_| FileError::Envelope("`Events` is not an array".into()))?;
        for item in items {
            out.push(embedded_record(item, "CloudTrailEvent"));
        }
        return Ok(Some(Envelope::LookupEvents));
    }
    if find(entries, "CloudTrailEvent").is_some() {
        out.push(embedded_record(whole, "CloudTrailEvent"));
        return Ok(Some(Envelope::LookupEvents));
    }
    if let Some(detail) = find(entries, "detail")
        && (find(entries, "detail-type").is_some() || find(entries, "source").is_some())
    {
        if detail.get().starts_with('{') {
            out.push(RecordText::Borrowed(detail));
        } else {
            out.push(RecordText::Reject(
                Cow::Borrowed(whole.get()),
                "EventBridge `detail` is not a JSON object".into(),
            ));
        }
        return Ok(Some(Envelope::EventBridge));
    }
    if let Some(log_events) = find(entries, "logEvents") {
        let items: Vec<&RawValue> = serde_json::from_str(log_events.get())
            .map_err(|_| FileError::Envelope("`logEvents` is not an array".into()))?;
        for item in items {
            out.push(embedded_record(item, "message"));
        }
        return Ok(Some(Envelope::CloudWatchLogs));
    }
    if find(entries, "Records").is_some() {
        return Err(FileError::Envelope("`Records` is not an array".into()));
    }
    let record_like = entries
        .iter()
        .any(|(k, _)| RECORD_KEYS.iter().any(|r| r.eq_ignore_ascii_case(k)));
    if record_like {
        out.push(RecordText::Borrowed(whole));
        return Ok(Some(Envelope::Record));
    }
    Ok(None)
}

/// A record carried as a JSON string under `key` of an envelope item.
fn embedded_record<'a>(item: &'a RawValue, key: &str) -> RecordText<'a> {
    let reject = |why: String| RecordText::Reject(Cow::Borrowed(item.get()), why);
    let Some(entries) = Entries::parse(item) else {
        return reject(format!("envelope item is not an object with `{key}`"));
    };
    let Some(value) = find(&entries.0, key) else {
        return reject(format!("envelope item has no `{key}`"));
    };
    let Ok(text) = serde_json::from_str::<String>(value.get()) else {
        return reject(format!("`{key}` is not a string"));
    };
    match RawValue::from_string(text) {
        Ok(raw) => RecordText::Owned(raw),
        Err(e) => reject(format!("`{key}` is not valid JSON: {e}")),
    }
}

fn is_digest(entries: &[(Cow<'_, str>, &RawValue)]) -> bool {
    find(entries, "digestPublicKeyFingerprint").is_some()
        || (find(entries, "digestStartTime").is_some() && find(entries, "logFiles").is_some())
}

/// The first JSON value of a file: the `Records` array is streamed into `records` element by
/// element, so that a file that breaks off still yields the records before the break.
#[derive(Default)]
struct Top<'a> {
    records: Vec<&'a RawValue>,
    others: Vec<(Cow<'a, str>, &'a RawValue)>,
    saw_records: bool,
    is_array: bool,
}

struct TopSeed<'t, 'a>(&'t mut Top<'a>);

impl<'de, 't> DeserializeSeed<'de> for TopSeed<'t, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 't> Visitor<'de> for TopSeed<'t, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "Records" && !self.0.saw_records {
                self.0.saw_records = true;
                map.next_value_seed(RecordsSeed(&mut self.0.records))?;
            } else {
                let value: &'de RawValue = map.next_value()?;
                self.0.others.push((key, value));
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.is_array = true;
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            self.0.records.push(v);
        }
        Ok(())
    }
}

struct RecordsSeed<'t, 'a>(&'t mut Vec<&'a RawValue>);

impl<'de, 't> DeserializeSeed<'de> for RecordsSeed<'t, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, 't> Visitor<'de> for RecordsSeed<'t, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the `Records` array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            self.0.push(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(p: &Parsed<'_>) -> Vec<String> {
        let Parsed::Events { records, .. } = p else {
            panic!("expected events, got {p:?}")
        };
        records
            .iter()
            .map(|r| match r {
                RecordText::Borrowed(r) => r.get().to_string(),
                RecordText::Owned(r) => r.get().to_string(),
                RecordText::Scanned(t, _) => t.to_string(),
                RecordText::Reject(t, why) => format!("REJECT {t} {why}"),
            })
            .collect()
    }

    fn envelope(p: &Parsed<'_>) -> Envelope {
        match p {
            Parsed::Events { envelope, .. } => *envelope,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// What serde_json's path makes of `text`: the records' texts, or `None` when it fails or
    /// the file is not a whole trail file.
    fn serde_trail(text: &str) -> Option<Vec<String>> {
        match parse_text(text, true) {
            Ok(
                p @ Parsed::Events {
                    envelope: Envelope::Trail,
                    broken: None,
                    ..
                },
            ) => Some(texts(&p)),
            _ => None,
        }
    }

    /// The validating scan accepts `text` only where serde_json does, with the same records,
    /// each split and hashed as the per-record path would.
    fn check_scan(text: &str) -> bool {
        let Some(scanned) = scan_trail(text) else {
            return false;
        };
        // As serde_json reads a raw value (a lone surrogate escape is accepted there).
        assert!(
            serde_json::from_str::<&RawValue>(text).is_ok(),
            "the scan accepted invalid JSON: {text:?}"
        );
        let got: Vec<String> = scanned.iter().map(|(t, _)| t.to_string()).collect();
        assert_eq!(Some(got), serde_trail(text), "{text:?}");
        for (t, (members, hash)) in scanned {
            let raw: &RawValue = serde_json::from_str(t).expect("json");
            assert_eq!(hash, crate::normalize::content_hash(raw), "{t}");
            let entries: Vec<(Cow<'_, str>, &str)> = Entries::parse(raw)
                .expect("object")
                .0
                .into_iter()
                .map(|(k, v)| (k, v.get()))
                .collect();
            assert_eq!(members, entries, "{t}");
        }
        true
    }

    #[test]
    fn the_validating_scan_takes_only_whole_valid_trail_files() {
        let ok = [
            r#"{"Records":[]}"#,
            " {\"Records\" :\t[ {\"eventTime\":\"x\"} ,\n{\"a\":[1,-0.5e+3,{\"b\":null}],\"t\":true,\"f\":false}] }\n",
            r#"{"Records":[{"s":"\"\\\/\b\f\n\r\t\u00e9\ud800"}]}"#,
            r#"{"Records":[{"n":0,"m":-0,"big":1e400,"k":18446744073709551616}]}"#,
        ];
        for text in ok {
            assert!(check_scan(text), "not taken: {text}");
        }
        let deep = format!(
            "{{\"Records\":[{{\"a\":{}1{}}}]}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        let hostile = format!("{{\"Records\":[{{\"a\":{}", "[".repeat(1_000_000));
        let not_taken = [
            // Other envelopes and shapes: serde's path reads them.
            r#"{"Records":[{"a":1}],"Other":1}"#,
            r#"{"Other":1,"Records":[{"a":1}]}"#,
            r#"{"Records":{"a":1}}"#,
            r#"{"Records":[1,{"a":1}]}"#,
            r#"[{"a":1}]"#,
            "{\"Records\":[{\"a\":1}]}\n{\"Records\":[]}",
            // Not JSON.
            "{\"Records\":[{\"a\":\"tab\there\"}]}",
            r#"{"Records":[{"a":"\x"}]}"#,
            r#"{"Records":[{"a":"\u12G4"}]}"#,
            r#"{"Records":[{"a":"\u12"}]}"#,
            r#"{"Records":[{"a":01}]}"#,
            r#"{"Records":[{"a":1.}]}"#,
            r#"{"Records":[{"a":.5}]}"#,
            r#"{"Records":[{"a":1e}]}"#,
            r#"{"Records":[{"a":-}]}"#,
            r#"{"Records":[{"a":+1}]}"#,
            r#"{"Records":[{"a":1,}]}"#,
            r#"{"Records":[{"a":1},]}"#,
            r#"{"Records":[{"a" 1}]}"#,
            r#"{"Records":[{"a":tru}]}"#,
            r#"{"Records":[{"a":nul}]}"#,
            r#"{"Records":[{a:1}]}"#,
            r#"{"Records":[{"a":1}]"#,
            r#"{"Records":[{"a":1}]}x"#,
            r#"{"Records":[{"a":"unterminated}]}"#,
            &deep,
            &hostile,
        ];
        for text in not_taken {
            assert!(!check_scan(text), "taken: {}", &text[..text.len().min(80)]);
        }
        // serde's path still reads the deeply nested record (and quarantines nothing here).
        assert_eq!(serde_trail(&deep).map(|r| r.len()), Some(1));
    }

    /// Thousands of corrupted copies of real trail files: wherever the scan takes one, serde_json
    /// accepts it too and finds the same records.
    #[test]
    fn the_validating_scan_agrees_with_serde_on_corrupted_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-logs");
        let mut stack = vec![root];
        let mut texts = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(c) = crate::decompress::decode(
                    std::fs::read(&path).expect("read"),
                    1 << 30,
                    Vec::new(),
                ) && let Ok(text) = String::from_utf8(c.bytes)
                    && scan_trail(&text).is_some()
                {
                    texts.push(text);
                }
            }
        }
        assert!(texts.len() >= 5, "{} trail files", texts.len());
        // xorshift: the same corruptions on every run.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"{}[]:,\"\\ \tnulltruefalse0123456789-+.eEu\x01abc";
        let (mut taken, mut refused) = (0, 0);
        for i in 0..3000 {
            let mut bytes = texts[i % texts.len()].clone().into_bytes();
            for _ in 0..1 + next() % 3 {
                let at = (next() % bytes.len() as u64) as usize;
                let b = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            if check_scan(&text) {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes are exercised (many corruptions land inside a string and stay valid).
        assert!(
            taken > 100 && refused > 100,
            "{taken} taken, {refused} refused"
        );
    }

    #[test]
    fn trail_file() {
        let p = parse(br#"{"Records":[{"eventTime":"x"},{"a":1.0}]}"#, true).expect("parse");
        assert_eq!(envelope(&p), Envelope::Trail);
        assert_eq!(texts(&p), [r#"{"eventTime":"x"}"#, r#"{"a":1.0}"#]);
    }

    #[test]
    fn truncated_trail_file_keeps_records_before_the_break() {
        let p = parse(
            br#"{"Records":[{"eventName":"A"},{"eventName":"B"},{"eventNa"#,
            true,
        )
        .expect("parse");
        assert_eq!(texts(&p), [r#"{"eventName":"A"}"#, r#"{"eventName":"B"}"#]);
        let Parsed::Events { broken, .. } = p else {
            unreachable!()
        };
        assert!(matches!(
            broken,
            Some(FileError::Truncated { records: 2, .. })
        ));
    }

    #[test]
    fn ndjson_and_eventbridge_and_lookup_events() {
        let text = concat!(
            r#"{"eventName":"A","eventTime":"t"}"#,
            "\n",
            r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","detail":{"eventName":"B"}}"#,
            "\n",
            r#"{"EventId":"1","CloudTrailEvent":"{\"eventName\":\"C\"}"}"#,
            "\n",
            "[1]\n"
        );
        let p = parse(text.as_bytes(), false).expect("parse");
        assert_eq!(envelope(&p), Envelope::Ndjson);
        assert_eq!(
            texts(&p),
            [
                r#"{"eventName":"A","eventTime":"t"}"#,
                r#"{"eventName":"B"}"#,
                r#"{"eventName":"C"}"#,
                "REJECT [1] record is not a JSON object"
            ]
        );
    }

    #[test]
    fn lookup_events_output() {
        let text = r#"{"Events":[{"EventId":"1","CloudTrailEvent":"{\"eventName\":\"C\"}"},{"EventId":"2"}],"NextToken":"x"}"#;
        let p = parse(text.as_bytes(), false).expect("parse");
        assert_eq!(envelope(&p), Envelope::LookupEvents);
        assert_eq!(
            texts(&p),
            [
                r#"{"eventName":"C"}"#.to_string(),
                r#"REJECT {"EventId":"2"} envelope item has no `CloudTrailEvent`"#.to_string()
            ]
        );
    }

    #[test]
    fn cloudwatch_logs_payload() {
        let text = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"{\"eventName\":\"D\"}"}]}"#;
        let p = parse(text.as_bytes(), true).expect("parse");
        assert_eq!(envelope(&p), Envelope::CloudWatchLogs);
        assert_eq!(texts(&p), [r#"{"eventName":"D"}"#]);
    }

    #[test]
    fn other_files() {
        assert!(matches!(
            parse(b"# README\n", false),
            Ok(Parsed::NotCloudTrail(_))
        ));
        assert!(matches!(
            parse(br#"{"name":"manifest"}"#, false),
            Ok(Parsed::NotCloudTrail(_))
        ));
        assert!(matches!(
            parse(br#"{"name":"manifest"}"#, true),
            Err(FileError::Envelope(_))
        ));
        assert!(matches!(
            parse(br#"{"Records":"no"}"#, true),
            Err(FileError::Envelope(_))
        ));
        assert!(matches!(
            parse(br#"{"digestStartTime":"x","logFiles":[]}"#, true),
            Ok(Parsed::Digest)
        ));
        assert!(matches!(parse(b"{not json", true), Err(FileError::Json(_))));
    }
}
