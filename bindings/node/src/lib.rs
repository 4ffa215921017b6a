//! The idempo core for Node (napi-rs). The npm package's Express middleware and Fastify
//! plugin (`node/`) are written over these classes.

mod engine;
mod error;
// Only JavaScript calls into it: a unit-test build sees no caller.
#[cfg_attr(test, allow(dead_code))]
mod logging;
mod store;
