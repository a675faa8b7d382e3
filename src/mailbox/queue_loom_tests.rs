//! Loom model of the Mailbox's queue: 2 producers and a consumer, with
//! one-slot chunks so that growth, the free list and slot reuse all happen.
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.

use std::collections::VecDeque;

use loom::sync::Arc;
use loom::thread;

use super::Queue;
use crate::loom::Ordering::Relaxed;

/// Every message is taken exactly once, in order per producer, and the
/// queue's "was empty" answer is right for the first push.
#[test]
fn two_producers_one_consumer_with_reuse() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let queue = Arc::new(Queue::<(usize, u32)>::new());
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for seq in 0..2 {
                        queue.push((p, seq)).unwrap();
                    }
                })
            })
            .collect();

        let mut got = VecDeque::new();
        // Take while they push, so that freed slots are reused.
        queue.take_all(&mut got);
        queue.take_all(&mut got);
        for producer in producers {
            producer.join().unwrap();
        }
        queue.take_all(&mut got);

        let mut next = [0u32; 2];
        for (p, seq) in got {
            assert_eq!(seq, next[p], "producer {p}: out of order or duplicated");
            next[p] += 1;
        }
        assert_eq!(next, [2, 2], "a message was lost");
        assert!(queue.is_empty());
    });
}

/// Closing hands a racing push its message back or takes it: never both,
/// never neither (loom's leak check catches a message dropped by nobody).
#[test]
fn close_racing_push() {
    loom::model(|| {
        let queue = Arc::new(Queue::<Arc<()>>::new());
        let msg = Arc::new(());
        let producer = {
            let (queue, msg) = (Arc::clone(&queue), Arc::clone(&msg));
            thread::spawn(move || queue.push(msg).is_ok())
        };
        let mut taken = VecDeque::new();
        queue.close(&mut taken);
        let pushed = producer.join().unwrap();
        // A push that succeeded came before the close, which took it.
        assert_eq!(taken.len(), usize::from(pushed));
        drop(taken);
        assert_eq!(Arc::strong_count(&msg), 1);
        assert!(queue.push(Arc::clone(&msg)).is_err());
    });
}

/// `close_racing_push` with the slot published by a Relaxed
/// compare-and-swap: the close may then take the slot's id before the chunk
/// that holds it is visible. The model must catch that.
#[test]
#[should_panic(expected = "a slot in a chunk not yet visible")]
fn broken_relaxed_publish_is_caught() {
    loom::model(|| {
        let queue = Arc::new(Queue::<Arc<()>>::new());
        let msg = Arc::new(());
        let producer = {
            let (queue, msg) = (Arc::clone(&queue), Arc::clone(&msg));
            thread::spawn(move || queue.push_publishing(msg, Relaxed).is_ok())
        };
        let mut taken = VecDeque::new();
        queue.close(&mut taken);
        let pushed = producer.join().unwrap();
        assert_eq!(taken.len(), usize::from(pushed));
    });
}
