use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::future::{BoxResponseFuture, ResponseFuture};
use super::layer::ScopeRule;
use super::request_body::{ReadError, RequestBody, drain, read_body};
use super::response_body::{Collected, End, Recording, ResponseBody, collect_ready};
use crate::engine::{Check, Decision, Idempotency};
use crate::host::{DRAIN_LIMIT, Recorder};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A keyed request's work, dropped unfinished by its caller (a client gone, an outer
/// timeout): driven to its end by a task, its response recorded (B11).
fn rescue_future<B, E>(fut: BoxResponseFuture<B, E>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
    E: Send + 'static,
{
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(RESCUED.scope((), async move {
            if let Ok(res) = fut.await
                && let Some(rec) = res.into_body().into_unfinished()
            {
                rec.finish_unattended().await;
            }
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
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().as_bytes();
        let query = parts.uri.query().unwrap_or("").as_bytes();
        let mut pending = match self.idem.check(parts.method.as_str(), path, query, &parts.headers) {
            Check::Bypass => {
                return ResponseFuture::passthrough(
                    self.inner.call(Request::from_parts(parts, RequestBody::inner(body))),
                );
            }
            // A 413 is answered after reading what is left of a modest body, so the client,
            // still sending, can read the answer before the connection closes.
            Check::Respond(res) if res.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return ResponseFuture::idempotent(
                    Box::pin(async move {
                        drain(body, DRAIN_LIMIT).await;
                        Ok(res.map(ResponseBody::full))
                    }),
                    rescue_future,
                );
            }
            Check::Respond(res) => return ResponseFuture::ready(res),
            Check::Proceed(pending) => pending,
        };
        match &self.scope {
            ScopeRule::Default => {}
            ScopeRule::Fn(scope) => pending.set_scope(scope(&parts)),
            ScopeRule::Global => pending.set_global_scope(),
        }
        // The service that was polled ready goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::idempotent(
            Box::pin(async move {
                let bytes = match read_body(body, pending.body_limit()).await {
                    Ok(bytes) => bytes,
                    Err(ReadError::TooLarge(rest)) => {
                        drain(rest, DRAIN_LIMIT).await;
                        return Ok(pending.too_large().map(ResponseBody::full));
                    }
                    Err(ReadError::Failed(reason)) => return Ok(pending.unreadable(&reason).map(ResponseBody::full)),
                };
                let lease = match pending.begin_until(&bytes, caller_gone()).await {
                    Decision::Respond(res) => return Ok(res.map(ResponseBody::full)),
                    Decision::Bypass => {
                        let res = inner.call(Request::from_parts(parts, RequestBody::buffered(bytes))).await?;
                        return Ok(res.map(ResponseBody::passthrough));
                    }
                    Decision::Execute(lease) => lease,
                };
                let mut rec = Recorder::new(lease);
                // An error or a panic in the handler releases the key before it propagates, so
                // the client's retry (after its 500) runs again rather than meeting a 409.
                let call = inner.call(Request::from_parts(parts, RequestBody::buffered(bytes)));
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
                    return Ok(Response::from_parts(parts, ResponseBody::passthrough(body)));
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
                        return Ok(Response::from_parts(
                            parts,
                            ResponseBody::recording(body, rec, collected, rescue_recording),
                        ));
                    }
                };
                if let Some(write) = rec.finish() {
                    write.await;
                }
                Ok(Response::from_parts(parts, ResponseBody::collected(frames)))
            }),
            rescue_future,
        )
    }
}
