use super::*;

/// 1994-11-06T08:49:37Z, the date of the HTTP RFCs' examples.
const RFC_EXAMPLE: u64 = 784_111_777;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn retry_after_seconds() {
    let now = at(RFC_EXAMPLE);
    assert_eq!(parse_retry_after("2", now), Some(s(2)));
    assert_eq!(parse_retry_after(" 120 ", now), Some(s(120)));
    assert_eq!(
        parse_retry_after("1.5", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
}

#[test]
fn retry_after_http_dates_in_all_three_formats() {
    let now = at(RFC_EXAMPLE - 10);
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
        Some(s(10))
    );
    assert_eq!(
        parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
        Some(s(10))
    );
    assert_eq!(
        parse_retry_after("Sun Nov  6 08:49:37 1994", now),
        Some(s(10))
    );
}

#[test]
fn retry_after_date_in_the_past_is_zero() {
    let now = at(RFC_EXAMPLE + 100);
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
        Some(Duration::ZERO)
    );
}

#[test]
fn retry_after_garbage_is_none() {
    let now = at(RFC_EXAMPLE);
    for bad in [
        "",
        "soon",
        "-1",
        "1.2.3",
        "NaN",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 PST",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "99999999999999999999999999999999999999",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn go_durations() {
    assert_eq!(parse_reset_duration("6m0s"), Some(s(360)));
    assert_eq!(parse_reset_duration("1s"), Some(s(1)));
    assert_eq!(
        parse_reset_duration("250ms"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        parse_reset_duration("0.5s"),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        parse_reset_duration("1h2m3.5s"),
        Some(Duration::from_millis(3_723_500))
    );
    assert_eq!(
        parse_reset_duration("20us"),
        Some(Duration::from_micros(20))
    );
    assert_eq!(
        parse_reset_duration("20µs"),
        Some(Duration::from_micros(20))
    );
    assert_eq!(parse_reset_duration("7ns"), Some(Duration::from_nanos(7)));
    assert_eq!(parse_reset_duration("3"), Some(s(3)));
}

#[test]
fn go_durations_garbage_is_none() {
    for bad in [
        "", "s", "5x", "1m-2s", "-1s", "ms", "1.2.3s", "1 s", "inf", "1d",
    ] {
        assert_eq!(parse_reset_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn rfc3339_timestamps() {
    let now = at(RFC_EXAMPLE);
    assert_eq!(
        parse_reset_timestamp("1994-11-06T08:49:47Z", now),
        Some(s(10))
    );
    assert_eq!(
        parse_reset_timestamp("1994-11-06T08:49:37.25Z", now),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        parse_reset_timestamp("1994-11-06T09:49:47+01:00", now),
        Some(s(10))
    );
    assert_eq!(
        parse_reset_timestamp("1994-11-06T07:49:47-01:00", now),
        Some(s(10))
    );
    assert_eq!(
        parse_reset_timestamp("1994-11-06T08:00:00Z", now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_reset_timestamp("2025-01-01T00:00:00Z", at(1_735_689_600 - 30)),
        Some(s(30))
    );
}

#[test]
fn rfc3339_garbage_is_none() {
    let now = at(RFC_EXAMPLE);
    for bad in [
        "",
        "tomorrow",
        "1994-11-06",
        "1994-11-06T08:49:47",
        "1994-13-06T08:49:47Z",
        "1994-11-06T08:49:47.Z",
        "1994-11-06T08:49:47+1:00",
        "1994-11-06X08:49:47Z",
        "1994-11-06T08:49:47Zjunk",
    ] {
        assert_eq!(parse_reset_timestamp(bad, now), None, "{bad:?}");
    }
}

#[test]
fn retry_after_ms_wins_then_retry_after() {
    let now = at(RFC_EXAMPLE);
    let h = [("retry-after", "2"), ("retry-after-ms", "1500")];
    assert_eq!(retry_hint(h, now), Some(Duration::from_millis(1500)));
    let h = [("Retry-After", "2"), ("x-ratelimit-reset-requests", "6m0s")];
    assert_eq!(retry_hint(h, now), Some(s(2)));
}

#[test]
fn openai_resets_use_the_exhausted_limit() {
    let now = at(RFC_EXAMPLE);
    let h = [
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-remaining-tokens", "15000"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    assert_eq!(retry_hint(h, now), Some(s(1)));
    let h = [
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-reset-tokens", "250ms"),
    ];
    assert_eq!(
        retry_hint(h, now),
        Some(s(1)),
        "no remaining info: the longest"
    );
}

#[test]
fn anthropic_resets() {
    let now = at(RFC_EXAMPLE);
    let h = [
        ("anthropic-ratelimit-requests-remaining", "10"),
        ("anthropic-ratelimit-requests-reset", "1994-11-06T08:50:37Z"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "1994-11-06T08:49:42Z"),
    ];
    assert_eq!(retry_hint(h, now), Some(s(5)));
}

#[test]
fn no_hint_and_garbage_hints() {
    let now = at(RFC_EXAMPLE);
    assert_eq!(
        retry_hint([("content-type", "application/json")], now),
        None
    );
    let h = [
        ("retry-after", "later"),
        ("x-ratelimit-reset-tokens", "soon"),
    ];
    assert_eq!(retry_hint(h, now), None);
}
