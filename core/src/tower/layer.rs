use std::sync::Arc;

use tower_layer::Layer;

use super::service::IdempotencyService;
use crate::engine::Idempotency;

/// The scope function (B5): the namespace a request's key lives in, from its head.
pub type ScopeFn = Arc<dyn Fn(&http::request::Parts) -> String + Send + Sync>;

/// Applies idempotency to a service; made by [`Idempotency::layer`].
#[derive(Clone)]
pub struct IdempotencyLayer {
    idem: Idempotency,
    scope: Option<ScopeFn>,
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("idem", &self.idem)
            .field("scope", &self.scope.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl IdempotencyLayer {
    pub fn new(idem: Idempotency) -> Self {
        IdempotencyLayer { idem, scope: None }
    }

    /// Keys live in the namespace `scope` returns for a request (B5): the authenticated
    /// caller (account, tenant, user id), so two callers never share a stored response.
    ///
    /// ```
    /// # use idempo::{Idempotency, MemoryStore};
    /// let layer = Idempotency::builder(MemoryStore::new()).build().layer().scope(|req| {
    ///     // What the authentication layer in front of this one put there.
    ///     req.extensions.get::<AccountId>().map(|a| a.0.clone()).unwrap_or_default()
    /// });
    /// # #[derive(Clone)] struct AccountId(String);
    /// ```
    pub fn scope(mut self, scope: impl Fn(&http::request::Parts) -> String + Send + Sync + 'static) -> Self {
        self.scope = Some(Arc::new(scope));
        self
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService::new(inner, self.idem.clone(), self.scope.clone())
    }
}

impl Idempotency {
    /// The tower layer: `axum::Router::new().route(..).layer(idem.layer())`.
    pub fn layer(&self) -> IdempotencyLayer {
        IdempotencyLayer::new(self.clone())
    }
}
