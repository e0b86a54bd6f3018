//! One digest file: where CloudTrail names it, what it holds, and the string its signature
//! covers. The scheme is CloudTrail's log file integrity validation as AWS documents it for
//! custom validators ("Custom implementations of CloudTrail log file integrity validation").

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::value::RawValue;

/// What a digest file's name says:
/// `<account>_CloudTrail-Digest_<region>_<trail>_<home region>_<YYYYMMDDTHHMMSSZ>[_backfill].json.gz`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct DigestName {
    pub account: String,
    /// The region that delivered the digest (and the logs it lists).
    pub region: String,
    pub trail: String,
    pub home_region: String,
    /// The end of the hour it covers (the name's timestamp).
    pub end: DateTime<Utc>,
    /// A backfill digest: logs delivered late, in a chain of their own.
    pub backfill: bool,
}

impl DigestName {
    /// Parses a digest file's name (the last part of its key); `None` when it is not one.
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_suffix(".json.gz")?;
        let (stem, backfill) = match stem.strip_suffix("_backfill") {
            Some(s) => (s, true),
            None => (stem, false),
        };
        // The timestamp is the 16 characters at the end, after a `_`.
        let split = stem.len().checked_sub(16)?;
        let (head, stamp) = (stem.get(..split)?, stem.get(split..)?);
        let end = compact_time(stamp)?;
        let head = head.strip_suffix('_')?;
        // Regions have no `_`; trail names may.
        let (head, home_region) = head.rsplit_once('_')?;
        let (account, rest) = head.split_once("_CloudTrail-Digest_")?;
        let (region, trail) = rest.split_once('_')?;
        if account.is_empty() || region.is_empty() || trail.is_empty() || home_region.is_empty() {
            return None;
        }
        Some(Self {
            account: account.to_string(),
            region: region.to_string(),
            trail: trail.to_string(),
            home_region: home_region.to_string(),
            end,
            backfill,
        })
    }

    /// The chain this digest belongs to: one per trail, account and delivering region, and the
    /// backfill digests apart.
    pub fn chain(&self) -> ChainId {
        ChainId {
            account: self.account.clone(),
            region: self.region.clone(),
            trail: self.trail.clone(),
            home_region: self.home_region.clone(),
            backfill: self.backfill,
        }
    }
}

/// Which chain of digests one belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ChainId {
    pub account: String,
    pub region: String,
    pub trail: String,
    pub home_region: String,
    pub backfill: bool,
}

impl std::fmt::Display for ChainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trail {} ({}), account {}, region {}",
            self.trail, self.home_region, self.account, self.region
        )?;
        if self.backfill {
            f.write_str(", backfill")?;
        }
        Ok(())
    }
}

/// The delivery time in a log file's name
/// (`<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<unique>.json.gz`).
pub fn log_delivery_time(file_name: &str) -> Option<DateTime<Utc>> {
    let rest = file_name.split_once("_CloudTrail_")?.1;
    let stamp = rest.split('_').nth(1)?;
    compact_time(stamp)
}

/// A time as CloudTrail writes it in names: `YYYYMMDDTHHMMZ`, or `YYYYMMDDTHHMMSSZ` with
/// seconds. Read by hand, not by a format string: a run reads half a million names.
fn compact_time(stamp: &str) -> Option<DateTime<Utc>> {
    let bytes = stamp.as_bytes();
    let seconds = match bytes.len() {
        14 => false,
        16 => true,
        _ => return None,
    };
    if bytes.get(8) != Some(&b'T') || bytes.last() != Some(&b'Z') {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = bytes.get(from..to)?;
        digits.iter().try_fold(0u32, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(4, 6)?,
        number(6, 8)?,
    )?;
    let second = if seconds { number(13, 15)? } else { 0 };
    Some(
        date.and_hms_opt(number(9, 11)?, number(11, 13)?, second)?
            .and_utc(),
    )
}

/// A log file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRef {
    pub bucket: String,
    pub object: String,
    /// Lowercase hex SHA-256 of the log file's uncompressed bytes.
    pub hash: String,
}

/// The fields of a digest that validation reads.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Lowercase hex SHA-256 of the uncompressed digest file.
    pub sha256: String,
    /// `digestEndTime` exactly as written: it is signed as text.
    pub end_time: String,
    pub start_time: String,
    pub bucket: String,
    pub object: String,
    pub fingerprint: String,
    pub previous_bucket: Option<String>,
    pub previous_object: Option<String>,
    pub previous_hash: Option<String>,
    pub previous_signature: Option<String>,
    pub log_files: Vec<LogRef>,
}

impl Digest {
    /// Reads a digest's uncompressed bytes; the error says which required field is missing or
    /// malformed. Only the fields read here are decoded (the rest is skipped, not built).
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let fields: Fields<'_> =
            serde_json::from_slice(raw).map_err(|e| format!("not a digest (invalid JSON: {e})"))?;
        // A struct also reads from a list: a digest is an object.
        if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err("not a digest (not a JSON object)".into());
        }
        let text = |name: &str, field: Option<&RawValue>| -> Result<String, String> {
            match field.map(json_text) {
                Some(Some(Ok(s))) => Ok(s),
                Some(_) => Err(format!("`{name}` is not a string")),
                None => Err(format!("`{name}` is missing")),
            }
        };
        // Present, and a string or null (a starting digest has nulls).
        let nullable = |name: &str, field: Option<&RawValue>| -> Result<Option<String>, String> {
            match field {
                Some(v) if v.get() == "null" => Ok(None),
                Some(v) => match json_text(v) {
                    Some(Ok(s)) => Ok(Some(s)),
                    _ => Err(format!("`{name}` is neither a string nor null")),
                },
                None => Err(format!("`{name}` is missing")),
            }
        };
        let optional = |field: Option<&RawValue>| field.and_then(json_text).and_then(Result::ok);
        let logs = match fields.log_files {
            Some(v) if v.get().starts_with('[') => {
                serde_json::from_str::<Vec<LogFields<'_>>>(v.get())
                    .map_err(|e| format!("`logFiles`: {e}"))?
            }
            Some(_) => return Err("`logFiles` is not a list".into()),
            None => return Err("`logFiles` is missing".into()),
        };
        let mut log_files = Vec::with_capacity(logs.len());
        for (i, item) in logs.iter().enumerate() {
            let field = |name: &str, value: Option<&RawValue>| {
                value
                    .and_then(json_text)
                    .and_then(Result::ok)
                    .ok_or_else(|| format!("`logFiles[{i}].{name}` is missing or not a string"))
            };
            log_files.push(LogRef {
                bucket: field("s3Bucket", item.s3_bucket)?,
                object: field("s3Object", item.s3_object)?,
                hash: field("hashValue", item.hash_value)?.to_ascii_lowercase(),
            });
        }
        Ok(Self {
            sha256: sha256_hex(raw),
            end_time: text("digestEndTime", fields.digest_end_time)?,
            start_time: text("digestStartTime", fields.digest_start_time)?,
            bucket: text("digestS3Bucket", fields.digest_s3_bucket)?,
            object: text("digestS3Object", fields.digest_s3_object)?,
            fingerprint: text(
                "digestPublicKeyFingerprint",
                fields.digest_public_key_fingerprint,
            )?
            .to_ascii_lowercase(),
            previous_signature: nullable(
                "previousDigestSignature",
                fields.previous_digest_signature,
            )?,
            previous_bucket: optional(fields.previous_digest_s3_bucket),
            previous_object: optional(fields.previous_digest_s3_object),
            previous_hash: optional(fields.previous_digest_hash_value)
                .map(|h| h.to_ascii_lowercase()),
            log_files,
        })
    }

    /// The bytes the digest's signature covers: its end time as written, its bucket and key,
    /// the hex SHA-256 of its uncompressed bytes and the previous digest's signature (the four
    /// characters `null` for a starting digest), joined by new lines, no new line at the end.
    pub fn string_to_sign(&self) -> String {
        format!(
            "{}\n{}/{}\n{}\n{}",
            self.end_time,
            self.bucket,
            self.object,
            self.sha256,
            self.previous_signature.as_deref().unwrap_or("null")
        )
    }
}

/// The fields of a digest that are read, each as its JSON text, so that a wrong type is said
/// by name rather than as a decoding error.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    digest_end_time: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    digest_start_time: Option<&'a RawValue>,
    #[serde(
        default,
        borrow,
        rename = "digestS3Bucket",
        deserialize_with = "present"
    )]
    digest_s3_bucket: Option<&'a RawValue>,
    #[serde(
        default,
        borrow,
        rename = "digestS3Object",
        deserialize_with = "present"
    )]
    digest_s3_object: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    digest_public_key_fingerprint: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    previous_digest_signature: Option<&'a RawValue>,
    #[serde(
        default,
        borrow,
        rename = "previousDigestS3Bucket",
        deserialize_with = "present"
    )]
    previous_digest_s3_bucket: Option<&'a RawValue>,
    #[serde(
        default,
        borrow,
        rename = "previousDigestS3Object",
        deserialize_with = "present"
    )]
    previous_digest_s3_object: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    previous_digest_hash_value: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    log_files: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct LogFields<'a> {
    #[serde(default, borrow, rename = "s3Bucket", deserialize_with = "present")]
    s3_bucket: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "s3Object", deserialize_with = "present")]
    s3_object: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "hashValue", deserialize_with = "present")]
    hash_value: Option<&'a RawValue>,
}

/// A field that is there, `null` included (as `Option` alone, `null` would read as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// A JSON string's text; none when the value is not a string.
fn json_text(value: &RawValue) -> Option<Result<String, serde_json::Error>> {
    let text = value.get();
    if !text.starts_with('"') {
        return None;
    }
    // The value was read as JSON already: a string without escapes is what its quotes hold.
    match text.get(1..text.len().saturating_sub(1)) {
        Some(inner) if text.len() >= 2 && !inner.contains('\\') => Some(Ok(inner.to_string())),
        _ => Some(serde_json::from_str::<String>(text)),
    }
}

/// A SHA-256, as bytes (a run that hashes 400,000 log files keeps them this way, not as hex).
pub type Sha256 = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Sha256 {
    let mut out = [0; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
    out
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_names_are_read_with_underscores_in_the_trail_name() {
        let name = DigestName::parse(
            "111122223333_CloudTrail-Digest_eu-west-1_org_trail_main_us-east-1_20261104T011031Z.json.gz",
        )
        .expect("a digest name");
        assert_eq!(name.account, "111122223333");
        assert_eq!(name.region, "eu-west-1");
        assert_eq!(name.trail, "org_trail_main");
        assert_eq!(name.home_region, "us-east-1");
        assert_eq!(name.end.to_rfc3339(), "2026-11-04T01:10:31+00:00");
        assert!(!name.backfill);
        let backfill = DigestName::parse(
            "111122223333_CloudTrail-Digest_eu-west-1_t_us-east-1_20261104T011031Z_backfill.json.gz",
        )
        .expect("a backfill digest name");
        assert!(backfill.backfill);
        assert_ne!(backfill.chain(), name.chain());
        for not_one in [
            "111122223333_CloudTrail_us-east-1_20261104T0110Z_Ef7gH9jK1lM3nP5q.json.gz",
            "111122223333_CloudTrail-Digest_us-east-1_20261104T011031Z.json.gz",
            "111122223333_CloudTrail-Digest_eu-west-1_t_us-east-1_20261104T011031Z.json",
        ] {
            assert_eq!(DigestName::parse(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn log_names_give_their_delivery_time() {
        let t = log_delivery_time(
            "111122223333_CloudTrail_us-east-1_20261104T0005Z_Ab3dE5fG7hJ9kL1m.json.gz",
        );
        assert_eq!(
            t.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-04T00:05:00+00:00")
        );
        assert_eq!(log_delivery_time("notes.json.gz"), None);
    }

    #[test]
    fn names_times_are_read_exactly_or_not_at_all() {
        let at = |s: &str| compact_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("20261104T011031Z").as_deref(),
            Some("2026-11-04T01:10:31+00:00")
        );
        assert_eq!(
            at("20240229T2359Z").as_deref(),
            Some("2024-02-29T23:59:00+00:00")
        );
        for bad in [
            "20250229T2359Z",
            "20261304T0005Z",
            "20261104T2405Z",
            "20261104T0060Z",
            "20261104T011061Z",
            "20261104 0005Z",
            "20261104T0005",
            "2026110T0005Z",
            "2026110+T0005Z",
            "20261104T00059Z",
            "",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_string_to_sign_is_cloudtrails_with_the_null_rule() {
        let raw = br#"{"awsAccountId":"111122223333","digestStartTime":"2026-11-04T00:10:31Z","digestEndTime":"2026-11-04T01:10:31Z","digestS3Bucket":"org-trail-logs","digestS3Object":"AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/04/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20261104T011031Z.json.gz","digestPublicKeyFingerprint":"0123456789ABCDEF0123456789abcdef","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}"#;
        let digest = Digest::parse(raw).expect("a digest");
        assert_eq!(digest.fingerprint, "0123456789abcdef0123456789abcdef");
        // The SHA-256 of these exact bytes, as `sha256sum` prints it.
        assert_eq!(digest.sha256, sha256_hex(raw));
        assert_eq!(
            digest.string_to_sign(),
            format!(
                "2026-11-04T01:10:31Z\norg-trail-logs/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/04/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20261104T011031Z.json.gz\n{}\nnull",
                digest.sha256
            )
        );
        let missing = br#"{"digestEndTime":"2026-11-04T01:10:31Z","logFiles":[]}"#;
        let error = Digest::parse(missing).expect_err("fields are missing");
        assert!(error.contains("digestStartTime"), "{error}");
        let absent_signature =
            String::from_utf8_lossy(raw).replace(",\"previousDigestSignature\":null", "");
        let error = Digest::parse(absent_signature.as_bytes()).expect_err("must be present");
        assert!(error.contains("previousDigestSignature"), "{error}");
    }

    #[test]
    fn each_field_of_the_wrong_type_is_named_and_strings_are_unescaped() {
        let digest = |previous: &str, logs: &str| {
            format!(
                r#"{{"digestStartTime":"s","digestEndTime":"e","digestS3Bucket":"b","digestS3Object":"AWSLogs\/o","digestPublicKeyFingerprint":"F","previousDigestS3Object":{previous},"previousDigestHashValue":"AB","previousDigestSignature":{previous},"logFiles":{logs},"extra":{{"nested":[1,2]}}}}"#
            )
        };
        let read = Digest::parse(
            digest(
                r#""x""#,
                r#"[{"s3Bucket":"b","s3Object":"kA","hashValue":"FF"}]"#,
            )
            .as_bytes(),
        )
        .expect("a digest");
        assert_eq!(read.object, "AWSLogs/o");
        assert_eq!(read.previous_signature.as_deref(), Some("x"));
        assert_eq!(read.previous_hash.as_deref(), Some("ab"));
        assert_eq!(
            read.log_files,
            [LogRef {
                bucket: "b".into(),
                object: "kA".into(),
                hash: "ff".into()
            }]
        );
        let null = Digest::parse(digest("null", "[]").as_bytes()).expect("a starting digest");
        assert_eq!(null.previous_signature, None);
        assert_eq!(null.previous_object, None);
        for (previous, logs, said) in [
            (
                "7",
                "[]",
                "`previousDigestSignature` is neither a string nor null",
            ),
            ("null", "{}", "`logFiles` is not a list"),
            (
                "null",
                r#"[{"s3Bucket":"b","hashValue":"ff"}]"#,
                "`logFiles[0].s3Object` is missing or not a string",
            ),
            (
                "null",
                r#"[{"s3Bucket":"b","s3Object":3,"hashValue":"ff"}]"#,
                "`logFiles[0].s3Object` is missing or not a string",
            ),
        ] {
            let error = Digest::parse(digest(previous, logs).as_bytes()).expect_err(said);
            assert!(error.contains(said), "{error}");
        }
        let error = Digest::parse(br#"{"digestEndTime":5,"logFiles":[]}"#).expect_err("a number");
        assert!(error.contains("`digestEndTime` is not a string"), "{error}");
        assert!(
            Digest::parse(b" [\"e\"]")
                .expect_err("a list")
                .contains("not a JSON object")
        );
        assert!(
            Digest::parse(b"{")
                .expect_err("cut")
                .contains("invalid JSON")
        );
    }

    #[test]
    fn sha256_matches_the_known_answer() {
        // FIPS 180-2's test vector.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
