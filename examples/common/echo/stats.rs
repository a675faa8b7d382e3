//! The server's counters: only the I/O thread writes them, any thread reads
//! them (relaxed atomics: each counter is exact, a [`Snapshot`] is not one
//! instant across counters).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the I/O thread updates as it goes; read them with
/// [`Stats::snapshot`] from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub(super) accepted: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) shed: AtomicU64,
    pub(super) accept_pauses: AtomicU64,
    pub(super) lines: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) reordered: AtomicU64,
    pub(super) replies: AtomicU64,
    pub(super) reply_wakeups: AtomicU64,
    pub(super) reply_wakes_written: AtomicU64,
    pub(super) reply_wakes_absorbed: AtomicU64,
}

/// The [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Of those, closed (by either side).
    pub closed: u64,
    /// Of those, closed on an I/O error (reset, broken pipe, line too long).
    pub errors: u64,
    /// Connections accepted and closed at once because fds ran out.
    pub shed: u64,
    /// Times the server stopped watching the listener.
    pub accept_pauses: u64,
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Replies that came back from the workers before their turn.
    pub reordered: u64,
    /// Replies (one per job: the lines of one read) taken from the mailbox.
    pub replies: u64,
    /// Times the reply mailbox woke the loop; fewer than `replies` when
    /// wakes coalesce.
    pub reply_wakeups: u64,
    /// Wakes the workers wrote to the reply mailbox (a system call each),
    /// from its `stats()`: counted when the loop stops.
    pub reply_wakes_written: u64,
    /// Wakes that found the loop awake and made no system call (only a
    /// sleep-aware loop has them): counted when the loop stops.
    pub reply_wakes_absorbed: u64,
}

impl Snapshot {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted - self.closed
    }

    /// Wakes written to the reply mailbox per 1000 replies taken from it
    /// (None before the first reply, or before the loop stops).
    pub fn wakes_written_per_1000_replies(&self) -> Option<f64> {
        (self.replies > 0).then(|| self.reply_wakes_written as f64 * 1000.0 / self.replies as f64)
    }
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            accepted: get(&self.accepted),
            closed: get(&self.closed),
            errors: get(&self.errors),
            shed: get(&self.shed),
            accept_pauses: get(&self.accept_pauses),
            lines: get(&self.lines),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            reordered: get(&self.reordered),
            replies: get(&self.replies),
            reply_wakeups: get(&self.reply_wakeups),
            reply_wakes_written: get(&self.reply_wakes_written),
            reply_wakes_absorbed: get(&self.reply_wakes_absorbed),
        }
    }
}

/// Adds `n` to `counter`.
pub(super) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Sets `counter` to `n` (the mailbox's own counts, copied at the end).
pub(super) fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}
