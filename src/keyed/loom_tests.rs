//! Loom model checks of the keyed bitmap on top of the coalescing protocol.
//!
//! Run with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --lib keyed`.
//!
//! The model is the real [`Bitmap`] and [`Cursor`] and the real
//! [`State`](crate::state::State), with the fd replaced by the harness's
//! [`FakeFd`] (`loom/harness.rs`), an eventfd made of loom atomics. A sender does what [`KeyedWaker::notify`](super::KeyedWaker::notify)
//! does: publish its work, set the key's bit, and on a newly set bit wake the
//! state. The loop does what [`KeyedNotifier::drain`](super::KeyedNotifier::drain)
//! does: re-arm the state (read the fd, clear `PENDING`), then walk the bitmap.

use loom::sync::atomic::{AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

use super::bitmap::{Bitmap, Cursor, W};
use crate::loom::harness::{check, FakeFd};
use crate::state::State;

/// Two senders, one work slot each.
struct Shared {
    state: State,
    fd: FakeFd,
    bits: Bitmap,
    work: [AtomicUsize; 2],
}

/// How the loop walks the bitmap after the re-arm: calls `yield_key` for
/// every key it takes.
type Walk = fn(&Bitmap, &mut dyn FnMut(usize));

/// The real walk: `KeyedNotifier::drain`'s cursor, run to the end.
fn walk(bits: &Bitmap, yield_key: &mut dyn FnMut(usize)) {
    let mut cursor = Cursor::default();
    while let Some(key) = cursor.next(bits) {
        yield_key(key);
    }
}

/// The real walk, stopped after one key and dropped, as a `Keys` iterator
/// dropped early is: what is left is put back and re-woken. The caller's
/// re-wake goes through the state like any notify.
fn walk_one_then_put_back(shared: &Shared, yield_key: &mut dyn FnMut(usize)) {
    let mut cursor = Cursor::default();
    if let Some(key) = cursor.next(&shared.bits) {
        yield_key(key);
    }
    if cursor.put_back(&shared.bits) {
        shared.state.notify(&shared.fd).unwrap();
    }
}

/// The wrong order on purpose: read the key words under a summary word,
/// *then* clear the summary bits that were read.
fn walk_clear_summary_after_read(bits: &Bitmap, yield_key: &mut dyn FnMut(usize)) {
    for (group, summary) in bits.summary.iter().enumerate() {
        let groups = summary.load(Acquire);
        let mut rest = groups;
        while rest != 0 {
            let w = group * W + rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let mut keys = bits.words[w].swap(0, AcqRel);
            while keys != 0 {
                yield_key(w * W + keys.trailing_zeros() as usize);
                keys &= keys - 1;
            }
        }
        summary.fetch_and(!groups, AcqRel);
    }
}

/// What the loop observed: per sender, whether a yield of its key showed
/// its work; per key, how many times it was yielded.
struct Seen {
    keys: [usize; 2],
    work_seen: [bool; 2],
    yields: Vec<usize>,
}

impl Seen {
    fn record(&mut self, shared: &Shared, key: usize) {
        self.yields[key] += 1;
        for (sender, &k) in self.keys.iter().enumerate() {
            if k == key {
                self.work_seen[sender] |= shared.work[sender].load(Relaxed) == 1;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Loop {
    /// `drains` racing drains, each walking with the given walk.
    Drains(usize, Walk),
    /// One racing drain that takes one key and drops the rest.
    TakeOneThenDrop,
}

/// Sender `i` publishes `work[i]` and notifies key `keys[i]`; the loop
/// drains while they run. After they are done, the loop drains once more if
/// a wake is due (the fd holds one: it would get a readiness event). Then
/// every sender's work must have been seen at a yield of its key (nothing
/// lost, and nothing yielded before its work was visible), and no key may be
/// yielded more often than it was notified (nothing yielded twice).
fn senders_and_drainer(name: &str, capacity: usize, keys: [usize; 2], drainer: Loop) {
    check(name, move || {
        let shared = Arc::new(Shared {
            state: State::new(),
            fd: FakeFd::new(),
            bits: Bitmap::new(capacity).unwrap(),
            work: Default::default(),
        });
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    shared.work[i].store(1, Relaxed);
                    if shared.bits.set(keys[i]).unwrap() {
                        shared.state.notify(&shared.fd).unwrap();
                    }
                })
            })
            .collect();

        let mut seen = Seen {
            keys,
            work_seen: [false; 2],
            yields: vec![0; capacity],
        };
        let final_walk: Walk = match drainer {
            Loop::Drains(drains, walk) => {
                for _ in 0..drains {
                    shared.state.drain(&shared.fd, true).unwrap();
                    walk(&shared.bits, &mut |key| seen.record(&shared, key));
                }
                walk
            }
            Loop::TakeOneThenDrop => {
                shared.state.drain(&shared.fd, true).unwrap();
                walk_one_then_put_back(&shared, &mut |key| seen.record(&shared, key));
                walk
            }
        };
        for sender in senders {
            sender.join().unwrap();
        }

        if shared.fd.readable() {
            // The readiness event the loop gets for the wake in the fd.
            shared.state.drain(&shared.fd, true).unwrap();
            final_walk(&shared.bits, &mut |key| seen.record(&shared, key));
        }
        assert!(
            seen.work_seen == [true, true],
            "lost wake: once the senders were done and the wake due was drained, the loop \
             had seen the work of senders {:?} only (keys yielded: {:?})",
            seen.work_seen,
            seen.yields
        );
        for (key, &yields) in seen.yields.iter().enumerate() {
            let notifies = keys.iter().filter(|&&k| k == key).count();
            assert!(
                yields <= notifies,
                "yielded twice: key {key} yielded {yields} times for {notifies} notifies"
            );
        }
        assert!(!shared.bits.any(), "a key was left in the bitmap");
    });
}

#[test]
fn keys_in_one_word_are_each_yielded_once_past_a_racing_drain() {
    senders_and_drainer(
        "keys_in_one_word_are_each_yielded_once_past_a_racing_drain",
        2,
        [0, 1],
        Loop::Drains(1, walk),
    );
}

#[test]
fn keys_in_one_word_are_each_yielded_once_past_two_racing_drains() {
    senders_and_drainer(
        "keys_in_one_word_are_each_yielded_once_past_two_racing_drains",
        2,
        [0, 1],
        Loop::Drains(2, walk),
    );
}

/// Keys in two key words under one summary word.
#[test]
fn keys_in_two_words_are_each_yielded_once_past_two_racing_drains() {
    senders_and_drainer(
        "keys_in_two_words_are_each_yielded_once_past_two_racing_drains",
        W + 1,
        [0, W],
        Loop::Drains(2, walk),
    );
}

/// Both senders notify the same key: it coalesces, and both works are seen.
#[test]
fn one_key_notified_by_two_senders_shows_both_works() {
    senders_and_drainer(
        "one_key_notified_by_two_senders_shows_both_works",
        2,
        [1, 1],
        Loop::Drains(2, walk),
    );
}

/// A drain that stops after one key strands nothing: the rest is put back
/// and woken again.
#[test]
fn partial_drain_strands_nothing() {
    senders_and_drainer(
        "partial_drain_strands_nothing",
        2,
        [0, 1],
        Loop::TakeOneThenDrop,
    );
}

/// The checks above are not vacuous: with the summary bits cleared after
/// the key words are read, loom finds the interleaving where a sender sets
/// its key bit after the read, finds the summary bit still set, and the
/// clear then removes the only pointer to that key: its wake arrives, but
/// no drain finds the key.
#[test]
#[should_panic(expected = "lost wake")]
fn summary_cleared_after_read_loses_keys() {
    senders_and_drainer(
        "summary_cleared_after_read_loses_keys",
        2,
        [0, 1],
        Loop::Drains(1, walk_clear_summary_after_read),
    );
}
