use std::sync::Arc;

use tower_layer::Layer;

use super::service::IdempotencyService;
use crate::engine::Idempotency;

/// The scope function (B5): the namespace a request's key lives in, from its head.
pub type ScopeFn = Arc<dyn Fn(&http::request::Parts) -> String + Send + Sync>;

/// Where keys live (B5): by default the caller's `Authorization`; the scope function's
/// answer; or one namespace for every caller, asked for explicitly.
#[derive(Clone, Default)]
pub(crate) enum ScopeRule {
    #[default]
    Default,
    Fn(ScopeFn),
    Global,
}

/// Applies idempotency to a service; made by [`Idempotency::layer`].
#[derive(Clone)]
pub struct IdempotencyLayer {
    idem: Idempotency,
    scope: ScopeRule,
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("idem", &self.idem)
            .field(
                "scope",
                &match self.scope {
                    ScopeRule::Default => "authorization",
                    ScopeRule::Fn(_) => "fn",
                    ScopeRule::Global => "global",
                },
            )
            .finish()
    }
}

impl IdempotencyLayer {
    pub fn new(idem: Idempotency) -> Self {
        IdempotencyLayer { idem, scope: ScopeRule::Default }
    }

    /// Keys live in the namespace `scope` returns for a request (B5): the authenticated
    /// caller (account, tenant, user id), so two callers never share a stored response.
    /// Without it a key lives in the namespace of the request's `Authorization` value (its
    /// SHA-256), or, for a request without one, in the global namespace.
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
        self.scope = ScopeRule::Fn(Arc::new(scope));
        self
    }

    /// One namespace for every caller, whatever its credentials: a key sent by two users
    /// is one record (B5). Only for services whose keys are unique across all callers.
    pub fn global_scope(mut self) -> Self {
        self.scope = ScopeRule::Global;
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
