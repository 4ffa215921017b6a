//! How a keyed request's body is read (B7), or drained when it is refused.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;

/// Why a request body could not be buffered.
pub(crate) enum ReadError<B> {
    /// Over the limit; the rest of the body.
    TooLarge(B),
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

/// Buffer a request body, refusing it as soon as it passes `limit` (B7).
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ReadError<Pin<Box<B>>>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = Box::pin(body);
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge(body));
    }
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| ReadError::Failed(format!("the request body could not be read: {}", e.into())))?;
        let Ok(mut data) = frame.into_data() else { continue };
        let total = first.as_ref().map_or(0, Bytes::len) + buf.len() + data.len();
        if total > limit {
            return Err(ReadError::TooLarge(body));
        }
        // The common case is one chunk: keep it without copying.
        match first.take() {
            None if buf.is_empty() => first = Some(data.copy_to_bytes(data.remaining())),
            held => {
                if let Some(held) = held {
                    buf.extend_from_slice(&held);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}
