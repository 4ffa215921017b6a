//! JavaScript values to the core's and back: option values, header lists, replies.

use bytes::Bytes;
use idempo::host::Value;
use napi::bindgen_prelude::{Array, Buffer, JsValue, Null, Object, ToNapiValue, TypeName, Unknown};
use napi::{Env, ValueType};
use napi_derive::napi;

use crate::error::{Result, config, napi};

/// A response made by the engine (a replay or a problem), for JavaScript: one Latin-1
/// string when its body is small (`lib/engine.js` `replyOf` reads it back), else a
/// `ReplyObject`. A string is made in one call, where an object with an array of header
/// strings and a Buffer of its own took some twenty, and most of a replay's time.
pub struct Reply(http::Response<Bytes>);

pub fn reply(res: http::Response<Bytes>) -> Reply {
    Reply(res)
}

/// The largest body sent inside the string; a larger one goes in a Buffer of its own.
const INLINE_BODY: usize = 4096;

impl TypeName for Reply {
    fn type_name() -> &'static str {
        "Reply"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Reply {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> napi::Result<napi::sys::napi_value> {
        let (head, body) = val.0.into_parts();
        let status = u32::from(head.status.as_u16());
        if body.len() > INLINE_BODY {
            let object = ReplyObject { status, headers: Headers(head.headers), body: Copied(body) };
            // SAFETY: as this function's own contract.
            return unsafe { ReplyObject::to_napi_value(env, object) };
        }
        let text = inline(status, &head.headers, &body);
        let mut s = std::ptr::null_mut();
        // SAFETY: `env` is the live environment of the current call; `text` is valid for its length.
        let status =
            unsafe { napi::sys::napi_create_string_latin1(env, text.as_ptr().cast(), text.len() as isize, &mut s) };
        if status == napi::sys::Status::napi_ok {
            Ok(s)
        } else {
            Err(napi::Error::new(napi::Status::from(status), "a reply could not be made into a string"))
        }
    }
}

/// `status NUL count NUL (name NUL value NUL){count} body`, every byte one Latin-1
/// character (no header name or value holds a NUL).
fn inline(status: u32, headers: &http::HeaderMap, body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let head: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(16 + head + body.len());
    let _ = write!(out, "{status}\0{}\0", headers.len());
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(body);
    out
}

/// A reply with a body too large for `Reply`'s string.
#[napi(object, object_from_js = false)]
pub struct ReplyObject {
    pub status: u32,
    /// `[name, value, name, value, …]`; a repeated header appears once per value.
    #[napi(ts_type = "string[]")]
    pub headers: Headers,
    #[napi(ts_type = "Buffer")]
    pub body: Copied,
}

/// A reply's headers, made into JavaScript strings straight from their bytes (Latin-1, as
/// Node reads a header), with no Rust `String` in between.
pub struct Headers(pub http::HeaderMap);

impl TypeName for Headers {
    fn type_name() -> &'static str {
        "Array"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Headers {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> napi::Result<napi::sys::napi_value> {
        use napi::sys;
        let check = |status: sys::napi_status| {
            if status == sys::Status::napi_ok {
                Ok(())
            } else {
                Err(napi::Error::new(napi::Status::from(status), "a reply's headers could not be made"))
            }
        };
        let mut array = std::ptr::null_mut();
        // SAFETY (each call): `env` is the live environment of the current call; every
        // pointer passed is valid for the length given with it.
        check(unsafe { sys::napi_create_array_with_length(env, val.0.len() * 2, &mut array) })?;
        let latin1 = |bytes: &[u8]| -> napi::Result<sys::napi_value> {
            let mut s = std::ptr::null_mut();
            check(unsafe { sys::napi_create_string_latin1(env, bytes.as_ptr().cast(), bytes.len() as isize, &mut s) })?;
            Ok(s)
        };
        for (i, (name, value)) in val.0.iter().enumerate() {
            let i = i as u32 * 2;
            check(unsafe { sys::napi_set_element(env, array, i, latin1(name.as_str().as_bytes())?) })?;
            check(unsafe { sys::napi_set_element(env, array, i + 1, latin1(value.as_bytes())?) })?;
        }
        Ok(array)
    }
}

/// Bytes handed to JavaScript as a Buffer of their own, copied once into it: cheaper than
/// an external Buffer, whose finalizer Node must track and run for every reply.
pub struct Copied(pub Bytes);

impl TypeName for Copied {
    fn type_name() -> &'static str {
        "Buffer"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Copied {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> napi::Result<napi::sys::napi_value> {
        let mut data = std::ptr::null_mut();
        let mut buffer = std::ptr::null_mut();
        // SAFETY: `val.0` is valid for its length during the call, which copies it.
        let status = unsafe {
            napi::sys::napi_create_buffer_copy(env, val.0.len(), val.0.as_ptr().cast(), &mut data, &mut buffer)
        };
        if status == napi::sys::Status::napi_ok {
            Ok(buffer)
        } else {
            Err(napi::Error::new(napi::Status::from(status), "a reply's body could not be copied into a Buffer"))
        }
    }
}

/// An option value; `name` only names it in an error.
pub fn value(name: &str, v: Unknown<'_>) -> Result<Value> {
    // SAFETY (each cast): the value's type was checked just before.
    Ok(match v.get_type().map_err(napi)? {
        ValueType::Undefined | ValueType::Null => Value::Null,
        ValueType::Boolean => Value::Bool(unsafe { v.cast::<bool>() }.map_err(napi)?),
        ValueType::Number => Value::Number(unsafe { v.cast::<f64>() }.map_err(napi)?),
        ValueType::String => Value::Str(unsafe { v.cast::<String>() }.map_err(napi)?),
        ValueType::Object if v.is_buffer().map_err(napi)? => {
            Value::Bytes(unsafe { v.cast::<Buffer>() }.map_err(napi)?.to_vec())
        }
        ValueType::Object if v.is_array().map_err(napi)? => {
            let items = unsafe { v.cast::<Array>() }.map_err(napi)?;
            let mut list = Vec::with_capacity(items.len() as usize);
            for i in 0..items.len() {
                if let Some(item) = items.get::<Unknown>(i).map_err(napi)? {
                    list.push(value(name, item)?);
                }
            }
            Value::List(list)
        }
        other => return Err(config(format!("{name}: a {other} is not an option value"))),
    })
}

/// An options object as `(name, value)` pairs.
pub fn options(obj: Option<Object<'_>>) -> Result<Vec<(String, Value)>> {
    let Some(obj) = obj else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for name in Object::keys(&obj).map_err(napi)? {
        if let Some(v) = obj.get::<Unknown>(&name).map_err(napi)? {
            let v = value(&name, v)?;
            out.push((name, v));
        }
    }
    Ok(out)
}

/// A Rust value as a JavaScript one.
fn js<T: ToNapiValue>(env: &Env, v: T) -> Result<Unknown<'_>> {
    // SAFETY: `env` is the live environment of the current call, and the value it makes
    // is handed back in that same call.
    unsafe {
        let raw = T::to_napi_value(env.raw(), v).map_err(napi)?;
        Ok(Unknown::from_raw_unchecked(env.raw(), raw))
    }
}

fn to_js(env: &Env, v: Value) -> Result<Unknown<'_>> {
    match v {
        Value::Null => js(env, Null),
        Value::Bool(b) => js(env, b),
        Value::Number(n) => js(env, n),
        Value::Str(s) => js(env, s),
        Value::Bytes(b) => js(env, Buffer::from(b)),
        Value::List(items) => {
            let mut array = env.create_array(items.len() as u32).map_err(napi)?;
            for (i, item) in items.into_iter().enumerate() {
                array.set(i as u32, to_js(env, item)?).map_err(napi)?;
            }
            Ok(array.to_unknown())
        }
    }
}

/// `(name, value)` pairs as an object, in order.
pub fn object(env: &Env, pairs: impl IntoIterator<Item = (String, Value)>) -> Result<Object<'_>> {
    let mut obj = Object::new(env).map_err(napi)?;
    for (name, v) in pairs {
        obj.set(name, to_js(env, v)?).map_err(napi)?;
    }
    Ok(obj)
}
