//! Sigma string values: wildcards and escapes, the value modifiers that transform them, and
//! their two renderings, a SQL `LIKE` pattern (for columns) and a regular expression (for paths
//! into JSON, matched by `json_path_match`).
//!
//! Escapes, per the specification: `\*`, `\?` and `\\` are a plain `*`, `?` and `\`; a backslash
//! before anything else is itself.

use base64::Engine;

/// One part of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `*`: any run of characters, the empty one included.
    Any,
    /// `?`: exactly one character.
    One,
}

/// A value with its wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub pieces: Vec<Piece>,
    /// `|cased`: compared case-sensitively.
    pub cased: bool,
}

impl Pattern {
    /// Reads a rule's string, with its wildcards and escapes.
    pub fn parse(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut chars = text.chars().peekable();
        let push_char = |pieces: &mut Vec<Piece>, c: char| match pieces.last_mut() {
            Some(Piece::Text(t)) => t.push(c),
            _ => pieces.push(Piece::Text(c.to_string())),
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        push_char(&mut pieces, n);
                    }
                    _ => push_char(&mut pieces, '\\'),
                },
                '*' => pieces.push(Piece::Any),
                '?' => pieces.push(Piece::One),
                c => push_char(&mut pieces, c),
            }
        }
        Self {
            pieces,
            cased: false,
        }
    }

    /// A value taken as it is (a number or boolean written in the rule, a transformed value).
    pub fn plain(text: &str) -> Self {
        Self {
            pieces: if text.is_empty() {
                Vec::new()
            } else {
                vec![Piece::Text(text.to_string())]
            },
            cased: false,
        }
    }

    /// The text when the value has no wildcard.
    pub fn as_plain(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Any | Piece::One => return None,
            }
        }
        Some(out)
    }

    /// `contains`, `startswith`, `endswith`: a `*` added where the value is open.
    pub fn open(mut self, start: bool, end: bool) -> Self {
        if start && self.pieces.first() != Some(&Piece::Any) {
            self.pieces.insert(0, Piece::Any);
        }
        if end && self.pieces.last() != Some(&Piece::Any) {
            self.pieces.push(Piece::Any);
        }
        self
    }

    /// As a `LIKE` pattern whose escape character is `\`.
    pub fn like(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Any => out.push('%'),
                Piece::One => out.push('_'),
                Piece::Text(t) => {
                    for c in t.chars() {
                        if matches!(c, '%' | '_' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    /// As a regular expression matching the whole value (`.` crossing line ends; case folded
    /// unless cased).
    pub fn regex(&self) -> String {
        let mut out = String::from(if self.cased { "(?s)^" } else { "(?is)^" });
        for p in &self.pieces {
            match p {
                Piece::Any => out.push_str(".*"),
                Piece::One => out.push('.'),
                Piece::Text(t) => out.push_str(&regex::escape(t)),
            }
        }
        out.push('$');
        out
    }
}

/// `base64`: the value's Base64 encoding.
pub fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// `base64offset`: the three encodings of the value found inside a longer Base64 text, one for
/// each offset of the value within a group of three bytes (the characters that depend on the
/// bytes around it cut off).
pub fn base64_offsets(text: &str) -> [String; 3] {
    const START: [usize; 3] = [0, 2, 3];
    // Characters cut from the end, by (length + offset) % 3.
    const END: [usize; 3] = [0, 3, 2];
    let bytes = text.as_bytes();
    std::array::from_fn(|i| {
        let mut padded = vec![b' '; i];
        padded.extend_from_slice(bytes);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&padded);
        let end = encoded.len().saturating_sub(END[(bytes.len() + i) % 3]);
        encoded.get(START[i]..end).unwrap_or_default().to_string()
    })
}

/// `windash`: the value with each option dash (a `-` or `/` that starts a word) written every
/// way Windows command lines accept: `-`, `/`, en dash, em dash, horizontal bar. `None` when
/// the value has more such dashes than [`WINDASH_MAX`].
pub fn windash(text: &str) -> Option<Vec<String>> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    let chars: Vec<char> = text.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let at: Vec<usize> = (0..chars.len())
        .filter(|&i| {
            matches!(chars[i], '-' | '/')
                && !word(i.checked_sub(1).and_then(|j| chars.get(j)))
                && word(chars.get(i + 1))
        })
        .collect();
    if at.len() > WINDASH_MAX {
        return None;
    }
    let mut out = vec![chars.clone()];
    for &i in &at {
        out = out
            .into_iter()
            .flat_map(|v| {
                DASHES.iter().map(move |d| {
                    let mut v = v.clone();
                    v[i] = *d;
                    v
                })
            })
            .collect();
    }
    Some(out.into_iter().map(|v| v.into_iter().collect()).collect())
}

/// The most option dashes `windash` expands in one value (5⁴ = 625 values).
pub const WINDASH_MAX: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_escapes_follow_the_specification() {
        use Piece::*;
        let t = |s: &str| Text(s.to_string());
        assert_eq!(
            Pattern::parse("a*b?c").pieces,
            [t("a"), Any, t("b"), One, t("c")]
        );
        assert_eq!(Pattern::parse(r"a\*b\?").pieces, [t("a*b?")]);
        // A plain backslash is itself; `\\` before a wildcard is a backslash and the wildcard.
        assert_eq!(Pattern::parse(r"C:\Windows").pieces, [t(r"C:\Windows")]);
        assert_eq!(Pattern::parse(r"x\\*").pieces, [t(r"x\"), Any]);
        assert_eq!(Pattern::parse(r"x\\\*").pieces, [t(r"x\*")]);
        assert_eq!(Pattern::parse(r"\\\\").pieces, [t(r"\\")]);
        assert_eq!(Pattern::parse("").pieces, []);
    }

    #[test]
    fn like_and_regex_renderings_keep_literals_literal() {
        let p = Pattern::parse("50%_off*").open(true, false);
        assert_eq!(p.like(), r"%50\%\_off%");
        assert_eq!(p.regex(), "(?is)^.*50%_off.*$");
        let p = Pattern::parse(r"a.b\?c?");
        assert_eq!(p.like(), r"a.b?c_");
        assert_eq!(p.regex(), r"(?is)^a\.b\?c.$");
        let mut cased = Pattern::parse(r"back\slash");
        cased.cased = true;
        assert_eq!(cased.like(), r"back\\slash");
        assert_eq!(cased.regex(), r"(?s)^back\\slash$");
        assert_eq!(Pattern::parse("x").open(true, true).like(), "%x%");
        // Opening an already open end adds nothing.
        assert_eq!(Pattern::parse("*x*").open(true, true).like(), "%x%");
    }

    #[test]
    fn base64_offsets_are_sigmas() {
        // The specification's example value and the three encodings it lists.
        assert_eq!(
            base64_offsets("/bin/bash"),
            ["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
        assert_eq!(base64("/bin/bash"), "L2Jpbi9iYXNo");
    }

    #[test]
    fn windash_writes_every_option_dash_every_way() {
        let v = windash("cmd -x /y a-b").expect("two dashes");
        assert_eq!(v.len(), 25);
        assert!(v.contains(&"cmd /x -y a-b".to_string()));
        assert!(v.contains(&"cmd \u{2013}x \u{2015}y a-b".to_string()));
        assert!(
            v.iter().all(|s| s.ends_with(" a-b")),
            "a dash inside a word stays"
        );
        assert!(windash("-a -b -c -d -e").is_none());
    }
}
