//! The body types the layer hands on unchanged.
//!
//! A request that is not covered, and its response, go through the layer as they are: no
//! wrapper, so axum (which boxes any body that is not its own `Body`) does not box them
//! again. A keyed request's body, read whole, is made again from its bytes; a replay or a
//! problem is a body of bytes; a response being recorded is a body around the recorder.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Full};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body type the layer can make: axum's `Body`, or `http-body-util`'s
/// `UnsyncBoxBody` (for a hyper service, map `Incoming` into one of these first).
pub trait HttpBody: Body<Data = Bytes> + Send + Sized + 'static {
    /// A body holding `bytes`.
    fn from_bytes(bytes: Bytes) -> Self;

    /// A body streaming `body`.
    fn from_body<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>;
}

impl HttpBody for axum_core::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        bytes.into()
    }

    fn from_body<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        axum_core::body::Body::new(body)
    }
}

impl HttpBody for http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
    }

    fn from_body<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        body.map_err(Into::into).boxed_unsync()
    }
}
