//! Log lines on stderr: text or JSON, written by a writer thread. No logged field can
//! forge a line or drive a terminal: control characters in every field (a model name
//! with a newline, an upstream message with escape codes) are escaped in text logs, as
//! JSON escapes them. Colour only when stderr is a terminal, never in JSON.

use clap::ValueEnum;
use std::io::IsTerminal;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs to stderr from a writer thread, so a request never waits on the write; lines are
/// never dropped (a full buffer makes the logger wait). The guard flushes what is left.
pub fn init(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("backstop-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(
                debug_fn(|writer: &mut Writer<'_>, field, value| {
                    let text = escape_controls(&format!("{value:?}"));
                    if field.name() == "message" {
                        writer.write_str(&text)
                    } else {
                        write!(writer, "{field}={text}")
                    }
                })
                .delimited(" "),
            )
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .try_init(),
    };
    guard
}

/// `text` with every control character written as its escape (`\n`, `\u{1b}`).
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("x\nFORGED\r\t\u{1b}[31m\u{9b}ok é"),
            "x\\nFORGED\\r\\t\\u{1b}[31m\\u{9b}ok é"
        );
        assert_eq!(escape_controls("plain"), "plain");
    }
}
