//! Time as reports and journals write it: Unix seconds by this machine's
//! clock (which tests may move), RFC 3339 in UTC, and durations for people.

/// Now, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Seconds since the Unix epoch, by this machine's clock (which tests may
/// move: [`crate::testhook::now_offset`]).
pub fn unix_now() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_add_signed(crate::testhook::now_offset())
}

/// A Unix time as RFC 3339 in UTC.
pub fn rfc3339(secs: u64) -> String {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;
    DateTime::from_secs(secs as i64)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

/// An RFC 3339 time as Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;
    let secs = DateTime::from_str(text, Format::DateTime).ok()?.secs();
    u64::try_from(secs).ok()
}

/// A duration for people: `3d 4h`, `5m 2s`, `800ms`.
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    // A zero second unit is dropped: `90d`, not `90d 0h`.
    let two = |big: u64, unit: &str, small: u64, small_unit: &str| match small {
        0 => format!("{big}{unit}"),
        _ => format!("{big}{unit} {small}{small_unit}"),
    };
    match () {
        _ if days > 0 => two(days, "d", hours, "h"),
        _ if hours > 0 => two(hours, "h", mins, "m"),
        _ if mins > 0 => two(mins, "m", secs % 60, "s"),
        _ if secs > 0 => format!("{secs}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-12-02T10:00:00Z"), Some(1_796_205_600));
        assert_eq!(parse_rfc3339(&rfc3339(1_796_205_600)), Some(1_796_205_600));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn durations_read_well() {
        use std::time::Duration;
        assert_eq!(
            human_duration(Duration::from_secs(90 * 86_400 + 7200)),
            "90d 2h"
        );
        assert_eq!(human_duration(Duration::from_secs(3 * 3600 + 120)), "3h 2m");
        assert_eq!(human_duration(Duration::from_secs(62)), "1m 2s");
        assert_eq!(human_duration(Duration::from_millis(800)), "800ms");
        assert_eq!(human_duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(human_duration(Duration::from_secs(120)), "2m");
    }
}
