//! Its own test binary: a counting global allocator proves that steady
//! Mailbox traffic allocates nothing per message (the buffers are reused).

mod util;

use std::sync::atomic::Ordering;

use util::counting::{Counting, ALLOCS, COUNTING};
use wakefd::Mailbox;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `ALLOCS` is global: tests that count run one at a time, so that one
/// test's allocations never show up in another's count.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Allocations counted while `round` runs 1 000 times, after 4 rounds of
/// warm-up in which the buffers (and lanes) grow to their size.
fn steady_state_allocations(mut round: impl FnMut()) -> usize {
    for _ in 0..4 {
        round();
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..1_000 {
        round();
    }
    COUNTING.with(|c| c.set(false));
    ALLOCS.load(Ordering::Relaxed) - before
}

#[test]
fn steady_traffic_allocates_nothing_per_message() {
    let _serial = serial();
    for backend in wakefd::Backend::available() {
        let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        let sender = mailbox.sender();
        let mut sum = 0;
        let allocs = steady_state_allocations(|| {
            for i in 0..64 {
                sender.send(i).unwrap();
            }
            sum += mailbox.drain().sum::<u64>();
            for i in 0..64 {
                sender.send(i).unwrap();
            }
            while let Ok(i) = mailbox.try_recv() {
                sum += i;
            }
        });
        assert_eq!(allocs, 0, "{backend}: allocations in steady state");
        assert_eq!(sum, 1_004 * 2 * (0..64).sum::<u64>());
    }
}

/// Four sender threads and the loop, in lock-step rounds of 4 x 64 messages:
/// after warm-up, no thread allocates (the queue's slots are recycled).
#[test]
fn four_senders_allocate_nothing_per_message_in_steady_state() {
    let _serial = serial();
    use std::sync::{Arc, Barrier};
    const SENDERS: usize = 4;
    const BURST: u64 = 64;
    const WARMUP: usize = 8;
    const ROUNDS: usize = 500;
    for backend in wakefd::Backend::available() {
        let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        let barrier = Arc::new(Barrier::new(SENDERS + 1));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (sender, barrier) = (mailbox.sender(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    for round in 0..WARMUP + ROUNDS {
                        if round == WARMUP {
                            COUNTING.with(|c| c.set(true));
                        }
                        for i in 0..BURST {
                            sender.send(i).unwrap();
                        }
                        barrier.wait(); // sent
                        barrier.wait(); // drained
                    }
                    COUNTING.with(|c| c.set(false));
                })
            })
            .collect();
        let mut sum = 0;
        let before = ALLOCS.load(Ordering::Relaxed);
        for round in 0..WARMUP + ROUNDS {
            if round == WARMUP {
                COUNTING.with(|c| c.set(true));
            }
            barrier.wait();
            sum += mailbox.drain().sum::<u64>();
            barrier.wait();
        }
        COUNTING.with(|c| c.set(false));
        for s in senders {
            s.join().unwrap();
        }
        let after = ALLOCS.load(Ordering::Relaxed);
        assert_eq!(after - before, 0, "{backend}: allocations in steady state");
        let rounds = (WARMUP + ROUNDS) as u64;
        assert_eq!(sum, rounds * SENDERS as u64 * (0..BURST).sum::<u64>());
    }
}

/// A `Sender` with a lane of its own made for every message and dropped
/// after it (a job per message on a pool), with up to 8 alive at once:
/// after warm-up, nothing allocates, since a new lane is one a dropped
/// Sender gave back.
#[test]
fn a_sender_with_lane_per_message_allocates_nothing_in_steady_state() {
    let _serial = serial();
    for backend in wakefd::Backend::available() {
        let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        let sender = mailbox.sender();
        let mut alive = Vec::with_capacity(8);
        let mut sum = 0;
        let allocs = steady_state_allocations(|| {
            for i in 0..64 {
                let clone = sender.clone_with_lane();
                clone.send(i).unwrap();
                alive.push(clone);
                if alive.len() == 8 {
                    alive.clear();
                }
            }
            alive.clear();
            sum += mailbox.drain().sum::<u64>();
        });
        assert_eq!(allocs, 0, "{backend}: allocations in steady state");
        assert_eq!(sum, 1_004 * (0..64).sum::<u64>());
    }
}
