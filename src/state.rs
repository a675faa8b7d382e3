//! The coalescing protocol: one atomic state word shared by a `Notifier` and
//! its `Waker`s, and the order in which it and the fd are touched.
//!
//! This file knows nothing about backends. It drives any [`Signal`] (the write
//! and read ends of an eventfd, pipe or socket pair, or the loom model's fake),
//! and it is the one place whose orderings the loom model checks
//! (`RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`).
//!
//! # The word
//!
//! * `PENDING`: a wake is due (notified, not yet drained).
//! * `CLOSED`: the `Notifier` is gone; `notify` fails with `BrokenPipe`.
//! * `AWAKE`: the loop announced that it is awake and will look at `PENDING`
//!   before it next blocks, so a wake needs no write. Clear unless the loop
//!   uses the sleep-aware calls: a loop that announces nothing gets a write
//!   for every wake, exactly as without them.
//! * `FAILED`: the write of the wake that `PENDING` stands for failed, so
//!   `PENDING` must not coalesce the next `notify` into it.
//!
//! Only senders set `PENDING` and `FAILED`, only the loop clears them; only
//! the loop changes `AWAKE`. Every change is a read-modify-write of this one
//! word, so all of them are in one modification order and each one reads the
//! latest value: that is what the arguments below rest on.
//!
//! # notify
//!
//! The sender has published its work (a queue push, a store, ...) before it
//! calls `notify`. It sets `PENDING` with one read-modify-write, and the value
//! it read decides the rest:
//!
//! * `PENDING` was set (and not `FAILED`): coalesced. Another caller wrote, or
//!   will write, the wake, or the loop is awake and will see it; the drain that
//!   clears `PENDING` comes after this call in the word's order and sees its
//!   work. One read-modify-write is the whole cost.
//! * `AWAKE` was set: absorbed. The loop's next announcement of sleep reads
//!   `PENDING` (both are read-modify-writes of this word: one of the two comes
//!   first and sees the other) and then does not block. No system call.
//! * otherwise the loop may be blocked: this caller moved `PENDING` from 0 to
//!   1 (or found it `FAILED`), so it writes the wake. That is the coalescing:
//!   between two drains at most one wake is written (one more per failed
//!   write).
//!
//! A failed write sets `FAILED` and leaves `PENDING` alone. Clearing
//! `PENDING` instead would let a late clear wipe a `PENDING` that another
//! sender set after the loop's drain (its wake then reported as none); with
//! `FAILED` the next `notify` writes again, so no later notify is swallowed.
//! Only the drain clears `FAILED` (a sender's clear after its successful
//! retry could wipe another sender's later `FAILED`).
//! A caller that coalesced into the failed wake before `FAILED` was set got
//! `Ok`; its work is seen after the next wake or drain.
//!
//! # drain
//!
//! The loop first consumes the fd (reads until it is empty, or not at all
//! where the backend is watched edge-triggered and needs no read, or where no
//! wake can have been written since the last read), *then* clears `PENDING`
//! (and `FAILED`), and only then looks at the work.
//!
//! Clearing first would let a notify land between the clear and the read: it
//! sets `PENDING` and writes, the read swallows its byte, and the fd is empty
//! while `PENDING` stays set, so every later notify is coalesced into a wake
//! that will never come. The loom model `clear_before_read_loses_wakes` shows
//! that failure.
//!
//! Reading first leaves one harmless race: a sender that set `PENDING` before
//! the clear may write its byte after the read. The fd is then readable with
//! `PENDING` clear; the loop gets one spurious readiness event, and the next
//! drain removes it and reports no wake, since the clear that came before
//! already published that sender's work.
//!
//! # Sleep announcements
//!
//! Before it blocks, a sleep-aware loop clears `AWAKE` ([`State::announce_sleep`]);
//! if that read-modify-write finds `PENDING` set, the loop must not block
//! (a zero timeout). After the blocking call returns it sets `AWAKE` again
//! ([`State::announce_awake`]). A `notify` whose read-modify-write comes
//! before the announcement of sleep is seen by it; one that comes after it
//! finds `AWAKE` clear and writes. No store-load fence is needed because the
//! flag is a bit of the word the senders modify anyway (ZeroMQ's ypipe does
//! the same with its reader-asleep pointer); with a separate flag written
//! with a plain store, the loop's store and the senders' loads could pass
//! each other and both sides miss the other (the loom model
//! `separate_sleep_flag_loses_wakes` shows it).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::loom::{
    AtomicUsize,
    Ordering::{AcqRel, Acquire},
};

/// A wake is due: notified, not yet drained.
const PENDING: usize = 0b0001;
/// The `Notifier` was dropped: `notify` fails with `BrokenPipe`.
const CLOSED: usize = 0b0010;
/// The loop is awake and looks at `PENDING` before it next blocks.
const AWAKE: usize = 0b0100;
/// The write of the pending wake failed: the next `notify` writes again.
const FAILED: usize = 0b1000;

/// The fd the protocol drives: write one wake, or consume all of them.
pub(crate) trait Signal {
    /// Makes the read side readable. A full buffer means it is readable
    /// already, which is success.
    fn write_wake(&self) -> io::Result<()>;

    /// Consumes every wake in the fd. (Whether there was one is not asked:
    /// only `PENDING` says whether a wake is due, see `drain`.)
    fn read_wakes(&self) -> io::Result<()>;
}

/// What a successful `notify` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notified {
    /// A wake was already pending: nothing more to do.
    Coalesced,
    /// The loop is awake and will see the wake before it blocks.
    Absorbed,
    /// This call wrote the wake to the fd.
    Written,
}

/// Counts kept on the slow paths only (a write, a drain, an announcement):
/// never on the coalesced `notify`. Plain `std` atomics even under loom: they
/// are statistics, not part of the protocol.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) wakes_written: AtomicU64,
    pub(crate) wakes_absorbed: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) drains_woken: AtomicU64,
    pub(crate) drains_spurious: AtomicU64,
    pub(crate) sleeps: AtomicU64,
}

/// Adds one to a statistics counter.
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// The state word shared by a `Notifier` and its `Waker`s.
#[derive(Debug)]
pub(crate) struct State {
    word: AtomicUsize,
    pub(crate) counters: Counters,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            word: AtomicUsize::new(0),
            counters: Counters::default(),
        }
    }

    /// The sender's half: wake the loop unless a wake is already pending or
    /// the loop is awake.
    ///
    /// Async-signal-safe: atomics, one `write` and no allocation on every
    /// path (the `BrokenPipe` error is a bare kind).
    pub(crate) fn notify(&self, fd: &impl Signal) -> io::Result<Notified> {
        // Release: everything this thread did before `notify` happens-before
        // the drain whose clear reads this value or a later one (the clear is
        // a read-modify-write, so it continues the release sequence even when
        // this call only found `PENDING` already set).
        // Acquire: a caller that sees `CLOSED` sees the whole close.
        // One read-modify-write and nothing else on the coalesced path.
        let prev = self.word.fetch_or(PENDING, AcqRel);
        if prev & CLOSED != 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if prev & (PENDING | FAILED) == PENDING {
            // Coalesced: see the module doc.
            return Ok(Notified::Coalesced);
        }
        if prev & AWAKE != 0 {
            // Absorbed: the loop's next announcement of sleep is later in
            // the word's order than our fetch_or, reads PENDING and does not
            // block. At most once per loop iteration (only the 0 -> 1 caller
            // gets here), so it may be counted.
            bump(&self.counters.wakes_absorbed);
            return Ok(Notified::Absorbed);
        }
        // The loop may be blocked and the wake is ours to write.
        match fd.write_wake() {
            Ok(()) => {
                // FAILED stays set until the loop's drain clears it: until
                // then every notify writes (failures are rare, and a write
                // too many is harmless). Clearing it here could wipe a
                // FAILED that another sender set after a drain in between,
                // and that sender's retry would then coalesce into a wake
                // that was never written (the loom model
                // `a_failed_write_racing_a_drain_swallows_no_later_notify`).
                bump(&self.counters.wakes_written);
                Ok(Notified::Written)
            }
            Err(err) => {
                bump(&self.counters.write_errors);
                // Keep PENDING (only the loop clears it), but make the next
                // notify write instead of coalescing into a wake that never
                // reached the fd.
                self.word.fetch_or(FAILED, AcqRel);
                Err(err)
            }
        }
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
        let prev = self.word.fetch_and(!(PENDING | FAILED), AcqRel);
        let woken = prev & PENDING != 0;
        bump(if woken {
            &self.counters.drains_woken
        } else {
            &self.counters.drains_spurious
        });
        consumed?;
        // Only PENDING says whether there was a wake. A byte found while it
        // was clear is a stray (see the module doc): its sender's work was
        // published to an earlier drain, so it is not reported again.
        Ok(woken)
    }

    /// The loop is about to block: later wakes must be written. Returns
    /// `false` if a wake is pending already, and then the loop must not block
    /// (it polls with a zero timeout, or does not poll).
    pub(crate) fn announce_sleep(&self) -> bool {
        // A read-modify-write of the senders' word: whichever of this and a
        // sender's fetch_or comes second sees the other (module doc).
        // Acquire: a pending wake seen here comes with its sender's work.
        let prev = self.word.fetch_and(!AWAKE, AcqRel);
        let block = prev & PENDING == 0;
        if block {
            bump(&self.counters.sleeps);
        }
        block
    }

    /// The loop is awake again: wakes from now on need no write, and the
    /// loop looks at `PENDING` before it next blocks.
    pub(crate) fn announce_awake(&self) {
        self.word.fetch_or(AWAKE, AcqRel);
    }

    /// The loop leaves the awake state without announcing sleep (it may
    /// block the plain way next). Returns whether a wake is pending, which
    /// may have been absorbed with nothing written.
    pub(crate) fn leave_awake(&self) -> bool {
        // As `announce_sleep`: whichever of this and a sender's fetch_or
        // comes second sees the other.
        self.word.fetch_and(!AWAKE, AcqRel) & PENDING != 0
    }

    /// Writes the wake that a pending, possibly absorbed, notify stands for,
    /// so that a plain watcher of the fd sees it (an extra byte, if it was
    /// written already, is a stray: one spurious event). A failed write sets
    /// `FAILED`, as in `notify`.
    pub(crate) fn write_absorbed(&self, fd: &impl Signal) -> io::Result<()> {
        match fd.write_wake() {
            Ok(()) => {
                bump(&self.counters.wakes_written);
                Ok(())
            }
            Err(err) => {
                bump(&self.counters.write_errors);
                self.word.fetch_or(FAILED, AcqRel);
                Err(err)
            }
        }
    }

    /// Whether a wake is due, for a loop that spins. Acquire, so that a loop
    /// that sees it and then drains sees the sender's work (the drain's own
    /// read-modify-write would give that too).
    pub(crate) fn is_pending(&self) -> bool {
        self.word.load(Acquire) & PENDING != 0
    }

    /// Marks the loop's end as gone; later `notify` calls fail.
    pub(crate) fn close(&self) {
        // AcqRel: a notify that reads CLOSED synchronizes with the close.
        self.word.fetch_or(CLOSED, AcqRel);
    }
}

#[cfg(all(test, wakefd_loom))]
mod loom_tests;
