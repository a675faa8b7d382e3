//! Loom models of the Mailbox's lanes: two senders, each on a lane of its
//! own or both on one (a `Sender` shared by two threads), and a consumer
//! that takes twice while they send; the main thread takes once more after
//! joining them all.
//!
//! The consumer runs on a thread of its own: from the main thread, loom
//! explored its takes only as a block before or after the sends (the lost
//! lane below needs a take between two sends, and was not found that way).
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.

use std::collections::VecDeque;

use loom::sync::Arc;
use loom::thread;

use super::{Lane, Lanes, Taken};
use crate::loom::AtomicPtr;

/// Which link the consumer reverses a taken chain through.
type Link = fn(&Lane<(usize, u32)>) -> &AtomicPtr<Lane<(usize, u32)>>;

/// Sender 0 sends two messages, sender 1 one. Every message is taken
/// exactly once, in order per sender, nothing is left listed, and as many
/// sends say "the mailbox was empty" as can: at least one, at most one per
/// take that can find messages.
fn model(name: &str, one_lane: bool, link: Link) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lanes = Arc::new(Lanes::<(usize, u32)>::new());
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
                lanes.take_all_linking(&mut taken, link);
                lanes.take_all_linking(&mut taken, link);
                std::iter::from_fn(|| taken.pop_front()).collect::<VecDeque<_>>()
            })
        };
        let woke: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
        let mut got = consumer.join().unwrap();
        let mut taken = Taken::new();
        lanes.take_all_linking(&mut taken, link);
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
    eprintln!(
        "{name}: {} interleavings",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn two_lanes() {
    model("two_lanes", false, |lane| &lane.back);
}

#[test]
fn one_lane_shared_by_two_threads() {
    model("one_lane_shared_by_two_threads", true, |lane| &lane.back);
}

/// Mutation: the consumer reverses the taken chain through the link the
/// senders list with, and follows it after each lane's take. A send that
/// lists the emptied lane again overwrites that link, and the lanes behind
/// it in the taken chain are never taken.
#[test]
#[should_panic(expected = "lost")]
fn broken_reversal_through_the_senders_link() {
    model("broken_reversal_through_the_senders_link", false, |lane| {
        &lane.next
    });
}

/// Closing races a send that lists its lane: the send gets its message
/// back or the close takes it, never both and never neither (loom's leak
/// check catches a message nobody dropped), and a lane attached after the
/// close is closed.
#[test]
fn close_racing_a_listing_send() {
    loom::model(|| {
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
    });
}
