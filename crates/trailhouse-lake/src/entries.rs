//! A JSON object read as its ordered list of members, values left as raw JSON text.
//!
//! `serde_json::Value` would merge a repeated key (keeping the last) and re-format numbers; this
//! keeps every member, in order, exactly as written, which is what lossless storage needs.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of one JSON object, in input order, repeated keys included.
#[derive(Debug, Default)]
pub struct Entries<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Entries<'a> {
    /// Parses `raw` as a JSON object; `None` when it is any other JSON value.
    pub fn parse(raw: &'a RawValue) -> Option<Self> {
        Self::parse_str(raw.get())
    }

    /// Parses `text`, one JSON value with no surrounding white space, as a JSON object; `None`
    /// when it is any other JSON value (or not JSON).
    pub fn parse_str(text: &'a str) -> Option<Self> {
        if !text.starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Owned counterpart of [`Entries`], for text that does not outlive the parse.
pub fn parse_owned(text: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    let entries = Entries::parse(raw)?;
    Some(
        entries
            .0
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.to_owned()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_repeated_keys_order_and_number_text() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"a":1.50,"b":{"x":[1e3]},"a":"two","k\"q":null}"#)
                .expect("valid");
        let e = Entries::parse(raw).expect("object");
        let got: Vec<(&str, &str)> = e.0.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
        assert_eq!(
            got,
            vec![
                ("a", "1.50"),
                ("b", r#"{"x":[1e3]}"#),
                ("a", r#""two""#),
                ("k\"q", "null")
            ]
        );
    }

    #[test]
    fn non_objects_are_none() {
        for text in ["[1]", "\"s\"", "null", "3"] {
            let raw: &RawValue = serde_json::from_str(text).expect("valid");
            assert!(Entries::parse(raw).is_none(), "{text}");
        }
    }
}
