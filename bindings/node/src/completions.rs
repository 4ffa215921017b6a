//! One completion queue per JavaScript thread, woken through a single threadsafe function.
//!
//! A store operation that cannot answer at once (Redis, PostgreSQL) runs on the runtime and
//! returns a Promise. napi-rs's own `spawn_future` makes a threadsafe function, an
//! environment cleanup hook and their bookkeeping for every such Promise; here each
//! JavaScript thread (the main one, each worker) has one threadsafe function for all of
//! them. A finished operation puts its value on the thread's queue and calls the function
//! only when the queue was empty, so a burst of completions costs one wake-up; the
//! JavaScript thread then settles every Promise in the queue at once. This is what the
//! Python binding's per-loop queue does with `call_soon_threadsafe`.
//!
//! The function keeps Node's event loop alive only while Promises are outstanding (it is
//! referenced on the first and unreferenced after the last), as a Promise of its own would.
//! When the environment goes away (a worker ends), its cleanup hook closes the function
//! first, and a value finishing later is dropped.

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{Env, JsError, Status, sys};

use crate::error::{Result, state};

/// How a finished operation's value becomes a JavaScript value, on the JavaScript thread.
type Settle = Box<dyn FnOnce(sys::napi_env) -> napi::Result<sys::napi_value> + Send>;

/// A Promise to settle: its deferred handle, used only on the thread that made it.
struct Deferred(sys::napi_deferred);
// SAFETY: the handle is only carried through the queue; it is resolved or rejected on the
// JavaScript thread that made it (in `drain`).
unsafe impl Send for Deferred {}

struct Tsfn(sys::napi_threadsafe_function);
// SAFETY: a threadsafe function may be called from any thread; it is closed (and taken out
// of `Queue::tsfn`) under the same lock that guards every call.
unsafe impl Send for Tsfn {}

struct Queue {
    done: Mutex<Vec<(Deferred, Settle)>>,
    /// `None` once the environment has gone.
    tsfn: Mutex<Option<Tsfn>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    /// Put a finished operation on the queue; wake the JavaScript thread if it was empty.
    fn push(&self, deferred: Deferred, settle: Settle) {
        let first = {
            let mut done = lock(&self.done);
            done.push((deferred, settle));
            done.len() == 1
        };
        if first && let Some(tsfn) = &*lock(&self.tsfn) {
            // SAFETY: the function is open while it is in `self.tsfn` (see `env_gone`).
            unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                );
            }
        }
    }
}

/// This thread's queue, and how many of its Promises are outstanding.
struct Local {
    env: sys::napi_env,
    queue: Arc<Queue>,
    outstanding: usize,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok { Ok(()) } else { Err(state(format!("{what} failed (napi status {status})"))) }
}

/// Make this thread's queue and its threadsafe function (unreferenced: nothing is
/// outstanding yet), and the hook that closes them with the environment.
fn make_queue(env: sys::napi_env) -> Result<Arc<Queue>> {
    let queue = Arc::new(Queue { done: Mutex::default(), tsfn: Mutex::default() });
    let mut name = ptr::null_mut();
    let label = "idempo completions";
    // SAFETY: plain Node-API calls on the JavaScript thread with valid out-pointers; the
    // context is an `Arc` of the queue, given back in `finalize`.
    unsafe {
        check(sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name), "name")?;
        let context = Arc::into_raw(queue.clone()) as *mut c_void;
        let mut tsfn = ptr::null_mut();
        let made = sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            context,
            Some(finalize),
            context,
            Some(drain),
            &mut tsfn,
        );
        if let Err(e) = check(made, "napi_create_threadsafe_function") {
            drop(Arc::from_raw(context as *const Queue));
            return Err(e);
        }
        check(sys::napi_unref_threadsafe_function(env, tsfn), "napi_unref_threadsafe_function")?;
        *lock(&queue.tsfn) = Some(Tsfn(tsfn));
        let hook = Arc::into_raw(queue.clone()) as *mut c_void;
        if let Err(e) = check(sys::napi_add_env_cleanup_hook(env, Some(env_gone), hook), "napi_add_env_cleanup_hook") {
            // Without the hook nothing would close the function before Node frees it.
            env_gone(hook);
            return Err(e);
        }
    }
    Ok(queue)
}

/// The threadsafe function is gone: its context (a reference to the queue) with it.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc` given as context in `make_queue`, released once here.
    drop(unsafe { Arc::from_raw(data as *const Queue) });
}

/// The environment is going: close the function before Node frees it, so no thread calls
/// it afterwards, and forget this thread's queue.
unsafe extern "C" fn env_gone(arg: *mut c_void) {
    // SAFETY: `arg` is the `Arc` given to the hook in `make_queue`, released once here.
    let queue = unsafe { Arc::from_raw(arg as *const Queue) };
    if let Some(tsfn) = lock(&queue.tsfn).take() {
        // SAFETY: taken out under the lock every caller holds, so nobody calls it after this.
        unsafe { sys::napi_release_threadsafe_function(tsfn.0, sys::ThreadsafeFunctionReleaseMode::abort) };
    }
    let _ = LOCAL.try_with(|l| l.borrow_mut().take());
}

/// On the JavaScript thread: settle every Promise whose operation has finished.
unsafe extern "C" fn drain(env: sys::napi_env, _js: sys::napi_value, context: *mut c_void, _data: *mut c_void) {
    if env.is_null() || context.is_null() {
        return; // the function is being torn down
    }
    // SAFETY: the context is the queue, alive while the function is (see `finalize`).
    let queue = unsafe { &*(context as *const Queue) };
    let batch = std::mem::take(&mut *lock(&queue.done));
    let settled = batch.len();
    for (deferred, settle) in batch {
        // SAFETY: Node-API calls on the JavaScript thread, each value in a scope of its own.
        unsafe {
            let mut scope = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
            match catch_unwind(AssertUnwindSafe(|| settle(env))) {
                Ok(Ok(value)) => {
                    sys::napi_resolve_deferred(env, deferred.0, value);
                }
                Ok(Err(err)) => {
                    sys::napi_reject_deferred(env, deferred.0, JsError::from(err).into_value(env));
                }
                Err(_) => {
                    let err = napi::Error::new(Status::GenericFailure, "idempo: a value could not be converted");
                    sys::napi_reject_deferred(env, deferred.0, JsError::from(err).into_value(env));
                }
            }
            sys::napi_close_handle_scope(env, scope);
        }
    }
    let idle = LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            let local = l.as_mut()?;
            local.outstanding = local.outstanding.saturating_sub(settled);
            Some(local.outstanding == 0)
        })
        .ok()
        .flatten()
        .unwrap_or(false);
    if idle && let Some(tsfn) = &*lock(&queue.tsfn) {
        // SAFETY: on the JavaScript thread, the function open.
        unsafe { sys::napi_unref_threadsafe_function(env, tsfn.0) };
    }
}

/// A Promise of `fut`'s value, run on the runtime and settled through this thread's queue.
pub(crate) fn spawn<'env, T, F>(env: &'env Env, fut: F) -> Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let raw = env.raw();
    let queue = LOCAL.with(|l| -> Result<Arc<Queue>> {
        let mut l = l.borrow_mut();
        if let Some(local) = &*l
            && local.env == raw
        {
            return Ok(local.queue.clone());
        }
        let queue = make_queue(raw)?;
        *l = Some(Local { env: raw, queue: queue.clone(), outstanding: 0 });
        Ok(queue)
    })?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: on the JavaScript thread, valid out-pointers.
    check(unsafe { sys::napi_create_promise(raw, &mut deferred, &mut promise) }, "napi_create_promise")?;
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().as_mut() {
            local.outstanding += 1;
            if local.outstanding == 1
                && let Some(tsfn) = &*lock(&local.queue.tsfn)
            {
                // SAFETY: on the JavaScript thread, the function open.
                unsafe { sys::napi_ref_threadsafe_function(raw, tsfn.0) };
            }
        }
    });
    let settling = Settling { queue, deferred: Some(Deferred(deferred)) };
    napi::bindgen_prelude::spawn(async move {
        let value = fut.await;
        // SAFETY (in the closure): called by `drain`, on the JavaScript thread, with its env.
        settling.settle(Box::new(move |env| unsafe { T::to_napi_value(env, value) }));
    });
    Ok(PromiseRaw::new(raw, promise))
}

/// A Promise on its way to the queue: with its value, or, when its operation is dropped
/// unfinished (a panic, the runtime shutting down), with a rejection, so that the Promise
/// settles and the thread's count of outstanding Promises stays right.
struct Settling {
    queue: Arc<Queue>,
    deferred: Option<Deferred>,
}

impl Settling {
    fn settle(mut self, settle: Settle) {
        if let Some(deferred) = self.deferred.take() {
            self.queue.push(deferred, settle);
        }
    }
}

impl Drop for Settling {
    fn drop(&mut self) {
        if let Some(deferred) = self.deferred.take() {
            let abandoned = napi::Error::new(Status::GenericFailure, "idempo: the store operation was abandoned");
            self.queue.push(deferred, Box::new(move |_| Err(abandoned)));
        }
    }
}
