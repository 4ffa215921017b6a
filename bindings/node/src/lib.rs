//! The idempo core for Node (napi-rs). The npm package's Express middleware and Fastify
//! plugin (`node/`) are written over these classes.

mod engine;
mod error;
mod store;
