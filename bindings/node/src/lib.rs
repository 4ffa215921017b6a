//! The idempo core for Node (napi-rs). The npm package's Express middleware and Fastify
//! plugin (`node/`) are written over these classes.

/// The addon's own allocations (not Node's) come from mimalloc: Node's thread and the
/// runtime's allocate and free for each other on every store operation, and glibc's
/// arenas make them wait on one another's locks for it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The runtime the store operations run on: one worker thread unless `TOKIO_WORKER_THREADS`
/// says otherwise. Its work is I/O for one JavaScript thread (fingerprints and records are
/// made on that thread), and on a small machine a second worker mostly adds wake-ups, parking
/// and work stealing between the two: measured on 2 vCPUs, Express first executions on
/// Redis spent 34–38 µs of runtime CPU a request with two workers, 23–28 with one.
#[napi_derive::module_init]
fn init() {
    // Once a process: a worker thread's environment loads the module again.
    static ONCE: std::sync::Once = std::sync::Once::new();
    // A panic here would abort the process loading the module: without this runtime,
    // napi-rs's default is made on first use instead.
    let _ = std::panic::catch_unwind(|| {
        ONCE.call_once(|| {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all().thread_name("idempo-runtime");
            if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
                builder.worker_threads(1);
            }
            // Without it napi-rs makes its default runtime (one worker a core) on first use.
            if let Ok(rt) = builder.build() {
                napi::bindgen_prelude::create_custom_tokio_runtime(rt);
            }
        })
    });
}

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
    hot::functions(env.raw(), exports.raw()).map_err(|e| napi::Error::from_reason(e.reason))
}
