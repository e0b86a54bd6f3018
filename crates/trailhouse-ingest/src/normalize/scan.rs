//! One pass over a record's text that yields its top-level members and its content hash, and
//! over a whole trail log file, one pass that also checks it is JSON.
//!
//! Splitting a record into members (`Entries`) and hashing its content (`Canonical`, a serde
//! visitor) were two further serde_json passes over every record after the envelope's, a fifth of
//! ingest's CPU; the envelope's own serde pass was another twentieth. The scanner does all of it at
//! once: strings are found eight bytes at a time ([`string_stop`]) and hashed as they stand when
//! they hold no escape (the common case), so nothing is copied. It accepts exactly the JSON serde_json accepts as a raw
//! value (control characters, escapes and the number grammar are checked; nesting deeper than
//! [`MAX_DEPTH`] gives up) and computes exactly the hash [`super::content_hash`] defines —
//! escaped strings and numbers are decoded by serde_json itself, and a value serde_json cannot
//! decode (a lone surrogate, a number out of range) gets the same raw-text fallback. Anything
//! unexpected makes it give up, so the caller takes the serde path. Agreement with serde_json is
//! tested on tricky cases, on every corpus and sample record, and on thousands of corrupted files.

use std::borrow::Cow;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::hash::{Canonical, member_hash};

/// The scan met text it does not handle; the caller takes the serde path.
#[derive(Debug)]
pub struct GiveUp;

/// A record's top-level members (decoded key, value text as written) and its content hash, or
/// `Ok(None)` when the text is not a JSON object.
pub type Scanned<'a> = (Members<'a>, u64);

/// An object's members: decoded key, value text as written.
pub type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

pub fn record(text: &str) -> Result<Option<Scanned<'_>>, GiveUp> {
    let mut s = Scanner::new(text);
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Ok(None);
    }
    let scanned = s.record()?;
    s.whole(scanned).map(Some)
}

/// The records of a trail log file — `{"Records":[{…},…]}` and nothing else — each with its
/// text and what [`record`] gives for it, in one pass over the file that also checks it is
/// JSON exactly as serde_json would (the envelope's serde parse was a further pass over every
/// byte). `None` for anything else: another envelope, a record that is not an object, text
/// that is not JSON, anything the scan gives up on. The caller then takes the serde path, which
/// says what is wrong and where.
pub fn trail(text: &str) -> Option<Vec<(&str, Scanned<'_>)>> {
    let mut s = Scanner::new(text);
    s.skip_ws();
    s.expect(b'{').ok()?;
    s.skip_ws();
    if s.string().ok()? != ("Records", false) {
        return None;
    }
    s.skip_ws();
    s.expect(b':').ok()?;
    s.skip_ws();
    if s.peek() != Some(b'[') {
        return None;
    }
    let mut records = Vec::new();
    s.list(b']', |s| {
        if s.peek() != Some(b'{') {
            return Err(GiveUp);
        }
        let start = s.pos;
        let scanned = s.record()?;
        records.push((s.text.get(start..s.pos).ok_or(GiveUp)?, scanned));
        Ok(())
    })
    .ok()?;
    s.skip_ws();
    s.expect(b'}').ok()?;
    s.whole(records).ok()
}

/// Where a string's run of plain characters stops: the first `"`, `\\` or control character of
/// `bytes`. Eight bytes at a time (most strings are short, so this beats a vector search that
/// must be followed by a second pass for control characters).
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes of `v` that are zero (or below `n`), flagged in their top bit. Borrows can flag
    // bytes after a true match, never before it, so the lowest flag is exact.
    let below = |v: u64, n: u64| v.wrapping_sub(LOW * n) & !v & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let found =
            below(v ^ (LOW * b'"' as u64), 1) | below(v ^ (LOW * b'\\' as u64), 1) | below(v, 0x20);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// The members of the JSON object `text` (decoded key, value text), split as [`record`] splits
/// a record but without hashing; `Ok(None)` when `text` is another JSON value.
pub fn members(text: &str) -> Result<Option<Members<'_>>, GiveUp> {
    let mut s = Scanner::new(text);
    if s.peek() != Some(b'{') {
        return Ok(None);
    }
    let mut members = Vec::with_capacity(8);
    s.list(b'}', |s| {
        let key = s.key()?.ok_or(GiveUp)?;
        let start = s.pos;
        s.skip()?;
        members.push((key, s.text.get(start..s.pos).ok_or(GiveUp)?));
        Ok(())
    })?;
    s.whole(members).map(Some)
}

/// The items of the JSON array `text` (their texts), without hashing; `Ok(None)` when `text` is
/// another JSON value.
pub fn items(text: &str) -> Result<Option<Vec<&str>>, GiveUp> {
    let mut s = Scanner::new(text);
    if s.peek() != Some(b'[') {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(4);
    s.list(b']', |s| {
        let start = s.pos;
        s.skip()?;
        items.push(s.text.get(start..s.pos).ok_or(GiveUp)?);
        Ok(())
    })?;
    s.whole(items).map(Some)
}

/// Nesting deeper than this makes the scan give up (serde's path has its own limit), so that a
/// hostile record cannot exhaust the stack.
const MAX_DEPTH: u32 = 128;

/// An object member as [`Scanner::member`] reads it.
type Member<'a> = (Option<Cow<'a, str>>, &'a str, Option<u64>);

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            pos: 0,
            depth: 0,
        }
    }

    /// The object at `pos`: its members and content hash.
    fn record(&mut self) -> Result<Scanned<'a>, GiveUp> {
        let mut members = Vec::with_capacity(24);
        let mut sum = 0u64;
        self.list(b'}', |s| {
            let (key, value, hash) = s.member()?;
            // A key serde_json cannot decode: serde's path decides what the record is.
            let key = key.ok_or(GiveUp)?;
            let hash = hash.unwrap_or_else(|| xxh3_64_with_seed(value.as_bytes(), 4));
            sum = sum.wrapping_add(member_hash(xxh3_64_with_seed(key.as_bytes(), 1), hash));
            members.push((key, value));
            Ok(())
        })?;
        Ok((members, xxh3_64_with_seed(&sum.to_le_bytes(), 3)))
    }

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
    /// it holds an escape. Leaves `pos` after the closing quote. Gives up on what JSON does not
    /// allow in a string: a control character, an unknown escape, `\u` without four hex digits.
    fn string(&mut self) -> Result<(&'a str, bool), GiveUp> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.bytes().get(self.pos..).ok_or(GiveUp)?;
            let at = string_stop(rest).ok_or(GiveUp)?;
            self.pos += at;
            if rest[at] < 0x20 {
                return Err(GiveUp);
            }
            if rest[at] == b'"' {
                let inner = self.text.get(start..self.pos).ok_or(GiveUp)?;
                self.pos += 1;
                return Ok((inner, escaped));
            }
            escaped = true;
            match rest.get(at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                // Any four hex digits: serde_json accepts a lone surrogate in a raw value too.
                Some(b'u') => match rest.get(at + 2..at + 6) {
                    Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => self.pos += 6,
                    _ => return Err(GiveUp),
                },
                _ => return Err(GiveUp),
            }
        }
    }

    /// Skips ASCII digits; whether there was at least one.
    fn digits(&mut self) -> bool {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips a number as JSON's grammar has it: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<(), GiveUp> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(GiveUp),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.digits() {
                return Err(GiveUp);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.digits() {
                return Err(GiveUp);
            }
        }
        Ok(())
    }

    /// The elements of the list (`[…]` or `{…}`) starting at `pos`, each read by `item`
    /// between the separators; leaves `pos` after `close`.
    fn list(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), GiveUp>,
    ) -> Result<(), GiveUp> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            item(self)?;
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b if b == close => {
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(GiveUp),
            }
        }
    }

    /// `out` when nothing but white space follows.
    fn whole<T>(&mut self, out: T) -> Result<T, GiveUp> {
        self.skip_ws();
        if self.pos == self.text.len() {
            Ok(out)
        } else {
            Err(GiveUp)
        }
    }

    /// An object member's key, decoded (`None` where serde_json cannot decode it), and the colon
    /// after it; leaves `pos` at the value.
    fn key(&mut self) -> Result<Option<Cow<'a, str>>, GiveUp> {
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
        Ok(key)
    }

    /// Skips one value, checking it as [`Scanner::value`] does, without hashing it.
    fn skip(&mut self) -> Result<(), GiveUp> {
        match self.peek().ok_or(GiveUp)? {
            b'"' => self.string().map(drop),
            b'{' => self.list(b'}', |s| {
                s.key()?;
                s.skip()
            }),
            b'[' => self.list(b']', Self::skip),
            b't' => self.literal("true", 0).map(drop),
            b'f' => self.literal("false", 0).map(drop),
            b'n' => self.literal("null", 0).map(drop),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(GiveUp),
        }
    }

    /// One member of an object: its key decoded (`None` where serde_json cannot decode it), its
    /// value's text and the value's hash (see [`Scanner::value`]).
    fn member(&mut self) -> Result<Member<'a>, GiveUp> {
        let key = self.key()?;
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
                self.number()?;
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

#[cfg(test)]
mod tests {
    use super::string_stop;

    #[test]
    fn string_stop_finds_the_first_quote_backslash_or_control_character() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        // Every byte value at every position of a few lengths, amid plain and high bytes.
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for special in 0..=255u8 {
                    for fill in [b'a', 0xC3, 0x80, 0x7F, 0x21, 0x5D] {
                        let mut bytes = vec![fill; len];
                        bytes[at] = special;
                        assert_eq!(string_stop(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
        // Several stops: the first one counts.
        let bytes = b"abc\x01def\"gh\\ij\x1f\x00";
        assert_eq!(string_stop(bytes), Some(3));
        assert_eq!(string_stop(&bytes[4..]), Some(3));
        assert_eq!(string_stop(b"no stop at all here, none."), None);
    }
}
