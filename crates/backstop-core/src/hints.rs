//! Server hints: how long the server asks us to wait before trying again.
//!
//! Providers say it in several dialects, and a client that ignores them either hammers a rate-limited server or
//! waits for nothing. This module reads them all, without an HTTP dependency: headers come in as `(name, value)`
//! string pairs.
//!
//! | header | format | parser |
//! |---|---|---|
//! | `retry-after` | seconds (`"2"`, `"1.5"`) or an HTTP date | [`parse_retry_after`] |
//! | `retry-after-ms` | milliseconds (OpenAI) | inside [`retry_hint`] |
//! | `x-ratelimit-reset-requests`, `x-ratelimit-reset-tokens` | Go durations, `"6m0s"`, `"250ms"` (OpenAI) | [`parse_reset_duration`] |
//! | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset` | RFC 3339 times | [`parse_reset_timestamp`] |
//!
//! Garbage never becomes a hint: every parser answers `None` for what it does not understand, and a time in the
//! past is a zero wait.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses a `Retry-After` value: delay seconds (integer or decimal) or an HTTP date (IMF-fixdate, RFC 850 or
/// asctime). A date in the past gives a zero wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds(v.parse::<f64>().ok()?);
    }
    let at = parse_http_date(v)?;
    Some(until(at, now))
}

/// Parses an OpenAI `x-ratelimit-reset-*` value, a Go-style duration: `"6m0s"`, `"1s"`, `"250ms"`, `"1h2m3.5s"`,
/// `"0.5s"`, with units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`. A bare number is read as seconds.
pub fn parse_reset_duration(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(n) = v.parse::<f64>() {
        return seconds(n);
    }
    let mut total = 0.0f64;
    let mut rest = v;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    seconds(total)
}

/// Parses an Anthropic `anthropic-ratelimit-*-reset` value, an RFC 3339 time such as `"2025-01-01T12:00:30Z"` or
/// `"2025-01-01T12:00:30.5+01:00"`, into the wait from `now`. A time in the past gives a zero wait.
pub fn parse_reset_timestamp(value: &str, now: SystemTime) -> Option<Duration> {
    let at = parse_rfc3339(value.trim())?;
    Some(until(at, now))
}

/// The wait the server asks for, from a response's headers (names compared case-insensitively).
///
/// Precedence, first match wins:
/// 1. `retry-after-ms`: the same hint as `retry-after` at a finer grain (what the official OpenAI SDKs prefer);
/// 2. `retry-after`;
/// 3. OpenAI `x-ratelimit-reset-{requests,tokens}`;
/// 4. Anthropic `anthropic-ratelimit-*-reset`.
///
/// Among several reset headers of one provider, the limits whose `…-remaining…` header says `0` are the ones that
/// caused the refusal, so the longest of *their* resets is used; when no remaining count is 0 (or none is sent)
/// the longest reset of all is used: waiting for the shortest one would likely just earn another 429.
pub fn retry_hint<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: SystemTime,
) -> Option<Duration> {
    let mut retry_after_ms = None;
    let mut retry_after = None;
    let mut openai = Resets::default();
    let mut anthropic = Resets::default();
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        if name == "retry-after-ms" {
            retry_after_ms = retry_after_ms.or_else(|| {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|n| seconds(n / 1000.0))
            });
        } else if name == "retry-after" {
            retry_after = retry_after.or_else(|| parse_retry_after(value, now));
        } else if let Some(kind) = name.strip_prefix("x-ratelimit-reset-") {
            if let Some(d) = parse_reset_duration(value) {
                openai.reset(kind, d);
            }
        } else if let Some(kind) = name.strip_prefix("x-ratelimit-remaining-") {
            openai.remaining(kind, value);
        } else if let Some(rest) = name.strip_prefix("anthropic-ratelimit-") {
            if let Some(kind) = rest.strip_suffix("-reset") {
                if let Some(d) = parse_reset_timestamp(value, now) {
                    anthropic.reset(kind, d);
                }
            } else if let Some(kind) = rest.strip_suffix("-remaining") {
                anthropic.remaining(kind, value);
            }
        }
    }
    retry_after_ms
        .or(retry_after)
        .or_else(|| openai.pick())
        .or_else(|| anthropic.pick())
}

/// Reset hints of one provider, by limit kind ("requests", "tokens", ...).
#[derive(Default)]
struct Resets {
    resets: Vec<(String, Duration)>,
    exhausted: Vec<String>,
}

impl Resets {
    fn reset(&mut self, kind: &str, d: Duration) {
        self.resets.push((kind.to_owned(), d));
    }

    fn remaining(&mut self, kind: &str, value: &str) {
        if value.trim().parse::<f64>().ok() == Some(0.0) {
            self.exhausted.push(kind.to_owned());
        }
    }

    fn pick(&self) -> Option<Duration> {
        let exhausted = self
            .resets
            .iter()
            .filter(|(k, _)| self.exhausted.iter().any(|e| e == k))
            .map(|(_, d)| *d)
            .max();
        exhausted.or_else(|| self.resets.iter().map(|(_, d)| *d).max())
    }
}

/// Seconds as a duration; `None` when negative, not finite or too large.
fn seconds(n: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(n).ok()
}

/// The wait from `now` until `at` (Unix seconds and nanos), zero if `at` is past.
fn until(at: (i64, u32), now: SystemTime) -> Duration {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d,
        Err(_) => return Duration::ZERO,
    };
    match u64::try_from(at.0) {
        Ok(secs) => Duration::new(secs, at.1).saturating_sub(now),
        Err(_) => Duration::ZERO,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the classic days-from-civil computation).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a UTC calendar time, after range checks.
fn unix(year: i64, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<i64> {
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day) && h < 24 && m < 60 && s <= 60;
    valid.then(|| days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s))
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let pos = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    u32::try_from(pos + 1).ok()
}

fn parse_hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = two_digits(it.next()?)?;
    let m = two_digits(it.next()?)?;
    let sec = two_digits(it.next()?)?;
    it.next().is_none().then_some((h, m, sec))
}

fn two_digits(s: &str) -> Option<u32> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime
/// (`Sun Nov  6 08:49:37 1994`), as Unix seconds.
fn parse_http_date(s: &str) -> Option<(i64, u32)> {
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let secs = match tokens.as_slice() {
        [wd, day, mon, year, time, "GMT"] if wd.ends_with(',') => {
            let (h, m, sec) = parse_hms(time)?;
            unix(
                i64::from(number(year)?),
                month_number(mon)?,
                number(day)?,
                h,
                m,
                sec,
            )?
        }
        [wd, date, time, "GMT"] if wd.ends_with(',') => {
            let mut parts = date.split('-');
            let day = number(parts.next()?)?;
            let mon = month_number(parts.next()?)?;
            let yy = i64::from(number(parts.next()?)?);
            let year = if yy < 70 {
                2000 + yy
            } else if yy < 100 {
                1900 + yy
            } else {
                yy
            };
            let (h, m, sec) = parse_hms(time)?;
            unix(year, mon, day, h, m, sec)?
        }
        [_wd, mon, day, time, year] => {
            let (h, m, sec) = parse_hms(time)?;
            unix(
                i64::from(number(year)?),
                month_number(mon)?,
                number(day)?,
                h,
                m,
                sec,
            )?
        }
        _ => return None,
    };
    Some((secs, 0))
}

/// RFC 3339 (`2025-01-01T12:00:30Z`, `2025-01-01T12:00:30.250+01:00`), as Unix seconds and nanos.
fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(number(s.get(0..4)?)?);
    let month = two_digits(s.get(5..7)?)?;
    let day = two_digits(s.get(8..10)?)?;
    let (h, m, sec) = parse_hms(s.get(11..19)?)?;
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if len == 0 {
            return None;
        }
        let digits = &frac[..len.min(9)];
        let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
        nanos = digits.parse::<u32>().ok()? * scale;
        rest = &frac[len..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest.get(1..)?.split_once(':')?;
            let (oh, om) = (two_digits(oh)?, two_digits(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * i64::from(oh * 3600 + om * 60)
        }
    };
    Some((unix(year, month, day, h, m, sec)? - offset, nanos))
}

#[cfg(test)]
#[path = "hints_tests.rs"]
mod tests;
