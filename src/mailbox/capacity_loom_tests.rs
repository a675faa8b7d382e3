//! Loom models of a bounded Mailbox's capacity (`capacity.rs`): the count
//! never passes the capacity, and a sender blocked on a full mailbox is
//! woken by the loop's release or by the close. Each `broken_*` model runs
//! the same scenario with one rule of the design removed and must fail.
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::{Capacity, Refused};
use crate::loom::harness::check;

/// Sends one message into a full mailbox of capacity 1: blocks until there
/// is room, as `Sender::send` does.
fn blocking_reserve(capacity: &Capacity) -> Result<(), Refused> {
    loop {
        match capacity.try_reserve() {
            Err(Refused::Full) => {
                capacity.wait(None);
            }
            other => return other,
        }
    }
}

#[test]
fn racing_reservations_never_pass_the_capacity() {
    check("racing_reservations_never_pass_the_capacity", || {
        let capacity = Arc::new(Capacity::new(1));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let capacity = Arc::clone(&capacity);
                thread::spawn(move || capacity.try_reserve().is_ok())
            })
            .collect();
        let won = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(won, 1);
        assert_eq!(capacity.len(), 1);
    });
}

/// The capacity check and the increment as two steps: both racing senders
/// see room, and the count passes the capacity.
#[test]
#[should_panic]
fn broken_check_then_add_passes_the_capacity() {
    check("broken_check_then_add_passes_the_capacity", || {
        let cap = 1;
        let count = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let count = Arc::clone(&count);
                thread::spawn(move || {
                    if count.load(Acquire) < cap {
                        count.fetch_add(1, AcqRel);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(count.load(Acquire) <= cap, "{} queued", count.load(Acquire));
    });
}

#[test]
fn a_blocked_sender_is_woken_by_the_release() {
    check("a_blocked_sender_is_woken_by_the_release", || {
        let capacity = Arc::new(Capacity::new(1));
        capacity.try_reserve().unwrap(); // full
        let sender = {
            let capacity = Arc::clone(&capacity);
            thread::spawn(move || blocking_reserve(&capacity))
        };
        // The loop hands the message out. A lost wake-up leaves the sender
        // blocked for ever: loom reports the deadlock.
        capacity.release();
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(capacity.len(), 1);
    });
}

#[test]
fn a_blocked_sender_is_woken_by_the_close() {
    check("a_blocked_sender_is_woken_by_the_close", || {
        let capacity = Arc::new(Capacity::new(1));
        capacity.try_reserve().unwrap();
        let sender = {
            let capacity = Arc::clone(&capacity);
            thread::spawn(move || blocking_reserve(&capacity))
        };
        capacity.close();
        assert_eq!(sender.join().unwrap(), Err(Refused::Closed));
    });
}

/// The waiters flag in a word of its own, read by the loop with a plain
/// load after its release: the sender's check of the count and the loop's
/// check of the flag can both read the old values, and the sender sleeps
/// with room in the mailbox and no wake-up coming. (Written as the two
/// decisions rather than a real wait: a real one deadlocks, which loom
/// reports by aborting, which `should_panic` cannot catch.)
#[test]
#[should_panic(expected = "lost")]
fn broken_separate_waiters_flag_loses_a_sender() {
    check("broken_separate_waiters_flag_loses_a_sender", || {
        let count = Arc::new(AtomicUsize::new(1)); // full, capacity 1
        let waiters = Arc::new(AtomicBool::new(false));
        let lock = Arc::new(Mutex::new(()));
        let sender = {
            let (count, waiters, lock) = (count.clone(), waiters.clone(), lock.clone());
            thread::spawn(move || {
                let _guard = lock.lock().unwrap();
                waiters.store(true, Release);
                // `true`: it would wait on the condvar.
                count.load(Acquire) >= 1
            })
        };
        count.fetch_sub(1, AcqRel);
        // `true`: the loop would take the lock and notify.
        let notifies = waiters.load(Acquire);
        let sleeps = sender.join().unwrap();
        assert!(
            !sleeps || notifies,
            "lost: the sender sleeps, no wake-up comes"
        );
    });
}
