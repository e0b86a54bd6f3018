//! The `condition` of a rule: `and`, `or`, `not`, parentheses, `1 of` / `all of` a pattern of
//! search identifiers or `them`, with the specification's precedence (least binding first: or,
//! and, not, `x of`, parentheses). Keywords are read in any case. `any of` is read as `1 of`.

use crate::SigmaError;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A search identifier.
    Search(String),
    /// `1 of` (`all: false`) or `all of` the identifiers matching `pattern` (`*` wildcards);
    /// `None` is `them`: every identifier not starting with `_`.
    Of {
        all: bool,
        pattern: Option<String>,
    },
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, SigmaError> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    for c in text.chars() {
        match c {
            '(' | ')' => {
                flush(&mut word, &mut out);
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '|' => {
                return Err(SigmaError::Unsupported(format!(
                    "aggregation in the condition `{text}` (write it as a correlation rule)"
                )));
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

fn is(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn bad(&self, what: &str) -> SigmaError {
        SigmaError::Invalid(format!("condition `{}`: {what}", self.text))
    }

    /// Terms of `next` joined by `keyword`: one alone, or `make` of them all.
    fn chain(
        &mut self,
        keyword: &str,
        next: fn(&mut Self) -> Result<Condition, SigmaError>,
        make: fn(Vec<Condition>) -> Condition,
    ) -> Result<Condition, SigmaError> {
        let mut terms = vec![next(self)?];
        while is(self.peek(), keyword) {
            self.at += 1;
            terms.push(next(self)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            make(terms)
        })
    }

    fn or(&mut self) -> Result<Condition, SigmaError> {
        self.chain("or", Self::and, Condition::Or)
    }

    fn and(&mut self) -> Result<Condition, SigmaError> {
        self.chain("and", Self::not, Condition::And)
    }

    fn not(&mut self) -> Result<Condition, SigmaError> {
        if is(self.peek(), "not") {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, SigmaError> {
        match self.peek().cloned() {
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(self.bad("a `(` is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Close) => Err(self.bad("a `)` closes nothing")),
            None => Err(self.bad("it ends where a search identifier was expected")),
            Some(Token::Word(w)) => {
                self.at += 1;
                if is(self.peek(), "of") {
                    let all = if w.eq_ignore_ascii_case("all") {
                        true
                    } else if w == "1" || w.eq_ignore_ascii_case("any") {
                        false
                    } else {
                        return Err(SigmaError::Unsupported(format!(
                            "`{w} of` in the condition `{}` (Sigma has `1 of` and `all of`)",
                            self.text
                        )));
                    };
                    self.at += 1;
                    let pattern = match self.peek().cloned() {
                        Some(Token::Word(p)) => p,
                        _ => return Err(self.bad("`of` must be followed by a pattern or `them`")),
                    };
                    self.at += 1;
                    let pattern = (!pattern.eq_ignore_ascii_case("them")).then_some(pattern);
                    return Ok(Condition::Of { all, pattern });
                }
                if ["and", "or", "not", "of"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                {
                    return Err(self.bad(&format!("`{w}` where a search identifier was expected")));
                }
                Ok(Condition::Search(w))
            }
        }
    }
}

impl Condition {
    pub fn parse(text: &str) -> Result<Self, SigmaError> {
        let mut p = Parser {
            text,
            tokens: tokens(text)?,
            at: 0,
        };
        let c = p.or()?;
        if let Some(t) = p.peek() {
            let t = match t {
                Token::Open => "(".to_string(),
                Token::Close => ")".to_string(),
                Token::Word(w) => w.clone(),
            };
            return Err(p.bad(&format!("`{t}` after a complete condition")));
        }
        Ok(c)
    }
}

/// Whether `name` matches `pattern`, whose `*` stand for any run of characters.
pub fn identifier_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().unwrap_or((&"", &[]));
    let Some(mut left) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(i) => left = &left[i + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: &str) -> Condition {
        Condition::Search(n.into())
    }

    #[test]
    fn precedence_is_or_then_and_then_not() {
        assert_eq!(
            Condition::parse("a or b and not c").expect("parses"),
            Condition::Or(vec![
                s("a"),
                Condition::And(vec![s("b"), Condition::Not(Box::new(s("c")))])
            ])
        );
        assert_eq!(
            Condition::parse("(a or b) AND NOT (c)").expect("parses"),
            Condition::And(vec![
                Condition::Or(vec![s("a"), s("b")]),
                Condition::Not(Box::new(s("c")))
            ])
        );
        assert_eq!(
            Condition::parse("selection and not 1 of filter_main_*").expect("parses"),
            Condition::And(vec![
                s("selection"),
                Condition::Not(Box::new(Condition::Of {
                    all: false,
                    pattern: Some("filter_main_*".into())
                }))
            ])
        );
        assert_eq!(
            Condition::parse("all of them").expect("parses"),
            Condition::Of {
                all: true,
                pattern: None
            }
        );
    }

    #[test]
    fn malformed_and_unsupported_conditions_say_what_is_wrong() {
        for (text, says) in [
            ("a and", "ends where"),
            ("(a or b", "not closed"),
            ("a b", "`b` after"),
            ("a )", "`)` after"),
            ("not", "ends where"),
            ("1 of", "followed by"),
            ("and a", "`and` where"),
            ("2 of sel*", "`2 of`"),
            ("selection | count() > 5", "aggregation"),
        ] {
            let e = Condition::parse(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn identifier_patterns() {
        assert!(identifier_matches("selection_*", "selection_status_null"));
        assert!(identifier_matches("filter*", "filter"));
        assert!(identifier_matches("*_status_*", "selection_status_x"));
        assert!(identifier_matches("a*b*c", "aXbYc"));
        assert!(!identifier_matches("a*b*c", "aXbY"));
        assert!(!identifier_matches("selection_*", "selection"));
        assert!(identifier_matches("exact", "exact"));
        assert!(!identifier_matches("exact", "exactly"));
        assert!(!identifier_matches("ab*ba", "aba"));
    }
}
