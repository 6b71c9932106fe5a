use super::*;
use crate::test_log::Kept;
use serde_json::Value;

/// The lines `log` writes in `format`, inside the request `id` when there is one.
fn lines(format: LineFormat, id: Option<&'static str>, log: fn()) -> Vec<String> {
    let kept = Kept::default();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(kept.clone())
            .event_format(format)
            .fmt_fields(crate::logging::text_fields())
            .finish(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || match id {
        Some(id) => runtime.block_on(in_request(HeaderValue::from_static(id), async { log() })),
        None => log(),
    });
    kept.lines()
}

const TEXT: LineFormat = LineFormat::Text { ansi: false };
const JSON: LineFormat = LineFormat::Json;

/// A timestamp as the lines write it: this year, UTC, microseconds.
fn assert_timestamp(timestamp: &str) {
    let year = time::OffsetDateTime::now_utc().year().to_string();
    assert!(timestamp.starts_with(&year), "{timestamp}");
    assert_eq!(timestamp.len(), 27, "{timestamp}");
    assert_eq!(&timestamp[10..11], "T", "{timestamp}");
    assert_eq!(&timestamp[19..20], ".", "{timestamp}");
    assert!(timestamp.ends_with('Z'), "{timestamp}");
}

#[test]
fn a_text_line_in_a_request_names_it() {
    let lines = lines(TEXT, Some("req-1"), || {
        tracing::info!(model = %"gpt", served_by = "mock/m", attempts = 2, stream = false, "request");
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (timestamp, rest) = lines[0].split_once(' ').unwrap();
    assert_timestamp(timestamp);
    assert_eq!(
        rest,
        " INFO request{id=\"req-1\"}: backstop_gateway::log_format::tests: request model=gpt \
         served_by=\"mock/m\" attempts=2 stream=false"
    );
}

#[test]
fn a_coloured_text_line_colours_the_level_and_dims_the_rest() {
    let lines = lines(LineFormat::Text { ansi: true }, Some("req-1"), || {
        tracing::warn!(attempts = 2, "retrying");
    });
    let line = &lines[0];
    assert!(line.starts_with("\x1b[2m"), "{line:?}");
    assert!(line.contains("\x1b[0m \x1b[33m WARN\x1b[0m request{id=\"req-1\"}: \x1b[2mbackstop_gateway::log_format::tests:\x1b[0m retrying attempts=2"), "{line:?}");
}

#[test]
fn a_text_line_outside_a_request_has_no_request_part_and_escapes_controls() {
    let lines = lines(TEXT, None, || {
        tracing::warn!(model = %"x\nFORGED \u{1b}[31m", "model unknown");
    });
    assert_eq!(lines.len(), 1, "one line, the newline escaped: {lines:?}");
    let (_, rest) = lines[0].split_once(' ').unwrap();
    assert_eq!(
        rest,
        " WARN backstop_gateway::log_format::tests: model unknown model=x\\nFORGED \\u{1b}[31m"
    );
}

#[test]
fn a_json_line_has_the_fields_their_types_and_the_request() {
    let lines = lines(JSON, Some("id \"quoted\" \\"), || {
        tracing::error!(
            served_by = %"up/m",
            status = 503u16,
            delta = -4i64,
            ratio = 0.5f64,
            broken = true,
            reason = "line\nbreak\u{1}",
            "attempt failed: {}",
            "quote \" and tab\t"
        );
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_timestamp(line["timestamp"].as_str().unwrap());
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["message"], "attempt failed: quote \" and tab\t");
    assert_eq!(line["served_by"], "up/m");
    assert_eq!(line["target"], "backstop_gateway::log_format::tests");
    assert_eq!(line["status"], 503);
    assert_eq!(line["delta"], -4);
    assert_eq!(line["ratio"], 0.5);
    assert_eq!(line["broken"], true);
    assert_eq!(line["reason"], "line\nbreak\u{1}");
    let span = serde_json::json!({"id": "id \"quoted\" \\", "name": "request"});
    assert_eq!(line["span"], span);
    assert_eq!(line["spans"], serde_json::json!([span]));
}

#[test]
fn a_json_line_with_a_target_field_keeps_it_and_names_the_module_apart() {
    let lines = lines(JSON, None, || {
        tracing::info!(target = %"up/m", attempt = 1, "attempt failed");
    });
    let keys = lines[0].matches("\"target\":").count();
    assert_eq!(keys, 1, "one `target` key: {}", lines[0]);
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["target"], "up/m");
    assert_eq!(line["module"], "backstop_gateway::log_format::tests");
}

#[test]
fn a_json_line_outside_a_request_has_no_span() {
    let lines = lines(JSON, None, || tracing::info!(ratio = f64::NAN, "started"));
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["message"], "started");
    assert_eq!(line["target"], "backstop_gateway::log_format::tests");
    assert_eq!(line["ratio"], Value::Null);
    assert!(
        line.get("span").is_none() && line.get("spans").is_none(),
        "{line}"
    );
}
