//! Parsers of flag values: the one way each kind of value is read, by the
//! flags and by job files alike.

use std::time::Duration;

/// Most users rotated at a time: beyond this, IAM throttles more than it
/// serves.
pub const MAX_CONCURRENCY: usize = 64;

/// `--concurrency`: 1 to [`MAX_CONCURRENCY`].
pub(in crate::cli) fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a concurrency: give a number of users from 1 to {MAX_CONCURRENCY}"
        )),
    }
}

pub(in crate::cli) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// No wait keyrot does needs longer; larger values would overflow deadlines.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// No key age threshold needs more than ten years.
const MAX_AGE: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

/// A time limit: `500ms`, `30s`, `2m`, `1h` (at most 24h).
/// A pinned sha256: 64 hex digits.
pub(in crate::cli) fn parse_sha256(hex: &str) -> Result<(), String> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("must be 64 hex digits, got '{hex}'"));
    }
    Ok(())
}

pub(in crate::cli) fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_any_duration(s)?;
    if duration > MAX_DURATION {
        return Err(format!("'{}' is too large: at most 24h", s.trim()));
    }
    Ok(duration)
}

/// A key age: `90d`, `12h`, ... (at most 3650d).
pub(in crate::cli) fn parse_age(s: &str) -> Result<Duration, String> {
    let duration = parse_any_duration(s)?;
    if duration > MAX_AGE {
        return Err(format!("'{}' is too large: at most 3650d", s.trim()));
    }
    Ok(duration)
}

/// A number and a unit: `ms`, `s`, `m`, `h` or `d` (seconds if none).
fn parse_any_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 500ms, 30s, 2m, 1h or 90d, got '{s}'"))?;
    let scale = match unit.trim() {
        "ms" => return nonzero(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ms, s, m, h or d)"
            ));
        }
    };
    let secs = n
        .checked_mul(scale)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    nonzero(Duration::from_secs(secs))
}

fn nonzero(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

/// No handler needs more; a typo (`512GiB`) should not pass silently.
const MAX_MEMORY: usize = 16 << 30;

pub(in crate::cli) fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("expected a size like 256MiB or 1GiB, got '{s}'"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use KiB, MiB or GiB)")),
    };
    let too_large = || format!("'{s}' is too large: the memory limit is at most 16GiB");
    let bytes = n.checked_mul(scale).ok_or_else(too_large)?;
    if bytes < 1 << 20 {
        return Err("the memory limit must be at least 1MiB".into());
    }
    if bytes > MAX_MEMORY {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("1441m").unwrap_err().contains("too large"));
        assert!(parse_duration("18446744073709551615m").is_err());
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse_age("3651d").unwrap_err().contains("too large"));
    }

    #[test]
    fn parses_ages() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(
            parse_age("0s").is_err(),
            "no age is zero: clean without --older-than"
        );
        assert!(parse_age("1w").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert!(parse_size("12").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert!(parse_size("17GiB").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn parses_settings() {
        assert_eq!(
            parse_key_value("repo=o/r=x"),
            Ok(("repo".into(), "o/r=x".into()))
        );
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }
}
