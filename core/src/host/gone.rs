//! A client that leaves while its request waits for an in-flight duplicate (B20).
//!
//! A binding makes a [`Gone`] with each keyed request, passes [`Gone::left`] to
//! [`Pending::begin_until`](crate::Pending::begin_until), and calls [`Gone::leave`] when its
//! framework says the client went away (an ASGI `http.disconnect`, a Node socket's
//! `close`): the wait stops and its place among `max_waiters` is free at once. Leaving
//! before or after the wait changes nothing.

use std::sync::Arc;

use tokio::sync::Notify;

/// The signal that a request's client left. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Gone(Arc<Notify>);

impl Gone {
    pub fn new() -> Gone {
        Gone::default()
    }

    /// The client left: a wait under way, or one that starts later, stops.
    pub fn leave(&self) {
        self.0.notify_one();
    }

    /// Resolves once [`Gone::leave`] was called (before or after this was made).
    pub fn left(&self) -> impl Future<Output = ()> + Send + 'static {
        let notify = self.0.clone();
        async move { notify.notified().await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leaving_before_the_wait_still_stops_it() {
        let gone = Gone::new();
        gone.leave();
        tokio::time::timeout(std::time::Duration::from_secs(1), gone.left()).await.expect("already left");
        let gone = Gone::new();
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(20), gone.left()).await;
        assert!(quiet.is_err(), "nobody left yet");
    }
}
