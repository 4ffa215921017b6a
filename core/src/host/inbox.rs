//! Handing results from runtime threads to a host's event-loop thread (asyncio), without
//! taking the host's lock (Python's GIL) on the runtime side: a queue, and one wake-up byte
//! on a pipe the event loop watches, written only when the queue was empty, so one wake-up
//! serves every result that arrives before the loop gets to it.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;

/// One event loop's queue of results.
pub struct Inbox<T> {
    /// The items, and whether a wake-up byte is in the pipe.
    items: Mutex<(Vec<T>, bool)>,
    reader: PipeReader,
    writer: PipeWriter,
}

impl<T> Inbox<T> {
    /// A new inbox. The host makes [`Inbox::fd`] non-blocking and watches it for reading.
    pub fn new() -> std::io::Result<Inbox<T>> {
        let (reader, writer) = std::io::pipe()?;
        Ok(Inbox { items: Mutex::new((Vec::new(), false)), reader, writer })
    }

    /// The pipe end that becomes readable when items are waiting.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Add an item (any thread).
    pub fn push(&self, item: T) {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.0.push(item);
        if !items.1 {
            items.1 = true;
            // One byte at most is ever in the pipe, so the write cannot block.
            let _ = (&self.writer).write(&[1]);
        }
    }

    /// Every waiting item (the event loop's thread, when the pipe is readable).
    pub fn take(&self) -> Vec<T> {
        let mut buf = [0u8; 64];
        while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.1 = false;
        std::mem::take(&mut items.0)
    }
}
