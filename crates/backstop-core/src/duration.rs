//! Durations written by people: `"250ms"`, `"1.5s"`, `"30s"`, `"5m"`, `"1h"`.
//!
//! The gateway's configuration, its command-line flags and admin API, and the mock's fault scripts all take
//! durations as strings with a unit, never bare numbers whose unit a reader would have to guess. They share this one
//! parser so that the same text means the same thing everywhere, and so that a typo such as
//! `"99999999999999999999s"` is an error that says so rather than an overflow: nothing in Backstop waits longer
//! than [`LONGEST`].
//!
//! The number is read as an exact decimal (no floating point), so `"0.3s"` is exactly 300 ms.

use std::time::Duration;

/// The longest duration accepted: ten years (`"87600h"`). Anything longer is a typo.
pub const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Units in nanoseconds.
const UNITS: [(&str, u128); 4] = [
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Digits of a fraction that can still change the result (below a nanosecond of an hour they cannot).
const FRACTION_DIGITS: usize = 18;

/// Parses a duration: a decimal number and a unit, `ms`, `s`, `m` or `h` (`"250ms"`, `"1.5s"`, `"5m"`).
///
/// The error names the text and says what is wrong with it: no unit, an unknown unit, not a number, or longer than
/// [`LONGEST`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let not_a_duration =
        || format!("`{text}` is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"");
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(not_a_duration());
    }
    let unit = unit.trim();
    if unit.is_empty() {
        return Err(format!(
            "`{text}` has no unit: write e.g. \"250ms\", \"30s\", \"5m\""
        ));
    }
    let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "unknown duration unit `{unit}` in `{text}`: use ms, s, m or h"
        ));
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err(not_a_duration());
    }
    let too_long = || format!("`{text}` is too long: durations go up to 87600h (10 years)");
    let whole_nanos = digits(whole)
        .and_then(|n| n.checked_mul(unit_nanos))
        .ok_or_else(too_long)?;
    let fraction = &fraction[..fraction.len().min(FRACTION_DIGITS)];
    let fraction_nanos =
        digits(fraction).unwrap_or(0) * unit_nanos / 10u128.pow(fraction.len() as u32);
    let nanos = whole_nanos + fraction_nanos;
    if nanos > LONGEST.as_nanos() {
        return Err(too_long());
    }
    let seconds = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    // The remainder of a division by 10^9 is below 10^9 and fits.
    let subsec = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(seconds, subsec))
}

/// The value of a run of ASCII digits (`0` for none), or `None` when it does not fit.
fn digits(text: &str) -> Option<u128> {
    if text.is_empty() {
        return Some(0);
    }
    text.parse().ok()
}

/// Formats a duration in the largest unit that represents it exactly (`"60s"` becomes `"1m"`), so that
/// [`parse_duration`] reads it back unchanged (to the millisecond).
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_unit_exactly() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.3s"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 1.25h "), Ok(Duration::from_secs(4500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.0000001ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("87600h"), Ok(LONGEST));
    }

    #[test]
    fn each_mistake_gets_its_own_message() {
        let cases = [
            (
                "30",
                "`30` has no unit: write e.g. \"250ms\", \"30s\", \"5m\"",
            ),
            ("3d", "unknown duration unit `d` in `3d`: use ms, s, m or h"),
            (
                "5 parsecs",
                "unknown duration unit `parsecs` in `5 parsecs`: use ms, s, m or h",
            ),
            (
                "soon",
                "`soon` is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"",
            ),
            (
                "",
                "`` is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"",
            ),
            (
                "-1s",
                "`-1s` is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"",
            ),
            (
                ".s",
                "`.s` is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"",
            ),
            (
                "1.2.3s",
                "`1.2.3s` is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"",
            ),
            (
                "1e3s",
                "unknown duration unit `e3s` in `1e3s`: use ms, s, m or h",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).unwrap_err(), expected, "{text:?}");
        }
    }

    #[test]
    fn absurd_lengths_are_errors_not_overflows() {
        for text in [
            "99999999999999999999s",
            "99999999999999999999999999999999999999999999h",
            "87600.001h",
            "3153600000000000ms",
            "5256001m",
        ] {
            let message = parse_duration(text).unwrap_err();
            assert_eq!(
                message,
                format!("`{text}` is too long: durations go up to 87600h (10 years)")
            );
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "2s", "1m", "1h", "0s", "90s", "87600h"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
            assert_eq!(parse_duration(&format_duration(parsed)).unwrap(), parsed);
        }
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }
}
