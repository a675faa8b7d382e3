//! Loom models of the Mailbox's queue: 2 producers and a consumer, with
//! small chunks (chunk `k` holds `2^k` slots under loom) so that growth,
//! fresh slots, the free list and slot reuse all happen.
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib`.

use std::collections::VecDeque;

use loom::sync::Arc;
use loom::thread;

use super::{Pop, Queue, CLOSED, ID, NIL};
use crate::loom::harness::check;
use crate::loom::Backoff;
use crate::loom::Ordering::{AcqRel, Acquire, Relaxed};

/// How a model's producers push: `Queue::push`, or a broken variant below.
type PushFn<T> = fn(&Queue<T>, T) -> Result<bool, T>;

/// How a model's consumer takes: `Queue::take_all`, or a broken variant
/// below.
type TakeFn = fn(&Queue<u32>, &mut VecDeque<u32>) -> usize;

/// `Queue::push` with the slot published by a Relaxed compare-and-swap
/// (broken: the consumer's take is then not ordered after the write of the
/// message, nor after the store that published the slot's chunk).
fn push_relaxed<T>(queue: &Queue<T>, value: T) -> Result<bool, T> {
    if queue.head.load(Relaxed) & CLOSED != 0 {
        return Err(value);
    }
    let (id, slot) = queue.alloc();
    // SAFETY: the slot is ours from `alloc` until the push below.
    slot.value.with_mut(|p| unsafe { (*p).write(value) });
    let mut top = queue.head.load(Relaxed);
    loop {
        if top & CLOSED != 0 {
            // SAFETY: still ours (not pushed); we wrote it above.
            return Err(slot.value.with_mut(|p| unsafe { (*p).assume_init_read() }));
        }
        slot.next.store(top as u32, Relaxed);
        match queue
            .head
            .compare_exchange_weak(top, id as u64, Relaxed, Relaxed)
        {
            Ok(_) => return Ok(top as u32 == NIL),
            Err(actual) => top = actual,
        }
    }
}

/// `Queue::take_all` with the free list's append and its first release as
/// Relaxed stores (broken: a producer that pops a slot of the chain is then
/// not ordered after the consumer's move out of it).
fn take_all_relaxed_release(queue: &Queue<u32>, out: &mut VecDeque<u32>) -> usize {
    let Some(chain) = queue.take_chain() else {
        return 0;
    };
    let mut id = chain.first;
    while id != NIL {
        // SAFETY: the chain is ours; each slot is read once.
        let (value, next) = unsafe { queue.read(id) };
        out.push_back(value);
        id = next;
    }
    // `Queue::release`, with the two stores Relaxed.
    let tail = queue.tail.load(Relaxed);
    if tail == NIL {
        queue.alloc.free.store(chain.first as u64, Relaxed);
    } else {
        queue.slot(tail).next.store(chain.first, Relaxed);
    }
    queue.tail.store(chain.last, Relaxed);
    chain.len
}

/// One producer thread per message, each pushing its own with `push`.
fn spawn_pushes(
    queue: &Arc<Queue<u32>>,
    msgs: &[u32],
    push: PushFn<u32>,
) -> Vec<thread::JoinHandle<()>> {
    msgs.iter()
        .map(|&msg| {
            let queue = Arc::clone(queue);
            thread::spawn(move || {
                push(&queue, msg).unwrap();
            })
        })
        .collect()
}

/// A consumer thread that takes once with `take`; it returns what it took.
fn spawn_take(queue: &Arc<Queue<u32>>, take: TakeFn) -> thread::JoinHandle<VecDeque<u32>> {
    let queue = Arc::clone(queue);
    thread::spawn(move || {
        let mut got = VecDeque::new();
        take(&queue, &mut got);
        got
    })
}

fn join_all(threads: Vec<thread::JoinHandle<()>>) {
    for thread in threads {
        thread.join().unwrap();
    }
}

/// Every message is taken exactly once, in order per producer. The
/// consumer takes twice while the producers push (so that freed slots are
/// reused), on a thread of its own, so that its takes interleave with the
/// pushes rather than come as a block before or after them.
fn producers_and_consumer(name: &str, push: PushFn<(usize, u32)>) {
    check(name, move || {
        let queue = Arc::new(Queue::<(usize, u32)>::new());
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for seq in 0..2 {
                        push(&queue, (p, seq)).unwrap();
                    }
                })
            })
            .collect();
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut got = VecDeque::new();
                queue.take_all(&mut got);
                queue.take_all(&mut got);
                got
            })
        };
        for producer in producers {
            producer.join().unwrap();
        }
        let mut got = consumer.join().unwrap();
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

#[test]
fn two_producers_lose_and_reorder_nothing_while_slots_are_reused() {
    producers_and_consumer(
        "two_producers_lose_and_reorder_nothing_while_slots_are_reused",
        Queue::push,
    );
}

/// The slot published by a Relaxed compare-and-swap: the consumer's take
/// then reads a slot (or a chunk) whose write it is not ordered after.
#[test]
#[should_panic]
fn broken_relaxed_publish_is_caught_by_the_take() {
    producers_and_consumer("broken_relaxed_publish_is_caught_by_the_take", push_relaxed);
}

/// A slot goes back to the senders only once the consumer is done with it.
/// Set up in sequence: slot 1 is on the free list (its last slot, which
/// senders leave), slots 2 and 3 hold queued messages. Then the consumer
/// takes them and appends their slots after slot 1, while two producers
/// push once each: the first pop takes slot 1 if it sees the append, the
/// second slot 2 if it sees the first. The consumer's move out of slot 2's
/// message must happen before the write into it (loom checks every access
/// to a slot), through the append and through the first pop, and every
/// message is taken once.
fn free_list_reuse(name: &str, take: TakeFn) {
    check(name, move || {
        let queue = Arc::new(Queue::<u32>::new());
        let mut got = VecDeque::new();
        queue.push(1).unwrap();
        queue.take_all(&mut got);
        queue.push(2).unwrap();
        queue.push(3).unwrap();
        let consumer = spawn_take(&queue, take);
        join_all(spawn_pushes(&queue, &[4, 5], Queue::push));
        got.extend(consumer.join().unwrap());
        queue.take_all(&mut got);
        got.make_contiguous()[3..].sort_unstable();
        assert_eq!(got, [1, 2, 3, 4, 5]);
    });
}

#[test]
fn freed_slots_are_reused_after_their_messages_moved_out() {
    free_list_reuse(
        "freed_slots_are_reused_after_their_messages_moved_out",
        Queue::take_all,
    );
}

/// The free list's append as a Relaxed store: a producer that follows the
/// new link is not ordered after the consumer's move out of the slot it
/// then writes. The model must catch that.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_relaxed_append_is_caught() {
    free_list_reuse("broken_relaxed_append_is_caught", take_all_relaxed_release);
}

/// The consumer's first release starts the free list (a store to its
/// front) while a producer pushes twice: the producer pops slot 1 if it
/// sees that store, and must then find the consumer's move out of slot 1
/// done.
fn first_release(name: &str, take: TakeFn) {
    check(name, move || {
        let queue = Arc::new(Queue::<u32>::new());
        queue.push(1).unwrap();
        queue.push(2).unwrap();
        let consumer = spawn_take(&queue, take);
        let producer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                queue.push(3).unwrap();
                queue.push(4).unwrap();
            })
        };
        producer.join().unwrap();
        let mut got = consumer.join().unwrap();
        queue.take_all(&mut got);
        assert_eq!(got, [1, 2, 3, 4]);
    });
}

#[test]
fn the_first_release_hands_pops_only_slots_moved_out_of() {
    first_release(
        "the_first_release_hands_pops_only_slots_moved_out_of",
        Queue::take_all,
    );
}

/// The first release as a Relaxed store: the model must catch it.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_relaxed_first_release_is_caught() {
    first_release(
        "broken_relaxed_first_release_is_caught",
        take_all_relaxed_release,
    );
}

/// Two senders pop from a free list that has a slot for each: neither may
/// give up and grow the queue. Set up in sequence: slots 1, 2 and 3 are
/// free (3 is the last, which senders leave), and no fresh slot is left.
/// A sender that finds the other popping must wait for that pop, not grow
/// the queue. With `take`, the consumer takes and appends at the same time.
/// The senders push with `push`.
fn racing_pops(name: &str, take: bool, push: PushFn<u32>) {
    check(name, move || {
        let queue = Arc::new(Queue::<u32>::new());
        let mut got = VecDeque::new();
        for msg in 1..=3 {
            queue.push(msg).unwrap();
        }
        queue.take_all(&mut got);
        assert_eq!(queue.chunk_count(), 2, "chunks of 1 and 2 slots");
        let producers = spawn_pushes(&queue, &[4, 5], push);
        let consumer = take.then(|| spawn_take(&queue, Queue::take_all));
        join_all(producers);
        if let Some(consumer) = consumer {
            got.extend(consumer.join().unwrap());
        }
        assert_eq!(queue.chunk_count(), 2, "a pop gave up on a free slot");
        queue.take_all(&mut got);
        got.make_contiguous()[3..].sort_unstable();
        assert_eq!(got, [1, 2, 3, 4, 5]);
    });
}

/// Fails with a sender that grows the queue when the other is popping.
#[test]
fn racing_pops_do_not_grow_the_queue() {
    racing_pops("racing_pops_do_not_grow_the_queue", false, Queue::push);
}

#[test]
fn racing_pops_and_a_take_do_not_grow_the_queue() {
    racing_pops(
        "racing_pops_and_a_take_do_not_grow_the_queue",
        true,
        Queue::push,
    );
}

/// `Queue::push` whose slow path goes on from the first pop's outcome
/// without popping again after each wait (broken: a sender that found the
/// other one popping never sees that pop end, and waits for ever).
fn push_never_popping_again(queue: &Queue<u32>, value: u32) -> Result<bool, u32> {
    let (id, slot) = match queue.try_pop_free() {
        Ok(popped) => popped,
        Err(why) => {
            let mut backoff = Backoff::new();
            loop {
                let id = match why {
                    Pop::Busy => None,
                    Pop::Empty => queue.try_take_fresh().or_else(|| queue.grow()),
                };
                if let Some(id) = id.or_else(|| queue.try_take_fresh()) {
                    break (id, queue.slot(id));
                }
                backoff.snooze();
            }
        }
    };
    queue.push_into(id, slot, value)
}

#[test]
#[should_panic(expected = "maximum number of branches")]
fn broken_slow_path_that_never_pops_again_is_caught() {
    racing_pops(
        "broken_slow_path_that_never_pops_again_is_caught",
        false,
        push_never_popping_again,
    );
}

/// The slots of queued messages, newest first.
fn queued(queue: &Queue<u32>) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut id = (queue.head.load(Relaxed) & ID) as u32;
    while id != NIL {
        assert!(ids.len() < 16, "the queued stack is a cycle");
        ids.push(id);
        id = queue.slot(id).next.load(Relaxed);
    }
    ids
}

/// With every thread joined: the free list runs from its front to the
/// consumer's `tail`, which ends it, and holds no queued slot.
fn assert_free_list_sound(queue: &Queue<u32>) {
    let queued = queued(queue);
    let tail = queue.tail.load(Relaxed);
    let mut id = (queue.alloc.free.load(Relaxed) & ID) as u32;
    let mut len = 1;
    while id != tail {
        assert!(!queued.contains(&id), "slot {id} is both free and queued");
        assert!(len < 16, "the free list is a cycle");
        id = queue.slot(id).next.load(Relaxed);
        assert_ne!(id, NIL, "the free list ends before the consumer's tail");
        len += 1;
    }
    assert!(!queued.contains(&id), "slot {id} is both free and queued");
    assert_eq!(queue.slot(tail).next.load(Relaxed), NIL);
}

/// A pop overtaken while its slot goes round: slots 1, 2 and 3 are free (3
/// last) and no fresh slot is left. Producer A pushes once; producer B
/// pushes three times while the consumer takes once. If A stalls after
/// reading the front (slot 1) and its link (2), B can pop 1, the consumer
/// take and append it behind 3, and B pop 2 and 3: the front is 1 again,
/// with 2 queued. A pop that then trusted its link would put a queued slot
/// at the front and take the consumer's `tail` (a tag guards against
/// that only until it wraps). Every message is taken once, B's in order,
/// and the free list stays sound.
fn overtaken_pop(name: &str, push: PushFn<u32>) {
    check(name, move || {
        let queue = Arc::new(Queue::<u32>::new());
        let mut got = VecDeque::new();
        for msg in 1..=3 {
            queue.push(msg).unwrap();
        }
        queue.take_all(&mut got);
        let a = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                push(&queue, 10).unwrap();
            })
        };
        let b = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for msg in 20..23 {
                    push(&queue, msg).unwrap();
                }
            })
        };
        let consumer = spawn_take(&queue, Queue::take_all);
        join_all(vec![a, b]);
        got.extend(consumer.join().unwrap());
        assert_free_list_sound(&queue);
        queue.take_all(&mut got);
        let from_b: Vec<u32> = got.iter().copied().filter(|&m| m >= 20).collect();
        assert_eq!(from_b, [20, 21, 22], "B's messages out of order or lost");
        got.make_contiguous().sort_unstable();
        assert_eq!(got, [1, 2, 3, 10, 20, 21, 22]);
    });
}

#[test]
fn an_overtaken_pop_hands_out_no_queued_slot() {
    overtaken_pop("an_overtaken_pop_hands_out_no_queued_slot", Queue::push);
}

/// A push whose pop does not set `POPPING` and trusts its link when the
/// front is unchanged: the compare-and-swap a tag made safe only until it
/// wraps (a tag that wrapped is no tag). Broken: the model must catch it.
fn push_popping_unguarded(queue: &Queue<u32>, value: u32) -> Result<bool, u32> {
    let mut cur = queue.alloc.free.load(Acquire);
    let popped = loop {
        let id = (cur & ID) as u32;
        if id == NIL {
            break None;
        }
        let next = queue.slot(id).next.load(Acquire);
        if next == NIL {
            let now = queue.alloc.free.load(Acquire);
            if now == cur {
                break None;
            }
            cur = now;
            continue;
        }
        match queue
            .alloc
            .free
            .compare_exchange(cur, next as u64, AcqRel, Acquire)
        {
            Ok(_) => break Some(id),
            Err(actual) => cur = actual,
        }
    };
    let (id, slot) = popped.map_or_else(|| queue.alloc(), |id| (id, queue.slot(id)));
    queue.push_into(id, slot, value)
}

#[test]
#[should_panic(expected = "both free and queued")]
fn broken_unguarded_pop_is_caught() {
    overtaken_pop("broken_unguarded_pop_is_caught", push_popping_unguarded);
}

/// Closing hands a racing push its message back or takes it: never both,
/// never neither (loom's leak check catches a message dropped by nobody).
#[test]
fn a_close_racing_a_push_takes_its_message_or_hands_it_back() {
    check(
        "a_close_racing_a_push_takes_its_message_or_hands_it_back",
        || {
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
        },
    );
}

/// `a_close_racing_a_push_takes_its_message_or_hands_it_back` with the slot published by a Relaxed
/// compare-and-swap: the close may then take the slot's id before the chunk
/// that holds it is visible. The model must catch that.
#[test]
#[should_panic(expected = "a slot in a chunk not yet visible")]
fn broken_relaxed_publish_is_caught() {
    check("broken_relaxed_publish_is_caught", || {
        let queue = Arc::new(Queue::<Arc<()>>::new());
        let msg = Arc::new(());
        let producer = {
            let (queue, msg) = (Arc::clone(&queue), Arc::clone(&msg));
            thread::spawn(move || push_relaxed(&queue, msg).is_ok())
        };
        let mut taken = VecDeque::new();
        queue.close(&mut taken);
        let pushed = producer.join().unwrap();
        assert_eq!(taken.len(), usize::from(pushed));
    });
}

/// How a model's consumer takes the queued chain: `Queue::take_chain`, or
/// a broken variant below.
type ChainTakeFn<T> = fn(&Queue<T>) -> Option<super::Chain>;

/// A take that swaps `head` to empty (broken: it clears the push count
/// with the id).
fn take_swapping<T>(queue: &Queue<T>) -> Option<super::Chain> {
    let taken = queue.head.swap(NIL as u64, AcqRel);
    queue.reverse(taken as u32)
}

/// A take that reads `head`, then swaps in the count it read (broken: a
/// push between the two is taken, but its count is lost).
fn take_restoring_a_read_count<T>(queue: &Queue<T>) -> Option<super::Chain> {
    let seen = queue.head.load(Relaxed);
    if seen & ID == NIL as u64 {
        return None;
    }
    let taken = queue.head.swap(seen & !ID, AcqRel);
    queue.reverse(taken as u32)
}

/// The push count (`Queue::pushes`): producer A pushes twice and B once
/// while the consumer takes once with `take`. With every thread joined,
/// the count is every push, and the count minus what the take moved out is
/// what is still queued; after the close, too.
fn push_count(name: &str, take: ChainTakeFn<u32>) {
    check(name, move || {
        let queue = Arc::new(Queue::<u32>::new());
        let a = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                queue.push(1).unwrap();
                queue.push(2).unwrap();
            })
        };
        let b = spawn_pushes(&queue, &[3], Queue::push);
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut got = VecDeque::new();
                take(&queue).map_or(0, |chain| queue.move_out(chain, &mut got))
            })
        };
        join_all(b);
        a.join().unwrap();
        let taken = consumer.join().unwrap();
        assert_eq!(queue.pushes(), 3, "the push count lost a push");
        assert_eq!(queue.pushes() - taken, queued(&queue).len());
        let mut rest = VecDeque::new();
        queue.close(&mut rest);
        assert_eq!(taken + rest.len(), 3);
        assert_eq!(queue.pushes(), 3, "the close lost the push count");
    });
}

#[test]
fn the_push_count_counts_every_push() {
    push_count("the_push_count_counts_every_push", Queue::take_chain);
}

#[test]
#[should_panic(expected = "lost a push")]
fn broken_take_swapping_the_count_away_is_caught() {
    push_count(
        "broken_take_swapping_the_count_away_is_caught",
        take_swapping,
    );
}

/// Caught only where a push lands between the take's read and its swap.
#[test]
#[should_panic(expected = "lost a push")]
fn broken_take_restoring_a_read_count_is_caught() {
    push_count(
        "broken_take_restoring_a_read_count_is_caught",
        take_restoring_a_read_count,
    );
}
