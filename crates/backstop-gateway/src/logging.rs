//! Log lines on stderr: text or JSON, written by a writer thread. No logged field can
//! forge a line or drive a terminal: control characters in every field (a model name
//! with a newline, an upstream message with escape codes) are escaped in text logs, as
//! JSON escapes them. Colour only when stderr is a terminal, never in JSON.

use crate::log_format::LineFormat;
use crate::log_writer::LogGuard;
use clap::ValueEnum;
use std::fmt::Write as _;
use std::io::IsTerminal;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::FormatFields;

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs to stderr from a writer thread, so a request never waits on the write; lines are
/// never dropped (a full queue makes the logger wait). The guard writes what is left. When
/// the writer thread cannot be started, lines are written to stderr directly.
pub fn init(format: LogFormat) -> Option<LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = match crate::log_writer::start(std::io::stderr()) {
        Ok((sender, guard)) => (BoxMakeWriter::new(sender), Some(guard)),
        Err(_) => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder
            .event_format(LineFormat::Text {
                ansi: std::io::stderr().is_terminal(),
            })
            .fmt_fields(text_fields())
            .try_init(),
        LogFormat::Json => builder.event_format(LineFormat::Json).try_init(),
    };
    guard
}

/// The fields of a text line: `name=value` (the message without its name), each value as its
/// `Debug` writes it with control characters escaped, separated by spaces.
pub fn text_fields() -> impl for<'w> FormatFields<'w> + 'static {
    debug_fn(|writer: &mut Writer<'_>, field, value| {
        if field.name() != "message" {
            write!(writer, "{field}=")?;
        }
        write!(EscapeControls(writer), "{value:?}")
    })
    .delimited(" ")
}

/// `text` with every control character written as its escape (`\n`, `\u{1b}`).
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = EscapeControls(&mut out).write_str(text);
    out
}

/// Writes through to `W`, every control character as its escape: a log field is escaped as
/// it is formatted, with no copy of it.
struct EscapeControls<W>(W);

impl<W: std::fmt::Write> std::fmt::Write for EscapeControls<W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            if let Some(control) = chars.next() {
                for escaped in control.escape_debug() {
                    self.0.write_char(escaped)?;
                }
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
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
