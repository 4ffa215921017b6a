//! Keeping a copy of a response body while it streams to the client (B12, B13).

use bytes::{Bytes, BytesMut};

/// A copy of a response body, kept up to a cap. Past the cap the copy is dropped and the
/// record is stored without a body (B12); the client still gets every byte.
#[derive(Debug)]
pub struct Capture {
    limit: usize,
    /// `None` once the body is known to exceed `limit`.
    buf: Option<BytesMut>,
}

impl Capture {
    /// A capture for a body of at most `limit` bytes. A `content_length` already over the
    /// limit skips copying altogether.
    pub fn new(limit: usize, content_length: Option<u64>) -> Capture {
        let buf = match content_length {
            Some(n) if n > limit as u64 => None,
            Some(n) => Some(BytesMut::with_capacity(n as usize)),
            None => Some(BytesMut::new()),
        };
        Capture { limit, buf }
    }

    /// Add a chunk as it goes out.
    pub fn push(&mut self, chunk: &[u8]) {
        if let Some(buf) = &mut self.buf {
            if buf.len() + chunk.len() > self.limit {
                self.buf = None;
            } else {
                buf.extend_from_slice(chunk);
            }
        }
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the body went over the cap.
    pub fn overflowed(&self) -> bool {
        self.buf.is_none()
    }

    /// The whole body, or `None` if it went over the cap.
    pub fn finish(self) -> Option<Bytes> {
        self.buf.map(BytesMut::freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b12_capture_keeps_up_to_the_cap() {
        let mut c = Capture::new(5, None);
        c.push(b"ab");
        c.push(b"cde");
        assert_eq!(c.finish().unwrap(), Bytes::from_static(b"abcde"));
        let mut c = Capture::new(5, None);
        c.push(b"abc");
        c.push(b"def");
        c.push(b"g");
        assert!(c.overflowed());
        assert_eq!(c.finish(), None);
        assert_eq!(Capture::new(5, Some(6)).finish(), None);
    }
}
