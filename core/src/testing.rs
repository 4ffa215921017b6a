//! The store contract suite (docs/RULES.md, "Stores"), shared by every store's tests.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_store_passes_the_contract() {
//!     idempo::testing::store_contract(std::sync::Arc::new(MyStore::connect().await)).await;
//! }
//! ```
//!
//! Every check uses fresh random record ids, so the suite can run against a store that
//! other tests (or other runs) share. Expiry is tested with real sleeps of a few hundred
//! milliseconds, judged by the store's own clock. Run it on a multi-threaded runtime: the
//! concurrency check spawns its claims as tasks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::Record;
use crate::store::{Claim, Completion, Release, Renewal, Store, Token};

/// A short lease that still leaves room for a loopback round trip.
const SHORT: Duration = Duration::from_millis(250);
const LONG: Duration = Duration::from_secs(30);

/// A fresh, random record id.
pub fn random_id() -> RecordId {
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(&Token::random().to_bytes());
    id[16..].copy_from_slice(&Token::random().to_bytes());
    RecordId(id)
}

/// A fingerprint made from a label.
pub fn fingerprint(label: u8) -> Fingerprint {
    Fingerprint([label; 32])
}

/// A record with headers and a body.
pub fn sample_record(body: &'static [u8]) -> Record {
    Record {
        status: StatusCode::CREATED,
        headers: vec![
            (HeaderName::from_static("content-type"), HeaderValue::from_static("application/json")),
            (HeaderName::from_static("etag"), HeaderValue::from_static("\"v1\"")),
        ],
        body: Some(Bytes::from_static(body)),
    }
}

async fn claimed(store: &dyn Store, id: &RecordId, fp: &Fingerprint, lease: Duration) -> Token {
    match store.claim(id, fp, lease).await {
        Ok(Claim::Claimed { token }) => token,
        other => panic!("expected Claimed on a free id, got {other:?}"),
    }
}

async fn expect_in_flight(store: &dyn Store, id: &RecordId, fp: &Fingerprint, max_left: Duration) {
    match store.claim(id, &fingerprint(0xEE), LONG).await {
        Ok(Claim::InFlight { fingerprint, lease_left }) => {
            assert_eq!(&fingerprint, fp, "InFlight must report the claimant's fingerprint");
            assert!(lease_left <= max_left, "lease_left {lease_left:?} exceeds the lease {max_left:?}");
            assert!(!lease_left.is_zero(), "a live lease reports time left");
        }
        other => panic!("expected InFlight, got {other:?}"),
    }
}

async fn expect_completed(store: &dyn Store, id: &RecordId, fp: &Fingerprint, record: &Record) {
    match store.claim(id, &fingerprint(0xEE), LONG).await {
        Ok(Claim::Completed { fingerprint, record: stored }) => {
            assert_eq!(&fingerprint, fp, "Completed must report the original fingerprint");
            assert_eq!(&*stored, record, "the stored record must come back unchanged");
        }
        other => panic!("expected Completed, got {other:?}"),
    }
}

/// Run every check of the store contract against `store`.
pub async fn store_contract(store: Arc<dyn Store>) {
    claim_then_in_flight(&*store).await;
    complete_then_replay(&*store).await;
    release_frees_the_id(&*store).await;
    foreign_tokens_are_fenced(&*store).await;
    completed_entries_are_final(&*store).await;
    records_round_trip(&*store).await;
    renew_extends_the_lease(&*store).await;
    expired_lease_is_taken_over(&*store).await;
    expired_lease_nobody_took_is_still_held(&*store).await;
    completed_entries_expire(&*store).await;
    concurrent_claims(store.clone(), 200).await;
    tokens_are_unique(&*store).await;
}

/// An absent id is claimed; a second claim sees it in flight with the lease left.
pub async fn claim_then_in_flight(store: &dyn Store) {
    let id = random_id();
    claimed(store, &id, &fingerprint(1), LONG).await;
    expect_in_flight(store, &id, &fingerprint(1), LONG).await;
}

/// A completed id replays its record and fingerprint.
pub async fn complete_then_replay(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(2), LONG).await;
    let record = sample_record(b"{\"ok\":true}");
    assert_eq!(store.complete(&id, &fingerprint(2), token, &record, LONG).await.unwrap(), Completion::Stored);
    expect_completed(store, &id, &fingerprint(2), &record).await;
}

/// A released id can be claimed again, with a new token.
pub async fn release_frees_the_id(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(3), LONG).await;
    assert_eq!(store.release(&id, token).await.unwrap(), Release::Released);
    assert_eq!(store.release(&id, token).await.unwrap(), Release::LeaseLost, "a second release is fenced");
    let again = claimed(store, &id, &fingerprint(4), LONG).await;
    assert_ne!(again, token, "tokens are unique per claim");
    assert_eq!(
        store.complete(&id, &fingerprint(4), token, &sample_record(b"x"), LONG).await.unwrap(),
        Completion::LeaseLost,
        "the released token cannot complete the new claim"
    );
    expect_in_flight(store, &id, &fingerprint(4), LONG).await;
}

/// A token that does not hold the claim changes nothing.
pub async fn foreign_tokens_are_fenced(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(5), LONG).await;
    let stranger = Token::random();
    assert_eq!(store.renew(&id, stranger, LONG).await.unwrap(), Renewal::LeaseLost);
    assert_eq!(
        store.complete(&id, &fingerprint(5), stranger, &sample_record(b"x"), LONG).await.unwrap(),
        Completion::LeaseLost
    );
    assert_eq!(store.release(&id, stranger).await.unwrap(), Release::LeaseLost);
    expect_in_flight(store, &id, &fingerprint(5), LONG).await;
    // Operations on an id nobody claimed are fenced too.
    let absent = random_id();
    assert_eq!(store.renew(&absent, token, LONG).await.unwrap(), Renewal::LeaseLost);
    assert_eq!(
        store.complete(&absent, &fingerprint(5), token, &sample_record(b"x"), LONG).await.unwrap(),
        Completion::LeaseLost
    );
    assert_eq!(store.release(&absent, token).await.unwrap(), Release::LeaseLost);
    assert!(matches!(store.claim(&absent, &fingerprint(6), LONG).await, Ok(Claim::Claimed { .. })));
}

/// Once completed, the holder's token can neither renew, overwrite nor release.
pub async fn completed_entries_are_final(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(7), LONG).await;
    let record = sample_record(b"first");
    assert_eq!(store.complete(&id, &fingerprint(7), token, &record, LONG).await.unwrap(), Completion::Stored);
    assert_eq!(store.renew(&id, token, LONG).await.unwrap(), Renewal::LeaseLost);
    assert_eq!(
        store.complete(&id, &fingerprint(7), token, &sample_record(b"second"), LONG).await.unwrap(),
        Completion::LeaseLost
    );
    assert_eq!(store.release(&id, token).await.unwrap(), Release::LeaseLost);
    expect_completed(store, &id, &fingerprint(7), &record).await;
}

/// Omitted bodies, empty bodies, binary and large bodies all come back unchanged.
pub async fn records_round_trip(store: &dyn Store) {
    let large: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let records = [
        Record { status: StatusCode::OK, headers: vec![], body: None },
        Record { status: StatusCode::NO_CONTENT, headers: vec![], body: Some(Bytes::new()) },
        Record {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: vec![(HeaderName::from_static("link"), HeaderValue::from_bytes(b"<a>; rel=\"x\"\xff").unwrap())],
            body: Some(Bytes::from_static(b"\x00\x01\xff binary")),
        },
        Record { status: StatusCode::OK, headers: vec![], body: Some(Bytes::from(large)) },
    ];
    for record in records {
        let id = random_id();
        let token = claimed(store, &id, &fingerprint(8), LONG).await;
        assert_eq!(store.complete(&id, &fingerprint(8), token, &record, LONG).await.unwrap(), Completion::Stored);
        expect_completed(store, &id, &fingerprint(8), &record).await;
    }
}

/// Renewal pushes expiry out by the new lease from now.
pub async fn renew_extends_the_lease(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(9), SHORT).await;
    tokio::time::sleep(SHORT / 2).await;
    assert_eq!(store.renew(&id, token, SHORT * 4).await.unwrap(), Renewal::Renewed);
    tokio::time::sleep(SHORT).await;
    // Past the original lease, within the renewed one.
    expect_in_flight(store, &id, &fingerprint(9), SHORT * 4).await;
    assert_eq!(
        store.complete(&id, &fingerprint(9), token, &sample_record(b"r"), LONG).await.unwrap(),
        Completion::Stored
    );
}

/// After a lease expires a new claim takes the id, and the old token is fenced out of
/// renew, complete and release while the new owner's entry stays intact (B10).
pub async fn expired_lease_is_taken_over(store: &dyn Store) {
    let id = random_id();
    let old = claimed(store, &id, &fingerprint(10), SHORT).await;
    tokio::time::sleep(SHORT + SHORT / 2).await;
    let new = claimed(store, &id, &fingerprint(11), LONG).await;
    assert_ne!(old, new);
    assert_eq!(store.renew(&id, old, LONG).await.unwrap(), Renewal::LeaseLost);
    assert_eq!(
        store.complete(&id, &fingerprint(11), old, &sample_record(b"stale"), LONG).await.unwrap(),
        Completion::LeaseLost
    );
    assert_eq!(store.release(&id, old).await.unwrap(), Release::LeaseLost);
    expect_in_flight(store, &id, &fingerprint(11), LONG).await;
    let record = sample_record(b"fresh");
    assert_eq!(store.complete(&id, &fingerprint(11), new, &record, LONG).await.unwrap(), Completion::Stored);
    expect_completed(store, &id, &fingerprint(11), &record).await;
}

/// An expired lease that nobody took over is still its holder's: a completion held up by
/// a store outage longer than the lease still lands (B17), and renewal revives the claim.
pub async fn expired_lease_nobody_took_is_still_held(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(12), SHORT).await;
    tokio::time::sleep(SHORT + SHORT / 2).await;
    let record = sample_record(b"late");
    assert_eq!(store.complete(&id, &fingerprint(12), token, &record, LONG).await.unwrap(), Completion::Stored);
    expect_completed(store, &id, &fingerprint(12), &record).await;
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(13), SHORT).await;
    tokio::time::sleep(SHORT + SHORT / 2).await;
    assert_eq!(store.renew(&id, token, LONG).await.unwrap(), Renewal::Renewed);
    expect_in_flight(store, &id, &fingerprint(13), LONG).await;
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(14), SHORT).await;
    tokio::time::sleep(SHORT + SHORT / 2).await;
    assert_eq!(store.release(&id, token).await.unwrap(), Release::Released);
    assert!(matches!(store.claim(&id, &fingerprint(15), LONG).await, Ok(Claim::Claimed { .. })));
}

/// A completed record is gone after its ttl.
pub async fn completed_entries_expire(store: &dyn Store) {
    let id = random_id();
    let token = claimed(store, &id, &fingerprint(13), LONG).await;
    assert_eq!(
        store.complete(&id, &fingerprint(13), token, &sample_record(b"t"), SHORT).await.unwrap(),
        Completion::Stored
    );
    tokio::time::sleep(SHORT + SHORT / 2).await;
    claimed(store, &id, &fingerprint(14), LONG).await;
}

/// Of `n` concurrent claims on one id, exactly one is `Claimed` (B8).
pub async fn concurrent_claims(store: Arc<dyn Store>, n: usize) {
    let id = random_id();
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.claim(&id, &fingerprint(15), LONG).await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("claim task panicked") {
            Ok(Claim::Claimed { .. }) => winners += 1,
            Ok(Claim::InFlight { fingerprint: fp, .. }) => assert_eq!(fp, fingerprint(15)),
            other => panic!("unexpected claim result {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one of {n} concurrent claims must win");
}

/// Tokens differ across claims.
pub async fn tokens_are_unique(store: &dyn Store) {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        let token = claimed(store, &random_id(), &fingerprint(16), LONG).await;
        assert!(seen.insert(token), "token issued twice");
    }
}
