//! The shape of a log line, text or JSON, and the request it belongs to.
//!
//! A line written while a request's handler runs carries that request's id: the edge runs the
//! handler in [`in_request`], and the line's formatter reads the id from the task. That costs a
//! swap of one value per poll, where a `tracing` span per request cost a slab entry, its fields
//! formatted into a map, and the registry's bookkeeping on every poll, for one field.
//!
//! Text: `2026-11-30T19:38:40.191919Z  INFO request{id="…"}: target: message field=value …`
//! (the timestamp in UTC with microseconds; the level padded to five; the request part only
//! inside a request; the fields as the text formatter of [`crate::logging`] writes them).
//! JSON: one object a line, `timestamp`, `level`, the event's fields (`message` among them),
//! `target`, and inside a request `span` and `spans` naming it, as `tracing-subscriber`'s
//! flattened JSON wrote them; but where the event has a `target` field of its own (the
//! upstream target of an attempt), the module that wrote the line is `module`, so that no key
//! appears twice. With colour, the level is coloured and the rest dimmed.

use http::HeaderValue;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::futures::TaskLocalFuture;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    /// The id of the request whose handler is running.
    static REQUEST_ID: HeaderValue;
}

/// `handler` run as the request `id`'s: the lines it logs carry the id.
pub fn in_request<F: Future>(id: HeaderValue, handler: F) -> TaskLocalFuture<HeaderValue, F> {
    REQUEST_ID.scope(id, handler)
}

/// Calls `write` with the running request's id, if a request's handler is running.
fn with_request_id(write: impl FnOnce(&str) -> fmt::Result) -> fmt::Result {
    REQUEST_ID
        .try_with(|id| write(id.to_str().unwrap_or_default()))
        .unwrap_or(Ok(()))
}

/// How lines are written.
pub enum LineFormat {
    /// Human-readable lines, coloured when `ansi` (stderr is a terminal).
    Text { ansi: bool },
    /// One JSON object a line.
    Json,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *self {
            LineFormat::Text { ansi } => text_line(ansi, ctx, writer, event),
            LineFormat::Json => json_line(writer, event),
        }
    }
}

/// `timestamp LEVEL request{id="…"}: target: fields`, the fields as `ctx`'s formatter writes them.
fn text_line<S, N>(
    ansi: bool,
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let metadata = event.metadata();
    let (dim, reset) = if ansi { (DIM, RESET) } else { ("", "") };
    writer.write_str(dim)?;
    write_timestamp(&mut writer)?;
    write!(writer, "{reset} ")?;
    let level = metadata.level();
    match ansi {
        true => write!(writer, "{}{level:>5}{RESET} ", colour(level))?,
        false => write!(writer, "{level:>5} ")?,
    }
    with_request_id(|id| write!(writer, "request{{id={id:?}}}: "))?;
    write!(writer, "{dim}{}:{reset} ", metadata.target())?;
    ctx.field_format().format_fields(writer.by_ref(), event)?;
    writeln!(writer)
}

fn colour(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// `{"timestamp":…,"level":…,fields…,"target":…,"span":…,"spans":[…]}`.
fn json_line(mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
    let metadata = event.metadata();
    writer.write_str("{\"timestamp\":\"")?;
    write_timestamp(&mut writer)?;
    write!(writer, "\",\"level\":\"{}\"", metadata.level())?;
    let mut fields = JsonFields {
        writer: &mut writer,
        result: Ok(()),
        has_target: false,
    };
    event.record(&mut fields);
    fields.result?;
    match fields.has_target {
        true => writer.write_str(",\"module\":")?,
        false => writer.write_str(",\"target\":")?,
    }
    json_string(&mut writer, metadata.target())?;
    with_request_id(|id| {
        let span = |writer: &mut Writer<'_>| {
            writer.write_str("{\"id\":")?;
            json_string(writer, id)?;
            writer.write_str(",\"name\":\"request\"}")
        };
        writer.write_str(",\"span\":")?;
        span(&mut writer)?;
        writer.write_str(",\"spans\":[")?;
        span(&mut writer)?;
        writer.write_char(']')
    })?;
    writer.write_str("}\n")
}

/// Writes an event's fields as `,"name":value` pairs.
struct JsonFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
    /// Whether one of the fields is named `target`.
    has_target: bool,
}

impl JsonFields<'_, '_> {
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        self.has_target |= field.name() == "target";
        if self.result.is_ok() {
            self.result = (|| {
                self.writer.write_char(',')?;
                json_string(self.writer, field.name())?;
                self.writer.write_char(':')?;
                value(self.writer)
            })();
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |w| {
            w.write_char('"')?;
            write!(JsonEscape(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |w| json_string(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match value.is_finite() {
            true => self.pair(field, |w| write!(w, "{value}")),
            false => self.pair(field, |w| w.write_str("null")),
        }
    }
}

/// `text` as a JSON string.
fn json_string(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    JsonEscape(&mut *writer).write_str(text)?;
    writer.write_char('"')
}

/// Writes through to `W` with JSON's string escapes.
struct JsonEscape<W>(W);

impl<W: fmt::Write> fmt::Write for JsonEscape<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            self.0.write_str(&rest[..at])?;
            let special = rest.as_bytes()[at];
            match special {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                control => write!(self.0, "\\u{control:04x}")?,
            }
            rest = &rest[at + 1..];
        }
        self.0.write_str(rest)
    }
}

thread_local! {
    /// The second last written and its `YYYY-MM-DDTHH:MM:SS`, so that a thread formats a date
    /// once a second.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Now in UTC, RFC 3339 with microseconds: `2026-11-30T19:38:40.191919Z`.
fn write_timestamp(writer: &mut impl fmt::Write) -> fmt::Result {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != seconds {
            *second = seconds;
            text.clear();
            let time = i64::try_from(seconds)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let _ = write!(
                text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            );
        }
        write!(writer, "{text}.{:06}Z", now.subsec_micros())
    })
}

#[cfg(test)]
#[path = "log_format_tests.rs"]
mod tests;
