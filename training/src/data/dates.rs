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
}
