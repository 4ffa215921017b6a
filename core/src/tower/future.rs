//! The response future: the inner future itself for a request that is not covered (no
//! allocation), a ready answer, or the boxed work of a keyed request.
//!
//! Dropped before a keyed request's work is done (the client went away, or an outer
//! timeout gave up), the work is not lost: it moves to a task of its own that drives the
//! handler to its end and records its response, so a retry replays it (B11). The handler
//! has started, and only its own error may give the key back.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::HttpBody;

pub(crate) type BoxResponseFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

/// Where an unfinished keyed future goes when its caller drops it (a task, see service.rs).
pub(crate) type Rescue<B, E> = fn(BoxResponseFuture<B, E>);

pin_project! {
    /// Response future of [`IdempotencyService`](super::IdempotencyService).
    pub struct ResponseFuture<F, B: Body, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }

    impl<F, B: Body, E> PinnedDrop for ResponseFuture<F, B, E> {
        fn drop(this: Pin<&mut Self>) {
            if let KindProj::Idempotent { fut, rescue } = this.project().kind.project()
                && let Some(fut) = fut.take()
            {
                rescue(fut);
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B: Body, E> {
        // Not covered: the inner future as it is, its response unchanged.
        Passthrough { #[pin] fut: F },
        // Refused from the head alone (a 400 problem); boxed, so that this rare answer does
        // not make every response future the size of a response.
        Ready { res: Option<Box<Response<Bytes>>> },
        // Keyed: buffering, claiming and running the handler; `None` once it answered.
        Idempotent { fut: Option<BoxResponseFuture<B, E>>, rescue: Rescue<B, E> },
    }
}

impl<F, B: Body, E> ResponseFuture<F, B, E> {
    pub(crate) fn passthrough(fut: F) -> Self {
        ResponseFuture { kind: Kind::Passthrough { fut } }
    }

    pub(crate) fn ready(res: Response<Bytes>) -> Self {
        ResponseFuture { kind: Kind::Ready { res: Some(Box::new(res)) } }
    }

    pub(crate) fn idempotent(fut: BoxResponseFuture<B, E>, rescue: Rescue<B, E>) -> Self {
        ResponseFuture { kind: Kind::Idempotent { fut: Some(fut), rescue } }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: HttpBody,
{
    type Output = Result<Response<B>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { fut } => fut.poll(cx),
            KindProj::Ready { res } => match res.take() {
                Some(res) => Poll::Ready(Ok((*res).map(B::from_bytes))),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Idempotent { fut, .. } => match fut {
                Some(work) => {
                    let out = ready!(work.as_mut().poll(cx));
                    *fut = None;
                    Poll::Ready(out)
                }
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}
