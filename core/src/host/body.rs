//! What is done with the rest of a refused request body (B7).

/// How much of a refused body (413) is read and thrown away, in every integration, so that
/// an HTTP/1 client that sends its whole body before reading the answer gets to read its
/// 413 instead of a reset connection. Past it, the connection is closed: a client sending
/// more than this to a refusing server is not worth the bandwidth.
pub const DRAIN_LIMIT: u64 = 8 << 20;
