//! Encryption at rest (issue 19, docs/RULES.md B24): what sealing costs a replay. An axum app
//! behind idempo's tower layer replays a 1 KiB response from a store that keeps records as
//! bytes, the way Redis and PostgreSQL do (`write_record` on completion, `read_record` on
//! every replay), in process so that the network does not drown the difference: once with
//! no keys (the plain encoding), once with `encryption_keys` (XAES-256-GCM). Also
//! `seal` and `open` of the same record alone.
//!
//! `cargo bench -p idempo-benches --bench encryption` (`make bench-encryption`).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use http::Request;
use http_body_util::BodyExt;
use idempo::encryption::{read_record, write_record};
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::record::Record;
use idempo::{Claim, Completion, EncryptionKeys, Idempotency, Release, Renewal, Store, StoreError, Token};
use tower::ServiceExt;

/// An id's entry: the claim's fingerprint, its token while in flight, the record's bytes
/// once completed.
type Entry = (Fingerprint, Option<Token>, Option<Vec<u8>>);

/// Records kept as the bytes a networked store would hold; claims in flight by token.
struct BytesStore {
    keys: Option<Arc<EncryptionKeys>>,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

#[async_trait]
impl Store for BytesStore {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, _: Duration) -> Result<Claim, StoreError> {
        let mut entries = self.entries.lock().unwrap();
        if let Some((fp, _, record)) = entries.get(&id.0) {
            return Ok(match record {
                Some(bytes) => Claim::Completed {
                    fingerprint: *fp,
                    record: Arc::new(read_record(self.keys.as_deref(), id, fp, bytes)?),
                },
                None => Claim::InFlight { fingerprint: *fp, lease_left: Duration::from_secs(1) },
            });
        }
        let token = Token::random();
        entries.insert(id.0, (*fingerprint, Some(token), None));
        Ok(Claim::Claimed { token })
    }

    async fn renew(&self, _: &RecordId, _: Token, _: Duration) -> Result<Renewal, StoreError> {
        Ok(Renewal::Renewed)
    }

    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        _: Duration,
    ) -> Result<Completion, StoreError> {
        let bytes = write_record(self.keys.as_deref(), id, fingerprint, record)?;
        let mut entries = self.entries.lock().unwrap();
        match entries.get_mut(&id.0) {
            Some(entry) if entry.1 == Some(token) => {
                *entry = (*fingerprint, None, Some(bytes));
                Ok(Completion::Stored)
            }
            _ => Ok(Completion::LeaseLost),
        }
    }

    async fn release(&self, id: &RecordId, _: Token) -> Result<Release, StoreError> {
        self.entries.lock().unwrap().remove(&id.0);
        Ok(Release::Released)
    }
}

const BODY: [u8; 1024] = [b'x'; 1024];

fn app(keys: Option<Arc<EncryptionKeys>>) -> Router {
    let store = BytesStore { keys, entries: Mutex::default() };
    let layer = Idempotency::builder(store).fingerprint_secret("bench").build().layer();
    Router::new().route("/pay", post(|| async { Bytes::from_static(&BODY) })).layer(layer).with_state(())
}

fn request() -> Request<Body> {
    Request::post("/pay").header("idempotency-key", "replay-key-00000000").body(Body::from("body")).unwrap()
}

async fn send(app: &Router) {
    let res = app.clone().oneshot(request()).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let keys = Arc::new(EncryptionKeys::new([("k1", [7u8; 32])]).unwrap());
    let mut group = c.benchmark_group("encryption");
    for (name, keys) in [("replay 1 KiB, plain", None), ("replay 1 KiB, encrypted", Some(keys.clone()))] {
        let app = app(keys);
        rt.block_on(send(&app)); // the original
        group.bench_function(name, |b| b.to_async(&rt).iter(|| send(&app)));
    }
    let record = Record {
        status: http::StatusCode::OK,
        headers: vec![(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"))],
        body: Some(Bytes::from_static(&BODY)),
    };
    let (id, fp) = (RecordId([1; 32]), Fingerprint([2; 32]));
    let sealed = keys.seal(&id, &fp, &record).unwrap();
    let plain = record.encode();
    group.bench_function("seal 1 KiB", |b| b.iter(|| black_box(keys.seal(&id, &fp, black_box(&record)).unwrap())));
    group.bench_function("open 1 KiB", |b| b.iter(|| black_box(keys.open(&id, &fp, black_box(&sealed)).unwrap())));
    group.bench_function("decode 1 KiB (plain)", |b| b.iter(|| black_box(Record::decode(black_box(&plain)).unwrap())));
    group.bench_function("encode 1 KiB (plain)", |b| {
        b.iter_batched(|| (), |_| black_box(record.encode()), BatchSize::SmallInput)
    });
    group.finish();
    c.final_summary();
}
