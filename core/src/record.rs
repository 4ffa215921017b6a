//! The stored response and its one versioned byte encoding (B11, B12, B18).
//!
//! Every store keeps a completed response as these bytes, so a record written through one
//! binding is read through any other. Decoding checks everything: a record that is cut
//! short, has an unknown version or holds an invalid header is an error, never a panic.

use std::fmt;

use bytes::{BufMut, Bytes};
use http::{HeaderName, HeaderValue, StatusCode};

/// Leading bytes of every record: a magic tag and the format version.
pub(crate) const MAGIC: &[u8; 3] = b"IDR";
const VERSION: u8 = 1;

/// A completed response as kept in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub status: StatusCode,
    /// The replayable headers only (B14), in their original order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body, or `None` when it was larger than `max_response_body` (B12).
    pub body: Option<Bytes>,
}

/// A record whose bytes cannot be decoded; the engine answers it as a store error (B18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored record cannot be decoded: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Record {
    /// The versioned encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// The length of [`Record::encode`]'s bytes.
    pub fn encoded_len(&self) -> usize {
        let body_len = self.body.as_ref().map_or(0, |b| 4 + b.len());
        let headers_len: usize = self.headers.iter().map(|(n, v)| 6 + n.as_str().len() + v.len()).sum();
        MAGIC.len() + 1 + 2 + 2 + headers_len + 1 + body_len
    }

    /// [`Record::encode`] appended to `out` (an encrypted record holds it after its header).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        out.put_u16(self.status.as_u16());
        out.put_u16(self.headers.len() as u16);
        for (name, value) in &self.headers {
            out.put_u16(name.as_str().len() as u16);
            out.put_slice(name.as_str().as_bytes());
            out.put_u32(value.len() as u32);
            out.put_slice(value.as_bytes());
        }
        match &self.body {
            None => out.put_u8(0),
            Some(body) => {
                out.put_u8(1);
                out.put_u32(body.len() as u32);
                out.put_slice(body);
            }
        }
    }

    /// Decode bytes written by [`Record::encode`] (in any binding, any process).
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        Record::decode_with(bytes, Bytes::copy_from_slice)
    }

    /// [`Record::decode`] of bytes this record may keep: its body is a slice of them, not a
    /// copy (an opened encrypted record, whose plain bytes are its own).
    pub fn decode_owned(bytes: Bytes) -> Result<Record, DecodeError> {
        Record::decode_with(&bytes, |body| bytes.slice_ref(body))
    }

    fn decode_with(bytes: &[u8], body_of: impl FnOnce(&[u8]) -> Bytes) -> Result<Record, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(3)? != MAGIC {
            return Err(DecodeError("not an idempo record"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError("unknown record version"));
        }
        let status = StatusCode::from_u16(r.u16()?).map_err(|_| DecodeError("invalid status code"))?;
        if status.is_informational() {
            // An interim answer is never a response to replay (B14).
            return Err(DecodeError("informational status"));
        }
        let count = r.u16()? as usize;
        // Each header takes at least 6 bytes: bound the allocation by what is there.
        let mut headers = Vec::with_capacity(count.min(r.0.len() / 6));
        for _ in 0..count {
            let len = r.u16()? as usize;
            let name = HeaderName::from_bytes(r.take(len)?).map_err(|_| DecodeError("invalid header name"))?;
            let len = r.u32()? as usize;
            let value = HeaderValue::from_bytes(r.take(len)?).map_err(|_| DecodeError("invalid header value"))?;
            headers.push((name, value));
        }
        let body = match r.u8()? {
            0 => None,
            1 => {
                let len = r.u32()? as usize;
                Some(body_of(r.take(len)?))
            }
            _ => return Err(DecodeError("invalid body tag")),
        };
        if !r.0.is_empty() {
            return Err(DecodeError("trailing bytes"));
        }
        if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
            && body.as_ref().is_some_and(|b| !b.is_empty())
        {
            // No recorder stores one: it was written by someone else (B14).
            return Err(DecodeError("a body on a status that has none"));
        }
        Ok(Record { status, headers, body })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Record {
        Record {
            status: StatusCode::CREATED,
            headers: vec![
                (http::header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (http::header::LOCATION, HeaderValue::from_static("/charges/1")),
            ],
            body: Some(Bytes::from_static(b"{\"id\":1}")),
        }
    }

    #[test]
    fn b18_round_trip() {
        let r = sample();
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert_eq!(Record::decode_owned(Bytes::from(r.encode())).unwrap(), r);
        assert_eq!(r.encode().len(), r.encoded_len());
        let omitted = Record { body: None, ..sample() };
        assert_eq!(Record::decode(&omitted.encode()).unwrap(), omitted);
        assert_eq!(omitted.encode().len(), omitted.encoded_len());
    }

    #[test]
    fn b18_corrupt_records_are_errors() {
        let good = sample().encode();
        assert_eq!(Record::decode(b"garbage"), Err(DecodeError("not an idempo record")));
        assert_eq!(Record::decode(b""), Err(DecodeError("truncated")));
        let mut v2 = good.clone();
        v2[3] = 2;
        assert_eq!(Record::decode(&v2), Err(DecodeError("unknown record version")));
        for cut in 0..good.len() {
            assert!(Record::decode(&good[..cut]).is_err(), "cut at {cut} decoded");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(Record::decode(&extra), Err(DecodeError("trailing bytes")));
        let mut bad_status = good.clone();
        bad_status[4..6].copy_from_slice(&9999u16.to_be_bytes());
        assert_eq!(Record::decode(&bad_status), Err(DecodeError("invalid status code")));
        let mut upgrade = good.clone();
        upgrade[4..6].copy_from_slice(&101u16.to_be_bytes());
        assert_eq!(Record::decode(&upgrade), Err(DecodeError("informational status")));
        for bodiless in [204u16, 304] {
            let mut with_body = good.clone();
            with_body[4..6].copy_from_slice(&bodiless.to_be_bytes());
            assert_eq!(Record::decode(&with_body), Err(DecodeError("a body on a status that has none")));
            let empty =
                Record { status: StatusCode::from_u16(bodiless).unwrap(), body: Some(Bytes::new()), ..sample() };
            assert_eq!(Record::decode(&empty.encode()), Ok(empty));
        }
    }

    proptest! {
        #[test]
        fn b18_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn b18_mutated_records_never_panic(pos in 0usize..64, byte in any::<u8>()) {
            let mut enc = sample().encode();
            let i = pos % enc.len();
            enc[i] = byte;
            if let Ok(r) = Record::decode(&enc) {
                prop_assert_eq!(Record::decode(&r.encode()).unwrap(), r);
            }
        }
    }
}
