//! Progress of long operations, as shared counters.
//!
//! The engine only counts; whoever started the operation decides how to show it (a
//! progress bar on a terminal, a job's progress in the server, nothing in a script).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters an operation updates while it runs. Read them from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes the operation expects to process (may grow while it plans).
    pub total: AtomicU64,
    /// Bytes processed so far.
    pub done: AtomicU64,
    /// Set by the caller to ask the operation to stop; it ends with `Error::Cancelled`
    /// and leaves no partial result behind.
    pub cancel: AtomicBool,
}

impl Progress {
    pub fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}
