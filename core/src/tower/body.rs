//! The request body handed to the inner service, and the response body that records a copy
//! while streaming (B7, B12, B13).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::capture::Capture;
use crate::lease::Lease;

pin_project! {
    /// The request body the inner service sees: the original stream for requests that are
    /// not covered, or the buffered bytes of a keyed request, unchanged.
    #[project = RequestBodyProj]
    pub enum RequestBody<B> {
        Inner { #[pin] body: B },
        Buffered { body: Full<Bytes> },
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        RequestBody::Inner { body }
    }

    pub(crate) fn buffered(data: Bytes) -> Self {
        RequestBody::Buffered { body: Full::new(data) }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            RequestBodyProj::Inner { body } => body.poll_frame(cx),
            RequestBodyProj::Buffered { body } => Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Inner { body } => body.is_end_stream(),
            RequestBody::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Inner { body } => body.size_hint(),
            RequestBody::Buffered { body } => body.size_hint(),
        }
    }
}

/// Why a request body could not be buffered.
pub(crate) enum ReadError<B> {
    /// Over the limit; the rest of the body.
    TooLarge(B),
    Failed(String),
}

/// How much of a refused body is read (and thrown away) so the client sees the 413: HTTP/1
/// clients usually send the whole body before reading the answer, and closing on unread
/// data resets the connection. Past this the connection is simply closed.
pub(crate) const DRAIN_LIMIT: u64 = 8 << 20;

/// Read and discard up to `limit` bytes of `body`.
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

type CompletionFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// State of a response being recorded for replay.
pub(crate) struct Recorder {
    lease: Option<Lease>,
    status: StatusCode,
    headers: HeaderMap,
    capture: Capture,
}

impl Recorder {
    pub(crate) fn new(lease: Lease, status: StatusCode, headers: HeaderMap, content_length: Option<u64>) -> Recorder {
        let capture = lease.capture(content_length);
        Recorder { lease: Some(lease), status, headers, capture }
    }

    /// The store write of the recorded response, once its last byte has been seen.
    fn completion(&mut self) -> Option<CompletionFuture> {
        let lease = self.lease.take()?;
        let capture = std::mem::replace(&mut self.capture, Capture::new(0, None));
        let status = self.status;
        let headers = std::mem::take(&mut self.headers);
        Some(Box::pin(async move { lease.complete(status, &headers, capture.finish()).await }))
    }

    /// The handler's body failed part way: the response is incomplete, so the key is
    /// released for a retry (B11).
    fn fail(&mut self) {
        drop(self.lease.take());
    }

    /// Take the frames `body` has ready now, without waiting, until it ends or about the
    /// capture limit has been read (so memory stays bounded by what a record may hold).
    ///
    /// Why: a response whose body is already complete (any non-streamed handler answer) is
    /// then stored before its head is handed to the server, and the server writes head and
    /// body together. Holding back only the body would make the server send the head alone
    /// and the body after the store write: two small writes, which Nagle's algorithm and
    /// the client's delayed ACK turn into a 40 ms stall on sockets without TCP_NODELAY.
    pub(crate) async fn collect_ready<B: Body<Data = Bytes>>(&mut self, mut body: Pin<&mut B>) -> Collected<B::Error> {
        let mut frames = VecDeque::new();
        let mut read = 0usize;
        loop {
            if body.is_end_stream() {
                return Collected { frames, end: End::Ended };
            }
            if read > self.capture.limit() {
                return Collected { frames, end: End::More };
            }
            let next = std::future::poll_fn(|cx| match body.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => Poll::Ready(Some(frame)),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            match next {
                None => return Collected { frames, end: End::More },
                Some(None) => return Collected { frames, end: End::Ended },
                Some(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        read += data.len();
                        self.capture.push(data);
                    }
                    frames.push_back(frame);
                }
                Some(Some(Err(e))) => {
                    self.fail();
                    return Collected { frames, end: End::Failed(e) };
                }
            }
        }
    }

    /// Store the response now (its body has ended).
    pub(crate) async fn complete(mut self) {
        if let Some(completion) = self.completion() {
            completion.await;
        }
    }
}

/// What [`Recorder::collect_ready`] found.
pub(crate) struct Collected<E> {
    pub(crate) frames: VecDeque<Frame<Bytes>>,
    pub(crate) end: End<E>,
}

pub(crate) enum End<E> {
    /// The body is over: everything is in `frames`.
    Ended,
    /// More is coming (or the rest was left to stream).
    More,
    /// The body failed after `frames`; the key has been released.
    Failed(E),
}

/// A response being streamed and recorded: frames already taken from the body first, then
/// the rest of the body.
pub(crate) struct Recording<B: Body> {
    body: Pin<Box<B>>,
    rec: Recorder,
    early: VecDeque<Frame<Bytes>>,
    error: Option<B::Error>,
    /// The store write, polled before the end of the body is signalled.
    completing: Option<CompletionFuture>,
    /// The last frame, held back until the write lands.
    held: Option<Frame<Bytes>>,
}

impl<B: Body<Data = Bytes>> Recording<B> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.early.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = self.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            if let Some(completing) = self.completing.as_mut() {
                ready!(completing.as_mut().poll(cx));
                self.completing = None;
                return Poll::Ready(self.held.take().map(Ok));
            }
            if self.rec.lease.is_none() {
                // Completed (or failed) already: whatever is left passes through.
                return self.body.as_mut().poll_frame(cx);
            }
            match ready!(self.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.rec.capture.push(data);
                    }
                    if !self.body.is_end_stream() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame: store the response before the client can see the
                    // end of it, so an immediate retry finds the replay (B11).
                    self.held = Some(frame);
                    self.completing = self.rec.completion();
                }
                Some(Err(e)) => {
                    self.rec.fail();
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.completing = self.rec.completion(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.early.is_empty()
            && self.error.is_none()
            && self.rec.lease.is_none()
            && self.completing.is_none()
            && self.held.is_none()
            && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let early: u64 = self.early.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum();
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + early);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + early);
        }
        hint
    }
}

pin_project! {
    /// The response body: passed through, recorded while streaming, a response recorded
    /// whole before it was handed back, or a full answer made by the engine (a replay or a
    /// problem).
    #[project = ResponseBodyProj]
    pub enum ResponseBody<B: Body> {
        Passthrough { #[pin] body: B },
        Recording { rec: Box<Recording<B>> },
        Collected { frames: VecDeque<Frame<Bytes>> },
        Full { body: Full<Bytes> },
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        ResponseBody::Passthrough { body }
    }

    pub(crate) fn recording(body: Pin<Box<B>>, rec: Recorder, collected: Collected<B::Error>) -> Self {
        let error = match collected.end {
            End::Failed(e) => Some(e),
            End::Ended | End::More => None,
        };
        ResponseBody::Recording {
            rec: Box::new(Recording { body, rec, early: collected.frames, error, completing: None, held: None }),
        }
    }

    pub(crate) fn collected(frames: VecDeque<Frame<Bytes>>) -> Self {
        ResponseBody::Collected { frames }
    }

    pub(crate) fn full(data: Bytes) -> Self {
        ResponseBody::Full { body: Full::new(data) }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            ResponseBodyProj::Passthrough { body } => body.poll_frame(cx),
            ResponseBodyProj::Full { body } => Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
            ResponseBodyProj::Collected { frames } => Poll::Ready(frames.pop_front().map(Ok)),
            ResponseBodyProj::Recording { rec } => rec.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Passthrough { body } => body.is_end_stream(),
            ResponseBody::Full { body } => body.is_end_stream(),
            ResponseBody::Collected { frames } => frames.is_empty(),
            ResponseBody::Recording { rec } => rec.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Passthrough { body } => body.size_hint(),
            ResponseBody::Full { body } => body.size_hint(),
            ResponseBody::Collected { frames } => {
                SizeHint::with_exact(frames.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum())
            }
            ResponseBody::Recording { rec } => rec.size_hint(),
        }
    }
}
