//! A request body on its way to an upstream: one buffer, or the pieces of the caller's body
//! around what the gateway changed in it (the model name, a `stream_options` member), sent one
//! after the other as one body of known length and never joined into a new buffer. A channel
//! that needs the whole body (one that edits it as JSON, or signs its hash) gets it joined.

use crate::channels::ChannelAuth;
use crate::config::Target;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request body for an upstream, in one or more pieces.
#[derive(Debug, Clone)]
pub struct Outgoing(Vec<Bytes>);

impl Outgoing {
    /// A body made of `pieces`, in order.
    pub fn pieces(pieces: Vec<Bytes>) -> Self {
        Self(pieces)
    }

    /// The whole body in one buffer: the pieces joined (a copy only when there are several).
    pub fn whole(self) -> Bytes {
        match <[Bytes; 1]>::try_from(self.0) {
            Ok([one]) => one,
            Err(pieces) => Bytes::from(pieces.concat()),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Outgoing {
    fn from(body: Bytes) -> Self {
        Self(vec![body])
    }
}

impl From<Outgoing> for OutgoingBody {
    fn from(body: Outgoing) -> Self {
        let remaining = body.len() as u64;
        Self {
            pieces: body.0.into(),
            remaining,
        }
    }
}

impl From<Bytes> for OutgoingBody {
    fn from(body: Bytes) -> Self {
        Outgoing::from(body).into()
    }
}

/// Whether `target`'s channel needs the body in one buffer: Bedrock and Vertex rewrite it as
/// JSON (`anthropic_version` in, `model` out), and SigV4 signs its hash.
pub fn needs_whole_body(target: &Target) -> bool {
    target.spec().body_version.is_some()
        || matches!(target.provider.channel_auth, Some(ChannelAuth::Aws(_)))
}

/// The pieces as an HTTP body of exact length (so it goes out with `Content-Length`, in
/// vectored writes).
#[derive(Debug)]
pub struct OutgoingBody {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl OutgoingBody {
    /// The bytes of a body in one piece (as a channel that signs it has it), else nothing.
    pub fn single(&self) -> Option<&Bytes> {
        match self.pieces.as_slices() {
            ([one], []) => Some(one),
            _ => None,
        }
    }
}

impl http_body::Body for OutgoingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let piece = self.pieces.pop_front();
        if let Some(piece) = &piece {
            self.remaining -= piece.len() as u64;
        }
        Poll::Ready(piece.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn pieces_go_out_as_one_body_of_exact_length() {
        let body = Outgoing::pieces(vec![
            Bytes::from_static(b"{\"model\":"),
            Bytes::from_static(b"\"gpt\""),
            Bytes::from_static(b",\"x\":1}"),
        ]);
        assert_eq!(body.len(), 21);
        let wire = OutgoingBody::from(body.clone());
        assert!(wire.single().is_none());
        assert_eq!(http_body::Body::size_hint(&wire).exact(), Some(21));
        let sent = wire.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"{\"model\":\"gpt\",\"x\":1}");
        assert_eq!(&body.whole()[..], &sent[..]);
        let one = Outgoing::from(Bytes::from_static(b"{}"));
        let one = OutgoingBody::from(one);
        assert_eq!(http_body::Body::size_hint(&one).exact(), Some(2));
        assert_eq!(one.single().map(|b| &b[..]), Some(&b"{}"[..]));
    }
}
