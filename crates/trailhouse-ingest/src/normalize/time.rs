//! Reading `eventTime`: CloudTrail's own `YYYY-MM-DDTHH:MM:SSZ` and the variants other producers
//! write, and whether a time text is exactly what export writes back.

use chrono::{DateTime, NaiveDateTime};
use trailhouse_lake::schema;

/// Whether `text`, parsed as `micros`, is written exactly as export writes it back. CloudTrail's
/// own `YYYY-MM-DDTHH:MM:SSZ` is recognised by its shape (formatting every record's time to
/// compare was a measurable share of ingest); anything else is compared with the formatted value.
pub(super) fn is_canonical_time(text: &str, micros: i64) -> bool {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[17] < b'6';
    if shape && micros % 1_000_000 == 0 {
        return true;
    }
    schema::format_event_time(micros).as_deref() == Some(text)
}

/// Parses CloudTrail's `YYYY-MM-DDTHH:MM:SSZ` and the variants real producers write: fractional
/// seconds, a numeric offset, a space for `T`, no zone at all (taken as UTC).
pub fn parse_event_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    let naive = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix('z'))
        .unwrap_or(t);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(dt.timestamp_micros());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_times() {
        for (t, canonical) in [
            ("2024-09-09T17:51:44Z", true),
            ("2024-09-09T17:51:44.120Z", true),
            ("2024-09-09T17:51:44.12Z", false),
            ("2024-09-09 17:51:44", false),
            ("2024-09-09T19:51:44+02:00", false),
        ] {
            let micros = parse_event_time(t).expect("time");
            assert_eq!(is_canonical_time(t, micros), canonical, "{t}");
        }
    }

    #[test]
    fn event_time_variants() {
        let base = parse_event_time("2022-09-25T16:16:37Z").expect("iso");
        for t in [
            "2022-09-25 16:16:37",
            "2022-09-25 16:16:37Z",
            "2022-09-25T16:16:37",
            "2022-09-25 16:16:37.000000000",
            "2022-09-25T18:16:37+02:00",
        ] {
            assert_eq!(parse_event_time(t), Some(base), "{t}");
        }
        assert_eq!(parse_event_time("..."), None);
    }
}
