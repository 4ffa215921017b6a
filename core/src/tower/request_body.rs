//! How a keyed request's body is read (B7), or drained when it is refused.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;

/// Why a request body could not be buffered.
pub(crate) enum ReadError {
    /// Over the limit: what is left is [`BodyReader::into_body`].
    TooLarge,
    Failed(String),
}

/// Read and discard up to `limit` bytes of a refused body, so the client, still sending,
/// can read the answer (B7: [`crate::host::DRAIN_LIMIT`]).
pub(crate) async fn drain<B: Body>(body: B, limit: u64) {
    if body.size_hint().lower() > limit {
        return;
    }
    let mut body = std::pin::pin!(body);
    let mut read = 0u64;
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Some(data) = frame.data_ref() {
            read += data.remaining() as u64;
            if read > limit {
                return;
            }
        }
    }
}

/// A request body being buffered, refused as soon as it passes `limit` (B7). Polled in
/// place, so the layer can take a body that is all there already (bytes, or frames already
/// received) without a future of its own, and go on later with one that is not.
pub(crate) struct BodyReader<B> {
    body: B,
    limit: usize,
    /// The first chunk, kept without copying: the common case is one.
    first: Option<Bytes>,
    buf: BytesMut,
    /// Found over the limit: it stays so (what was read of it is gone).
    refused: bool,
}

impl<B> BodyReader<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub(crate) fn new(body: B, limit: usize) -> Self {
        BodyReader { body, limit, first: None, buf: BytesMut::new(), refused: false }
    }

    /// The whole body once it has all come; what is left of it when it is over the limit.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, ReadError>> {
        if self.refused
            || (self.first.is_none() && self.buf.is_empty() && self.body.size_hint().lower() > self.limit as u64)
        {
            self.refused = true;
            return Poll::Ready(Err(ReadError::TooLarge));
        }
        while let Some(frame) = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    let reason = format!("the request body could not be read: {}", e.into());
                    return Poll::Ready(Err(ReadError::Failed(reason)));
                }
            };
            let Ok(mut data) = frame.into_data() else { continue };
            let total = self.first.as_ref().map_or(0, Bytes::len) + self.buf.len() + data.len();
            if total > self.limit {
                self.refused = true;
                return Poll::Ready(Err(ReadError::TooLarge));
            }
            match self.first.take() {
                None if self.buf.is_empty() => self.first = Some(data.copy_to_bytes(data.remaining())),
                held => {
                    if let Some(held) = held {
                        self.buf.extend_from_slice(&held);
                    }
                    self.buf.extend_from_slice(&data);
                }
            }
        }
        let bytes = self.first.take().unwrap_or_else(|| std::mem::take(&mut self.buf).freeze());
        Poll::Ready(Ok(bytes))
    }

    /// The whole body if it is all there now, read without waiting.
    pub(crate) fn read_now(&mut self) -> Option<Result<Bytes, ReadError>> {
        match self.poll_read(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(read) => Some(read),
            Poll::Pending => None,
        }
    }

    /// What is left of the body (after [`ReadError::TooLarge`]).
    pub(crate) fn into_body(self) -> B {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body giving its chunks one poll at a time, `None` standing for a poll that finds
    /// nothing yet (the rest of the body still on its way).
    struct Arriving(VecDeque<Option<&'static [u8]>>);

    impl Body for Arriving {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            match self.0.pop_front() {
                Some(Some(chunk)) => Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(chunk))))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    fn arriving(parts: &[Option<&'static [u8]>]) -> Arriving {
        Arriving(parts.iter().copied().collect())
    }

    #[test]
    fn a_body_all_there_is_read_now() {
        let mut reader = BodyReader::new(arriving(&[Some(b"ab"), Some(b"cd")]), 10);
        assert!(matches!(reader.read_now(), Some(Ok(b)) if b == "abcd"));
    }

    #[test]
    fn a_body_still_coming_is_read_on_from_where_it_stopped() {
        let mut reader = BodyReader::new(arriving(&[Some(b"ab"), None, Some(b"cd")]), 10);
        assert!(reader.read_now().is_none());
        assert!(matches!(reader.read_now(), Some(Ok(b)) if b == "abcd"), "the first chunk was kept");
    }

    #[test]
    fn b7_a_body_over_the_limit_stays_refused() {
        let mut reader = BodyReader::new(arriving(&[Some(b"abc"), Some(b"defgh"), Some(b"i")]), 5);
        assert!(matches!(reader.read_now(), Some(Err(ReadError::TooLarge))));
        // Asked again (the future goes on where `call` stopped), it is still refused: the
        // chunk that went over is gone, and what follows must not make up a shorter body.
        assert!(matches!(reader.read_now(), Some(Err(ReadError::TooLarge))));
        assert_eq!(reader.into_body().0.len(), 1, "the rest is left to drain");
    }
}
