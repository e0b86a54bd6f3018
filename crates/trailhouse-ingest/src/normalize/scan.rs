//! One pass over a record's text that yields its top-level members and its content hash.
//!
//! Splitting a record into members (`Entries`) and hashing its content (`Canonical`, a serde
//! visitor) were two further serde_json passes over every record after the envelope's, a fifth of
//! ingest's CPU. This scanner does both at once over text serde_json has already accepted as one
//! JSON value: strings are found with `memchr` and hashed as they stand when they hold no escape
//! (the common case), so nothing is copied. It computes exactly the hash [`super::content_hash`]
//! defines — escaped strings and numbers are decoded by serde_json itself, and a value serde_json
//! cannot decode (a lone surrogate, a number out of range) gets the same raw-text fallback — and
//! anything unexpected makes it give up, so the caller takes the serde path. The equality of the
//! two on every record of the corpus and of tricky cases is tested.

use std::borrow::Cow;

use memchr::memchr2;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Canonical, member_hash};

/// The scan met text it does not handle; the caller takes the serde path.
#[derive(Debug)]
pub struct GiveUp;

/// A record's top-level members (decoded key, value text as written) and its content hash, or
/// `Ok(None)` when the text is not a JSON object.
pub type Scanned<'a> = (Vec<(Cow<'a, str>, &'a str)>, u64);

pub fn record(text: &str) -> Result<Option<Scanned<'_>>, GiveUp> {
    let mut s = Scanner { text, pos: 0 };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Ok(None);
    }
    let mut members = Vec::with_capacity(24);
    let mut sum = 0u64;
    s.list(b'}', |s| {
        let (key, value, hash) = s.member()?;
        // A key serde_json cannot decode: serde's path decides what the record is.
        let key = key.ok_or(GiveUp)?;
        let hash = hash.unwrap_or_else(|| xxh3_64_with_seed(value.as_bytes(), 4));
        sum = sum.wrapping_add(member_hash(xxh3_64_with_seed(key.as_bytes(), 1), hash));
        members.push((key, value));
        Ok(())
    })?;
    s.skip_ws();
    if s.pos != text.len() {
        return Err(GiveUp);
    }
    Ok(Some((members, xxh3_64_with_seed(&sum.to_le_bytes(), 3))))
}

/// An object member as [`Scanner::member`] reads it.
type Member<'a> = (Option<Cow<'a, str>>, &'a str, Option<u64>);

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, GiveUp> {
        let b = self.peek().ok_or(GiveUp)?;
        self.pos += 1;
        Ok(b)
    }

    fn expect(&mut self, want: u8) -> Result<(), GiveUp> {
        if self.next()? == want {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// The string starting at `pos` (an opening quote): its text between the quotes and whether
    /// it holds an escape. Leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<(&'a str, bool), GiveUp> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.bytes().get(self.pos..).ok_or(GiveUp)?;
            let at = memchr2(b'"', b'\\', rest).ok_or(GiveUp)?;
            self.pos += at;
            if rest[at] == b'"' {
                let inner = self.text.get(start..self.pos).ok_or(GiveUp)?;
                self.pos += 1;
                return Ok((inner, escaped));
            }
            // A backslash and the character it escapes (a `\u` escape's hex digits are plain).
            escaped = true;
            self.pos += 2;
        }
    }

    /// The elements of the list (`[…]` or `{…}`) starting at `pos`, each read by `item`
    /// between the separators; leaves `pos` after `close`.
    fn list(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), GiveUp>,
    ) -> Result<(), GiveUp> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            item(self)?;
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b if b == close => return Ok(()),
                _ => return Err(GiveUp),
            }
        }
    }

    /// One member of an object: its key decoded (`None` where serde_json cannot decode it), its
    /// value's text and the value's hash (see [`Scanner::value`]).
    fn member(&mut self) -> Result<Member<'a>, GiveUp> {
        let key_start = self.pos;
        let (inner, escaped) = self.string()?;
        let key = if escaped {
            let quoted = self.text.get(key_start..self.pos).ok_or(GiveUp)?;
            serde_json::from_str::<Cow<'a, str>>(quoted).ok()
        } else {
            Some(Cow::Borrowed(inner))
        };
        self.skip_ws();
        self.expect(b':')?;
        self.skip_ws();
        let start = self.pos;
        let hash = self.value()?;
        let value = self.text.get(start..self.pos).ok_or(GiveUp)?;
        Ok((key, value, hash))
    }

    /// Skips one value, returning its canonical hash (`None` where serde_json cannot decode it).
    fn value(&mut self) -> Result<Option<u64>, GiveUp> {
        match self.peek().ok_or(GiveUp)? {
            b'"' => {
                let start = self.pos;
                let (inner, escaped) = self.string()?;
                if !escaped {
                    return Ok(Some(xxh3_64_with_seed(inner.as_bytes(), 6)));
                }
                let quoted = self.text.get(start..self.pos).ok_or(GiveUp)?;
                Ok(serde_json::from_str::<Cow<'_, str>>(quoted)
                    .ok()
                    .map(|s| xxh3_64_with_seed(s.as_bytes(), 6)))
            }
            b'{' => {
                let mut sum = 0u64;
                let mut ok = true;
                self.list(b'}', |s| {
                    match s.member()? {
                        (Some(key), _, Some(value)) => {
                            let key = xxh3_64_with_seed(key.as_bytes(), 1);
                            sum = sum.wrapping_add(member_hash(key, value));
                        }
                        _ => ok = false,
                    }
                    Ok(())
                })?;
                Ok(ok.then(|| xxh3_64_with_seed(&sum.to_le_bytes(), 3)))
            }
            b'[' => {
                let mut h = 5u64;
                let mut ok = true;
                self.list(b']', |s| {
                    match s.value()? {
                        Some(item) => h = member_hash(h, item),
                        None => ok = false,
                    }
                    Ok(())
                })?;
                Ok(ok.then(|| xxh3_64_with_seed(&h.to_le_bytes(), 5)))
            }
            b't' => self.literal("true", xxh3_64_with_seed(&[1], 8)),
            b'f' => self.literal("false", xxh3_64_with_seed(&[0], 8)),
            b'n' => self.literal("null", 9),
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
                let number = self.text.get(start..self.pos).ok_or(GiveUp)?;
                Ok(serde_json::from_str::<Canonical>(number).ok().map(|c| c.0))
            }
            _ => Err(GiveUp),
        }
    }

    fn literal(&mut self, word: &str, hash: u64) -> Result<Option<u64>, GiveUp> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(Some(hash))
        } else {
            Err(GiveUp)
        }
    }
}
