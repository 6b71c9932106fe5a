//! Human-friendly durations for scripts and the control API.
//!
//! Scripts are written by people rehearsing outages, so durations are strings such as
//! `"250ms"`, `"2s"`, `"1.5s"`, `"1m"` or `"1h"` (the same notation as the gateway's config),
//! never bare numbers whose unit a reader would have to guess.

use std::time::Duration;

/// Parses `"250ms"`, `"2s"`, `"1.5s"`, `"1m"`, `"1h"` into a [`Duration`].
///
/// The error names the input and the accepted units.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad = || {
        format!("invalid duration {text:?}: expected a number and a unit (ms, s, m, h), e.g. \"250ms\" or \"2s\"")
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration in the largest unit that represents it exactly (`"60s"` becomes `"1m"`).
// `u128::is_multiple_of` is newer than the workspace's minimum Rust version (1.85).
#[allow(clippy::manual_is_multiple_of)]
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        for bad in ["", "5", "ms", "5 parsecs", "-1s", "1d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "2s", "1m", "1h", "0s", "90s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(parsed)).unwrap(), parsed);
        }
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
    }
}
