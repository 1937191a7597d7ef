//! Time as Kizuna stores it: unix seconds in most columns, RFC 3339 UTC text with microseconds
//! in the audit log (fixed width, so text order is time order).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub fn now_rfc3339_micros() -> String {
    rfc3339_micros(OffsetDateTime::now_utc())
}

pub fn rfc3339_micros(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    // Formatting a UTC time with a fixed numeric description cannot fail.
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .expect("fixed format of a UTC time")
}

/// A unix time as RFC 3339, for display.
pub fn unix_to_rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// Parses an RFC 3339 time or a calendar date (`2026-11-01`, midnight UTC).
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-11-01T09:00:00Z) or a date (2026-11-01)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_format_is_fixed_width_and_sorts_as_time() {
        let a = rfc3339_micros(OffsetDateTime::from_unix_timestamp(1).unwrap());
        let b = rfc3339_micros(OffsetDateTime::from_unix_timestamp(10).unwrap());
        assert_eq!(a, "1970-01-01T00:00:01.000000Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }

    #[test]
    fn dates_and_times_parse_and_garbage_does_not() {
        assert_eq!(
            parse_time("2026-11-01").unwrap().unix_timestamp(),
            1_793_491_200
        );
        assert_eq!(
            parse_time("2026-11-01T09:00:00+09:00")
                .unwrap()
                .unix_timestamp(),
            1_793_491_200
        );
        assert!(parse_time("yesterday").is_err());
    }
}
