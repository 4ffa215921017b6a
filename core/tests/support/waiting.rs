//! B20 through axum and the tower layer, over any store: duplicates that wait for their
//! in-flight original instead of taking a 409.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use idempo::Store;

use super::behaviour::{app, key};
use super::{Reply, TestApp, post};

/// `path` with the key and a `Prefer: wait=N` (none for `None`).
fn waiting(path: &str, key: &str, wait: Option<u64>) -> http::Request<axum::body::Body> {
    let mut req = post(path, Some(key), "");
    if let Some(n) = wait {
        req.headers_mut().insert("prefer", format!("wait={n}").parse().unwrap());
    }
    req
}

/// Start `path` with `key` on `app`, then give it `head` to be under way.
async fn original(app: &Arc<TestApp>, path: &str, key: &str, head: Duration) -> tokio::task::JoinHandle<Reply> {
    let (a, p, k) = (app.clone(), path.to_owned(), key.to_owned());
    let first = tokio::spawn(async move { a.send(post(&p, Some(&k), "")).await });
    tokio::time::sleep(head).await;
    first
}

pub async fn b20_two_hundred_waiting_duplicates_all_get_the_response(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.lease_ttl(Duration::from_secs(10)));
    let addr = app.serve().await;
    let k = key("b20-200");
    // Long enough for 200 connections to be accepted and claimed on a loaded debug build.
    let replies = super::concurrent_posts(addr, "/slow?ms=2000", &k, 200, &[("prefer", "wait=5")]).await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.body, replies[0].body, "every answer is the original response");
    }
    let replays: Vec<_> = replies.iter().filter(|r| r.replayed()).collect();

    assert_eq!(replays.len(), 199, "1 original and 199 replays");
    assert_eq!(app.count(), 1, "the handler ran once");
    // Those that came while the original ran waited for it, and say so; a duplicate whose
    // connection was only accepted after the original had finished got a plain replay.
    let waited = replays.iter().filter(|r| r.header("preference-applied") == Some("wait=5")).count();
    let stats = app.idem.stats();
    assert_eq!((stats.waited, stats.wait_timeouts, stats.conflicts), (waited as u64, 0, 0), "{stats:?}");
    assert!(waited >= 100, "most duplicates came while the original ran: {stats:?}");
}

pub async fn b20_the_wait_option_and_its_bounds(store: Arc<dyn Store>) {
    // `wait` set on the server: a duplicate with no preference waits, and is told nothing.
    let app = Arc::new(app(&store, |b| b.wait(Duration::from_secs(5))));
    let k = key("b20-option");
    let first = original(&app, "/slow?ms=400", &k, Duration::from_millis(100)).await;
    let dup = app.send(waiting("/slow?ms=400", &k, None)).await;
    assert!(dup.replayed(), "{}", dup.text());
    assert_eq!(dup.header("preference-applied"), None);
    first.await.unwrap();
    // `Prefer: wait=0` asks not to wait, whatever the server's default.
    let k = key("b20-prefer-0");
    let first = original(&app, "/slow?ms=400", &k, Duration::from_millis(100)).await;
    app.send(waiting("/slow?ms=400", &k, Some(0))).await.assert_problem(409, "key-in-use");
    first.await.unwrap();
    // `max_wait` 0: no preference is honoured.
    let off = Arc::new(super::behaviour::app(&store, |b| b.max_wait(Duration::ZERO)));
    let k = key("b20-max-wait-0");
    let first = original(&off, "/slow?ms=400", &k, Duration::from_millis(100)).await;
    let dup = off.send(waiting("/slow?ms=400", &k, Some(5))).await;
    dup.assert_problem(409, "key-in-use");
    assert_eq!(dup.header("preference-applied"), None);
    first.await.unwrap();
    // A preference above `max_wait` is granted `max_wait`, and says so.
    let capped = Arc::new(super::behaviour::app(&store, |b| b.max_wait(Duration::from_secs(2))));
    let k = key("b20-capped");
    let first = original(&capped, "/slow?ms=400", &k, Duration::from_millis(100)).await;
    let dup = capped.send(waiting("/slow?ms=400", &k, Some(3600))).await;
    assert!(dup.replayed());
    assert_eq!(dup.header("preference-applied"), Some("wait=2"));
    first.await.unwrap();
    assert!(
        idempo::Idempotency::builder_shared(store.clone()).wait(Duration::from_secs(11)).try_build().is_err(),
        "wait above max_wait is refused"
    );
}

pub async fn b20_a_wait_that_runs_out_is_a_409(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b.lease_ttl(Duration::from_secs(30))));
    let k = key("b20-timeout");
    let first = original(&app, "/slow?ms=3000", &k, Duration::from_millis(100)).await;
    let started = Instant::now();
    let dup = app.send(waiting("/slow?ms=3000", &k, Some(1))).await;
    let waited = started.elapsed();
    dup.assert_problem(409, "key-in-use");
    assert_eq!(dup.header("retry-after"), Some("1"));
    assert_eq!(dup.header("preference-applied"), Some("wait=1"));
    assert!(waited >= Duration::from_secs(1), "it waited the second it asked for: {waited:?}");
    assert!(!first.is_finished(), "and answered before the original finished");
    let stats = app.idem.stats();
    assert_eq!((stats.waited, stats.wait_timeouts, stats.conflicts), (1, 1, 1), "{stats:?}");
    first.await.unwrap();
    assert_eq!(app.count(), 1);
}

pub async fn b20_on_release_one_waiter_executes_and_the_rest_replay_it(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b.lease_ttl(Duration::from_secs(10))));
    let k = key("b20-release");
    let first = original(&app, "/fail-first?ms=500", &k, Duration::from_millis(100)).await;
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let (a, k) = (app.clone(), k.clone());
            tokio::spawn(async move { a.send(waiting("/fail-first?ms=500", &k, Some(5))).await })
        })
        .collect();
    let failed = first.await.unwrap();
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let mut replies = Vec::new();
    for w in waiters {
        replies.push(w.await.unwrap());
    }
    let executed: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::OK && !r.replayed()).collect();
    assert_eq!(executed.len(), 1, "exactly one waiter ran the handler");
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.body, executed[0].body);
    }
    assert_eq!(app.count(), 2, "the failed run and the one that succeeded");
}

pub async fn b20_max_waiters_and_a_waiter_whose_client_left(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b.max_waiters(1).lease_ttl(Duration::from_secs(10))));
    let k = key("b20-max-waiters");
    let first = original(&app, "/slow?ms=1500", &k, Duration::from_millis(100)).await;
    // A waiter whose client leaves after 100 ms gives its place back...
    let gone = tokio::time::timeout(Duration::from_millis(100), app.send(waiting("/slow?ms=1500", &k, Some(5)))).await;
    assert!(gone.is_err(), "the client left while it waited");
    // (The layer hands a dropped request to a task of its own, which sees it is only
    // waiting and stops: give that task its turn.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...so the next one waits.
    let (a, k2) = (app.clone(), k.clone());
    let waiter = tokio::spawn(async move { a.send(waiting("/slow?ms=1500", &k2, Some(5))).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // With the one place taken, a further duplicate gets its 409 at once.
    let started = Instant::now();
    let refused = app.send(waiting("/slow?ms=1500", &k, Some(5))).await;
    refused.assert_problem(409, "key-in-use");
    assert_eq!(refused.header("preference-applied"), None, "it did not wait");
    assert!(!first.is_finished(), "answered while the original still runs ({:?})", started.elapsed());
    let replay = waiter.await.unwrap();
    assert!(replay.replayed(), "{}", replay.text());
    first.await.unwrap();
    assert_eq!(app.count(), 1);
    let stats = app.idem.stats();
    assert_eq!((stats.waited, stats.conflicts), (2, 1), "{stats:?}");
}

/// Claim a fresh id through `a`, watch it through `b` (another process, as far as Redis can
/// tell), then finish the claim through `a`: whether `b`'s watch was woken within `within`,
/// and not before (a wake of every waiter after a reconnection also counts as not).
pub async fn woken_across(a: &dyn Store, b: &dyn Store, release: bool, within: Duration) -> bool {
    let (id, fp) = (idempo::testing::random_id(), idempo::testing::fingerprint(1));
    let Ok(idempo::Claim::Claimed { token }) = a.claim(&id, &fp, Duration::from_secs(60)).await else { return false };
    let Some(mut watch) = b.watch(&id).await else { panic!("this store delivers events") };
    if tokio::time::timeout(Duration::from_millis(50), watch.woken()).await.is_ok() {
        return false;
    }
    let done = if release {
        a.release(&id, token).await.is_ok()
    } else {
        a.complete(&id, &fp, token, &idempo::testing::sample_record(b"ok"), Duration::from_secs(60)).await.is_ok()
    };
    done && tokio::time::timeout(within, watch.woken()).await.is_ok()
}

/// Whether `b`'s watches are woken by events through `a` again within some 5 s (after a
/// subscriber or listener lost its connection and made it again).
pub async fn woken_again(a: &dyn Store, b: &dyn Store) -> bool {
    for _ in 0..40 {
        if woken_across(a, b, false, Duration::from_secs(1)).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
