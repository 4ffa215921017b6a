//! One tokio runtime per process, for hosts that have none of their own (Python), made on
//! first use and again after `fork()`.
//!
//! A runtime's threads do not survive `fork()`: a gunicorn worker started with `--preload`
//! inherits the master's runtime object but none of its threads. Each process therefore
//! gets its own runtime, found by process id; the one inherited from the parent is leaked,
//! since dropping it would wait for threads that do not exist.

use std::sync::Mutex;

use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime.
pub fn runtime() -> std::io::Result<&'static Runtime> {
    let pid = std::process::id();
    let mut current = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *current
        && owner == pid
    {
        return Ok(rt);
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("idempo").enable_all().build()?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *current = Some((pid, rt));
    Ok(rt)
}
