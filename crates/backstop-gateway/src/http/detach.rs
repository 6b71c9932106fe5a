//! A request kept for the whole of its answer, on memory of its own.
//!
//! hyper reads a request's head, and a small body with it, into the connection's read buffer
//! (8 KiB to start with) and hands out the header values and the body as slices of that buffer.
//! While one slice lives the buffer cannot be reused, and hyper reads the connection again as
//! soon as the request is in (to see the client hang up while the answer is made), which then
//! takes a second buffer. A request the pipeline keeps until its answer ends (a stream's, for a
//! continuation) would hold both for as long as the stream is open. [`detach`] copies the header
//! values, and the body when it is such a slice, into one allocation of their exact size, so the
//! first buffer is free again once the request's other parts are dropped.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// Copies the values of `headers`, and `body` unless it owns its memory alone, into one
/// allocation, and returns the body on it. A body that owns its memory (one gathered from
/// several reads) is returned as it is: it is never copied twice.
pub fn detach(headers: &mut HeaderMap, body: Bytes) -> Bytes {
    let copy_body = !body.is_empty() && !body.is_unique();
    let values: usize = headers.values().map(HeaderValue::len).sum();
    let body_len = if copy_body { body.len() } else { 0 };
    if values + body_len == 0 {
        return body;
    }
    let mut owned = BytesMut::with_capacity(values + body_len);
    for value in headers.values() {
        owned.extend_from_slice(value.as_bytes());
    }
    if copy_body {
        owned.extend_from_slice(&body);
    }
    let owned = owned.freeze();
    let mut at = 0;
    for value in headers.values_mut() {
        let end = at + value.len();
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(owned.slice(at..end)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        at = end;
    }
    if copy_body {
        owned.slice(at..)
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head and a body read together, as hyper hands them out: slices of one buffer.
    fn read_together() -> (HeaderMap, Bytes, Bytes) {
        let buffer = Bytes::from(b"Bearer sk-1;abc{\"model\":\"m\"}".to_vec());
        let mut headers = HeaderMap::new();
        let mut key = HeaderValue::from_maybe_shared(buffer.slice(0..11)).unwrap();
        key.set_sensitive(true);
        headers.insert("authorization", key);
        headers.append(
            "x-tag",
            HeaderValue::from_maybe_shared(buffer.slice(12..15)).unwrap(),
        );
        let body = buffer.slice(15..);
        (headers, body, buffer)
    }

    #[test]
    fn the_values_and_a_shared_body_no_longer_hold_the_read_buffer() {
        let (mut headers, body, buffer) = read_together();
        let body = detach(&mut headers, body);
        assert_eq!(body, &b"{\"model\":\"m\"}"[..]);
        assert_eq!(headers["authorization"], "Bearer sk-1");
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["x-tag"], "abc");
        assert!(
            buffer.is_unique(),
            "the read buffer is still shared after detach"
        );
    }

    #[test]
    fn a_body_that_owns_its_memory_is_not_copied() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tag", HeaderValue::from_static("abc"));
        let body = Bytes::from(b"{\"model\":\"m\"}".to_vec());
        let at = body.as_ptr();
        let body = detach(&mut headers, body);
        assert_eq!(body.as_ptr(), at);
        assert_eq!(headers["x-tag"], "abc");
    }

    #[test]
    fn repeated_names_keep_their_values_in_order() {
        let buffer = Bytes::from(b"onetwo".to_vec());
        let mut headers = HeaderMap::new();
        headers.append(
            "x-a",
            HeaderValue::from_maybe_shared(buffer.slice(0..3)).unwrap(),
        );
        headers.append(
            "x-a",
            HeaderValue::from_maybe_shared(buffer.slice(3..6)).unwrap(),
        );
        detach(&mut headers, Bytes::new());
        let values: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["one", "two"]);
        assert!(buffer.is_unique());
    }
}
