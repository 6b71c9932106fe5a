//! The windows counters are kept in: a budget's calendar day or month (UTC) or its whole life, and the minute of a
//! rate limit. Every replica computes the same window from the wall clock, so they add to the same counter.

use crate::config::BudgetPeriod;
use std::time::Duration;
use time::{Date, Month, OffsetDateTime, Time};

/// How long after its end a window's counter is kept, so a late flush still lands in it.
const GRACE: Duration = Duration::from_secs(3600);

/// One window of a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Its name in counter keys (`2026-11-30`, `2026-11`, `total`, `m29418734`).
    pub id: String,
    /// When it ends, in Unix milliseconds (`None`: never).
    pub ends_at_ms: Option<u64>,
    /// How long the store keeps its counter from its creation.
    pub ttl: Option<Duration>,
}

impl Window {
    /// How long until it ends, from `now_ms`.
    pub fn remaining(&self, now_ms: u64) -> Option<Duration> {
        self.ends_at_ms
            .map(|end| Duration::from_millis(end.saturating_sub(now_ms)))
    }

    /// When it ends, as RFC 3339 UTC (`2026-12-01T00:00:00Z`).
    pub fn ends_at_text(&self) -> Option<String> {
        let end = OffsetDateTime::from_unix_timestamp((self.ends_at_ms? / 1000) as i64).ok()?;
        Some(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            end.year(),
            u8::from(end.month()),
            end.day(),
            end.hour(),
            end.minute(),
            end.second()
        ))
    }
}

/// The window of a budget `per` that holds `now_ms`.
pub fn budget_window(per: BudgetPeriod, now_ms: u64) -> Window {
    let now = OffsetDateTime::from_unix_timestamp((now_ms / 1000) as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let date = now.date();
    let (id, end) = match per {
        BudgetPeriod::Total => {
            return Window {
                id: "total".into(),
                ends_at_ms: None,
                ttl: None,
            }
        }
        BudgetPeriod::Day => (
            format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            date.next_day(),
        ),
        BudgetPeriod::Month => {
            let (year, month) = match date.month() {
                Month::December => (date.year() + 1, Month::January),
                month => (date.year(), month.next()),
            };
            (
                format!("{:04}-{:02}", date.year(), u8::from(date.month())),
                Date::from_calendar_date(year, month, 1).ok(),
            )
        }
    };
    let ends_at_ms = end.map(|end| {
        (end.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp() as u64).saturating_mul(1000)
    });
    window(id, ends_at_ms, now_ms)
}

/// The minute that holds `now_ms`, for rate limits.
pub fn minute_window(now_ms: u64) -> Window {
    let minute = now_ms / 60_000;
    window(format!("m{minute}"), Some((minute + 1) * 60_000), now_ms)
}

fn window(id: String, ends_at_ms: Option<u64>, now_ms: u64) -> Window {
    let ttl = ends_at_ms.map(|end| Duration::from_millis(end.saturating_sub(now_ms)) + GRACE);
    Window {
        id,
        ends_at_ms,
        ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30T13:45:10Z
    const NOW: u64 = 1_796_046_310_000;

    #[test]
    fn budget_windows_are_calendar_days_and_months_in_utc() {
        let day = budget_window(BudgetPeriod::Day, NOW);
        assert_eq!(day.id, "2026-11-30");
        assert_eq!(day.ends_at_text().as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(
            day.ttl,
            Some(Duration::from_secs(10 * 3600 + 14 * 60 + 50) + GRACE)
        );
        let month = budget_window(BudgetPeriod::Month, NOW);
        assert_eq!(month.id, "2026-11");
        assert_eq!(
            month.ends_at_text().as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        let december = budget_window(BudgetPeriod::Month, NOW + 2 * 86_400_000);
        assert_eq!(december.id, "2026-12");
        assert_eq!(
            december.ends_at_text().as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        let total = budget_window(BudgetPeriod::Total, NOW);
        assert_eq!(
            (total.id.as_str(), total.ends_at_ms, total.ttl),
            ("total", None, None)
        );
    }

    #[test]
    fn a_minute_window_ends_on_the_minute() {
        let minute = minute_window(NOW);
        assert_eq!(minute.remaining(NOW), Some(Duration::from_secs(50)));
        assert_eq!(minute_window(NOW + 49_999).id, minute.id);
        assert_ne!(minute_window(NOW + 50_000).id, minute.id);
    }
}
