//! Date and time parsing for exports: the profile's formats first, then ISO 8601 variants.
//! Values are read as UTC; a date without a time is midnight.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::table::Timestamp;

const BUILT_IN_DATETIME: [&str; 4] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
];
const BUILT_IN_DATE: [&str; 2] = ["%Y-%m-%d", "%Y/%m/%d"];

/// Parses dates with a profile's formats plus the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct DateParser {
    formats: Vec<String>,
}

impl DateParser {
    pub fn new(formats: &[String]) -> Self {
        DateParser {
            formats: formats.to_vec(),
        }
    }

    /// Parses one cell; `None` when no format matches.
    pub fn parse(&self, text: &str) -> Option<Timestamp> {
        let text = text.trim();
        // Most exports (Odoo's included) write ISO 8601; reading it by hand is ~20x faster
        // than chrono's format interpreter, which matters at hundreds of thousands of rows.
        if self.formats.is_empty() {
            if let Some(t) = parse_iso_fast(text) {
                return Some(t);
            }
        }
        for f in &self.formats {
            if let Some(t) = parse_with(text, f) {
                return Some(t);
            }
        }
        for f in BUILT_IN_DATETIME.iter().chain(BUILT_IN_DATE.iter()) {
            if let Some(t) = parse_with(text, f) {
                return Some(t);
            }
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|d| d.timestamp())
    }

    /// The formats tried, for error messages.
    pub fn describe(&self) -> String {
        let mut all: Vec<&str> = self.formats.iter().map(String::as_str).collect();
        all.extend(["ISO 8601 date or date-time"]);
        all.join(", ")
    }
}

/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fff]]`, nothing else.
fn parse_iso_fast(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        s.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (mut h, mut m, mut sec) = (0, 0, 0);
    if b.len() > 10 {
        if !(b[10] == b'T' || b[10] == b' ') || b.len() < 16 || b[13] != b':' {
            return None;
        }
        h = num(11..13)?;
        m = num(14..16)?;
        let mut rest = 16;
        if b.len() > 16 {
            if b[16] != b':' || b.len() < 19 {
                return None;
            }
            sec = num(17..19)?;
            rest = 19;
            if b.len() > 19 {
                if b[19] != b'.' || b.len() == 20 || !b[20..].iter().all(u8::is_ascii_digit) {
                    return None;
                }
                rest = b.len();
            }
        }
        if rest != b.len() {
            return None;
        }
    }
    Some(date.and_hms_opt(h, m, sec)?.and_utc().timestamp())
}

fn parse_with(text: &str, format: &str) -> Option<Timestamp> {
    if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
        return Some(dt.and_utc().timestamp());
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
}

/// Formats a timestamp as ISO 8601 (UTC, seconds) for outputs and messages.
pub fn format_timestamp(t: Timestamp) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profile_formats_and_iso() {
        let p = DateParser::new(&["%d-%b-%y".to_string()]);
        assert_eq!(
            p.parse("2-Jun-06"),
            p.parse("2006-06-02"),
            "a profile format and ISO must agree"
        );
        assert_eq!(
            p.parse("2020-08-28 14:38:04.447000").unwrap() - p.parse("2020-08-28").unwrap(),
            14 * 3600 + 38 * 60 + 4
        );
        assert_eq!(p.parse("2020-08-28T00:00:00Z"), p.parse("2020-08-28"));
        assert_eq!(p.parse("Date Not Captured"), None);
    }

    #[test]
    fn the_iso_fast_path_agrees_with_chrono() {
        let fast = DateParser::default();
        for text in [
            "2024-02-29",
            "2024-02-29 23:59",
            "2024-02-29T23:59:58",
            "2020-08-28 14:38:04.447000",
            "1999-12-31T00:00:00.5",
        ] {
            let chrono_only = BUILT_IN_DATETIME
                .iter()
                .chain(BUILT_IN_DATE.iter())
                .find_map(|f| parse_with(text, f));
            assert_eq!(parse_iso_fast(text), chrono_only, "{text}");
            assert_eq!(fast.parse(text), chrono_only, "{text}");
        }
        for bad in [
            "2024-02-30",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T",
            "2024-01-01 25:00",
            "2024-01-01x",
        ] {
            assert_eq!(parse_iso_fast(bad), None, "{bad}");
        }
    }
}
