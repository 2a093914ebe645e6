//! What a handler has done so far, counted as it goes: the objects it made equal and the
//! bytes it copied. Shared (an `Arc`) by the handler's runs, the job's metrics
//! (`clsync_bytes_copied_total`) and `clsync sync`'s progress display, which read it at
//! any time. Relaxed atomic adds, once per object and once per copied chunk: no ordering
//! is promised between the counters, only that each only grows.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one handler (see the module documentation).
#[derive(Debug, Default)]
pub struct Tally {
    files: AtomicU64,
    copied: AtomicU64,
    current: AtomicU64,
}

/// A reading of a [`Tally`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Non-directory objects (files, symlinks, fifos, ...) made equal, copied or found so.
    pub files: u64,
    /// Bytes of file content written to the destination.
    pub copied: u64,
    /// Bytes of regular files dealt with: those copied, and those found up to date. What a
    /// total of the source's file sizes measures progress against.
    pub done: u64,
}

impl Tally {
    /// An object made equal.
    pub fn file(&self) {
        self.files.fetch_add(1, Relaxed);
    }

    /// `n` bytes of content written.
    pub fn copied(&self, n: u64) {
        self.copied.fetch_add(n, Relaxed);
    }

    /// A regular file of `len` bytes found up to date (nothing copied).
    pub fn current(&self, len: u64) {
        self.current.fetch_add(len, Relaxed);
    }

    /// At least `n` bytes written and `files` objects made equal so far: for a handler that
    /// learns running totals (rsync's `--info=progress2`) rather than each step.
    pub fn reached(&self, n: u64, files: u64) {
        self.copied.fetch_max(n, Relaxed);
        self.files.fetch_max(files, Relaxed);
    }

    pub fn read(&self) -> Counts {
        let copied = self.copied.load(Relaxed);
        Counts {
            files: self.files.load(Relaxed),
            copied,
            done: copied + self.current.load(Relaxed),
        }
    }
}
