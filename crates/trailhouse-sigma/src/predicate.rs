//! A rule's detection as one SQL predicate: each search identifier a two-valued test (a field
//! that is absent fails its test, never NULL), combined as the condition says.

use serde_norway::Value;

use crate::condition::{Condition, identifier_matches};
use crate::field::Field;
use crate::pattern::{self, Pattern};
use crate::rule::{Rule, yaml_text};
use crate::{SigmaError, sql_literal};

pub fn compile(rule: &Rule, warnings: &mut Vec<String>) -> Result<String, SigmaError> {
    let mut searches: Vec<(&str, String)> = Vec::new();
    for (name, value) in &rule.searches {
        let sql = search(name, value, warnings)?;
        searches.push((name, sql));
    }
    let mut alternatives = Vec::new();
    for text in &rule.conditions {
        let condition = Condition::parse(text)?;
        alternatives.push(render(&condition, &searches, text)?);
    }
    warnings.dedup();
    Ok(join(alternatives, "OR"))
}

/// `parts` joined by `op`, parenthesized unless there is one.
fn join(mut parts: Vec<String>, op: &str) -> String {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    format!("({})", parts.join(&format!(" {op} ")))
}

fn render(c: &Condition, searches: &[(&str, String)], text: &str) -> Result<String, SigmaError> {
    Ok(match c {
        Condition::Search(name) => searches
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, sql)| sql.clone())
            .ok_or_else(|| {
                SigmaError::Invalid(format!(
                    "condition `{text}` names `{name}`, which the detection does not define"
                ))
            })?,
        Condition::Of { all, pattern } => {
            let chosen: Vec<String> = searches
                .iter()
                .filter(|(n, _)| match pattern {
                    Some(p) => identifier_matches(p, n),
                    None => !n.starts_with('_'),
                })
                .map(|(_, sql)| sql.clone())
                .collect();
            if chosen.is_empty() {
                return Err(SigmaError::Invalid(format!(
                    "condition `{text}`: no search identifier matches `{}`",
                    pattern.as_deref().unwrap_or("them")
                )));
            }
            join(chosen, if *all { "AND" } else { "OR" })
        }
        Condition::Not(inner) => format!("(NOT {})", render(inner, searches, text)?),
        Condition::And(terms) => join(render_all(terms, searches, text)?, "AND"),
        Condition::Or(terms) => join(render_all(terms, searches, text)?, "OR"),
    })
}

fn render_all(
    terms: &[Condition],
    searches: &[(&str, String)],
    text: &str,
) -> Result<Vec<String>, SigmaError> {
    terms.iter().map(|t| render(t, searches, text)).collect()
}

/// One search identifier: a map (its fields ANDed) or a list of maps (ORed).
fn search(name: &str, value: &Value, warnings: &mut Vec<String>) -> Result<String, SigmaError> {
    let keywords = || {
        SigmaError::Unsupported(format!(
            "keyword search over the whole record (`{name}`): name the field to search"
        ))
    };
    match value {
        Value::Mapping(map) => {
            let mut terms = Vec::new();
            for (k, v) in map {
                let key = k.as_str().ok_or_else(|| {
                    SigmaError::Invalid(format!("`{name}`: field {} is not text", yaml_text(k)))
                })?;
                if key.is_empty() || key.starts_with('|') {
                    return Err(keywords());
                }
                terms.push(
                    field_test(key, v, warnings)
                        .map_err(|e| in_search(e, &format!("`{name}`, field `{key}`")))?,
                );
            }
            if terms.is_empty() {
                return Err(SigmaError::Invalid(format!("`{name}` is empty")));
            }
            // The engine evaluates the rest of an AND only for the rows the first terms let
            // through: comparisons of columns go first, regular expressions and JSON after.
            terms.sort_by_key(|(cost, _)| *cost);
            Ok(join(terms.into_iter().map(|(_, sql)| sql).collect(), "AND"))
        }
        Value::Sequence(items) if items.iter().all(|i| matches!(i, Value::Mapping(_))) => {
            if items.is_empty() {
                return Err(SigmaError::Invalid(format!("`{name}` is empty")));
            }
            let maps = items
                .iter()
                .map(|i| search(name, i, warnings))
                .collect::<Result<_, _>>()?;
            Ok(join(maps, "OR"))
        }
        Value::Sequence(items) if items.iter().all(|i| !matches!(i, Value::Mapping(_))) => {
            Err(keywords())
        }
        Value::Sequence(_) => Err(SigmaError::Invalid(format!(
            "`{name}` mixes maps and plain values"
        ))),
        _ => Err(keywords()),
    }
}

/// The error with where it happened in front of its message.
fn in_search(e: SigmaError, place: &str) -> SigmaError {
    match e {
        SigmaError::Invalid(m) => SigmaError::Invalid(format!("{place}: {m}")),
        SigmaError::Unsupported(m) => SigmaError::Unsupported(format!("{place}: {m}")),
    }
}

/// What a field's values are compared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Re,
    Exists,
    FieldRef,
    Cidr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Windash,
    Base64,
    Base64Offset,
}

/// A field's modifiers, read in order.
#[derive(Debug, Default)]
struct Modifiers {
    kind: Option<Kind>,
    start_open: bool,
    end_open: bool,
    all: bool,
    cased: bool,
    re_flags: String,
    transforms: Vec<Transform>,
}

impl Modifiers {
    fn parse(names: &[&str]) -> Result<Self, SigmaError> {
        let mut m = Modifiers::default();
        let set_kind = |m: &mut Modifiers, k: Kind, name: &str| {
            if m.kind.is_some_and(|old| old != k) {
                return Err(SigmaError::Invalid(format!(
                    "modifier `{name}` with another kind of comparison"
                )));
            }
            m.kind = Some(k);
            Ok(())
        };
        for &name in names {
            match name {
                "contains" => {
                    m.start_open = true;
                    m.end_open = true;
                }
                "startswith" => m.end_open = true,
                "endswith" => m.start_open = true,
                "all" => m.all = true,
                "cased" => m.cased = true,
                "re" => set_kind(&mut m, Kind::Re, name)?,
                "i" | "m" | "s" if m.kind == Some(Kind::Re) => m.re_flags.push_str(name),
                "exists" => set_kind(&mut m, Kind::Exists, name)?,
                "fieldref" => set_kind(&mut m, Kind::FieldRef, name)?,
                "cidr" => set_kind(&mut m, Kind::Cidr, name)?,
                "windash" => m.transforms.push(Transform::Windash),
                "base64" => m.transforms.push(Transform::Base64),
                "base64offset" => m.transforms.push(Transform::Base64Offset),
                "expand" => {
                    return Err(SigmaError::Unsupported(
                        "placeholders (`expand`): they need values for your environment".into(),
                    ));
                }
                "utf16" | "utf16le" | "utf16be" | "wide" => {
                    return Err(SigmaError::Unsupported(format!(
                        "modifier `{name}`: UTF-16 text does not occur in CloudTrail's JSON"
                    )));
                }
                "lt" | "lte" | "gt" | "gte" => {
                    return Err(SigmaError::Unsupported(format!(
                        "modifier `{name}` (numeric comparison)"
                    )));
                }
                other => {
                    return Err(SigmaError::Unsupported(format!("modifier `{other}`")));
                }
            }
        }
        let kind = m.kind.unwrap_or(Kind::Value);
        let opened = m.start_open || m.end_open;
        if kind != Kind::Value && (opened || !m.transforms.is_empty()) {
            return Err(SigmaError::Unsupported(
                "contains/startswith/endswith or an encoding with re, exists, fieldref or cidr"
                    .into(),
            ));
        }
        Ok(m)
    }
}

/// A rule's scalar as text: strings as written, numbers and booleans as YAML writes them.
fn scalar_text(v: &Value) -> Result<String, SigmaError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(SigmaError::Invalid(format!(
            "value {} is not a string, number or boolean",
            yaml_text(other)
        ))),
    }
}

/// How dear a test of `field` is per row: a column compared (0), a regular expression or an
/// address block (1), a path into JSON, which parses the JSON (2).
fn cost(field: &Field, kind: Kind) -> u8 {
    match (field, kind) {
        (Field::Json { .. }, _) => 2,
        (Field::Text(_), Kind::Re | Kind::Cidr) => 1,
        (Field::Text(_), _) => 0,
    }
}

/// A field's test, and how dear it is per row.
fn field_test(
    key: &str,
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<(u8, String), SigmaError> {
    let mut parts = key.split('|');
    let name = parts.next().unwrap_or_default();
    let modifiers: Vec<&str> = parts.collect();
    let mods = Modifiers::parse(&modifiers)?;
    let field = Field::resolve(name, warnings)?;
    let mut dear = cost(&field, mods.kind.unwrap_or(Kind::Value));

    let values: Vec<&Value> = match value {
        Value::Sequence(list) if list.is_empty() => {
            return Err(SigmaError::Invalid("an empty list of values".into()));
        }
        Value::Sequence(list) => list.iter().collect(),
        v => vec![v],
    };
    let mut tests = Vec::new();
    for v in values {
        if v.is_null() {
            if !modifiers.is_empty() {
                return Err(SigmaError::Invalid("`null` with modifiers".into()));
            }
            tests.push(is_absent(&field));
            continue;
        }
        let text = scalar_text(v)?;
        tests.push(match mods.kind.unwrap_or(Kind::Value) {
            Kind::Value => value_test(&field, &mods, &text, v.is_string())?,
            Kind::Re => {
                let re = if mods.re_flags.is_empty() {
                    text
                } else {
                    format!("(?{}){text}", mods.re_flags)
                };
                regex::Regex::new(&re)
                    .map_err(|e| SigmaError::Invalid(format!("regular expression `{re}`: {e}")))?;
                matches_regex(&field, &re)
            }
            Kind::Exists => {
                let exists = match v {
                    Value::Bool(b) => *b,
                    _ => {
                        return Err(SigmaError::Invalid("`exists` takes true or false".into()));
                    }
                };
                if exists {
                    format!("(NOT {})", is_absent(&field))
                } else {
                    is_absent(&field)
                }
            }
            Kind::FieldRef => {
                let other = Field::resolve(&text, warnings)?;
                dear = dear.max(cost(&other, Kind::FieldRef));
                let (a, b) = (field.text_sql(), other.text_sql());
                let (x, y) = if mods.cased {
                    (a.clone(), b.clone())
                } else {
                    (format!("lower({a})"), format!("lower({b})"))
                };
                present_and(&a, format!("{b} IS NOT NULL AND {x} = {y}"))
            }
            Kind::Cidr => {
                if !is_network(&text) {
                    return Err(SigmaError::Invalid(format!(
                        "`{text}` is not an address block (10.0.0.0/8, 2001:db8::/32)"
                    )));
                }
                let ip = field.text_sql();
                present_and(&ip, format!("cidr_match({ip}, {})", sql_literal(&text)))
            }
        });
    }
    Ok((dear, join(tests, if mods.all { "AND" } else { "OR" })))
}

/// One value compared as Sigma compares strings: its expansions (windash, base64offset) ORed.
fn value_test(
    field: &Field,
    mods: &Modifiers,
    text: &str,
    is_string: bool,
) -> Result<String, SigmaError> {
    let mut raw: Vec<(String, bool)> = vec![(text.to_string(), is_string)];
    for t in &mods.transforms {
        let mut next = Vec::new();
        for (value, wild) in raw {
            match t {
                Transform::Windash => {
                    let expanded = pattern::windash(&value).ok_or_else(|| {
                        SigmaError::Unsupported(format!(
                            "`windash` on a value with more than {} option dashes",
                            pattern::WINDASH_MAX
                        ))
                    })?;
                    next.extend(expanded.into_iter().map(|v| (v, wild)));
                }
                Transform::Base64 | Transform::Base64Offset => {
                    if wild && Pattern::parse(&value).as_plain().is_none() {
                        return Err(SigmaError::Invalid(format!(
                            "`{value}`: a value with wildcards cannot be encoded"
                        )));
                    }
                    let plain = Pattern::parse(&value).as_plain().unwrap_or(value);
                    if *t == Transform::Base64 {
                        next.push((pattern::base64(&plain), false));
                    } else {
                        next.extend(pattern::base64_offsets(&plain).map(|v| (v, false)));
                    }
                }
            }
        }
        raw = next;
    }
    let tests: Vec<String> = raw
        .into_iter()
        .map(|(value, wild)| {
            let mut p = if wild {
                Pattern::parse(&value)
            } else {
                Pattern::plain(&value)
            };
            p.cased = mods.cased;
            matches_pattern(field, &p.open(mods.start_open, mods.end_open))
        })
        .collect();
    Ok(join(tests, "OR"))
}

/// `test` of the column `sql`, false where the column is NULL (never NULL itself, so that `not`
/// of an absent field is true).
fn present_and(sql: &str, test: String) -> String {
    format!("({sql} IS NOT NULL AND {test})")
}

fn matches_pattern(field: &Field, p: &Pattern) -> String {
    match field {
        Field::Text(sql) => present_and(
            sql,
            format!(
                "{sql} {} {} ESCAPE '\\'",
                if p.cased { "LIKE" } else { "ILIKE" },
                sql_literal(&p.like())
            ),
        ),
        Field::Json { .. } => matches_regex(field, &p.regex()),
    }
}

fn matches_regex(field: &Field, re: &str) -> String {
    match field {
        Field::Text(sql) => present_and(sql, format!("regexp_like({sql}, {})", sql_literal(re))),
        Field::Json { column, path } => format!(
            "json_path_match({column}, {}, {})",
            sql_literal(path),
            sql_literal(re)
        ),
    }
}

/// Sigma's `null`: the field is absent (or JSON null).
fn is_absent(field: &Field) -> String {
    match field {
        Field::Text(sql) => format!("({sql} IS NULL)"),
        Field::Json { .. } => format!("(NOT {})", matches_regex(field, "")),
    }
}

fn is_network(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return text.parse::<std::net::IpAddr>().is_ok();
    };
    let (Ok(ip), Ok(bits)) = (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) else {
        return false;
    };
    bits <= if ip.is_ipv4() { 32 } else { 128 }
}

#[cfg(test)]
mod tests {
    use crate::{SigmaError, compile};

    fn rule(detection: &str) -> String {
        format!(
            "title: t\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n{detection}"
        )
    }

    fn predicate(detection: &str) -> String {
        compile(&rule(detection)).expect(detection).predicate
    }

    #[test]
    fn values_are_case_insensitive_and_absent_fields_fail_their_test() {
        assert_eq!(
            predicate("  sel: {eventName: DeleteBucket}\n  condition: sel\n"),
            "(eventname IS NOT NULL AND eventname ILIKE 'DeleteBucket' ESCAPE '\\')"
        );
        assert_eq!(
            predicate(
                "  sel: {eventName: [A, B]}\n  f: {errorCode: null}\n  condition: sel and not f\n"
            ),
            "(((eventname IS NOT NULL AND eventname ILIKE 'A' ESCAPE '\\') OR (eventname IS NOT NULL AND eventname ILIKE 'B' ESCAPE '\\')) \
             AND (NOT (errorcode IS NULL)))"
        );
        assert_eq!(
            predicate("  sel: {additionalEventData.MFAUsed: 'NO'}\n  condition: sel\n"),
            "json_path_match(additionaleventdata, 'MFAUsed', '(?is)^NO$')"
        );
        assert_eq!(
            predicate("  sel: {userAgent|contains|cased: \"it's\"}\n  condition: sel\n"),
            "(useragent IS NOT NULL AND useragent LIKE '%it''s%' ESCAPE '\\')"
        );
    }

    #[test]
    fn column_comparisons_come_before_json_paths_in_an_and() {
        assert_eq!(
            predicate(
                "  s: {responseElements.x: 'y', userAgent|re: '^a', eventSource: rds.amazonaws.com}\n  condition: s\n"
            ),
            "((eventsource IS NOT NULL AND eventsource ILIKE 'rds.amazonaws.com' ESCAPE '\\') AND \
             (useragent IS NOT NULL AND regexp_like(useragent, '^a')) AND \
             json_path_match(responseelements, 'x', '(?is)^y$'))"
        );
    }

    #[test]
    fn modifiers_compile_to_their_tests() {
        assert_eq!(
            predicate("  sel: {userIdentity.arn|re: '.+:assumed-role/aws:.+'}\n  condition: sel\n"),
            "(useridentity['arn'] IS NOT NULL AND regexp_like(useridentity['arn'], '.+:assumed-role/aws:.+'))"
        );
        assert_eq!(
            predicate("  sel: {userAgent|re|i: '^boto'}\n  condition: sel\n"),
            "(useragent IS NOT NULL AND regexp_like(useragent, '(?i)^boto'))"
        );
        assert_eq!(
            predicate("  sel: {errorCode|exists: false}\n  condition: sel\n"),
            "(errorcode IS NULL)"
        );
        assert_eq!(
            predicate(
                "  sel: {userIdentity.arn|fieldref: requestParameters.userName}\n  condition: sel\n"
            ),
            "(useridentity['arn'] IS NOT NULL AND json_path_text(requestparameters, 'userName') IS NOT NULL AND lower(useridentity['arn']) = lower(json_path_text(requestparameters, 'userName')))"
        );
        assert_eq!(
            predicate("  sel: {sourceIPAddress|cidr: 10.0.0.0/8}\n  condition: sel\n"),
            "(sourceipaddress IS NOT NULL AND cidr_match(sourceipaddress, '10.0.0.0/8'))"
        );
        assert_eq!(
            predicate("  sel: {requestParameters|contains|all: [a, b]}\n  condition: sel\n"),
            "((requestparameters IS NOT NULL AND requestparameters ILIKE '%a%' ESCAPE '\\') AND (requestparameters IS NOT NULL AND requestparameters ILIKE '%b%' ESCAPE '\\'))"
        );
        assert_eq!(
            predicate("  sel: {userAgent|base64offset|contains: /bin/bash}\n  condition: sel\n"),
            "((useragent IS NOT NULL AND useragent ILIKE '%L2Jpbi9iYXNo%' ESCAPE '\\') OR (useragent IS NOT NULL AND useragent ILIKE '%9iaW4vYmFza%' ESCAPE '\\') \
             OR (useragent IS NOT NULL AND useragent ILIKE '%vYmluL2Jhc2%' ESCAPE '\\'))"
        );
        assert!(
            predicate("  sel: {userAgent|windash|contains: ' -x'}\n  condition: sel\n")
                .contains("'% /x%'")
        );
    }

    #[test]
    fn one_of_and_all_of_choose_by_pattern_and_them_skips_underscores() {
        let d = "  sel_a: {eventName: A}\n  sel_b: {eventName: B}\n  _x: {eventName: X}\n";
        assert_eq!(
            predicate(&format!("{d}  condition: 1 of sel_*\n")),
            "((eventname IS NOT NULL AND eventname ILIKE 'A' ESCAPE '\\') OR (eventname IS NOT NULL AND eventname ILIKE 'B' ESCAPE '\\'))"
        );
        assert_eq!(
            predicate(&format!("{d}  condition: all of them\n")),
            "((eventname IS NOT NULL AND eventname ILIKE 'A' ESCAPE '\\') AND (eventname IS NOT NULL AND eventname ILIKE 'B' ESCAPE '\\'))"
        );
        // A list of maps is an OR of maps; several conditions are ORed.
        assert_eq!(
            predicate("  s:\n    - {eventName: A}\n    - {eventSource: B}\n  condition: [s, s]\n"),
            "(((eventname IS NOT NULL AND eventname ILIKE 'A' ESCAPE '\\') OR (eventsource IS NOT NULL AND eventsource ILIKE 'B' ESCAPE '\\')) OR \
             ((eventname IS NOT NULL AND eventname ILIKE 'A' ESCAPE '\\') OR (eventsource IS NOT NULL AND eventsource ILIKE 'B' ESCAPE '\\')))"
        );
    }

    #[test]
    fn what_cannot_run_as_written_is_refused_naming_the_construct() {
        for (detection, unsupported, says) in [
            ("  k: [evil]\n  condition: k\n", true, "keyword search"),
            (
                "  s: {eventName|expand: '%x%'}\n  condition: s\n",
                true,
                "placeholders",
            ),
            ("  s: {eventName|lt: 5}\n  condition: s\n", true, "`lt`"),
            ("  s: {eventName|wide: x}\n  condition: s\n", true, "UTF-16"),
            (
                "  s: {eventName|frobnicate: x}\n  condition: s\n",
                true,
                "`frobnicate`",
            ),
            (
                "  s: {eventName|re|contains: x}\n  condition: s\n",
                true,
                "contains",
            ),
            (
                "  s: {eventName: A}\n  condition: s | count() > 3\n",
                true,
                "aggregation",
            ),
            (
                "  s: {eventName|re: '(unclosed'}\n  condition: s\n",
                false,
                "regular expression",
            ),
            (
                "  s: {eventName: A}\n  condition: t\n",
                false,
                "`t`, which the detection",
            ),
            (
                "  s: {eventName: A}\n  condition: 1 of f*\n",
                false,
                "no search identifier",
            ),
            (
                "  s: {eventName: []}\n  condition: s\n",
                false,
                "empty list",
            ),
            (
                "  s: {sourceIPAddress|cidr: 10.0.0.0/33}\n  condition: s\n",
                false,
                "address block",
            ),
            (
                "  s: {eventName|exists: yes please}\n  condition: s\n",
                false,
                "true or false",
            ),
        ] {
            let e = compile(&rule(detection)).expect_err(detection);
            assert_eq!(
                matches!(e, SigmaError::Unsupported(_)),
                unsupported,
                "{detection}: {e}"
            );
            assert!(e.to_string().contains(says), "{detection}: {e}");
        }
    }

    #[test]
    fn every_bundled_rule_compiles_or_is_refused_with_a_reason() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries/sigma");
        let mut compiled = 0;
        for entry in std::fs::read_dir(&dir).expect("queries/sigma") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yml") {
                let text = std::fs::read_to_string(&path).expect("read");
                match compile(&text) {
                    Ok(c) => {
                        assert!(!c.info.title.is_empty());
                        compiled += 1;
                    }
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            }
        }
        assert_eq!(compiled, 57);
    }
}
