//! Random interleavings of claim/renew/complete/release (and the passing of time) on the
//! memory store agree with a plain model of the store contract (docs/RULES.md, "Stores", B8, B10).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::record::Record;
use idempo::{Claim, Completion, MemoryStore, Release, Renewal, Token};
use proptest::prelude::*;
use tokio::time::Instant;

#[derive(Debug, Clone)]
enum Op {
    Claim { id: u8, fp: u8, lease_ms: u64 },
    Renew { id: u8, token: usize, lease_ms: u64 },
    Complete { id: u8, token: usize, ttl_ms: u64, body: u8 },
    Release { id: u8, token: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0u8..2, 1u64..50).prop_map(|(id, fp, lease_ms)| Op::Claim { id, fp, lease_ms }),
        (0u8..3, 0usize..8, 1u64..50).prop_map(|(id, token, lease_ms)| Op::Renew { id, token, lease_ms }),
        (0u8..3, 0usize..8, 1u64..80, any::<u8>()).prop_map(|(id, token, ttl_ms, body)| Op::Complete {
            id,
            token,
            ttl_ms,
            body
        }),
        (0u8..3, 0usize..8).prop_map(|(id, token)| Op::Release { id, token }),
        (0u64..40).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
enum ModelState {
    InFlight { token: Token, fp: Fingerprint },
    Completed { fp: Fingerprint, body: u8 },
}

#[derive(Default)]
struct Model {
    entries: HashMap<u8, (ModelState, Instant)>,
}

impl Model {
    fn live(&self, id: u8, now: Instant) -> Option<&ModelState> {
        self.entries.get(&id).filter(|(_, exp)| *exp > now).map(|(s, _)| s)
    }

    /// A claim is its holder's until a new claim takes it, even past its lease, for
    /// `LATE_COMPLETION` (the holder may still finish it).
    fn held(&self, id: u8, token: Token, now: Instant) -> bool {
        matches!(self.entries.get(&id), Some((ModelState::InFlight { token: t, .. }, exp))
            if *t == token && *exp + idempo::store::LATE_COMPLETION > now)
    }
}

fn record_id(id: u8) -> RecordId {
    RecordId([id; 32])
}

fn record(body: u8) -> Record {
    Record { status: StatusCode::OK, headers: vec![], body: Some(Bytes::from(vec![body])) }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    rt.block_on(async move {
        let store = MemoryStore::new();
        let mut model = Model::default();
        // Every token the store handed out, plus one it never did; ops pick by index.
        let mut tokens: Vec<Token> = vec![Token::random()];
        let pick = |tokens: &Vec<Token>, i: usize| tokens[i % tokens.len()];
        for op in ops {
            let now = Instant::now();
            match op {
                Op::Claim { id, fp, lease_ms } => {
                    let fp = Fingerprint([fp; 32]);
                    let lease = Duration::from_millis(lease_ms);
                    let got = store.claim_now(&record_id(id), &fp, lease).unwrap();
                    match (model.live(id, now).cloned(), got) {
                        (None, Claim::Claimed { token }) => {
                            prop_assert!(!tokens.contains(&token), "token reused");
                            tokens.push(token);
                            model.entries.insert(id, (ModelState::InFlight { token, fp }, now + lease));
                        }
                        (Some(ModelState::InFlight { fp: mfp, .. }), Claim::InFlight { fingerprint, lease_left }) => {
                            prop_assert_eq!(mfp, fingerprint);
                            let expires = model.entries[&id].1;
                            prop_assert_eq!(lease_left, expires - now);
                        }
                        (
                            Some(ModelState::Completed { fp: mfp, body }),
                            Claim::Completed { fingerprint, record: r },
                        ) => {
                            prop_assert_eq!(mfp, fingerprint);
                            prop_assert_eq!(&*r, &record(body));
                        }
                        (expected, got) => prop_assert!(false, "claim: model {:?}, store {:?}", expected, got),
                    }
                }
                Op::Renew { id, token, lease_ms } => {
                    let token = pick(&tokens, token);
                    let lease = Duration::from_millis(lease_ms);
                    let got = store.renew_now(&record_id(id), token, lease);
                    if model.held(id, token, now) {
                        prop_assert_eq!(got, Renewal::Renewed);
                        if let Some(e) = model.entries.get_mut(&id) {
                            e.1 = now + lease;
                        }
                    } else {
                        prop_assert_eq!(got, Renewal::LeaseLost);
                    }
                }
                Op::Complete { id, token, ttl_ms, body } => {
                    let token = pick(&tokens, token);
                    let got = store.complete_now(&record_id(id), token, &record(body), Duration::from_millis(ttl_ms));
                    if model.held(id, token, now) {
                        prop_assert_eq!(got, Completion::Stored);
                        let Some((ModelState::InFlight { fp, .. }, _)) = model.entries.get(&id).cloned() else {
                            unreachable!()
                        };
                        model
                            .entries
                            .insert(id, (ModelState::Completed { fp, body }, now + Duration::from_millis(ttl_ms)));
                    } else {
                        prop_assert_eq!(got, Completion::LeaseLost);
                    }
                }
                Op::Release { id, token } => {
                    let token = pick(&tokens, token);
                    let got = store.release_now(&record_id(id), token);
                    if model.held(id, token, now) {
                        prop_assert_eq!(got, Release::Released);
                        model.entries.remove(&id);
                    } else {
                        prop_assert_eq!(got, Release::LeaseLost);
                    }
                }
                Op::Advance { ms } => tokio::time::advance(Duration::from_millis(ms)).await,
            }
        }
        let live = (0..3).filter(|id| model.live(*id, Instant::now()).is_some()).count();
        prop_assert_eq!(store.len(), live);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
