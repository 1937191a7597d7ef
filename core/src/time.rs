//! Time as Kizuna stores it: unix seconds in most columns, RFC 3339 UTC text with microseconds
//! in the audit log (fixed width, so text order is time order); and "now", from one clock
//! that tests can move instead of sleeping.
//!
//! The clock is the system's, plus an offset. In-process tests move it with [`advance`]
//! (each test runs in its own process under `cargo nextest`). Tests that drive the built
//! binary point `KIZUNA_TEST_CLOCK_FILE` at a file holding the offset in seconds, which the
//! server and the CLI read at every "now"; a warning is logged when it is set, and it is
//! never meant for production.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// The environment variable naming the test clock's offset file.
pub const TEST_CLOCK_FILE: &str = "KIZUNA_TEST_CLOCK_FILE";

static OFFSET_SECS: AtomicI64 = AtomicI64::new(0);

fn clock_file() -> Option<&'static PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| std::env::var_os(TEST_CLOCK_FILE).map(PathBuf::from))
        .as_ref()
}

/// How far the clock is moved from the system's, in seconds.
fn offset_secs() -> i64 {
    match clock_file() {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0),
        None => OFFSET_SECS.load(Ordering::Relaxed),
    }
}

/// True when the test clock file is in use (the server warns about it at start).
pub fn test_clock_in_use() -> bool {
    clock_file().is_some()
}

/// Moves this process's clock forward by `secs` (tests).
pub fn advance(secs: i64) {
    OFFSET_SECS.fetch_add(secs, Ordering::Relaxed);
}

/// Now, as a date-time in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::seconds(offset_secs())
}

pub fn now_unix() -> i64 {
    now().unix_timestamp()
}

/// A moment on the clock, for in-memory caches: like `Instant`, but it ages when a test
/// moves the clock, so a test waits for a cache by moving time, not by sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(i128);

impl Stamp {
    pub fn now() -> Stamp {
        Stamp(now().unix_timestamp_nanos())
    }

    /// How long ago this moment was (zero if the clock went back).
    pub fn age(&self) -> std::time::Duration {
        let nanos = (Stamp::now().0 - self.0).max(0);
        std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

pub fn now_rfc3339_micros() -> String {
    rfc3339_micros(now())
}

pub fn rfc3339_micros(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    // Formatting a UTC time with a fixed numeric description cannot fail.
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .expect("fixed format of a UTC time")
}

/// A unix time as the audit log stamps entries (RFC 3339 with microseconds), for comparing
/// with their times.
pub fn unix_to_rfc3339_micros(secs: i64) -> String {
    rfc3339_micros(OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH))
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

    #[test]
    fn the_clock_moves_forward_when_a_test_advances_it() {
        let before = now_unix();
        advance(3600);
        let after = now_unix();
        assert!((3600..3700).contains(&(after - before)), "{before} {after}");
        let stamp = Stamp::now();
        advance(5);
        assert!(stamp.age() >= std::time::Duration::from_secs(5));
        advance(-3605);
    }
}
