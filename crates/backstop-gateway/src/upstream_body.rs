//! The body of an upstream request: one buffer, or the pieces of a caller's body forwarded in
//! its own protocol (slices of the bytes the gateway read, around a new model name), sent one
//! after the other with their total as `content-length`. A large prompt reaches the upstream
//! socket without being copied again after it was read.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request body of known length made of one or more buffers.
#[derive(Debug, Clone, Default)]
pub struct UpstreamBody {
    parts: VecDeque<Bytes>,
    len: u64,
}

impl UpstreamBody {
    /// The body made of `parts`, in order.
    pub fn from_parts(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(|p| p.len() as u64).sum();
        Self { parts, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its bytes in one buffer (a copy unless it is a single piece).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts[0].clone(),
            _ => Bytes::from(
                self.parts
                    .iter()
                    .flat_map(|p| p.iter().copied())
                    .collect::<Vec<u8>>(),
            ),
        }
    }
}

impl From<Bytes> for UpstreamBody {
    fn from(bytes: Bytes) -> Self {
        Self::from_parts([bytes])
    }
}

impl From<UpstreamBody> for reqwest::Body {
    /// A single piece stays a plain buffer; several are sent as a body of exact length, which
    /// hyper writes with `content-length` and one vectored write where the socket allows it.
    fn from(body: UpstreamBody) -> Self {
        if body.parts.len() <= 1 {
            return reqwest::Body::from(body.to_bytes());
        }
        reqwest::Body::wrap(body)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.parts.pop_front().map(|part| {
            this.len -= part.len() as u64;
            Ok(Frame::data(part))
        });
        Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn sends_its_pieces_in_order_with_their_exact_length() {
        let body = UpstreamBody::from_parts([
            Bytes::from_static(b"{\"model\":"),
            Bytes::new(),
            Bytes::from_static(b"\"m\""),
            Bytes::from_static(b"}"),
        ]);
        assert_eq!(body.len(), 13);
        assert_eq!(body.size_hint().exact(), Some(13));
        assert_eq!(&body.to_bytes()[..], b"{\"model\":\"m\"}");
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"{\"model\":\"m\"}");
    }

    #[test]
    fn one_piece_is_that_buffer() {
        let bytes = Bytes::from_static(b"{}");
        let body = UpstreamBody::from(bytes.clone());
        assert_eq!(body.to_bytes().as_ptr(), bytes.as_ptr());
        assert!(!body.is_end_stream());
        assert!(UpstreamBody::from(Bytes::new()).is_end_stream());
    }
}
