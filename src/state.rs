//! The coalescing protocol: one atomic state word shared by a `Notifier` and
//! its `Waker`s, and the order in which it and the fd are touched.
//!
//! This file knows nothing about backends. It drives any [`Signal`] (the write
//! and read ends of an eventfd, pipe or socket pair, or the loom model's fake),
//! and it is the one place whose orderings the loom model checks
//! (`RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`).
//!
//! # The protocol
//!
//! The word holds two bits: `PENDING` (a wake was written, or is about to be,
//! and the loop has not drained it yet) and `CLOSED` (the `Notifier` is gone).
//!
//! * **notify**: the sender has published its work (a queue push, a store, ...)
//!   before it calls `notify`. It sets `PENDING` with one read-modify-write. Only
//!   the caller that moved `PENDING` from 0 to 1 writes to the fd; every other
//!   caller returns at once. That is the coalescing: between two drains at most
//!   one wake is written, whatever the number of callers.
//! * **drain**: the loop first consumes the fd (reads until it is empty, or not
//!   at all where the backend is watched edge-triggered and needs no read),
//!   *then* clears `PENDING`, and only then looks at the work.
//!
//! The order in `drain` is what keeps wakes from being lost. Clearing first
//! would let a notify land between the clear and the read: it sets `PENDING`
//! and writes, the read swallows its byte, and the fd is empty while `PENDING`
//! stays set, so every later notify is coalesced into a wake that will never
//! come. The loom model `clear_before_read_loses_wakes` shows that failure.
//!
//! Reading first leaves one harmless race: a sender that set `PENDING` before
//! the clear may write its byte after the read. The fd is then readable with
//! `PENDING` clear; the loop gets one spurious readiness event, and the next
//! drain (which always reads, except in the edge-triggered no-read mode where
//! a stray write is just one more edge) removes it and reports no wake, since
//! the clear that came before already published that sender's work.
//!
//! A failed write (no such error is expected on these fds) clears `PENDING`
//! again so that the next notify retries; a caller that coalesced into the
//! failed wake in the meantime got `Ok` for a wake that was not written, and
//! its work waits for the next successful notify.

use std::io;

use crate::loom::{AtomicUsize, Ordering::AcqRel};

/// A wake was written to the fd, or is about to be, and not yet drained.
const PENDING: usize = 0b01;
/// The `Notifier` was dropped: `notify` fails with `BrokenPipe`.
const CLOSED: usize = 0b10;

/// The fd the protocol drives: write one wake, or consume all of them.
pub(crate) trait Signal {
    /// Makes the read side readable. A full buffer means it is readable
    /// already, which is success.
    fn write_wake(&self) -> io::Result<()>;

    /// Consumes every wake in the fd. (Whether there was one is not asked:
    /// only `PENDING` says whether a wake is due, see `drain`.)
    fn read_wakes(&self) -> io::Result<()>;
}

/// The state word shared by a `Notifier` and its `Waker`s.
#[derive(Debug)]
pub(crate) struct State {
    word: AtomicUsize,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            word: AtomicUsize::new(0),
        }
    }

    /// The sender's half: wake the loop unless a wake is already pending.
    pub(crate) fn notify(&self, fd: &impl Signal) -> io::Result<()> {
        // Release: everything this thread did before `notify` happens-before
        // the drain whose clear reads this value or a later one (the clear is
        // a read-modify-write, so it continues the release sequence even when
        // this call only found `PENDING` already set).
        // Acquire: a caller that sees `CLOSED` sees the whole close.
        // One read-modify-write and nothing else on the coalesced path.
        let prev = self.word.fetch_or(PENDING, AcqRel);
        if prev & CLOSED != 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the Notifier was dropped",
            ));
        }
        if prev & PENDING != 0 {
            // Coalesced: the caller that set PENDING writes (or wrote) the
            // wake, and the loop has not cleared it yet, so the drain that
            // clears it comes after this call in the word's modification
            // order and will see this caller's work.
            return Ok(());
        }
        // We moved PENDING from 0 to 1, so the wake is ours to write.
        fd.write_wake().map_err(|err| {
            // The wake did not reach the fd. Leaving PENDING set would
            // swallow every later notify, so clear it and let the next caller
            // try again. AcqRel for the same reasons as the drain's clear.
            self.word.fetch_and(!PENDING, AcqRel);
            err
        })
    }

    /// The loop's half: consume the fd (when `read` is true), then re-arm.
    /// Returns `true` if a wake was pending.
    pub(crate) fn drain(&self, fd: &impl Signal, read: bool) -> io::Result<bool> {
        // 1. Consume the fd first. See the module doc for why the clear must
        //    not come before this.
        let consumed = if read { fd.read_wakes() } else { Ok(()) };
        // 2. Re-arm, even if the read failed: a PENDING left set would
        //    coalesce every later notify into a wake that never comes.
        //    Acquire: this read-modify-write reads the last value in the
        //    word's modification order, which continues the release sequence
        //    of every notify that set PENDING (or found it set) since the
        //    previous clear, so their work is visible to the loop when it
        //    looks at its queues after this call. Release: orders the read
        //    above before the clear for the next sender's Acquire.
        let prev = self.word.fetch_and(!PENDING, AcqRel);
        consumed?;
        // Only PENDING says whether there was a wake. A byte found while it
        // was clear is a stray (see the module doc): its sender's work was
        // published to an earlier drain, so it is not reported again.
        Ok(prev & PENDING != 0)
    }

    /// Marks the loop's end as gone; later `notify` calls fail.
    pub(crate) fn close(&self) {
        // AcqRel: a notify that reads CLOSED synchronizes with the close.
        self.word.fetch_or(CLOSED, AcqRel);
    }
}

#[cfg(all(test, wakefd_loom))]
mod loom_tests;
