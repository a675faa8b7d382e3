//! Loom models of the Mailbox's lanes: two senders, each on a lane of its
//! own or both on one (a `Sender` shared by two threads), and a consumer
//! that takes twice while they send; the main thread takes once more after
//! joining them all.
//!
//! The consumer runs on a thread of its own, so that its takes interleave
//! with the sends rather than come as a block before or after them (the
//! lost lane below needs a take between two sends).
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.

use std::collections::VecDeque;
use std::ptr;

use loom::sync::Arc;
use loom::thread;

use super::{Lanes, Taken};
use crate::loom::harness::check;
use crate::loom::Ordering::{Acquire, Relaxed};

type Msg = (usize, u32);

/// How the consumer takes: `Lanes::take_all`, or the broken variant below.
type TakeFn = fn(&Lanes<Msg>, &mut Taken<Msg>) -> usize;

/// `Lanes::take_all`, reversing the taken chain through `next`, the link
/// the senders list with, instead of `back`, the consumer's own (broken: a
/// send that lists an emptied lane again overwrites the link that the
/// consumer follows after that lane's take, and the lanes behind it in the
/// taken chain are never taken).
///
/// The overwritten link may lead to a lane on `ready`, whose reference is
/// not the consumer's: the copy stops at a link out of the chain it
/// swapped out instead of taking that reference over (which would free a
/// lane still in use), and leaks the references of the lanes it never
/// took.
fn take_all_through_next(lanes: &Lanes<Msg>, out: &mut Taken<Msg>) -> usize {
    if lanes.is_empty() {
        return 0;
    }
    let mut cur = lanes.ready.swap(ptr::null_mut(), Acquire);
    // The lanes swapped out: only these references are ours.
    let mut ours = Vec::new();
    let mut prev = ptr::null_mut();
    while !cur.is_null() {
        // SAFETY: every pointer on `ready` is a reference that
        // `Arc::into_raw` made (in `push`), now ours.
        let lane = unsafe { &*cur };
        let next = lane.next.load(Relaxed);
        lane.next.store(prev, Relaxed);
        ours.push(cur);
        prev = cur;
        cur = next;
    }
    let mut n = 0;
    let mut cur = prev;
    while let Some(i) = ours.iter().position(|&lane| lane == cur) {
        ours.swap_remove(i);
        // SAFETY: `cur` is one of the references swapped out above, taken
        // over once (it has just left `ours`).
        let lane = unsafe { std::sync::Arc::from_raw(cur) };
        let chain = lane.queue.take_chain();
        cur = lane.next.load(Relaxed);
        if let Some(chain) = chain {
            n += chain.len;
            out.push(lane, chain);
        }
    }
    n
}

/// Sender 0 sends two messages, sender 1 one. Every message is taken
/// exactly once, in order per sender, nothing is left listed, and as many
/// sends say "the mailbox was empty" as can: at least one, at most one per
/// take that can find messages.
fn model(name: &str, one_lane: bool, take: TakeFn) {
    check(name, move || {
        let lanes = Arc::new(Lanes::<Msg>::new());
        let first = lanes.attach();
        let senders: Vec<_> = (0..2)
            .map(|s| {
                let lanes = Arc::clone(&lanes);
                let lane = if one_lane || s == 0 {
                    std::sync::Arc::clone(&first)
                } else {
                    lanes.attach()
                };
                thread::spawn(move || {
                    let mut woke = 0;
                    for seq in 0..2 - s as u32 {
                        woke += usize::from(lanes.push(&lane, (s, seq)).unwrap());
                    }
                    woke
                })
            })
            .collect();
        let consumer = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || {
                let mut taken = Taken::new();
                take(&lanes, &mut taken);
                take(&lanes, &mut taken);
                std::iter::from_fn(|| taken.pop_front()).collect::<VecDeque<_>>()
            })
        };
        let woke: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
        let mut got = consumer.join().unwrap();
        let mut taken = Taken::new();
        take(&lanes, &mut taken);
        got.extend(std::iter::from_fn(|| taken.pop_front()));

        let mut next = [0u32; 2];
        for (s, seq) in got {
            assert_eq!(seq, next[s], "sender {s}: out of order or duplicated");
            next[s] += 1;
        }
        assert_eq!(next, [2, 1], "a message was lost");
        assert!(lanes.is_empty(), "a lane left listed");
        assert!(woke >= 1, "no send found the mailbox empty");
        assert!(woke <= 3, "more wakes than takes");
    });
}

#[test]
fn two_lanes_lose_and_reorder_nothing() {
    model("two_lanes_lose_and_reorder_nothing", false, Lanes::take_all);
}

#[test]
fn one_lane_shared_by_two_threads_loses_and_reorders_nothing() {
    model(
        "one_lane_shared_by_two_threads_loses_and_reorders_nothing",
        true,
        Lanes::take_all,
    );
}

/// Mutation: the consumer reverses the taken chain through the link the
/// senders list with, and follows it after each lane's take. A send that
/// lists the emptied lane again overwrites that link, and the lanes behind
/// it in the taken chain are never taken.
#[test]
#[should_panic(expected = "lost")]
fn broken_reversal_through_the_senders_link() {
    model(
        "broken_reversal_through_the_senders_link",
        false,
        take_all_through_next,
    );
}

/// Closing races a send that lists its lane: the send gets its message
/// back or the close takes it, never both and never neither (loom's leak
/// check catches a message nobody dropped), and a lane attached after the
/// close is closed.
#[test]
fn a_close_racing_a_listing_send_takes_its_message_or_hands_it_back() {
    check(
        "a_close_racing_a_listing_send_takes_its_message_or_hands_it_back",
        || {
            let lanes = Arc::new(Lanes::<std::sync::Arc<()>>::new());
            let lane = lanes.attach();
            let msg = std::sync::Arc::new(());
            let sender = {
                let (lanes, msg) = (Arc::clone(&lanes), std::sync::Arc::clone(&msg));
                thread::spawn(move || lanes.push(&lane, msg).is_ok())
            };
            let mut taken = VecDeque::new();
            lanes.close(&mut taken);
            let pushed = sender.join().unwrap();
            assert_eq!(taken.len(), usize::from(pushed));
            drop(taken);
            assert_eq!(std::sync::Arc::strong_count(&msg), 1);
            let late = lanes.attach();
            assert!(lanes.push(&late, std::sync::Arc::clone(&msg)).is_err());
        },
    );
}
