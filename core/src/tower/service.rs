use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::body::{Collected, DRAIN_LIMIT, End, ReadError, Recorder, RequestBody, ResponseBody, drain, read_body};
use super::future::ResponseFuture;
use crate::engine::{Check, Decision, Idempotency};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idempotency over an inner HTTP service; made by [`IdempotencyLayer`](super::IdempotencyLayer).
#[derive(Clone, Debug)]
pub struct IdempotencyService<S> {
    inner: S,
    idem: Idempotency,
}

impl<S> IdempotencyService<S> {
    pub fn new(inner: S, idem: Idempotency) -> Self {
        IdempotencyService { inner, idem }
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
                return ResponseFuture::idempotent(Box::pin(async move {
                    drain(body, DRAIN_LIMIT).await;
                    Ok(res.map(ResponseBody::full))
                }));
            }
            Check::Respond(res) => return ResponseFuture::ready(res),
            Check::Proceed(pending) => pending,
        };
        if let Some(scope) = &self.idem.config().scope {
            pending.set_scope(scope(&parts));
        }
        // The service that was polled ready goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::idempotent(Box::pin(async move {
            let bytes = match read_body(body, pending.body_limit()).await {
                Ok(bytes) => bytes,
                Err(ReadError::TooLarge(rest)) => {
                    drain(rest, DRAIN_LIMIT).await;
                    return Ok(pending.too_large().map(ResponseBody::full));
                }
                Err(ReadError::Failed(reason)) => return Ok(pending.unreadable(&reason).map(ResponseBody::full)),
            };
            let lease = match pending.begin(&bytes).await {
                Decision::Respond(res) => return Ok(res.map(ResponseBody::full)),
                Decision::Bypass => {
                    let res = inner.call(Request::from_parts(parts, RequestBody::buffered(bytes))).await?;
                    return Ok(res.map(ResponseBody::passthrough));
                }
                Decision::Execute(lease) => lease,
            };
            // An error or a panic in the handler releases the key before it propagates, so
            // the client's retry (after its 500) runs again rather than meeting a 409.
            let call = inner.call(Request::from_parts(parts, RequestBody::buffered(bytes)));
            let res = match catch_unwind(call).await {
                Ok(Ok(res)) => res,
                Ok(Err(e)) => {
                    lease.release().await;
                    return Err(e);
                }
                Err(panic) => {
                    lease.release().await;
                    std::panic::resume_unwind(panic);
                }
            };
            if res.status() == StatusCode::SWITCHING_PROTOCOLS {
                // An upgraded connection is not a replayable response (B13).
                lease.release().await;
                return Ok(res.map(ResponseBody::passthrough));
            }
            let (parts, body) = res.into_parts();
            let bodiless = matches!(parts.status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
            if bodiless || body.is_end_stream() {
                // No body to send (204, 304, an empty 201): servers never poll such a body,
                // so the response is stored now, before it is handed back.
                lease.complete(parts.status, &parts.headers, Some(Bytes::new())).await;
                return Ok(Response::from_parts(parts, ResponseBody::passthrough(body)));
            }
            let length = body.size_hint().exact();
            let mut rec = Recorder::new(lease, parts.status, parts.headers.clone(), length);
            let mut body = Box::pin(body);
            let Collected { frames, end } = rec.collect_ready(body.as_mut()).await;
            // The outcome (which may hold the body's error, not `Send`) is moved into a
            // temporary that is gone before the store write is awaited.
            let frames = match std::convert::identity(end) {
                End::Ended => frames,
                end => {
                    return Ok(Response::from_parts(
                        parts,
                        ResponseBody::recording(body, rec, Collected { frames, end }),
                    ));
                }
            };
            rec.complete().await;
            Ok(Response::from_parts(parts, ResponseBody::collected(frames)))
        }))
    }
}

pin_project_lite::pin_project! {
    /// A future whose panic is returned as a value rather than unwinding through the caller.
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

fn catch_unwind<F>(inner: F) -> CatchUnwind<F> {
    CatchUnwind { inner }
}

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        // The inner future is not polled again after a panic: it is dropped with us.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
