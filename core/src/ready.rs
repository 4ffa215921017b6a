//! "Answer now if the store is ready, else go on later": one poll of a future before it
//! is handed to a runtime. The memory store answers on the first poll, so a binding
//! returns its value directly and makes no task, promise or asyncio future at all.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A future's value if it was ready at once, or the future, to be spawned or awaited.
pub enum Now<F: Future> {
    Ready(F::Output),
    Later(Pin<Box<F>>),
}

/// Poll `fut` once, without a waker to be woken by (nothing is lost: a pending future is
/// polled again with a real waker by whoever runs it next).
pub fn now_or_later<F: Future>(fut: F) -> Now<F> {
    let mut fut = Box::pin(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => Now::Ready(value),
        Poll::Pending => Now::Later(fut),
    }
}

/// [`now_or_later`] when `in_process` ([`Store::in_process`](crate::store::Store::in_process)),
/// else the future as it is, not polled: a network store's operation is better started on
/// the runtime that will finish it. For the bindings (`idempo::host`).
#[cfg_attr(not(feature = "host"), allow(dead_code))]
pub fn now_if<F: Future>(in_process: bool, fut: F) -> Now<F> {
    if in_process { now_or_later(fut) } else { Now::Later(Box::pin(fut)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_at_once_or_later() {
        assert!(matches!(now_or_later(async { 7 }), Now::Ready(7)));
        let later = now_or_later(tokio::task::yield_now());
        assert!(matches!(later, Now::Later(_)));
    }
}
