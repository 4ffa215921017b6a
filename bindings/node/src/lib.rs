//! The idempo core for Node (napi-rs). The npm package's Express middleware and Fastify
//! plugin (`node/`) are written over these classes.

/// The addon's own allocations (not Node's) come from mimalloc: Node's thread and the
/// runtime's allocate and free for each other on every store operation, and glibc's
/// arenas make them wait on one another's locks for it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg_attr(test, allow(dead_code))]
mod completions;
mod convert;
// Only JavaScript calls into these: a unit-test build sees no caller.
#[cfg_attr(test, allow(dead_code))]
mod engine;
mod error;
#[cfg_attr(test, allow(dead_code))]
mod hot;
#[cfg_attr(test, allow(dead_code))]
mod logging;
#[cfg_attr(test, allow(dead_code))]
mod store;

/// `look` and `claim` on the module's exports (hot.rs: plain Node-API functions).
#[napi_derive::napi(module_exports, catch_unwind)]
pub fn hot_functions(exports: napi::bindgen_prelude::Object, env: napi::Env) -> napi::Result<()> {
    use napi::bindgen_prelude::JsValue;
    hot::functions(env.raw(), exports.raw())
}
