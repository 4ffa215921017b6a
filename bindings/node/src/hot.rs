//! `check`, `look` and `claim`, the calls every keyed request makes, written against
//! Node-API directly. Conversion only, as everywhere in this crate: the rules are the core's.
//!
//! Each takes the engine's `handle` and the request's header values in the order of
//! `requestHeadersRead()` (`undefined` where absent, an array for a repeated header).
//!
//! Through `#[napi]`, a call costs more than the work it asks for: every call with
//! arguments allocates a borrow scope, a method on a class registers its receiver in a
//! process-wide map under a mutex, and each string argument becomes a `String`. Here the
//! engine arrives as an `External` (no borrow tracking), every string is read into one
//! buffer per call, and panics still become JavaScript errors.

use std::ffi::c_void;
use std::ptr;

use idempo::host::{self, text::bytes_of};
use idempo::{Check, Idempotency, Look};

use napi::bindgen_prelude::{Either, External, FromNapiRef, ToNapiValue};
use napi::sys::{self, napi_callback_info, napi_env, napi_value};
use napi::{Env, JsError};

use crate::convert::reply;
use crate::engine::{Pending, begin};
use crate::error::{Result, config};

/// A header the engine reads, and a value of it.
type Read<'a> = (&'static http::HeaderName, std::borrow::Cow<'a, [u8]>);
/// A header the engine reads, and where a value of it sits in the call's buffer.
type Value = (&'static http::HeaderName, (usize, usize));

/// The functions, to put on the module's exports.
pub fn functions(env: napi_env, exports: napi_value) -> Result<()> {
    define(env, exports, c"check", check)?;
    define(env, exports, c"look", look)?;
    define(env, exports, c"claim", claim)
}

type Callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;

fn define(env: napi_env, exports: napi_value, name: &std::ffi::CStr, cb: Callback) -> Result<()> {
    let mut f = ptr::null_mut();
    // SAFETY: `env` and `exports` are the module's, during its registration.
    let made = unsafe { sys::napi_create_function(env, name.as_ptr(), -1, Some(cb), ptr::null_mut(), &mut f) };
    let set = if made == sys::Status::napi_ok {
        unsafe { sys::napi_set_named_property(env, exports, name.as_ptr(), f) }
    } else {
        made
    };
    if set == sys::Status::napi_ok { Ok(()) } else { Err(config(format!("{name:?} could not be exported"))) }
}

/// Run `f` as a callback's body: its error, or a panic, thrown as a JavaScript error.
fn guarded(env: napi_env, f: impl FnOnce() -> Result<napi_value>) -> napi_value {
    let thrown = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return value,
        Ok(Err(e)) => e,
        Err(_) => crate::error::state("idempo: a panic in the native module (a bug: please report it)"),
    };
    // SAFETY: `env` is the live environment of the current callback.
    unsafe { JsError::from(thrown).throw_into(env) };
    ptr::null_mut()
}

/// A callback's arguments, read into one buffer.
struct Args<const N: usize> {
    env: napi_env,
    argv: [napi_value; N],
    text: Vec<u8>,
}

impl<const N: usize> Args<N> {
    fn new(env: napi_env, info: napi_callback_info) -> Result<Self> {
        let mut argc = N;
        let mut argv = [ptr::null_mut(); N];
        // SAFETY: `argv` has room for `argc` values.
        let s =
            unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) };
        napi_ok(s, "arguments")?;
        if argc < N {
            return Err(config(format!("expected {N} arguments, got {argc}")));
        }
        Ok(Args { env, argv, text: Vec::with_capacity(512) })
    }

    fn engine(&self, i: usize) -> Result<&'static Idempotency> {
        // 'static: see below. Its header names live as long.
        // SAFETY: a live value of this call; `from_napi_ref` checks it is an External of
        // this type. The engine outlives the call: JavaScript holds the External.
        let ext = unsafe { External::<Idempotency>::from_napi_ref(self.env, self.argv[i]) };
        ext.map(|e| e.as_ref()).map_err(|e| config(e.reason))
    }

    /// String argument `i`, appended to the buffer: its range there.
    fn text(&mut self, i: usize) -> Result<(usize, usize)> {
        self.text_of(self.argv[i])
    }

    fn text_of(&mut self, v: napi_value) -> Result<(usize, usize)> {
        let start = self.text.len();
        self.text.reserve(256);
        let room = self.text.capacity() - start;
        let mut len = 0;
        // SAFETY: the spare capacity holds `room` bytes; the call writes at most that many.
        let s = unsafe {
            sys::napi_get_value_string_utf8(self.env, v, self.text.as_mut_ptr().add(start).cast(), room, &mut len)
        };
        napi_ok(s, "a string")?;
        // The call leaves out a character that does not fit whole: a string that came
        // within 4 bytes of the end may have been cut, so it is read again at its length.
        if len + 4 >= room {
            let mut full = 0;
            // SAFETY: a null buffer asks for the length only.
            napi_ok(
                unsafe { sys::napi_get_value_string_utf8(self.env, v, ptr::null_mut(), 0, &mut full) },
                "a string",
            )?;
            self.text.reserve(full + 1);
            let room = self.text.capacity() - start;
            // SAFETY: as above, with room for the whole string and its terminator.
            let s = unsafe {
                sys::napi_get_value_string_utf8(self.env, v, self.text.as_mut_ptr().add(start).cast(), room, &mut len)
            };
            napi_ok(s, "a string")?;
        }
        // SAFETY: the call wrote `len` bytes there.
        unsafe { self.text.set_len(start + len) };
        Ok((start, start + len))
    }

    /// Header values argument `i` (see the module's documentation): each value's header
    /// and range.
    fn values(&mut self, i: usize, names: &'static [http::HeaderName]) -> Result<Vec<Value>> {
        let array = self.argv[i];
        let mut is_array = false;
        napi_ok(unsafe { sys::napi_is_array(self.env, array, &mut is_array) }, "an array of header values")?;
        if !is_array {
            return Err(config("expected an array of header values"));
        }
        let mut values = Vec::with_capacity(4);
        for (k, name) in names.iter().enumerate() {
            let item = self.element(array, k as u32)?;
            match self.kind_of(item)? {
                sys::ValueType::napi_undefined | sys::ValueType::napi_null => {}
                sys::ValueType::napi_object => {
                    let mut n = 0;
                    napi_ok(unsafe { sys::napi_get_array_length(self.env, item, &mut n) }, "an array of strings")?;
                    for j in 0..n {
                        let v = self.element(item, j)?;
                        values.push((name, self.text_of(v)?));
                    }
                }
                _ => values.push((name, self.text_of(item)?)),
            }
        }
        Ok(values)
    }

    fn element(&self, array: napi_value, k: u32) -> Result<napi_value> {
        let mut item = ptr::null_mut();
        // SAFETY: `array` is a live value of this call.
        napi_ok(unsafe { sys::napi_get_element(self.env, array, k, &mut item) }, "an array")?;
        Ok(item)
    }

    /// `Idempotency::check` of the head in arguments 1 (method), 2 (target) and 3 (values).
    fn check(&mut self, idem: &'static Idempotency) -> Result<Check> {
        let method = self.text(1)?;
        let url = self.text(2)?;
        let values = self.values(3, idem.request_headers_read())?;
        let read = self.headers(&values)?;
        let target = bytes_of(self.str(url)?);
        let (path, query) = host::split_target(&target);
        Ok(idem.check(self.str(method)?, path, query, &read[..]))
    }

    /// The values as the engine reads them.
    fn headers(&self, values: &[(&'static http::HeaderName, (usize, usize))]) -> Result<Vec<Read<'_>>> {
        values.iter().map(|&(name, range)| Ok((name, bytes_of(self.str(range)?)))).collect()
    }

    fn str(&self, (a, b): (usize, usize)) -> Result<&str> {
        std::str::from_utf8(&self.text[a..b]).map_err(|_| config("a string that is not UTF-8"))
    }

    fn bool(&self, i: usize) -> Result<bool> {
        let mut b = false;
        napi_ok(unsafe { sys::napi_get_value_bool(self.env, self.argv[i], &mut b) }, "a boolean")?;
        Ok(b)
    }

    fn kind(&self, i: usize) -> Result<sys::napi_valuetype> {
        self.kind_of(self.argv[i])
    }

    fn kind_of(&self, v: napi_value) -> Result<sys::napi_valuetype> {
        let mut t = 0;
        napi_ok(unsafe { sys::napi_typeof(self.env, v, &mut t) }, "a value")?;
        Ok(t)
    }

    /// Buffer argument `i`, borrowed for the call.
    fn bytes(&self, i: usize) -> Result<&[u8]> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0;
        let s = unsafe { sys::napi_get_buffer_info(self.env, self.argv[i], &mut data, &mut len) };
        napi_ok(s, "a Buffer")?;
        if len == 0 {
            return Ok(&[]);
        }
        // SAFETY: the Buffer's bytes, alive while its value is (this call).
        Ok(unsafe { std::slice::from_raw_parts(data.cast(), len) })
    }
}

fn napi_ok(s: sys::napi_status, what: &str) -> Result<()> {
    if s == sys::Status::napi_ok { Ok(()) } else { Err(config(format!("expected {what}"))) }
}

fn value<T: ToNapiValue>(env: napi_env, v: T) -> Result<napi_value> {
    // SAFETY: `env` is the live environment of the current callback.
    unsafe { T::to_napi_value(env, v) }.map_err(|e| config(e.reason))
}

/// `check(engine, method, url, values)`: look at a request head. `url` is the request
/// target as received (origin or absolute form). `null` (pass through), a `Reply`, or a
/// `Pending`.
unsafe extern "C" fn check(env: napi_env, info: napi_callback_info) -> napi_value {
    guarded(env, || {
        let mut args = Args::<4>::new(env, info)?;
        let idem = args.engine(0)?;
        match args.check(idem)? {
            Check::Bypass => value(env, napi::bindgen_prelude::Null),
            Check::Respond(res) => value(env, reply(res)),
            Check::Proceed(p) => value(env, Pending::new(p)),
        }
    })
}

/// `look(engine, method, values)`: `check` without a `Pending`: `null` (pass through), a
/// `Reply`, or whether the request may wait for an in-flight duplicate (B20). `false`:
/// read the body (up to `bodyLimit`) and `claim` with the same head; `true`: `check`,
/// whose `Pending` can stop its wait when the client leaves. A JavaScript object wrapping
/// native state costs more than the rest of a replay (its finalizer, tracked by Node until
/// a collection runs it), so a request that does not wait makes none.
unsafe extern "C" fn look(env: napi_env, info: napi_callback_info) -> napi_value {
    guarded(env, || {
        let mut args = Args::<3>::new(env, info)?;
        let idem = args.engine(0)?;
        let method = args.text(1)?;
        let values = args.values(2, idem.request_headers_read())?;
        let read = args.headers(&values)?;
        match idem.look(args.str(method)?, &read[..]) {
            Look::Bypass => value(env, napi::bindgen_prelude::Null),
            Look::Respond(res) => value(env, reply(res)),
            Look::Proceed { may_wait } => value(env, may_wait),
        }
    })
}

/// `claim(engine, method, url, values, named, scope, body)`: `check`, then `begin` with
/// `body`, for a request `look` let proceed without waiting: a `Lease`, a `Reply`, `null`,
/// or a Promise of one. `named`: `scope` is what the scope function returned, which must
/// be a string (B5); else `scope` is `true` for the global namespace, anything else for
/// the default one.
unsafe extern "C" fn claim(env: napi_env, info: napi_callback_info) -> napi_value {
    guarded(env, || {
        let mut args = Args::<7>::new(env, info)?;
        let idem = args.engine(0)?;
        let checked = args.check(idem)?;
        let named = args.bool(4)?;
        let scope = match args.kind(5)? {
            sys::ValueType::napi_string => Some(Either::A(args.text(5)?)),
            sys::ValueType::napi_boolean => Some(Either::B(args.bool(5)?)),
            _ => None,
        };
        let body = args.bytes(6)?;
        let mut pending = match checked {
            Check::Bypass => return value(env, napi::bindgen_prelude::Null),
            Check::Respond(res) => return value(env, reply(res)),
            Check::Proceed(p) => p,
        };
        match (named, scope) {
            (true, Some(Either::A(scope))) => pending.set_scope(args.str(scope)?.to_owned()),
            (true, _) => return Err(config(host::SCOPE_MISSING)),
            (false, Some(Either::B(true))) => pending.set_global_scope(),
            (false, _) => {}
        }
        let env = Env::from_raw(env);
        let begun = begin(&env, pending, body, std::future::pending())?;
        value(env.raw(), begun)
    })
}
