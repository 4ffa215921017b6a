use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::body::HttpBody;
use super::future::{BoxResponseFuture, ResponseFuture};
use super::layer::ScopeRule;
use super::request_body::{BodyReader, ReadError, drain};
use super::response_body::{Collected, End, Recording, ResponseBody, collect_ready};
use crate::engine::{Begun, Check, Decision, Idempotency, Pending};
use crate::host::{DRAIN_LIMIT, Recorder};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A keyed request's work, dropped unfinished by its caller (a client gone, an outer
/// timeout): driven to its end by a task, its response recorded (B11). A response still
/// being recorded when the work ends is dropped here, unread, and its body hands the rest
/// of the recording to a task of its own (`rescue_recording`).
fn rescue_future<B, E>(fut: BoxResponseFuture<B, E>)
where
    B: Send + 'static,
    E: Send + 'static,
{
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(RESCUED.scope((), async move {
            drop(fut.await);
        }));
    }
}

tokio::task_local! {
    /// Set in the task that finishes a keyed request its caller dropped.
    static RESCUED: ();
}

/// Resolves once the request's work was dropped by its caller and moved to a task of its
/// own: a request that was only waiting for its original (B20) then stops, as there is
/// no one left to answer.
fn caller_gone() -> impl std::future::Future<Output = ()> {
    std::future::poll_fn(|_| if RESCUED.try_with(|_| ()).is_ok() { Poll::Ready(()) } else { Poll::Pending })
}

/// Where a keyed request's future starts: its body read and the claim begun already, or
/// its body still to read.
enum Start<B> {
    Begun(Bytes, Begun),
    Reading(BodyReader<B>, Pending),
}

/// A recorded body dropped before its record was stored (a client gone mid-body): the rest
/// read for the record by a task (B11, B12).
fn rescue_recording<B>(rec: Box<Recording<B>>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(rec.finish_unattended());
    }
}

/// A response read whole before it was handed back: one body of its bytes when it is one
/// chunk (the usual answer), its frames as they came otherwise (several, or trailers).
fn collected_body<B>(mut frames: std::collections::VecDeque<http_body::Frame<Bytes>>) -> B
where
    B: HttpBody,
    B::Error: Into<BoxError> + Send,
{
    if frames.len() <= 1 && frames.front().is_none_or(http_body::Frame::is_data) {
        let data = frames.pop_front().and_then(|f| f.into_data().ok()).unwrap_or_default();
        return B::from_bytes(data);
    }
    B::from_body(ResponseBody::<B>::collected(frames))
}

/// Idempotency over an inner HTTP service; made by [`IdempotencyLayer`](super::IdempotencyLayer).
#[derive(Clone)]
pub struct IdempotencyService<S> {
    inner: S,
    idem: Idempotency,
    scope: ScopeRule,
}

impl<S: std::fmt::Debug> std::fmt::Debug for IdempotencyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyService").field("inner", &self.inner).field("idem", &self.idem).finish()
    }
}

impl<S> IdempotencyService<S> {
    pub(crate) fn new(inner: S, idem: Idempotency, scope: ScopeRule) -> Self {
        IdempotencyService { inner, idem, scope }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IdempotencyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: HttpBody + Unpin,
    ReqBody::Error: Into<BoxError>,
    ResBody: HttpBody,
    ResBody::Error: Into<BoxError> + Send,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let check = self.idem.check_head(req.method(), req.uri(), req.headers());
        let mut pending = match check {
            // A request that is not covered goes on as it came, not even taken apart.
            Check::Bypass => return ResponseFuture::passthrough(self.inner.call(req)),
            // A 413 is answered after reading what is left of a modest body, so the client,
            // still sending, can read the answer before the connection closes.
            Check::Respond(res) if res.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let body = req.into_body();
                return ResponseFuture::idempotent(
                    Box::pin(async move {
                        drain(body, DRAIN_LIMIT).await;
                        Ok(res.map(ResBody::from_bytes))
                    }),
                    rescue_future,
                );
            }
            Check::Respond(res) => return ResponseFuture::ready(res),
            Check::Proceed(pending) => pending,
        };
        let (parts, body) = req.into_parts();
        match &self.scope {
            ScopeRule::Default => {}
            ScopeRule::Fn(scope) => pending.set_scope(scope(&parts)),
            ScopeRule::Global => pending.set_global_scope(),
        }
        // A body that is all there already (a body of bytes, or one whose frames have come)
        // is read now, and a replay or a problem answered with no future and no service
        // clone; one still coming is read by the future.
        let mut reader = BodyReader::new(body, pending.body_limit());
        let start = match reader.read_now() {
            Some(Ok(bytes)) => match pending.begin_now(&bytes) {
                Begun::Decided(Decision::Respond(res)) => return ResponseFuture::ready(res),
                begun => Start::Begun(bytes, begun),
            },
            Some(Err(ReadError::Failed(reason))) => return ResponseFuture::ready(pending.unreadable(&reason)),
            Some(Err(ReadError::TooLarge)) | None => Start::Reading(reader, pending),
        };
        // The service that was polled ready goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::idempotent(
            Box::pin(async move {
                let (bytes, begun) = match start {
                    Start::Begun(bytes, begun) => (bytes, begun),
                    Start::Reading(mut reader, pending) => {
                        match std::future::poll_fn(|cx| reader.poll_read(cx)).await {
                            Ok(bytes) => {
                                let begun = pending.begin_now(&bytes);
                                (bytes, begun)
                            }
                            Err(ReadError::TooLarge) => {
                                drain(reader.into_body(), DRAIN_LIMIT).await;
                                return Ok(pending.too_large().map(ResBody::from_bytes));
                            }
                            Err(ReadError::Failed(reason)) => {
                                return Ok(pending.unreadable(&reason).map(ResBody::from_bytes));
                            }
                        }
                    }
                };
                let decision = match begun {
                    Begun::Decided(decision) => decision,
                    Begun::Claiming(claiming) => claiming.finish(caller_gone()).await,
                };
                let lease = match decision {
                    Decision::Respond(res) => return Ok(res.map(ResBody::from_bytes)),
                    Decision::Bypass => {
                        return inner.call(Request::from_parts(parts, ReqBody::from_bytes(bytes))).await;
                    }
                    Decision::Execute(lease) => lease,
                };
                let mut rec = Recorder::new(lease);
                // An error or a panic in the handler releases the key before it propagates, so
                // the client's retry (after its 500) runs again rather than meeting a 409.
                let call = inner.call(Request::from_parts(parts, ReqBody::from_bytes(bytes)));
                let res = match AssertUnwindSafe(call).catch_unwind().await {
                    Ok(Ok(res)) => res,
                    Ok(Err(e)) => {
                        if let Some(release) = rec.fail() {
                            release.await;
                        }
                        return Err(e);
                    }
                    Err(panic) => {
                        if let Some(release) = rec.fail() {
                            release.await;
                        }
                        std::panic::resume_unwind(panic);
                    }
                };
                let (parts, body) = res.into_parts();
                let bodiless = matches!(parts.status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
                if parts.status == StatusCode::SWITCHING_PROTOCOLS || bodiless || body.is_end_stream() {
                    // No body to send (204, 304, an empty 201), or an upgraded connection, which
                    // the recorder releases (B13): servers never poll such a body, so the
                    // response is stored (or the key released) now, before it is handed back.
                    rec.start(parts.status, &parts.headers, Some(0));
                    if let Some(write) = rec.finish() {
                        write.await;
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                rec.start(parts.status, &parts.headers, body.size_hint().exact());
                let mut body = Box::pin(body);
                let Collected { frames, end } = collect_ready(&mut rec, body.as_mut()).await;
                // The outcome (which may hold the body's error, not `Send`) is moved into a
                // temporary that is gone before the store write is awaited.
                let frames = match std::convert::identity(end) {
                    End::Ended => frames,
                    end => {
                        let collected = Collected { frames, end };
                        let recording = ResponseBody::recording(body, rec, collected, rescue_recording);
                        return Ok(Response::from_parts(parts, ResBody::from_body(recording)));
                    }
                };
                if let Some(write) = rec.finish() {
                    write.await;
                }
                Ok(Response::from_parts(parts, collected_body(frames)))
            }),
            rescue_future,
        )
    }
}
