//! The content hash that identifies a record across deliveries: equal for two copies of one
//! record however they were written (white space, member order, string escapes, number
//! spelling), computed by serde_json's single pass over the text. The record scanner
//! (`scan`) computes the same hash while splitting a record; tests hold the two together.

use std::borrow::Cow;

use serde_json::value::RawValue;
use trailhouse_lake::entries::Entries;
use xxhash_rust::xxh3::xxh3_64_with_seed;

#[cfg(test)]
use super::scan;

/// Content hash of a JSON value that two copies of one record share however they were written:
/// white space, the order of object members and string escapes do not change it, nor the
/// spelling of a number (`1.50` and `1.5` are one value). Computed in one pass over the text.
pub fn content_hash(raw: &RawValue) -> u64 {
    match Entries::parse(raw) {
        Some(entries) => members_hash(&entries.0),
        None => value_hash(raw),
    }
}

pub(super) fn members_hash(members: &[(Cow<'_, str>, &RawValue)]) -> u64 {
    // A commutative sum of member hashes: member order does not matter.
    let sum = members.iter().fold(0u64, |acc, (k, v)| {
        acc.wrapping_add(member_hash(
            xxh3_64_with_seed(k.as_bytes(), 1),
            value_hash(v),
        ))
    });
    xxh3_64_with_seed(&sum.to_le_bytes(), 3)
}

pub(super) fn member_hash(key: u64, value: u64) -> u64 {
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
pub(super) struct Canonical(pub(super) u64);

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

#[cfg(test)]
mod tests {
    use super::*;

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
                            crate::normalize::tests::assert_same_split(value.get());
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
