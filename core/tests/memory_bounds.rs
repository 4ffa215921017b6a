//! The memory store's bounds (docs/RULES.md B21): what one scope can do to another's records,
//! and how many bytes the store holds whatever the responses weigh.

mod support;

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::key::{Key, KeyRules, parse_value};
use idempo::record::Record;
use idempo::{Claim, Completion, Idempotency, MemoryStore, Owner, StoreError, Token};
use support::TestApp;

const LONG: Duration = Duration::from_secs(3600);

fn id(owner: u8, n: u32) -> RecordId {
    let mut b = [0u8; 32];
    b[0] = owner;
    b[1..5].copy_from_slice(&n.to_be_bytes());
    RecordId(b)
}

fn key(k: &str) -> Key {
    parse_value(k.as_bytes(), KeyRules::default()).unwrap()
}

fn record(body: usize) -> Record {
    Record { status: StatusCode::CREATED, headers: vec![], body: Some(Bytes::from(vec![b'x'; body])) }
}

fn claimed(store: &MemoryStore, owner: Owner<'_>, id: &RecordId) -> Result<Token, StoreError> {
    match store.claim_now_for(owner, id, &Fingerprint([1; 32]), LONG)? {
        Claim::Claimed { token } => Ok(token),
        other => panic!("expected a claim, got {other:?}"),
    }
}

fn stored(store: &MemoryStore, owner: Owner<'_>, id: &RecordId, body: usize) {
    let token = claimed(store, owner, id).expect("claims");
    assert_eq!(store.complete_now(id, token, &record(body), LONG), Completion::Stored);
}

/// What a claim of `id` finds now: the record's body length, "in flight" or "absent".
fn found(store: &MemoryStore, owner: Owner<'_>, id: &RecordId) -> String {
    match store.claim_now_for(owner, id, &Fingerprint([1; 32]), LONG) {
        Ok(Claim::Completed { record, .. }) => match &record.body {
            Some(body) => format!("record of {} bytes", body.len()),
            None => "record without body".into(),
        },
        Ok(Claim::InFlight { .. }) => "in flight".into(),
        Ok(Claim::Claimed { token }) => {
            store.release_now(id, token);
            "absent".into()
        }
        Err(e) => format!("error: {e}"),
    }
}

/// The shard the store chose before B21's keyed choice: bytes 8..16 of the id, which
/// anyone can compute from a scope and a key.
fn old_shard(id: &RecordId) -> u64 {
    u64::from_le_bytes(id.0[8..16].try_into().unwrap()) % 64
}

#[test]
fn ids_aimed_at_one_shard_do_not_evict_a_record_there() {
    // The attack of issue 15: the attacker computes, offline, 1 600 ids that land in the
    // victim's shard, and completes them. Before the shard choice was keyed, the victim's
    // completed record was evicted and its retry ran the handler again.
    let store = MemoryStore::new();
    let victim = id(1, 0);
    let token = match store.claim_now(&victim, &Fingerprint([1; 32]), LONG) {
        Ok(Claim::Claimed { token }) => token,
        other => panic!("{other:?}"),
    };
    assert_eq!(store.complete_now(&victim, token, &record(10), LONG), Completion::Stored);
    let aimed = (0u32..).map(|n| id(2, n)).filter(|i| old_shard(i) == old_shard(&victim)).take(1_600);
    for i in aimed {
        if let Ok(Claim::Claimed { token }) = store.claim_now(&i, &Fingerprint([2; 32]), LONG) {
            store.complete_now(&i, token, &record(10), LONG);
        }
    }
    assert!(matches!(store.claim_now(&victim, &Fingerprint([1; 32]), LONG), Ok(Claim::Completed { .. })));
}

#[test]
fn claims_aimed_at_one_shard_do_not_lock_others_out_of_it() {
    // The other half of the attack: 1 600 slow requests whose ids the attacker computed
    // into one shard filled it with in-flight claims, and every other caller whose key
    // fell there got 503.
    let store = MemoryStore::new();
    let victim = id(1, 0);
    let aimed = (0u32..).map(|n| id(2, n)).filter(|i| old_shard(i) == old_shard(&victim)).take(1_600);
    let held = aimed.filter(|i| matches!(store.claim_now(i, &Fingerprint([2; 32]), LONG), Ok(Claim::Claimed { .. })));
    assert_eq!(held.count(), 1_600, "the attacker's own scope has room for them");
    assert!(matches!(store.claim_now(&victim, &Fingerprint([1; 32]), LONG), Ok(Claim::Claimed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attacker_tenant_cannot_evict_a_victims_record_through_the_layer() {
    // The same attack through the tower layer, with the tenant as the scope: the keys are
    // chosen so that the attacker's record ids fall in the victim's (old) shard.
    let idem = Idempotency::builder(MemoryStore::new()).build();
    let layer = idem.layer().scope(|req| {
        req.headers.get("x-tenant").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
    });
    let app = TestApp::with_layer(idem, layer);
    let post = |tenant: &str, key: &str| {
        Request::post("/echo")
            .header("idempotency-key", key)
            .header("x-tenant", tenant)
            .body(Body::from("pay"))
            .unwrap()
    };
    let victim_id = RecordId::new(Some("victim"), &key("victim-key"));
    assert_eq!(app.send(post("victim", "victim-key")).await.status, StatusCode::CREATED);
    let keys: Vec<String> = (0u32..)
        .map(|n| format!("k{n}"))
        .filter(|k| old_shard(&RecordId::new(Some("attacker"), &key(k))) == old_shard(&victim_id))
        .take(1_600)
        .collect();
    for k in &keys {
        app.send(post("attacker", k)).await;
    }
    let before = app.count();
    let retry = app.send(post("victim", "victim-key")).await;
    assert!(retry.replayed(), "the victim's retry was not replayed: {:?}", retry.status);
    assert_eq!(app.count(), before, "the victim's handler ran again");
}

#[test]
fn a_scope_at_its_share_evicts_its_own_records_never_anothers() {
    let store = MemoryStore::builder().max_entries(100).max_entries_per_scope(10).build();
    let (a, b) = (Owner::Scope("a"), Owner::Scope("b"));
    stored(&store, b, &id(2, 0), 5);
    for n in 0..10 {
        stored(&store, a, &id(1, n), 5);
    }
    // The eleventh of a's makes way by evicting a's record closest to expiry.
    stored(&store, a, &id(1, 10), 5);
    assert_eq!(found(&store, a, &id(1, 0)), "absent");
    assert_eq!(found(&store, b, &id(2, 0)), "record of 5 bytes");
    // A scope whose share is all claims in flight is refused; the others are not.
    let store = MemoryStore::builder().max_entries(100).max_entries_per_scope(10).build();
    for n in 0..10 {
        claimed(&store, a, &id(1, n)).unwrap();
    }
    assert!(matches!(claimed(&store, a, &id(1, 10)), Err(StoreError::Full)));
    claimed(&store, b, &id(2, 0)).expect("another scope still claims");
}

#[tokio::test(start_paused = true)]
async fn a_full_store_refuses_a_new_scope_rather_than_evict_a_live_record() {
    let store = MemoryStore::builder().max_entries(10).max_entries_per_scope(10).build();
    let (a, b) = (Owner::Scope("a"), Owner::Scope("b"));
    for n in 0..10 {
        stored(&store, a, &id(1, n), 5);
    }
    // b has nothing of its own to evict: its claim is refused, a's records stay.
    assert!(matches!(claimed(&store, b, &id(2, 0)), Err(StoreError::Full)));
    assert_eq!((0..10).filter(|n| found(&store, a, &id(1, *n)) == "record of 5 bytes").count(), 10);
    // Once they expire there is room.
    tokio::time::advance(LONG + Duration::from_secs(1)).await;
    claimed(&store, b, &id(2, 0)).expect("claims once a's records expired");
    assert_eq!(store.len(), 1);
}

#[test]
fn max_bytes_bounds_the_records_held() {
    let store = MemoryStore::builder().max_entries(1_000).max_entries_per_scope(1_000).max_bytes(10_000).build();
    let (a, b) = (Owner::Scope("a"), Owner::Scope("b"));
    for n in 0..10 {
        stored(&store, a, &id(1, n), 4_000);
        assert!(store.stored_bytes() <= 10_000, "{} bytes held", store.stored_bytes());
    }
    // a's newest records are kept whole, its oldest made way.
    assert_eq!(found(&store, a, &id(1, 9)), "record of 4000 bytes");
    assert_eq!(found(&store, a, &id(1, 0)), "absent");
    // b cannot evict a's records: its response is kept without the body (B12), so the
    // key still never runs twice.
    stored(&store, b, &id(2, 0), 4_000);
    assert_eq!(found(&store, b, &id(2, 0)), "record without body");
    assert!(store.stored_bytes() <= 10_000);
}

#[test]
fn a_scope_holds_its_share_of_the_bytes() {
    // A tenth of the entries, so a tenth of the bytes: 1 000 of 10 000.
    let store = MemoryStore::builder().max_entries(100).max_bytes(10_000).build();
    assert_eq!(store.limits().max_entries_per_scope, 10);
    let (a, b) = (Owner::Scope("a"), Owner::Scope("b"));
    stored(&store, a, &id(1, 0), 900);
    stored(&store, a, &id(1, 1), 900);
    assert_eq!(found(&store, a, &id(1, 0)), "absent");
    stored(&store, b, &id(2, 0), 900);
    assert_eq!(found(&store, b, &id(2, 0)), "record of 900 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_responses_stay_within_max_bytes_through_the_layer() {
    // Before max_bytes, 1 000 responses of 1 MiB took a fixture from 10 MiB to 1 GiB.
    let store = MemoryStore::new();
    let idem = Idempotency::builder(store.clone()).build();
    let layer = idem.layer().global_scope();
    let app = TestApp::with_layer(idem, layer);
    let mut last = String::new();
    for n in 0..200 {
        last = format!("large-{n}");
        let req = Request::post("/large?bytes=1000000").header("idempotency-key", &last).body(Body::empty()).unwrap();
        assert_eq!(app.send(req).await.status, StatusCode::OK);
    }
    let held = store.stored_bytes();
    assert!(held <= store.limits().max_bytes, "{held} bytes held");
    let req = Request::post("/large?bytes=1000000").header("idempotency-key", &last).body(Body::empty()).unwrap();
    let replay = app.send(req).await;
    assert!(replay.replayed());
    assert_eq!(replay.body.len(), 1_000_000);
    assert_eq!(app.count(), 200);
}

#[test]
fn the_store_describes_its_bounds() {
    let store = MemoryStore::builder().max_bytes(1 << 20).build();
    assert_eq!(
        format!("{store:?}"),
        "MemoryStore { max_entries: 100000, max_entries_per_scope: 10000, max_bytes: 1048576 }"
    );
}
