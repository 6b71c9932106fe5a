//! Which HTTP version a new connection speaks, told from its first bytes without reading them.
//!
//! hyper-util's automatic builder tells HTTP/1.1 from HTTP/2 by reading up to 24 bytes (the
//! length of the HTTP/2 preface) and handing them back to hyper in front of the socket. hyper's
//! first read then returns those 24 bytes alone, a partial request head, and to read the rest it
//! grows its read buffer from 8 KiB to 16 KiB, which the connection keeps for as long as the
//! request's headers and body (slices of that buffer) live: for a stream, its whole life. Peeking
//! at the socket instead leaves the bytes where they are, so hyper's first read takes the whole
//! head into its 8 KiB buffer. An HTTP/1.1 request differs from the preface by its second byte at
//! the latest; when the bytes peeked so far are a part of the preface and no more, the
//! automatic builder decides as before.

use hyper::server::conn::http1;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpStream;

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// Not the HTTP/2 preface: HTTP/1.1.
    Http1,
    /// The whole HTTP/2 preface.
    Http2,
    /// No bytes, or too few to tell (a part of the preface).
    Unknown,
}

/// Tells `head` (the first bytes a client sent) apart.
pub fn classify(head: &[u8]) -> Sniffed {
    let seen = head.len().min(H2_PREFACE.len());
    if seen == 0 {
        Sniffed::Unknown
    } else if head[..seen] != H2_PREFACE[..seen] {
        Sniffed::Http1
    } else if seen == H2_PREFACE.len() {
        Sniffed::Http2
    } else {
        Sniffed::Unknown
    }
}

/// Waits for the client's first bytes and tells its version from them, leaving them unread.
pub async fn sniff(stream: &TcpStream) -> Sniffed {
    let mut head = [0u8; 24];
    match stream.peek(&mut head).await {
        Ok(n) => classify(&head[..n]),
        Err(_) => Sniffed::Unknown,
    }
}

/// The server's builders: hyper's own HTTP/1.1 one, and hyper-util's automatic one (HTTP/2
/// only, or either for connections that did not say enough).
///
/// An HTTP/1.1 connection is served by hyper's builder directly: its connection's state is
/// half of the automatic one's, which has room for HTTP/2's, and every open stream holds it.
pub struct Builders {
    http1: http1::Builder,
    http2: Builder<TokioExecutor>,
    auto: Builder<TokioExecutor>,
}

impl Builders {
    /// The builders of the two: `http1` for HTTP/1.1 connections, `auto` (whose HTTP/1.1
    /// settings should match) for the others.
    pub fn new(http1: http1::Builder, auto: Builder<TokioExecutor>) -> Self {
        Self {
            http1,
            http2: auto.clone().http2_only(),
            auto,
        }
    }

    /// The builder for a connection whose first bytes said [`Sniffed::Http1`].
    pub fn http1(&self) -> &http1::Builder {
        &self.http1
    }

    /// The builder for a connection whose first bytes said `sniffed`, other than HTTP/1.1:
    /// HTTP/2 only once the whole preface came, else the automatic one.
    pub fn other(&self, sniffed: Sniffed) -> &Builder<TokioExecutor> {
        match sniffed {
            Sniffed::Http2 => &self.http2,
            Sniffed::Http1 | Sniffed::Unknown => &self.auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_http1_from_its_first_differing_byte() {
        assert_eq!(
            classify(b"POST /v1/chat/completions HTTP/1.1\r\n"),
            Sniffed::Http1
        );
        assert_eq!(classify(b"GET"), Sniffed::Http1);
        assert_eq!(classify(b"PO"), Sniffed::Http1);
    }

    #[test]
    fn the_whole_preface_is_http2_and_a_part_of_it_is_unknown() {
        assert_eq!(classify(H2_PREFACE), Sniffed::Http2);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Sniffed::Http2
        );
        assert_eq!(classify(b"PRI * HTTP/2"), Sniffed::Unknown);
        assert_eq!(classify(b"P"), Sniffed::Unknown);
        assert_eq!(classify(b""), Sniffed::Unknown);
    }
}
