//! Server-sent events: an incremental decoder for upstream streams and a writer for client streams.
//!
//! Upstream bytes arrive in arbitrary chunks: a chunk may end in the middle of a line, between the
//! `\r` and `\n` of a line ending, or inside a multi-byte UTF-8 character. [`SseDecoder`] keeps only
//! the unfinished line and the data of the event being built, processes each complete line once
//! (so a large event fed in small chunks costs linear time), and refuses events larger than
//! [`MAX_EVENT_SIZE`] so that a broken upstream cannot make the gateway buffer without bound.

use bytes::BytesMut;

use crate::ProtocolError;

/// The largest event (data plus the pending line) the decoder accepts: 16 MiB.
pub const MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser (WHATWG event-stream rules, `id` and `retry` ignored).
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    after_cr: bool,
    started: bool,
    failed: bool,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and returns the events it completes.
    ///
    /// If an event grows beyond [`MAX_EVENT_SIZE`] the decoder enters a failed state: this and
    /// every later call return no events and [`SseDecoder::failed`] is true. Use
    /// [`SseDecoder::try_push`] to get the error directly.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.try_push(chunk).unwrap_or_default()
    }

    /// Like [`SseDecoder::push`] but reports an oversized event as [`ProtocolError::EventTooLarge`].
    pub fn try_push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, ProtocolError> {
        if self.failed {
            return Err(ProtocolError::EventTooLarge);
        }
        let mut out = Vec::new();
        let mut rest = chunk;
        if !self.started && !rest.is_empty() {
            self.started = true;
            rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rest);
        }
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
            let ending = rest[i];
            if self.line.is_empty() {
                // The whole line is in this chunk: read where it lies, not copied.
                self.check_size(i)?;
                self.take_line(&rest[..i], &mut out);
            } else {
                self.line.extend_from_slice(&rest[..i]);
                self.check_size(0)?;
                let line = std::mem::take(&mut self.line);
                self.take_line(&line, &mut out);
                self.line = line;
                self.line.clear();
            }
            rest = &rest[i + 1..];
            if ending == b'\r' {
                if rest.is_empty() {
                    self.after_cr = true;
                } else if rest[0] == b'\n' {
                    rest = &rest[1..];
                }
            }
        }
        self.line.extend_from_slice(rest);
        self.check_size(0)?;
        Ok(out)
    }

    /// Ends the stream: returns a final event whose blank line never arrived, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.failed {
            return None;
        }
        let mut out = Vec::new();
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.take_line(&line, &mut out);
        }
        self.take_line(&[], &mut out);
        out.pop()
    }

    /// Whether an oversized event made the decoder give up.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Fails the decoder once the pending line, `more` bytes of a line not copied into it, and the event's
    /// data pass [`MAX_EVENT_SIZE`].
    fn check_size(&mut self, more: usize) -> Result<(), ProtocolError> {
        if self.line.len() + more + self.data.len() > MAX_EVENT_SIZE {
            self.failed = true;
            self.line = Vec::new();
            self.data = String::new();
            return Err(ProtocolError::EventTooLarge);
        }
        Ok(())
    }

    /// Processes `line`, which has just been terminated.
    fn take_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.first() == Some(&b':') {
            // A comment (`: keepalive`): no field, no event, nothing decoded or kept.
            return;
        }
        let line = match std::str::from_utf8(line) {
            Ok(line) => std::borrow::Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(line),
        };
        // `:` is ASCII: its byte index is a character boundary.
        let (field, value) = match memchr::memchr(b':', line.as_bytes()) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// Appends one event to `out`: an optional `event:` line, one `data:` line per line of `data`,
/// and the blank line that dispatches it.
pub fn write_sse(out: &mut BytesMut, event: Option<&str>, data: &str) {
    out.reserve(data.len() + 16 + event.map_or(0, |e| e.len() + 8));
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.extend_from_slice(b"\n");
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = ": ping\r\n\r\nevent: message_start\r\ndata: {\"a\":\"é😀\"}\r\n\r\ndata: line1\ndata:line2\n\nevent: x\rdata: cr\r\rdata: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":\"é😀\"}".into(),
            },
            SseEvent {
                event: None,
                data: "line1\nline2".into(),
            },
            SseEvent {
                event: Some("x".into()),
                data: "cr".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ]
    }

    #[test]
    fn decodes_whole_stream() {
        let mut d = SseDecoder::new();
        assert_eq!(d.push(STREAM.as_bytes()), expected());
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn split_at_every_byte_gives_same_events() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let mut d = SseDecoder::new();
            let mut got = d.push(&bytes[..cut]);
            got.extend(d.push(&bytes[cut..]));
            assert_eq!(got, expected(), "cut at {cut}");
        }
        let mut d = SseDecoder::new();
        let mut got = Vec::new();
        for b in bytes {
            got.extend(d.push(std::slice::from_ref(b)));
        }
        assert_eq!(got, expected());
    }

    #[test]
    fn finish_returns_trailing_event() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"\xEF\xBB\xBFevent: e\ndata: tail").is_empty());
        assert_eq!(
            d.finish(),
            Some(SseEvent {
                event: Some("e".into()),
                data: "tail".into()
            })
        );
        let mut d = SseDecoder::new();
        assert!(d.push(b"event: only\n").is_empty());
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn oversized_event_fails() {
        let mut d = SseDecoder::new();
        let big = vec![b'a'; 1024 * 1024];
        assert!(d.try_push(b"data: ").unwrap().is_empty());
        let mut err = None;
        for _ in 0..20 {
            if let Err(e) = d.try_push(&big) {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(ProtocolError::EventTooLarge)));
        assert!(d.failed());
        assert!(d.push(b"\n\ndata: x\n\n").is_empty());
    }

    #[test]
    fn comments_alone_make_no_event() {
        let mut d = SseDecoder::new();
        let comments = ": keepalive\n\n".repeat(10_000);
        assert!(d.push(comments.as_bytes()).is_empty());
        assert!(d.push(b": unfinished comm").is_empty());
        assert_eq!(d.push(b"ent\n\ndata: x\n\n")[0].data, "x");
    }

    #[test]
    fn invalid_utf8_is_replaced_whether_a_line_arrives_whole_or_in_pieces() {
        let whole = SseDecoder::new().push(b"data: a\xffb\n\n");
        assert_eq!(whole[0].data, "a\u{fffd}b");
        let mut d = SseDecoder::new();
        assert!(d.push(b"data: a\xe2\x82").is_empty());
        assert_eq!(d.push(b"\xacb\xff\n\n")[0].data, "a\u{20ac}b\u{fffd}");
    }

    #[test]
    fn write_and_read_back() {
        let mut out = BytesMut::new();
        write_sse(&mut out, Some("content_block_delta"), "{\"x\":1}");
        write_sse(&mut out, None, "a\nb");
        assert_eq!(
            &out[..],
            b"event: content_block_delta\ndata: {\"x\":1}\n\ndata: a\ndata: b\n\n"
        );
        let mut d = SseDecoder::new();
        let evs = d.push(&out);
        assert_eq!(evs[1].data, "a\nb");
        assert_eq!(evs[0].event.as_deref(), Some("content_block_delta"));
    }
}
