//! An S3 object's ETag, held in 24 bytes.
//!
//! A run's listing and the ledger hold one ETag for each object (400,000 for a 20M-event trail).
//! A CloudTrail log file is uploaded in one part, so its ETag is the quoted hex MD5 of its bytes
//! (`"9b2cf535f27731c974343645a3985328"`): held as those 16 bytes, inline, instead of 34 bytes
//! of text on the heap besides. Any other ETag (a multipart upload's `"…-3"`, upper-case hex, an
//! S3-compatible store's own) is held as its text. Either way it reads back exactly as listed,
//! and two ETags are equal exactly when their texts are.

use std::fmt;

/// An ETag, as S3 lists it (quotes included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ETag {
    /// `"` + 32 lower-case hex digits + `"`: those digits' 16 bytes.
    Md5([u8; 16]),
    /// Any other text.
    Text(Box<str>),
}

impl ETag {
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let quoted_md5 = bytes.len() == 34
            && bytes[0] == b'"'
            && bytes[33] == b'"'
            && bytes[1..33]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut md5 = [0; 16];
        if quoted_md5 && hex::decode_to_slice(&bytes[1..33], &mut md5).is_ok() {
            Self::Md5(md5)
        } else {
            Self::Text(text.into())
        }
    }
}

impl From<String> for ETag {
    fn from(text: String) -> Self {
        match Self::new(&text) {
            Self::Text(_) => Self::Text(text.into_boxed_str()),
            md5 => md5,
        }
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Md5(md5) => write!(f, "\"{}\"", hex::encode(md5)),
            Self::Text(text) => f.write_str(text),
        }
    }
}

impl serde::Serialize for ETag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ETag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = ETag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an ETag")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ETag, E> {
                Ok(ETag::new(text))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<ETag, E> {
                Ok(ETag::from(text))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_etag_reads_back_as_listed_and_md5s_are_held_inline() {
        let md5 = "\"9b2cf535f27731c974343645a3985328\"";
        assert_eq!(ETag::new(md5), ETag::Md5(hex_bytes()));
        for text in [
            md5,
            "\"9b2cf535f27731c974343645a3985328-3\"",
            "\"9B2CF535F27731C974343645A3985328\"",
            "9b2cf535f27731c974343645a3985328",
            "\"9b2cf535f27731c974343645a398532g\"",
            "",
            "\"\"",
            "W/\"weak\"",
            "\"ü9b2cf535f27731c974343645a39853\"",
        ] {
            let tag = ETag::new(text);
            assert_eq!(tag.to_string(), text);
            assert_eq!(ETag::from(text.to_string()), tag);
            let json = serde_json::to_string(&tag).expect("serialized");
            assert_eq!(json, serde_json::to_string(text).expect("text"));
            let back: ETag = serde_json::from_str(&json).expect("read back");
            assert_eq!(back, tag, "{text}");
            assert_eq!(
                matches!(tag, ETag::Md5(_)),
                text == md5,
                "only a quoted lower-case MD5 is held as bytes: {text}"
            );
        }
        assert_ne!(
            ETag::new(md5),
            ETag::new("\"9B2CF535F27731C974343645A3985328\""),
            "texts that differ are different ETags"
        );
        assert_eq!(std::mem::size_of::<Option<ETag>>(), 24);
    }

    fn hex_bytes() -> [u8; 16] {
        let mut md5 = [0; 16];
        hex::decode_to_slice("9b2cf535f27731c974343645a3985328", &mut md5).expect("hex");
        md5
    }
}
