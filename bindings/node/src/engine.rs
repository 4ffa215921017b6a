//! `Engine`, `Pending` and `Lease`: the core's two-step request handling for the Express
//! middleware and the Fastify plugin. Conversion only: every rule is the core's
//! (`idempo::host`). Every export catches panics, so a bug is a JavaScript exception, not
//! an aborted process.

use idempo::host::{self, Dialect, Now, Recorder, now_if, text::bytes_of};
use idempo::{Begun, Decision, Idempotency};
use napi::Env;
use napi::bindgen_prelude::{Buffer, Either, Either3, External, Null, Object, PromiseRaw, ToNapiValue};
use napi_derive::napi;

use crate::convert::{Reply, object, options, reply};
use crate::error::{Result, config, config_error, state};
use crate::store::NativeStore;

/// The idempotency engine over a store, with the options its user set.
#[napi]
pub struct Engine {
    idem: Idempotency,
}

#[napi]
impl Engine {
    #[napi(constructor, catch_unwind)]
    pub fn new(store: &NativeStore, options: Option<Object>) -> Result<Engine> {
        let idem = host::options::build(store.inner.clone(), Dialect::JavaScript, self::options(options)?)
            .map_err(config_error)?;
        Ok(Engine { idem })
    }

    /// The engine for `check`, `look` and `claim`: module functions (hot.rs).
    #[napi(getter, catch_unwind, ts_return_type = "ExternalObject<'Idempotency'>")]
    pub fn handle(&self) -> External<Idempotency> {
        External::new(self.idem.clone())
    }

    /// The largest request body a keyed request may have (`maxRequestBody`, B7).
    #[napi(getter, catch_unwind)]
    pub fn body_limit(&self) -> f64 {
        self.idem.config().max_request_body as f64
    }

    /// The request headers `check` reads (lower case): the order of the values it takes.
    #[napi(catch_unwind)]
    pub fn request_headers_read(&self) -> Vec<String> {
        self.idem.request_headers_read().iter().map(|n| n.as_str().to_owned()).collect()
    }

    /// The header without which a covered request passes through untouched (B4, lower
    /// case), or `null` when keys are required: the integrations skip `check` without it.
    #[napi(catch_unwind)]
    pub fn passes_without(&self) -> Option<String> {
        self.idem.passes_without().map(|h| h.as_str().to_owned())
    }

    /// Count `n` covered requests passed through without calling `check`.
    #[napi(catch_unwind)]
    pub fn count_bypassed(&self, n: u32) {
        self.idem.count_bypassed(u64::from(n));
    }

    /// Whether requests with `method` are covered (B1, any case).
    #[napi(catch_unwind)]
    pub fn covers(&self, method: String) -> bool {
        self.idem.covers(&method).is_some()
    }

    /// The counters (B19), camelCase.
    #[napi(catch_unwind, ts_return_type = "Record<string, number>")]
    pub fn stats<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let counters = host::counters(&self.idem.stats(), Dialect::JavaScript);
        object(env, counters.into_iter().map(|(k, v)| (k, host::Value::Number(v as f64))))
    }

    /// The effective value of every option, the core's defaults included (durations in ms).
    #[napi(catch_unwind, ts_return_type = "Record<string, unknown>")]
    pub fn options<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        object(env, host::options::read(self.idem.config(), Dialect::JavaScript))
    }
}

/// A keyed request waiting for its body.
#[napi]
pub struct Pending {
    inner: Option<idempo::Pending>,
    gone: host::Gone,
}

impl Pending {
    pub(crate) fn new(inner: idempo::Pending) -> Pending {
        Pending { inner: Some(inner), gone: host::Gone::new() }
    }
}

/// What claiming a key decided: a lease, a reply, or `null` (run unprotected).
pub(crate) type Decided = Either3<Lease, Reply, Null>;

fn decided(decision: Decision) -> Decided {
    match decision {
        Decision::Bypass => Either3::C(Null),
        Decision::Respond(res) => Either3::B(reply(res)),
        Decision::Execute(lease) => Either3::A(Lease { rec: Recorder::new(lease) }),
    }
}

/// Run `fut`: its value at once if the store answers in this process (memory) and did on
/// the first poll, else a Promise settled from the runtime.
fn settle<'env, T, F>(env: &'env Env, in_process: bool, fut: F) -> Result<Either<T, PromiseRaw<'env, T>>>
where
    T: ToNapiValue + Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    match napi::bindgen_prelude::within_runtime_if_available(|| now_if(in_process, fut)) {
        Now::Ready(v) => Ok(Either::A(v)),
        Now::Later(fut) => crate::completions::spawn(env, fut).map(Either::B),
    }
}

/// Claim the key: decided here when the store answers in this process (memory), with no
/// future at all, else a Promise; a wait for an in-flight duplicate stops once `gone` resolves.
pub(crate) fn begin<'env, G>(
    env: &'env Env,
    pending: idempo::Pending,
    body: &[u8],
    gone: G,
) -> Result<Either<Decided, PromiseRaw<'env, Decided>>>
where
    G: std::future::Future<Output = ()> + Send + 'static,
{
    match napi::bindgen_prelude::within_runtime_if_available(|| pending.begin_now(body)) {
        Begun::Decided(decision) => Ok(Either::A(decided(decision))),
        Begun::Claiming(claiming) => {
            let fut = async move { decided(claiming.finish(gone).await) };
            crate::completions::spawn(env, fut).map(Either::B)
        }
    }
}

impl Pending {
    fn get(&mut self) -> Result<&mut idempo::Pending> {
        self.inner.as_mut().ok_or_else(|| state("this request was already decided"))
    }

    fn take(&mut self) -> Result<idempo::Pending> {
        self.inner.take().ok_or_else(|| state("this request was already decided"))
    }
}

#[napi]
impl Pending {
    /// The largest body to buffer; past it answer `tooLarge()`.
    #[napi(getter, catch_unwind)]
    pub fn body_limit(&mut self) -> Result<f64> {
        Ok(self.get()?.body_limit() as f64)
    }

    /// Whether `begin` may wait for an in-flight duplicate (B20): only then is it worth
    /// watching for the client leaving meanwhile (`leave`).
    #[napi(getter, catch_unwind)]
    pub fn may_wait(&mut self) -> Result<bool> {
        Ok(self.get()?.may_wait())
    }

    /// The client left: a wait for an in-flight duplicate stops, freeing its place.
    #[napi(catch_unwind)]
    pub fn leave(&self) {
        self.gone.leave();
    }

    /// The declared `Content-Length` (already within `bodyLimit`), or `null`.
    #[napi(getter, catch_unwind)]
    pub fn declared_length(&mut self) -> Result<Option<f64>> {
        Ok(self.get()?.declared_length().map(|n| n as f64))
    }

    /// Put the key in a namespace (B5): what the scope function returned, which must be a
    /// string (`undefined` is an error: no request may fall into a shared namespace by mistake).
    #[napi(catch_unwind)]
    pub fn set_scope(&mut self, scope: Option<String>) -> Result<()> {
        let scope = scope.ok_or_else(|| config(host::SCOPE_MISSING))?;
        self.get()?.set_scope(scope);
        Ok(())
    }

    /// Put the key in the one global namespace, chosen explicitly (B5).
    #[napi(catch_unwind)]
    pub fn set_global_scope(&mut self) -> Result<()> {
        self.get()?.set_global_scope();
        Ok(())
    }

    /// The 413 reply for a body over `bodyLimit` (B7).
    #[napi(catch_unwind)]
    pub fn too_large(&mut self) -> Result<Reply> {
        Ok(reply(self.take()?.too_large()))
    }

    /// The 400 reply for a body that could not be read.
    #[napi(catch_unwind)]
    pub fn unreadable(&mut self, reason: String) -> Result<Reply> {
        Ok(reply(self.take()?.unreadable(&reason)))
    }

    /// Claim the key: a `Lease` (run the handler), a `Reply`, or `null`, or a Promise of
    /// one when the store needs I/O.
    #[napi(catch_unwind, ts_return_type = "Lease | Reply | null | Promise<Lease | Reply | null>")]
    pub fn begin<'env>(&mut self, env: &'env Env, body: Buffer) -> Result<Either<Decided, PromiseRaw<'env, Decided>>> {
        let pending = self.take()?;
        begin(env, pending, &body, self.gone.left())
    }
}

/// Ownership of a claimed key while the handler runs: the core's response recorder.
/// Garbage-collected unfinished, it keeps the claim until `maxLease` (the handler may
/// have done its work).
#[napi]
pub struct Lease {
    rec: Recorder,
}

#[napi]
impl Lease {
    /// The response head: status, `[name, value, …]`, and what the user's `storeStatus`
    /// said of the status (a boolean; a string, the error's message, if it threw).
    #[napi(catch_unwind)]
    pub fn start(&mut self, status: u32, headers: Vec<String>, verdict: Option<Either<bool, String>>) -> Result<()> {
        let verdict = verdict.map(|v| match v {
            Either::A(store) => Ok(store),
            Either::B(error) => Err(error),
        });
        let pairs = headers.chunks_exact(2).map(|p| (bytes_of(&p[0]), bytes_of(&p[1])));
        self.rec.start_raw(status, pairs, verdict).map_err(config)
    }

    /// `start`, `push(chunk)` and `complete()` in one call, for a response written whole
    /// by its `end` (the head is ignored if `start` was called before).
    #[napi(catch_unwind, ts_return_type = "void | Promise<void>")]
    pub fn end<'env>(
        &mut self,
        env: &'env Env,
        status: u32,
        headers: Vec<String>,
        verdict: Option<Either<bool, String>>,
        chunk: Option<Buffer>,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        if !self.rec.is_started() {
            self.start(status, headers, verdict)?;
        }
        if let Some(chunk) = chunk {
            self.rec.push(&chunk);
        }
        self.complete(env, None)
    }

    /// A chunk of the body, as it goes to the client.
    #[napi(catch_unwind)]
    pub fn push(&mut self, chunk: &[u8]) {
        self.rec.push(chunk);
    }

    /// The response ended: store it (or release the key for a status not stored);
    /// `omitted`: without its body, the rest of which cannot be had (the client left and
    /// the stream was destroyed). `undefined` when done at once, else a Promise.
    #[napi(catch_unwind, ts_return_type = "void | Promise<void>")]
    pub fn complete<'env>(
        &mut self,
        env: &'env Env,
        omitted: Option<bool>,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        if omitted == Some(true) {
            self.rec.omit();
        }
        let in_process = self.rec.in_process();
        self.rec.finish().map_or(Ok(Either::A(())), |write| settle(env, in_process, write))
    }

    /// Give the key up so that a retry runs the handler again: `undefined` when done at
    /// once, else a Promise.
    #[napi(catch_unwind, ts_return_type = "void | Promise<void>")]
    pub fn release<'env>(&mut self, env: &'env Env) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let in_process = self.rec.in_process();
        self.rec.fail().map_or(Ok(Either::A(())), |release| settle(env, in_process, release))
    }

    /// Whether the response has not ended yet (the key is still held).
    #[napi(getter, catch_unwind)]
    pub fn active(&self) -> bool {
        self.rec.is_active()
    }
}

/// The core's default of every engine option, as `Engine.options()` reports them.
#[napi(catch_unwind, ts_return_type = "Record<string, unknown>")]
pub fn defaults(env: &Env) -> Result<Object<'_>> {
    object(env, host::options::defaults(Dialect::JavaScript))
}

/// The counter names (B19), camelCase, in order.
#[napi(catch_unwind)]
pub fn counters() -> Vec<String> {
    idempo::StatsSnapshot::NAMES.iter().map(|n| Dialect::JavaScript.name(n)).collect()
}

/// How much of a refused body is read and thrown away before the connection is closed (B7).
#[napi]
pub const DRAIN_LIMIT: u32 = host::DRAIN_LIMIT as u32;

/// Panics, in a debug build only: the test that shows a panic in the addon becomes a
/// JavaScript error and the process keeps serving.
#[cfg(debug_assertions)]
#[napi(catch_unwind)]
pub fn panic_for_test() {
    panic!("idempo: a panic on purpose (debug builds only)");
}
