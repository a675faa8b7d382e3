//! Loom models of the Mailbox's wake decisions: the real `send_with`,
//! `try_recv_with`, `refill_with` and `leftovers_with`, driving the real
//! protocol (`state.rs`) over a fake eventfd watched edge-triggered with no
//! read (the mio + eventfd case, where a readiness event is a fresh write).
//!
//! The assertion: when the senders are done and the loop has stopped (no
//! event is coming, or it used up its steps), every message left in the
//! mailbox has an event coming (a write after the last event the loop
//! consumed). Each `broken_*` model runs the same scenario with one rule of
//! the design removed and must fail.
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.

use loom::sync::atomic::{AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

use super::lanes::Lane;
use super::wake::{
    disconnect_with, leftovers_with, refill_with, send_with, try_recv_with, Bell, Local, Shared,
};
use super::{SendError, TryRecvError};
use crate::loom::harness::{check, FakeFd};
use crate::state::State;

/// The notifier as the Mailbox's loop side sees it: the real protocol over
/// the harness's fake eventfd.
struct FakeBell {
    state: State,
    fd: FakeFd,
}

impl FakeBell {
    fn new() -> FakeBell {
        FakeBell {
            state: State::new(),
            fd: FakeFd::new(),
        }
    }
}

impl Bell for FakeBell {
    fn rearm(&self, force_read: bool) {
        // Edge-triggered, no read unless forced (eventfd under mio).
        self.state.drain(&self.fd, force_read).unwrap();
    }

    fn ring(&self) -> bool {
        self.state.notify(&self.fd).is_ok()
    }

    fn is_pending(&self) -> bool {
        self.state.is_pending()
    }
}

type Send =
    fn(&Shared<u32>, &std::sync::Arc<Lane<u32>>, u32, &FakeBell) -> Result<(), SendError<u32>>;
type Consume = fn(&Shared<u32>, &mut Local<u32>, &FakeBell, &mut Vec<u32>);

fn send(
    shared: &Shared<u32>,
    lane: &std::sync::Arc<Lane<u32>>,
    msg: u32,
    bell: &FakeBell,
) -> Result<(), SendError<u32>> {
    send_with(shared, lane, msg, || bell.state.notify(&bell.fd).map(drop))
}

/// One `try_recv` per readiness event.
fn try_recv_once(
    shared: &Shared<u32>,
    local: &mut Local<u32>,
    bell: &FakeBell,
    got: &mut Vec<u32>,
) {
    if let Ok(msg) = try_recv_with(shared, local, bell) {
        got.push(msg);
    }
}

/// A drain that takes one message and is dropped.
fn drain_one(shared: &Shared<u32>, local: &mut Local<u32>, bell: &FakeBell, got: &mut Vec<u32>) {
    refill_with(shared, local, bell);
    got.extend(local.buf.pop_front());
    leftovers_with(shared, local, bell);
}

/// Two senders send one message each (sender 0 sends `per_sender[0]`,
/// sender 1 `per_sender[1]`); the loop consumes with `consume` on each
/// readiness event, at most `steps` times. Each sender has a lane of its
/// own, as two `Sender`s do.
fn scenario(name: &str, send: Send, consume: Consume, per_sender: [u32; 2], steps: usize) {
    scenario_with(name, send, consume, per_sender, steps, false);
}

/// `scenario`, with both senders on one lane if `one_lane` (one `Sender`
/// shared by two threads).
fn scenario_with(
    name: &str,
    send: Send,
    consume: Consume,
    per_sender: [u32; 2],
    steps: usize,
    one_lane: bool,
) {
    check(name, move || {
        let shared = Arc::new(Shared::<u32>::new());
        let bell = Arc::new(FakeBell::new());
        let done = Arc::new(AtomicUsize::new(0));
        let first = shared.queue.attach();
        let senders: Vec<_> = (0..2)
            .map(|s| {
                let (shared, bell, done) =
                    (Arc::clone(&shared), Arc::clone(&bell), Arc::clone(&done));
                let lane = if one_lane || s == 0 {
                    std::sync::Arc::clone(&first)
                } else {
                    shared.queue.attach()
                };
                thread::spawn(move || {
                    for i in 0..per_sender[s] {
                        send(&shared, &lane, s as u32 * 10 + i, &bell).unwrap();
                    }
                    done.fetch_add(1, Release);
                })
            })
            .collect();

        let mut local = Local::new();
        let mut got = Vec::new();
        let mut observed = 0;
        for _ in 0..steps {
            // Wait for a readiness event: a write after the last one seen.
            let writes = loop {
                let writes = bell.fd.writes();
                if writes > observed {
                    break Some(writes);
                }
                if done.load(Acquire) == 2 {
                    let writes = bell.fd.writes();
                    break (writes > observed).then_some(writes);
                }
                thread::yield_now();
            };
            let Some(writes) = writes else { break };
            observed = writes;
            consume(&shared, &mut local, &bell, &mut got);
        }
        for sender in senders {
            sender.join().unwrap();
        }
        // Any lane, listed or not: a message in a lane nobody listed is
        // stranded too.
        let left = !local.buf.is_empty() || shared.queue.holds_messages();
        if left {
            assert!(
                bell.fd.writes() > observed,
                "stranded: messages left with no event coming (got {got:?})"
            );
        } else {
            let total = (per_sender[0] + per_sender[1]) as usize;
            assert_eq!(got.len(), total, "lost or duplicated: {got:?}");
        }
    });
}

#[test]
fn try_recv_once_per_event_strands_nothing() {
    scenario(
        "try_recv_once_per_event_strands_nothing",
        send,
        try_recv_once,
        [2, 1],
        4,
    );
}

/// Two threads share one `Sender`, so one lane: a send that finds the lane
/// non-empty relies on the one that listed it (or is about to).
#[test]
fn a_shared_sender_strands_nothing() {
    scenario_with(
        "a_shared_sender_strands_nothing",
        send,
        drain_one,
        [2, 1],
        4,
        true,
    );
}

#[test]
fn a_drain_dropped_early_strands_nothing() {
    scenario(
        "a_drain_dropped_early_strands_nothing",
        send,
        drain_one,
        [2, 1],
        4,
    );
}

/// Mutation: leftovers get no wake of their own, so a drain dropped early,
/// or `try_recv` once per event, leaves messages with no event coming.
#[test]
#[should_panic(expected = "stranded")]
fn broken_no_wake_for_leftovers() {
    fn consume(shared: &Shared<u32>, local: &mut Local<u32>, bell: &FakeBell, got: &mut Vec<u32>) {
        refill_with(shared, local, bell);
        got.extend(local.buf.pop_front());
    }
    scenario("broken_no_wake_for_leftovers", send, consume, [2, 1], 4);
}

/// Mutation: `try_recv` serves leftovers without re-arming even when a wake
/// is pending, so its own earlier wake coalesces the next one into nothing.
#[test]
#[should_panic(expected = "stranded")]
fn broken_try_recv_without_rearm() {
    fn consume(shared: &Shared<u32>, local: &mut Local<u32>, bell: &FakeBell, got: &mut Vec<u32>) {
        if local.buf.is_empty() {
            refill_with(shared, local, bell);
        }
        if let Some(msg) = local.buf.pop_front() {
            got.push(msg);
            leftovers_with(shared, local, bell);
        }
    }
    scenario("broken_try_recv_without_rearm", send, consume, [2, 1], 4);
}

/// Mutation: the take comes before the re-arm, so a send between them
/// finds the queue non-empty, does not wake, and its message misses the take.
#[test]
#[should_panic(expected = "stranded")]
fn broken_rearm_after_take() {
    fn consume(shared: &Shared<u32>, local: &mut Local<u32>, bell: &FakeBell, got: &mut Vec<u32>) {
        shared.queue.take_all(&mut local.buf);
        bell.rearm(false);
        got.extend(std::iter::from_fn(|| local.buf.pop_front()));
    }
    scenario("broken_rearm_after_take", send, consume, [2, 1], 4);
}

/// Mutation: the sender decides to wake from a look at the queue made
/// before its push (a stale length), not from the push itself.
#[test]
#[should_panic(expected = "stranded")]
fn broken_wake_from_stale_emptiness() {
    fn send(
        shared: &Shared<u32>,
        lane: &std::sync::Arc<Lane<u32>>,
        msg: u32,
        bell: &FakeBell,
    ) -> Result<(), SendError<u32>> {
        let was_empty = shared.queue.is_empty();
        shared.queue.push(lane, msg).map_err(SendError)?;
        if was_empty {
            bell.state.notify(&bell.fd).unwrap();
        }
        Ok(())
    }
    fn consume(shared: &Shared<u32>, local: &mut Local<u32>, bell: &FakeBell, got: &mut Vec<u32>) {
        refill_with(shared, local, bell);
        got.extend(std::iter::from_fn(|| local.buf.pop_front()));
    }
    scenario("broken_wake_from_stale_emptiness", send, consume, [1, 1], 3);
}

/// Disconnection: the last sender's drop is seen, and a message sent before
/// it is never reported as `Disconnected` instead.
#[test]
fn disconnect_after_send_is_seen_after_the_message() {
    check("disconnect_after_send_is_seen_after_the_message", || {
        let shared = Arc::new(Shared::<u32>::new());
        let bell = Arc::new(FakeBell::new());
        shared.add_sender();
        let lane = shared.queue.common();
        let sender = {
            let (shared, bell) = (Arc::clone(&shared), Arc::clone(&bell));
            thread::spawn(move || {
                send(&shared, &lane, 7, &bell).unwrap();
                // Sender::drop
                if shared.senders.fetch_sub(1, AcqRel) == 1 {
                    bell.state.notify(&bell.fd).unwrap();
                }
            })
        };
        let mut local = Local::new();
        let first = try_recv_with(&shared, &mut local, &*bell);
        let second = try_recv_with(&shared, &mut local, &*bell);
        sender.join().unwrap();
        match (first, second) {
            (Ok(7), Ok(_)) => panic!("duplicated"),
            (Ok(7), _) | (_, Ok(7)) => {}
            (Err(TryRecvError::Disconnected), _) | (_, Err(TryRecvError::Disconnected)) => {
                panic!("Disconnected before the message")
            }
            _ => {
                assert_eq!(try_recv_with(&shared, &mut local, &*bell), Ok(7));
            }
        }
        assert_eq!(
            try_recv_with(&shared, &mut local, &*bell),
            Err(TryRecvError::Disconnected)
        );
    });
}

/// A bell that makes one write attempt per ring and reports success
/// whatever happened, so that its caller never retries (the broken
/// variant of the failed-write models).
struct OneShotBell<'a>(&'a FakeBell);

impl Bell for OneShotBell<'_> {
    fn rearm(&self, force_read: bool) {
        self.0.rearm(force_read);
    }

    fn ring(&self) -> bool {
        let _ = self.0.ring();
        true
    }

    fn is_pending(&self) -> bool {
        self.0.is_pending()
    }
}

/// The loop takes one of two queued messages while a sender sends a
/// third, and the next write attempt (the loop's ring for its leftovers,
/// or the sender's wake) fails. When everything has settled, the messages
/// left have an event coming.
fn failed_leftovers_wake(name: &str, one_shot: bool) {
    check(name, move || {
        let shared = Arc::new(Shared::<u32>::new());
        let bell = Arc::new(FakeBell::new());
        let lane = shared.queue.common();
        send(&shared, &lane, 1, &bell).unwrap();
        send(&shared, &lane, 2, &bell).unwrap();
        // The event the loop consumes below.
        let observed = bell.fd.writes();
        bell.fd.fail_next(1);
        let sender = {
            let (shared, bell) = (Arc::clone(&shared), Arc::clone(&bell));
            thread::spawn(move || send(&shared, &lane, 3, &bell).unwrap())
        };
        let mut local = Local::new();
        let got = if one_shot {
            try_recv_with(&shared, &mut local, &OneShotBell(&bell))
        } else {
            try_recv_with(&shared, &mut local, &*bell)
        };
        assert_eq!(got, Ok(1));
        sender.join().unwrap();
        assert!(
            bell.fd.writes() > observed,
            "stranded: messages left, the ring's write failed and no event is coming"
        );
    });
}

#[test]
fn a_failed_leftovers_wake_strands_nothing() {
    failed_leftovers_wake("a_failed_leftovers_wake_strands_nothing", false);
}

#[test]
#[should_panic(expected = "stranded")]
fn broken_leftovers_wake_without_retry_strands() {
    failed_leftovers_wake("broken_leftovers_wake_without_retry_strands", true);
}

/// The last Sender's drop meets a failing write: the loop still gets an
/// event for the disconnection.
fn failed_disconnect_wake(name: &str, one_shot: bool) {
    check(name, move || {
        let shared = Arc::new(Shared::<u32>::new());
        let bell = Arc::new(FakeBell::new());
        shared.add_sender();
        shared.add_sender();
        bell.fd.fail_next(1);
        let drops: Vec<_> = (0..2)
            .map(|_| {
                let (shared, bell) = (Arc::clone(&shared), Arc::clone(&bell));
                thread::spawn(move || {
                    let wake = || bell.state.notify(&bell.fd).map(drop);
                    if one_shot {
                        if shared.senders.fetch_sub(1, AcqRel) == 1 {
                            let _ = wake();
                        }
                    } else {
                        disconnect_with(&shared, wake);
                    }
                })
            })
            .collect();
        drops.into_iter().for_each(|t| t.join().unwrap());
        assert!(shared.disconnected());
        assert!(
            bell.fd.writes() > 0,
            "lost: the disconnect wake failed and no event is coming"
        );
    });
}

#[test]
fn a_failed_disconnect_wake_is_retried() {
    failed_disconnect_wake("a_failed_disconnect_wake_is_retried", false);
}

#[test]
#[should_panic(expected = "lost")]
fn broken_disconnect_wake_without_retry_is_lost() {
    failed_disconnect_wake("broken_disconnect_wake_without_retry_is_lost", true);
}
