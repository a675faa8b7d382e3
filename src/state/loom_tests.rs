//! Loom model checks of the coalescing protocol.
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.
//!
//! The fd is the harness's [`FakeFd`] (`loom/harness.rs`), an eventfd made
//! of loom atomics that can also fail a write.

use std::io;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

use super::{Signal, State, PENDING};
use crate::loom::harness::{check, FakeFd};

/// What the loop shares with its senders: the state word, the fd, and one
/// slot of "work" per sender, published with `Relaxed` before `notify`.
#[derive(Default)]
struct Shared {
    state: StateCell,
    fd: FakeFd,
    work: [AtomicUsize; 2],
    /// Only for the broken separate-flag model.
    asleep: AtomicBool,
}

struct StateCell(State);

impl Default for StateCell {
    fn default() -> StateCell {
        StateCell(State::new())
    }
}

type DrainFn = fn(&State, &FakeFd) -> bool;

/// The real drain, reading the fd.
fn drain(state: &State, fd: &FakeFd) -> bool {
    state.drain(fd, true).unwrap()
}

/// The real drain in the edge-triggered no-read mode (eventfd under mio).
fn drain_no_read(state: &State, fd: &FakeFd) -> bool {
    state.drain(fd, false).unwrap()
}

/// The wrong order on purpose: clear `PENDING`, then read the fd.
fn drain_clear_first(state: &State, fd: &FakeFd) -> bool {
    let prev = state.word.fetch_and(!PENDING, AcqRel);
    fd.read_wakes().unwrap();
    prev & PENDING != 0
}

/// Two senders publish work and notify; the loop drains `drains` times while
/// they run. When everything is done, either a wake is still in the fd (the
/// loop will get a readiness event and drain again) or the loop's drains
/// already showed it every sender's work: no wake was lost. And between two
/// drains at most one wake was written.
fn two_senders_one_drainer(name: &str, drain: DrainFn, drains: usize, edge_triggered: bool) {
    check(name, move || {
        let shared = Arc::new(Shared::default());
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    shared.work[i].store(1, Relaxed);
                    shared.state.0.notify(&shared.fd).unwrap();
                })
            })
            .collect();

        let mut seen = [false; 2];
        let mut drains_with_wake = 0u64;
        for _ in 0..drains {
            if drain(&shared.state.0, &shared.fd) {
                drains_with_wake += 1;
            }
            for (i, work) in shared.work.iter().enumerate() {
                seen[i] |= work.load(Relaxed) == 1;
            }
        }
        for sender in senders {
            sender.join().unwrap();
        }

        let writes = shared.fd.writes();
        // A readiness event is still due if a write came after the last
        // consume (edge-triggered: if any write came after the last drain).
        let wake_due = if edge_triggered {
            shared.fd.readable() && writes > drains_with_wake
        } else {
            shared.fd.readable()
        };
        assert!(
            wake_due || seen == [true, true],
            "lost wake: nothing left in the fd, but the loop saw only {seen:?}"
        );
        // Coalescing: every write moved PENDING from 0 to 1, and only a drain
        // that found a wake puts it back to 0.
        assert!(
            writes <= 1 + drains_with_wake,
            "{writes} writes for {drains_with_wake} drains that found a wake"
        );
        // The loop's next drain (after its readiness event) sees everything
        // and leaves the word clear.
        if wake_due {
            drain(&shared.state.0, &shared.fd);
        }
        assert_eq!(shared.state.0.word.load(Relaxed) & PENDING, 0);
    });
}

#[test]
fn no_lost_wake_with_one_racing_drain() {
    two_senders_one_drainer("no_lost_wake_with_one_racing_drain", drain, 1, false);
}

#[test]
fn no_lost_wake_with_two_racing_drains() {
    two_senders_one_drainer("no_lost_wake_with_two_racing_drains", drain, 2, false);
}

#[test]
fn no_lost_wake_without_reads_edge_triggered() {
    two_senders_one_drainer(
        "no_lost_wake_without_reads_edge_triggered",
        drain_no_read,
        2,
        true,
    );
}

/// The check above is not vacuous: with the clear before the read, loom
/// finds the interleaving where a wake's byte is swallowed while `PENDING`
/// stays set, and the other sender's notify is coalesced into nothing.
#[test]
#[should_panic(expected = "lost wake")]
fn clear_before_read_loses_wakes() {
    two_senders_one_drainer("clear_before_read_loses_wakes", drain_clear_first, 2, false);
}

/// The loop drops its end (close, then drop its reference) while a sender
/// notifies. The notify either succeeds, and then its write reached an fd
/// that was still open, or fails with `BrokenPipe`; a notify made after the
/// close is known fails without writing; the fd is closed exactly once,
/// after the last user (loom's `Arc` reports a leak or a double free).
#[test]
fn a_notify_racing_the_close_writes_to_an_open_fd_or_fails() {
    check(
        "a_notify_racing_the_close_writes_to_an_open_fd_or_fails",
        || {
            let closed = Arc::new(AtomicBool::new(false));
            let shared = Arc::new(Shared {
                fd: FakeFd::reporting_drop_to(Arc::clone(&closed)),
                ..Shared::default()
            });
            let sender = {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let first = shared.state.0.notify(&shared.fd);
                    let second = shared.state.0.notify(&shared.fd);
                    (first.map_err(|e| e.kind()), second.map_err(|e| e.kind()))
                })
            };

            shared.state.0.close();
            // A notify that comes after the close fails and writes nothing.
            let err = shared.state.0.notify(&shared.fd).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert!(shared.fd.writes() <= 1);
            drop(shared);

            let (first, second) = sender.join().unwrap();
            for result in [first, second] {
                assert!(matches!(result, Ok(_) | Err(io::ErrorKind::BrokenPipe)));
            }
            // Once a notify has seen the close, the next one sees it too.
            if first.is_err() {
                assert_eq!(second, Err(io::ErrorKind::BrokenPipe));
            }
            assert!(closed.load(Relaxed), "the fd outlived its last user");
        },
    );
}

/// A failed write: the first write attempt fails. Sender 0 and 1 publish work
/// and notify; a sender whose notify failed publishes more work and
/// notifies again. The loop looks at the work only when `drain` says it was
/// woken (as a real loop does). Every notify that returned `Ok` must be seen:
/// the failure neither swallows a later notify (a `PENDING` left set would)
/// nor wipes another sender's `PENDING` (a late clear would, and that
/// sender's wake would then be reported as `false`).
#[test]
fn failed_write_swallows_no_later_wake() {
    check("failed_write_swallows_no_later_wake", || {
        let shared = Arc::new(Shared::default());
        shared.fd.fail_next(1);
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    shared.work[i].store(1, Relaxed);
                    if shared.state.0.notify(&shared.fd).is_ok() {
                        return 1;
                    }
                    // Failed: the next notify must write, not coalesce.
                    shared.work[i].store(2, Relaxed);
                    shared.state.0.notify(&shared.fd).unwrap();
                    2
                })
            })
            .collect();

        let mut seen = [0; 2];
        let look = |seen: &mut [usize; 2]| {
            for (i, work) in shared.work.iter().enumerate() {
                seen[i] = seen[i].max(work.load(Relaxed));
            }
        };
        for _ in 0..2 {
            if drain(&shared.state.0, &shared.fd) {
                look(&mut seen);
            }
        }
        let expected: Vec<usize> = senders.into_iter().map(|s| s.join().unwrap()).collect();
        // The loop's readiness events that are still due.
        while shared.fd.readable() {
            if drain(&shared.state.0, &shared.fd) {
                look(&mut seen);
            }
        }
        assert!(
            seen[0] >= expected[0] && seen[1] >= expected[1],
            "lost wake: the loop saw {seen:?} of {expected:?}"
        );
    });
}

/// How a loop decides whether it may block; the real one announces sleep.
type Announce = fn(&Shared) -> bool;

fn announce(shared: &Shared) -> bool {
    shared.state.0.announce_sleep()
}

/// A sleep-aware loop with 2 senders: it starts awake; each iteration it
/// (optionally spins, then) announces sleep, blocks on the fake fd unless a
/// wake is pending, announces it is awake, drains and looks at the work.
/// A loop blocked with nothing left in the fd must have seen all the work.
/// While it is awake a notify writes nothing.
fn sleep_aware(name: &str, announce: Announce, notify: NotifyFn, spins: usize) {
    check(name, move || {
        let shared = Arc::new(Shared::default());
        shared.state.0.announce_awake();
        let done = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let (shared, done) = (Arc::clone(&shared), Arc::clone(&done));
                thread::spawn(move || {
                    shared.work[i].store(1, Relaxed);
                    notify(&shared);
                    done.fetch_add(1, Release);
                })
            })
            .collect();

        let mut seen = [false; 2];
        let mut blocked_forever = false;
        for _ in 0..6 {
            let spun = (0..spins).any(|_| {
                let pending = shared.state.0.is_pending();
                thread::yield_now();
                pending
            });
            if !spun && announce(&shared) {
                // Block until the fd is readable.
                loop {
                    if shared.fd.readable() {
                        break;
                    }
                    if done.load(Acquire) == 2 && !shared.fd.readable() {
                        blocked_forever = true;
                        break;
                    }
                    thread::yield_now();
                }
                if blocked_forever {
                    break;
                }
            }
            shared.state.0.announce_awake();
            if drain(&shared.state.0, &shared.fd) {
                for (i, work) in shared.work.iter().enumerate() {
                    seen[i] |= work.load(Relaxed) == 1;
                }
            }
            if seen == [true, true] {
                break;
            }
        }
        for sender in senders {
            sender.join().unwrap();
        }
        assert!(
            seen == [true, true],
            "lost wake: the loop {} having seen only {seen:?}",
            if blocked_forever {
                "sleeps forever"
            } else {
                "gave up"
            }
        );
    });
}

type NotifyFn = fn(&Shared);

fn notify(shared: &Shared) {
    shared.state.0.notify(&shared.fd).unwrap();
}

#[test]
fn sleep_aware_loop_loses_no_wake() {
    sleep_aware("sleep_aware_loop_loses_no_wake", announce, notify, 0);
}

#[test]
fn spinning_loop_loses_no_wake() {
    sleep_aware("spinning_loop_loses_no_wake", announce, notify, 1);
}

/// While the loop is awake (and has not announced sleep since), a notify
/// writes nothing.
#[test]
fn notify_to_an_awake_loop_writes_nothing() {
    check("notify_to_an_awake_loop_writes_nothing", || {
        let shared = Arc::new(Shared::default());
        shared.state.0.announce_awake();
        let sender = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || notify(&shared))
        };
        sender.join().unwrap();
        assert_eq!(shared.fd.writes(), 0);
        assert!(
            !shared.state.0.announce_sleep(),
            "the pending wake must stop the sleep"
        );
        assert!(drain(&shared.state.0, &shared.fd));
    });
}

/// Broken on purpose: the loop looks at `PENDING` *before* it announces
/// sleep. A notify in between finds the loop still awake, writes nothing,
/// and the loop blocks on an empty fd.
#[test]
#[should_panic(expected = "lost wake")]
fn checking_before_the_announcement_loses_wakes() {
    fn announce_late(shared: &Shared) -> bool {
        let pending = shared.state.0.is_pending();
        shared.state.0.announce_sleep();
        !pending
    }
    sleep_aware(
        "checking_before_the_announcement_loses_wakes",
        announce_late,
        notify,
        0,
    );
}

/// Broken on purpose: the sleep is announced with a plain store to a flag of
/// its own, and senders read that flag after setting `PENDING`, with no
/// fence: the loop's store and the senders' loads pass each other (store
/// buffering), both sides miss the other, and the loop sleeps forever.
#[test]
#[should_panic(expected = "lost wake")]
fn separate_sleep_flag_loses_wakes() {
    fn announce_flag(shared: &Shared) -> bool {
        shared.asleep.store(true, Release);
        let block = !shared.state.0.is_pending();
        if !block {
            shared.asleep.store(false, Relaxed);
        }
        block
    }
    fn notify_flag(shared: &Shared) {
        let prev = shared.state.0.word.fetch_or(PENDING, AcqRel);
        if prev & PENDING == 0 && shared.asleep.load(Acquire) {
            shared.fd.write_wake().unwrap();
        }
    }
    sleep_aware(
        "separate_sleep_flag_loses_wakes",
        announce_flag,
        notify_flag,
        0,
    );
}

// ---------------------------------------------------------------------------
// Failed writes racing a drain.
// ---------------------------------------------------------------------------

/// Only the drain clears `FAILED`, never a sender after its successful
/// retry write: if the loop drains between that write and such a clear,
/// and another sender's write then fails (setting `FAILED` anew), a late
/// clear would wipe the new `FAILED`, leaving `PENDING` set with nothing in
/// the fd, and the next `notify` would coalesce into a wake that never
/// comes. This model drives that interleaving against the real protocol:
///
/// main (sender A): notify -> write #0 fails, sets FAILED -> Err;
///                  notify -> sees PENDING|FAILED -> write #1 ok ... (preempted)
/// loop thread:     drain: reads the byte, clears PENDING|FAILED
/// sender B:        work; notify -> write #2 fails, sets FAILED -> Err ... (preempted)
/// sender B:        notify again -> must write, and its work must be seen.
#[test]
fn a_failed_write_racing_a_drain_swallows_no_later_notify() {
    check(
        "a_failed_write_racing_a_drain_swallows_no_later_notify",
        || {
            struct S {
                state: State,
                fd: FakeFd,
                work: [AtomicUsize; 2],
                seen: [AtomicUsize; 2],
            }
            let s = Arc::new(S {
                state: State::new(),
                fd: FakeFd::new(),
                work: Default::default(),
                seen: Default::default(),
            });
            // Write attempts 0 and 2 fail, every other one succeeds.
            s.fd.fail_plan(0b101);
            let look = |s: &S| {
                for i in 0..2 {
                    if s.work[i].load(Relaxed) == 1 {
                        s.seen[i].store(1, Relaxed);
                    }
                }
            };
            let lp = {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    s.state.drain(&s.fd, true).unwrap();
                    look(&s);
                })
            };
            let b = {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    s.work[1].store(1, Relaxed);
                    for _ in 0..3 {
                        if s.state.notify(&s.fd).is_ok() {
                            return;
                        }
                    }
                    panic!("three failed notifies");
                })
            };
            // Sender A, on the main thread.
            s.work[0].store(1, Relaxed);
            for _ in 0..3 {
                if s.state.notify(&s.fd).is_ok() {
                    break;
                }
            }
            b.join().unwrap();
            lp.join().unwrap();
            // The loop's readiness events still due.
            while s.fd.readable() {
                s.state.drain(&s.fd, true).unwrap();
                look(&s);
            }
            let seen = [s.seen[0].load(Relaxed), s.seen[1].load(Relaxed)];
            assert!(
                seen == [1, 1],
                "lost wake: every notify returned Ok in the end, the fd is empty, \
             and the loop saw only {seen:?}"
            );
        },
    );
}
