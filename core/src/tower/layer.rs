use tower_layer::Layer;

use super::service::IdempotencyService;
use crate::engine::Idempotency;

/// Applies idempotency to a service; made by [`Idempotency::layer`].
#[derive(Clone, Debug)]
pub struct IdempotencyLayer {
    idem: Idempotency,
}

impl IdempotencyLayer {
    pub fn new(idem: Idempotency) -> Self {
        IdempotencyLayer { idem }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService::new(inner, self.idem.clone())
    }
}

impl Idempotency {
    /// The tower layer: `axum::Router::new().route(..).layer(idem.layer())`.
    pub fn layer(&self) -> IdempotencyLayer {
        IdempotencyLayer::new(self.clone())
    }
}
