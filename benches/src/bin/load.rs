//! `idempo-load`: the HTTP load generator of `make bench` (benches/http/README in
//! benches/README.md). It sends a fixed number of `POST` requests over a fixed number of
//! keep-alive connections and prints one JSON line: requests/s, p50/p99 latency, errors.
//!
//! ```text
//! idempo-load --url http://127.0.0.1:8080/echo --workload first --requests 20000 --concurrency 32
//! ```
//!
//! Workloads (every request carries the same small JSON body, and every answer must be a
//! `201`; anything else, or a failed connection, is an error). Keys are `<prefix>-<n>`:
//! give each run its own `--key-prefix` (the default is made from the clock).
//! - `nokey`: no `Idempotency-Key` (the bare app, and passthrough behind the middleware);
//! - `first`: a new key on every request (claim, run, store);
//! - `replay`: every request carries the key `<prefix>-replayed` (run it once with
//!   `--requests 1` to execute it, then measure the replays);
//! - `mixed`: of every ten requests two carry no key, four a new key and four repeat the
//!   connection's last new key (a client retrying a request it already got an answer to).
//!
//! The output's `executions` is how many of the answered requests should have run the
//! handler (no key, or a key not used before), for the caller to check against the app.
//! It runs on one thread by default so that, on a small machine, the server under test
//! keeps the other cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const BODY: &[u8] = br#"{"amount":100,"currency":"eur","note":"idempo-load"}"#;
const USAGE: &str = "usage: idempo-load --url http://HOST:PORT/PATH --workload nokey|first|replay|mixed \
[--requests N] [--concurrency C] [--key-prefix P] [--threads T]";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    NoKey,
    First,
    Replay,
    Mixed,
}

impl Workload {
    fn parse(name: &str) -> Option<Workload> {
        Some(match name {
            "nokey" => Workload::NoKey,
            "first" => Workload::First,
            "replay" => Workload::Replay,
            "mixed" => Workload::Mixed,
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Args {
    host: String,
    port: u16,
    path: String,
    workload: Workload,
    requests: usize,
    concurrency: usize,
    key_prefix: Option<String>,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut workload = None;
    let (mut requests, mut concurrency, mut threads) = (10_000usize, 32usize, 1usize);
    let mut key_prefix = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: not a number: {v:?}"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--workload" => {
                let v = value()?;
                workload = Some(Workload::parse(&v).ok_or_else(|| format!("unknown workload {v:?}"))?);
            }
            "--requests" => requests = number(value()?)?,
            "--concurrency" => concurrency = number(value()?)?.max(1),
            "--key-prefix" => key_prefix = Some(value()?),
            "--threads" => threads = number(value()?)?.max(1),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url.strip_prefix("http://").ok_or("--url must start with http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority.rsplit_once(':').ok_or("--url needs an explicit port")?;
    Ok(Args {
        host: host.to_owned(),
        port: port.parse().map_err(|_| format!("bad port in {url:?}"))?,
        path: if path.is_empty() { "/".into() } else { path.to_owned() },
        workload: workload.ok_or("--workload is required")?,
        requests,
        concurrency,
        key_prefix,
        threads,
    })
}

/// What one phase (warm-up or measured) hands out: request numbers, and the keys' prefix.
struct Phase {
    next: AtomicUsize,
    total: usize,
    tag: String,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Answered requests that should have run the handler.
    executions: usize,
    errors: usize,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

struct Target {
    host: String,
    port: u16,
    path: String,
    workload: Workload,
}

async fn connect(t: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect((t.host.as_str(), t.port)).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

fn request(t: &Target, key: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(t.path.as_str())
        .header(http::header::HOST, format!("{}:{}", t.host, t.port))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", format!("\"{key}\""));
    }
    // The parts are all fixed and valid, so building cannot fail; an empty request would
    // only turn into counted errors.
    builder.body(Full::new(Bytes::from_static(BODY))).unwrap_or_default()
}

/// One connection's share of a phase: take request numbers until none are left.
async fn connection(t: Arc<Target>, phase: Arc<Phase>) -> Tally {
    let mut tally = Tally::default();
    tally.latencies_us.reserve(phase.total / 8);
    let mut sender = None;
    let mut last_new: Option<String> = None;
    loop {
        let i = phase.next.fetch_add(1, Ordering::Relaxed);
        if i >= phase.total {
            return tally;
        }
        let (key, executes) = match (t.workload, i % 10) {
            (Workload::NoKey, _) | (Workload::Mixed, 0 | 1) => (None, true),
            (Workload::Replay, _) => (Some(format!("{}-replayed", phase.tag)), false),
            (Workload::Mixed, 6..) if last_new.is_some() => (last_new.clone(), false),
            (Workload::First | Workload::Mixed, _) => {
                let key = format!("{}-{i}", phase.tag);
                last_new = Some(key.clone());
                (Some(key), true)
            }
        };
        if sender.is_none() {
            match connect(&t).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    tally.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let started = Instant::now();
        let outcome = match s.send_request(request(&t, key.as_deref())).await {
            Ok(res) => {
                let status = res.status();
                match res.into_body().collect().await {
                    Ok(_) if status == StatusCode::CREATED => Ok(()),
                    Ok(_) => Err(format!("status {status}")),
                    Err(e) => Err(format!("body: {e}")),
                }
            }
            Err(e) => Err(format!("request: {e}")),
        };
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match outcome {
            Ok(()) => {
                tally.latencies_us.push(micros);
                tally.executions += usize::from(executes);
            }
            Err(e) => {
                // A closed connection is reopened for the next request.
                if e.starts_with("request") || e.starts_with("body") {
                    sender = None;
                }
                tally.error(e);
            }
        }
    }
}

async fn run_phase(target: &Arc<Target>, total: usize, concurrency: usize, tag: String) -> Tally {
    let phase = Arc::new(Phase { next: AtomicUsize::new(0), total, tag });
    let tasks: Vec<_> = (0..concurrency).map(|_| tokio::spawn(connection(target.clone(), phase.clone()))).collect();
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => {
                all.latencies_us.extend(t.latencies_us);
                all.executions += t.executions;
                all.errors += t.errors;
                if let Some(e) = t.first_error {
                    all.first_error.get_or_insert(e);
                }
            }
            Err(e) => all.error(format!("connection task: {e}")),
        }
    }
    all
}

fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

async fn run(args: Args) -> String {
    let target = Arc::new(Target { host: args.host, port: args.port, path: args.path, workload: args.workload });
    // Keys must be new to the store on every run, whatever ran before against it.
    let prefix = args.key_prefix.clone().unwrap_or_else(|| {
        let nonce = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("load-{nonce:x}")
    });
    let started = Instant::now();
    let mut tally = run_phase(&target, args.requests, args.concurrency.min(args.requests.max(1)), prefix).await;
    let seconds = started.elapsed().as_secs_f64();
    tally.latencies_us.sort_unstable();
    let first_error = tally.first_error.as_deref().map_or_else(|| "null".into(), json_string);
    format!(
        "{{\"workload\":\"{:?}\",\"requests\":{},\"concurrency\":{},\"seconds\":{:.3},\"rps\":{:.1},\
\"p50_us\":{},\"p99_us\":{},\"executions\":{},\"errors\":{},\"first_error\":{}}}",
        args.workload,
        args.requests,
        args.concurrency,
        seconds,
        args.requests as f64 / seconds,
        percentile(&tally.latencies_us, 50),
        percentile(&tally.latencies_us, 99),
        tally.executions,
        tally.errors,
        first_error,
    )
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("idempo-load: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("idempo-load: runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    println!("{}", runtime.block_on(run(args)));
    std::process::ExitCode::SUCCESS
}
