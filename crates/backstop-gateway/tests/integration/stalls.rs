//! Faster, wider rescue: stalls told from the stream's own cadence (`idle = "auto"`, the
//! default), and a restart without a prefill spliced only when it begins with the text sent.

use crate::common::*;
use crate::rescue::{full_answer, openai_stream, RESCUE};
use backstop_mock::{MockConfig, MockServer};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// The default learned idle, with a total long enough for slow streams.
const AUTO: &str = "first_byte = \"2s\"\ntotal = \"120s\"";

async fn scene(secondary: MockServer, timeouts: &str) -> Setup {
    let primary = mock().await;
    let gw = gateway(&upstreams_with(&primary, &secondary, timeouts, RESCUE)).await;
    Setup {
        primary,
        secondary,
        gw,
    }
}

/// The value of the metric line that starts with `prefix`, if there is one.
async fn metric(s: &Setup, prefix: &str) -> Option<f64> {
    let text = s.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.trim().parse().ok())
}

/// How long a stream that stalls after 20 of 60 chunks (arriving every 50 ms) takes to
/// complete through a fallback, under the given `[timeouts]`; checks the answer is whole.
async fn stalled_answer_time(timeouts: &str) -> (Duration, Setup) {
    let s = scene(mock().await, timeouts).await;
    fault(
        &s.primary,
        json!({"kind": "stall", "after": 21, "for": "300s", "delay": "50ms"}),
    )
    .await;
    let started = Instant::now();
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
    (started.elapsed(), s)
}

#[tokio::test(start_paused = true)]
async fn a_stall_after_20_of_60_chunks_is_rescued_within_3s_of_the_last_chunk() {
    let (auto, s) = stalled_answer_time(AUTO).await;
    let chunks = Duration::from_millis(50 * 21);
    assert!(auto < chunks + Duration::from_secs(3), "{auto:?}");
    let stalls = r#"backstop_stream_stalls_total{target="primary/p-model",rule="adaptive"} "#;
    assert_eq!(metric(&s, stalls).await, Some(1.0));
    let delay = r#"backstop_stream_rescue_delay_seconds_sum{target="primary/p-model"} "#;
    let delay = metric(&s, delay).await.unwrap();
    assert!((2.0..3.0).contains(&delay), "{delay}");

    let (fixed, s) =
        stalled_answer_time("first_byte = \"2s\"\nidle = \"30s\"\ntotal = \"120s\"").await;
    assert!(fixed >= Duration::from_secs(30), "{fixed:?}");
    let stalls = r#"backstop_stream_stalls_total{target="primary/p-model",rule="fixed"} "#;
    assert_eq!(metric(&s, stalls).await, Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn regular_one_second_pauses_are_not_taken_for_stalls() {
    let s = scene(mock().await, AUTO).await;
    fault(&s.primary, json!({"kind": "slow_stream", "delay": "1s"})).await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert_eq!((finishes.len(), errors.len()), (1, 0));
    assert!(s.secondary.requests().is_empty(), "never rescued");
}

/// A slow stream (one event a second) that thinks for 8 s in the middle: ten times its
/// usual gap is longer than that pause, so it is not cut.
#[tokio::test(start_paused = true)]
async fn a_slow_stream_that_pauses_eight_seconds_is_not_cut() {
    let s = scene(mock().await, AUTO).await;
    fault(
        &s.primary,
        json!({"kind": "stall", "after": 30, "for": "8s", "delay": "1s"}),
    )
    .await;
    let (content, _, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert!(errors.is_empty());
    assert!(s.secondary.requests().is_empty(), "never rescued");
}

/// Whether a fast stream with one `pause` after 30 of its chunks is rescued, after the
/// target has completed `before` streams with the same pause pattern at `learned`.
async fn rescued_after_learning(learned: Option<&str>, pause: &str) -> bool {
    let s = scene(mock().await, AUTO).await;
    if let Some(learned) = learned {
        let fault_json = json!({"kind": "stall", "after": 30, "for": learned, "count": 2});
        fault(&s.primary, fault_json).await;
        for _ in 0..2 {
            let (content, _, _, _) = openai_stream(&s.ask_text("rescued", true).await);
            assert_eq!(content, full_answer());
        }
        assert!(s.secondary.requests().is_empty());
    }
    fault(
        &s.primary,
        json!({"kind": "stall", "after": 30, "for": pause}),
    )
    .await;
    let (content, _, errors, _) = openai_stream(&s.ask_text("rescued", true).await);
    assert_eq!(content, full_answer());
    assert!(errors.is_empty());
    !s.secondary.requests().is_empty()
}

/// A target whose complete streams pause for long raises its own floor: a 2.5 s pause in a
/// fast stream is a stall on a fresh target, not on one whose streams pause 1.8 s.
#[tokio::test(start_paused = true)]
async fn a_target_that_routinely_pauses_raises_its_own_floor() {
    assert!(rescued_after_learning(None, "2500ms").await);
    assert!(!rescued_after_learning(Some("1800ms"), "2500ms").await);
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_begins_with_the_text_sent_is_spliced() {
    let s = scene(mock().await, AUTO).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 20})).await;
    fault(&s.secondary, json!({"kind": "reject_prefill"})).await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("picky_restarts", true).await);
    assert_eq!(content, full_answer(), "the whole answer, once");
    assert_eq!(finishes, vec!["stop"]);
    assert!(errors.is_empty());
    let asked = s.secondary.requests();
    assert_eq!(asked.len(), 2, "a prefill (refused), then the restart");
    let restart = &asked[1].body["messages"];
    assert_eq!(
        restart.as_array().unwrap().len(),
        1,
        "no prefill in the restart"
    );
    let restarted =
        r#"backstop_stream_rescues_total{target="anth2/claude-x",outcome="restarted"} "#;
    assert_eq!(metric(&s, restarted).await, Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_differs_ends_with_the_clean_error_and_no_mixed_text() {
    let other = MockServer::start(MockConfig {
        answer: "A different answer altogether, which must never reach the client.".into(),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let s = scene(other, AUTO).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 20})).await;
    fault(&s.secondary, json!({"kind": "reject_prefill"})).await;
    let (content, finishes, errors, _) = openai_stream(&s.ask_text("picky_restarts", true).await);
    assert!(
        full_answer().starts_with(&content),
        "only the original text: {content}"
    );
    assert!(content.len() < full_answer().len());
    assert!(finishes.is_empty());
    let message = errors[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("primary/p-model failed mid-stream") && message.contains("diverged"),
        "{message}"
    );
    let diverged = r#"backstop_stream_rescues_total{target="anth2/claude-x",outcome="diverged"} "#;
    assert_eq!(metric(&s, diverged).await, Some(1.0));
}
