//! What idempo logged, for the tests that read it: a `tracing` writer into memory. The
//! subscriber is process-wide, so each such test has a test binary of its own.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Capture idempo's events at `level` and above for the rest of the process.
    pub fn install(level: &str) -> Captured {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(format!("idempo={level}"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    }

    /// Everything logged since the last take.
    pub fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }

    /// The lines logged so far that hold `text` (nothing is taken).
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        let all = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        all.lines().filter(|l| l.contains(text)).map(str::to_owned).collect()
    }
}
