//! The capacity of a bounded Mailbox: how many messages count against it,
//! and the senders blocked until one leaves.
//!
//! # The word
//!
//! One atomic word holds the count (messages from their send until the
//! loop's code is handed them, those in the loop's own buffer included) and
//! two flags:
//!
//! * `WAITERS`: a sender is blocked, or about to block, on the condition
//!   variable. Set under the lock by a sender whose reservation found the
//!   mailbox full; cleared under the lock by the loop when it wakes them,
//!   and by the last blocked sender that leaves (a timed-out one, say), so
//!   that the loop never pays a wake-up with nobody blocked. The lock also
//!   guards the number of blocked senders.
//! * `CLOSED`: the Mailbox is gone; reservations fail.
//!
//! # Reserve, release, block
//!
//! A send reserves a place with a compare-and-swap that adds one to a count
//! below the capacity, so the count never passes it: never more than `cap`
//! messages are queued at once. A send whose queue push then fails (the
//! Mailbox is gone) gives the place back.
//!
//! The loop releases a place with one `fetch_sub` per message it hands
//! out. Only if the value that read-modify-write replaced had `WAITERS` set
//! does it take the lock and wake the blocked senders: a mailbox with no
//! blocked sender costs the loop no lock and no system call.
//!
//! A sender that found it full takes the lock and sets `WAITERS` with a
//! compare-and-swap that also checks the count is still at the capacity.
//! Both are read-modify-writes of the one word, so they are in one
//! modification order and each reads the latest value: either the loop's
//! release comes first (the sender's CAS sees the lower count and it does
//! not block), or the sender's CAS does (the release sees `WAITERS`, and its
//! wake-up, taken under the lock the sender holds until it waits, comes
//! after the sender waits). With `WAITERS` in a word of its own, read by the
//! loop with a plain load, both sides could miss each other (the loom model
//! `broken_separate_waiters_flag_loses_a_sender` shows it), as with the
//! notifier's sleep flag (`state.rs`).

use std::time::Instant;

use crate::loom::{
    AtomicUsize, Condvar, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed},
};

/// A sender is blocked, or about to block.
const WAITERS: usize = 1 << (usize::BITS - 1);
/// The Mailbox is gone.
const CLOSED: usize = 1 << (usize::BITS - 2);
/// The count's bits.
const COUNT: usize = CLOSED - 1;

/// The largest capacity a bounded Mailbox may have.
pub(crate) const MAX: usize = COUNT;

/// Why a reservation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `cap` messages count against the capacity.
    Full,
    /// The Mailbox is gone.
    Closed,
}

pub(crate) struct Capacity {
    cap: usize,
    word: AtomicUsize,
    /// The senders blocked on `cond`.
    lock: Mutex<usize>,
    cond: Condvar,
}

impl Capacity {
    /// `cap` is at least 1 and at most [`MAX`].
    pub(crate) fn new(cap: usize) -> Capacity {
        debug_assert!((1..=MAX).contains(&cap));
        Capacity {
            cap,
            word: AtomicUsize::new(0),
            lock: Mutex::new(0),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Messages that count against the capacity now (a hint: sends and
    /// hand-outs may land meanwhile).
    pub(crate) fn len(&self) -> usize {
        self.word.load(Relaxed) & COUNT
    }

    /// Takes a place for one message.
    pub(crate) fn try_reserve(&self) -> Result<(), Refused> {
        let mut cur = self.word.load(Relaxed);
        loop {
            if cur & CLOSED != 0 {
                return Err(Refused::Closed);
            }
            if cur & COUNT >= self.cap {
                return Err(Refused::Full);
            }
            // Relaxed: the count guards no data (the queue publishes the
            // messages); this RMW's place in the word's order is all that
            // matters.
            match self
                .word
                .compare_exchange_weak(cur, cur + 1, Relaxed, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives back the place of a message that was not queued after all.
    pub(crate) fn unreserve(&self) {
        self.release();
    }

    /// The loop handed a message out: its place is free. Wakes the blocked
    /// senders, if any (module doc).
    pub(crate) fn release(&self) {
        let prev = self.word.fetch_sub(1, AcqRel);
        if prev & WAITERS != 0 {
            self.wake_all();
        }
    }

    #[cold]
    fn wake_all(&self) {
        let blocked = self.lock();
        self.word.fetch_and(!WAITERS, Relaxed);
        if *blocked != 0 {
            self.cond.notify_all();
        }
    }

    /// The Mailbox is gone: reservations fail, and blocked senders wake.
    pub(crate) fn close(&self) {
        self.word.fetch_or(CLOSED, AcqRel);
        let _blocked = self.lock();
        self.cond.notify_all();
    }

    /// Blocks until a place may be free, the Mailbox is gone, or `deadline`
    /// passes (`None`: no deadline). The caller reserves again afterwards;
    /// `false` if the deadline passed. May return early (a spurious wake-up,
    /// or another sender took the place): the caller loops.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // Timed out: no `WAITERS` for a sender that will not block.
            return false;
        }
        let mut guard = self.lock();
        let mut cur = self.word.load(Relaxed);
        loop {
            if cur & CLOSED != 0 || cur & COUNT < self.cap {
                return true;
            }
            if cur & WAITERS != 0 {
                break;
            }
            // A read-modify-write that also checks the count (module doc).
            // Acquire: pairs with the loop's release.
            match self
                .word
                .compare_exchange_weak(cur, cur | WAITERS, Acquire, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        *guard += 1;
        let (mut guard, woken) = self.block(guard, deadline);
        *guard -= 1;
        if *guard == 0 {
            // The last blocked sender leaves: nobody is left for the loop to
            // wake (a sender that blocks later sets the bit again, under
            // this lock).
            self.word.fetch_and(!WAITERS, Relaxed);
        }
        woken
    }

    /// Waits on `cond` until notified (or a spurious wake-up) or the
    /// deadline; `false` if the deadline had passed.
    #[cfg(not(wakefd_loom))]
    fn block<'a>(
        &self,
        guard: std::sync::MutexGuard<'a, usize>,
        deadline: Option<Instant>,
    ) -> (std::sync::MutexGuard<'a, usize>, bool) {
        match deadline {
            None => (
                self.cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
                true,
            ),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (guard, false);
                }
                let (guard, _) = self
                    .cond
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner());
                (guard, true)
            }
        }
    }

    /// Loom has no timed wait: the models block without a deadline.
    #[cfg(wakefd_loom)]
    fn block<'a>(
        &self,
        guard: loom::sync::MutexGuard<'a, usize>,
        _deadline: Option<Instant>,
    ) -> (loom::sync::MutexGuard<'a, usize>, bool) {
        (self.cond.wait(guard).unwrap(), true)
    }

    #[cfg(not(wakefd_loom))]
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        // No code panics while holding it; a poisoned lock changes nothing.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(wakefd_loom)]
    fn lock(&self) -> loom::sync::MutexGuard<'_, usize> {
        self.lock.lock().unwrap()
    }
}

impl std::fmt::Debug for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capacity")
            .field("cap", &self.cap)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(all(test, wakefd_loom))]
#[path = "capacity_loom_tests.rs"]
mod capacity_loom_tests;

#[cfg(all(test, not(wakefd_loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Capacity, Refused, WAITERS};

    /// A sender that times out leaves no `WAITERS` behind: the loop's next
    /// release then takes no lock and makes no wake-up for nobody.
    #[test]
    fn a_timed_out_sender_leaves_no_waiters_bit() {
        let capacity = Capacity::new(1);
        capacity.try_reserve().unwrap();
        assert_eq!(capacity.try_reserve(), Err(Refused::Full));
        // Already past its deadline: does not even set the bit.
        assert!(!capacity.wait(Some(Instant::now())));
        assert_eq!(capacity.word.load(super::Relaxed) & WAITERS, 0);
        // Blocks, times out, and clears the bit it set on the way out.
        let deadline = Instant::now() + Duration::from_millis(5);
        while capacity.wait(Some(deadline)) {
            assert_eq!(capacity.try_reserve(), Err(Refused::Full));
        }
        assert_eq!(capacity.word.load(super::Relaxed) & WAITERS, 0);
        capacity.release();
        assert_eq!(capacity.len(), 0);
    }
}
