//! The idempo core for Node (napi-rs). The npm package's Express middleware and Fastify
//! plugin (`node/`) are written over these classes.

#[cfg_attr(test, allow(dead_code))]
mod completions;
mod convert;
// Only JavaScript calls into these: a unit-test build sees no caller.
#[cfg_attr(test, allow(dead_code))]
mod engine;
mod error;
#[cfg_attr(test, allow(dead_code))]
mod logging;
#[cfg_attr(test, allow(dead_code))]
mod store;
