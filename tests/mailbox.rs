//! Mailbox and Sender through the public API, on every backend.

mod util;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use util::{expect_no_wake, expect_wake, is_readable, poll_retrying, TIMEOUT};
use wakefd::{Mailbox, SendError, Sender, TryRecvError};

const MAILBOX: Token = Token(3);

#[test]
fn types_are_send_and_sync() {
    util::assert_send::<Mailbox<String>>();
    util::assert_sync::<Mailbox<String>>();
    util::assert_send::<Sender<String>>();
    util::assert_sync::<Sender<String>>();
    util::assert_send::<SendError<String>>();
}

/// 8 senders x 100k messages through a mio loop, half of them on the
/// common lane and half on lanes of their own: nothing lost, nothing
/// duplicated, FIFO per sender, every poll bounded.
#[test]
fn eight_senders_through_mio_lose_nothing_and_keep_order() {
    const SENDERS: usize = 8;
    const PER_SENDER: u32 = 100_000;
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::<(usize, u32)>::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let start = Arc::new(Barrier::new(SENDERS));
        let senders: Vec<_> = (0..SENDERS)
            .map(|id| {
                // Half on the common lane, half on lanes of their own.
                let sender = if id % 2 == 0 {
                    mailbox.sender()
                } else {
                    mailbox.sender_with_lane()
                };
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    for seq in 0..PER_SENDER {
                        sender.send((id, seq)).unwrap();
                    }
                })
            })
            .collect();

        let mut next = [0u32; SENDERS];
        let mut total = 0usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while total < SENDERS * PER_SENDER as usize {
            assert!(
                Instant::now() < deadline,
                "stalled at {total} messages: {next:?}"
            );
            poll_retrying(&mut poll, &mut events, Some(TIMEOUT));
            assert!(
                !events.is_empty(),
                "lost wake: no event within {TIMEOUT:?} at {total}"
            );
            for (id, seq) in mailbox.drain() {
                assert_eq!(seq, next[id], "sender {id}: out of order or duplicated");
                next[id] += 1;
                total += 1;
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(next, [PER_SENDER; SENDERS]);
        // Every Sender went with its thread.
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn try_recv_until_none_rearms_the_wake() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        for round in 0..50 {
            sender.send(round).unwrap();
            sender.send(round + 1000).unwrap();
            expect_wake(&mut poll, &mut events, MAILBOX);
            assert_eq!(mailbox.try_recv(), Ok(round));
            assert_eq!(mailbox.try_recv(), Ok(round + 1000));
            assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
            expect_no_wake(&mut poll, &mut events, MAILBOX);
        }
    });
}

#[test]
fn drain_leaves_the_raw_fd_quiet() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        mailbox.sender().send("x").unwrap();
        assert!(is_readable(&mailbox));
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), ["x"]);
        assert!(!is_readable(&mailbox));
    });
}

#[test]
fn a_drain_dropped_early_keeps_the_rest_in_order() {
    let mut mailbox = Mailbox::new().unwrap();
    let sender = mailbox.sender();
    for i in 0..10 {
        sender.send(i).unwrap();
    }
    let mut drain = mailbox.drain();
    assert_eq!(drain.len(), 10);
    assert_eq!(drain.next(), Some(0));
    assert_eq!(drain.next(), Some(1));
    drop(drain);
    sender.send(10).unwrap();
    assert_eq!(mailbox.try_recv(), Ok(2));
    assert_eq!(
        mailbox.drain().collect::<Vec<_>>(),
        (3..=10).collect::<Vec<_>>()
    );
}

#[test]
fn wait_times_out_then_sees_a_message() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let start = Instant::now();
        assert!(!mailbox.wait(Some(Duration::from_millis(30))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
        let sender = mailbox.sender();
        let worker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            sender.send(5).unwrap();
        });
        assert!(mailbox.wait(Some(TIMEOUT)).unwrap());
        assert_eq!(mailbox.try_recv(), Ok(5));
        worker.join().unwrap();
        // Already queued: no blocking.
        mailbox.sender().send(6).unwrap();
        assert!(mailbox.wait(None).unwrap());
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [6]);
    });
}

/// Not Debug, not Clone: SendError must not need either.
struct Opaque(u32);

#[test]
fn send_after_mailbox_drop_gives_the_message_back() {
    for_each_backend!(|backend| {
        let mailbox = Mailbox::with_backend(backend).unwrap();
        let sender = mailbox.sender();
        drop(mailbox);
        let err: SendError<Opaque> = sender.send(Opaque(9)).unwrap_err();
        assert_eq!(format!("{err:?}"), "SendError(..)");
        assert!(!err.to_string().is_empty());
        let boxed: Box<dyn std::error::Error> = Box::new(SendError(Opaque(1)));
        drop(boxed);
        assert_eq!(err.0 .0, 9);
        assert_eq!(err.into_inner().0, 9);
    });
}

/// Counts its drops in a per-id slot, to prove each message drops once.
struct Counted {
    id: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::Relaxed);
    }
}

fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

#[test]
fn messages_queued_at_drop_are_dropped_exactly_once() {
    let drops = counters(100);
    let mut mailbox = Mailbox::new().unwrap();
    let sender = mailbox.sender();
    for id in 0..100 {
        sender
            .send(Counted {
                id,
                drops: Arc::clone(&drops),
            })
            .map_err(|_| "send")
            .unwrap();
    }
    // Some taken and dropped by the loop, some left in a half-read drain,
    // the rest still queued.
    let mut drain = mailbox.drain();
    for _ in 0..30 {
        drop(drain.next().unwrap());
    }
    drop(drain);
    assert_eq!(
        drops
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum::<usize>(),
        30
    );
    drop(mailbox);
    for (id, d) in drops.iter().enumerate() {
        assert_eq!(d.load(Ordering::Relaxed), 1, "message {id}");
    }
    drop(sender);
}

/// Sends racing the Mailbox's drop: every message is received, or handed
/// back in `SendError`, or dropped with the queue; each is dropped once.
#[test]
fn sends_racing_the_mailbox_drop_are_never_stranded() {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 2_000;
    for round in 0..40 {
        let drops = counters(SENDERS * PER_SENDER);
        let received = Arc::new(AtomicUsize::new(0));
        let returned = Arc::new(AtomicUsize::new(0));
        let mut mailbox = Mailbox::new().unwrap();
        let start = Arc::new(Barrier::new(SENDERS + 1));
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let sender = mailbox.sender();
                let (drops, returned, start) = (
                    Arc::clone(&drops),
                    Arc::clone(&returned),
                    Arc::clone(&start),
                );
                thread::spawn(move || {
                    start.wait();
                    for i in 0..PER_SENDER {
                        let msg = Counted {
                            id: s * PER_SENDER + i,
                            drops: Arc::clone(&drops),
                        };
                        if let Err(SendError(msg)) = sender.send(msg) {
                            assert_eq!(msg.drops[msg.id].load(Ordering::Relaxed), 0);
                            returned.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        start.wait();
        // Receive a varying amount, then drop the mailbox mid-stream.
        for _ in 0..round * 5 {
            received.fetch_add(mailbox.drain().count(), Ordering::Relaxed);
        }
        drop(mailbox);
        for s in senders {
            s.join().unwrap();
        }
        for (id, d) in drops.iter().enumerate() {
            assert_eq!(d.load(Ordering::Relaxed), 1, "round {round}: message {id}");
        }
        assert!(
            received.load(Ordering::Relaxed) + returned.load(Ordering::Relaxed)
                <= SENDERS * PER_SENDER
        );
    }
}

#[test]
fn unsupported_interest_is_rejected() {
    let poll = Poll::new().unwrap();
    let mut mailbox = Mailbox::<()>::new().unwrap();
    let err = poll
        .registry()
        .register(&mut mailbox, MAILBOX, Interest::WRITABLE)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn senders_from_several_threads_are_fifo_each_with_wait() {
    // No reactor: the consumer blocks in Mailbox::wait.
    let mut mailbox = Mailbox::new().unwrap();
    let senders: Vec<_> = (0..3)
        .map(|id| {
            let sender = mailbox.sender();
            thread::spawn(move || {
                for seq in 0..10_000u32 {
                    sender.send((id, seq)).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u32; 3];
    let mut seen = HashSet::new();
    while next.iter().sum::<u32>() < 30_000 {
        assert!(
            mailbox.wait(Some(TIMEOUT)).unwrap(),
            "lost wake at {next:?}"
        );
        for (id, seq) in mailbox.drain() {
            assert_eq!(seq, next[id]);
            assert!(seen.insert((id, seq)));
            next[id] += 1;
        }
    }
    for s in senders {
        s.join().unwrap();
    }
}

/// One `Sender` shared by reference among threads (it is `Sync`), against a
/// mio loop: nothing lost or duplicated, each thread's messages in the
/// order it sent them.
#[test]
fn one_sender_shared_by_threads_loses_nothing_and_keeps_each_threads_order() {
    const THREADS: usize = 4;
    const PER_THREAD: u32 = 50_000;
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        let mut events = Events::with_capacity(8);
        thread::scope(|s| {
            for id in 0..THREADS {
                let sender = &sender;
                s.spawn(move || {
                    for seq in 0..PER_THREAD {
                        sender.send((id, seq)).unwrap();
                    }
                });
            }
            let mut next = [0u32; THREADS];
            while next.iter().sum::<u32>() < THREADS as u32 * PER_THREAD {
                poll_retrying(&mut poll, &mut events, Some(TIMEOUT));
                assert!(!events.is_empty(), "{backend}: lost wake at {next:?}");
                for (id, seq) in mailbox.drain() {
                    assert_eq!(seq, next[id], "{backend}: thread {id}");
                    next[id] += 1;
                }
            }
        });
    });
}

/// Senders with lanes of their own made and dropped while another sends:
/// the messages of a dropped Sender still arrive, each Sender's in order,
/// and a Sender made after the Mailbox is gone (on a new lane, or reusing a
/// dropped Sender's) fails.
#[test]
fn senders_come_and_go_without_losing_messages() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let keeper = mailbox.sender();
        let mut got = Vec::new();
        for round in 0..100u32 {
            // A short-lived Sender per round, on a lane of its own (the one
            // the last round's gave back), dropped before the drain.
            let sender = keeper.clone_with_lane();
            sender.send((round, 0)).unwrap();
            sender.send((round, 1)).unwrap();
            drop(sender);
            keeper.send((u32::MAX, round)).unwrap();
            if round % 3 == 0 {
                got.extend(mailbox.drain());
            }
        }
        got.extend(mailbox.drain());
        assert_eq!(got.len(), 300, "{backend}");
        let mut next = HashMap::new();
        for (who, seq) in got {
            let expected = next.entry(who).or_insert(0);
            assert_eq!(seq, *expected, "{backend}: sender {who}");
            *expected += 1;
        }
        assert_eq!(next[&u32::MAX], 100, "{backend}");

        let idle = keeper.clone_with_lane();
        drop(idle); // its lane is idle now, and reused below
        drop(mailbox);
        let reused = keeper.clone_with_lane();
        let new = keeper.clone_with_lane();
        assert_eq!(reused.send((0, 0)).unwrap_err().0, (0, 0), "{backend}");
        assert_eq!(new.send((0, 1)).unwrap_err().0, (0, 1), "{backend}");
        assert_eq!(keeper.send((0, 2)).unwrap_err().0, (0, 2), "{backend}");
    });
}

/// Senders on the common lane (`sender()` and its clones) keep the order in
/// which the sends happened, across clones and across threads that hand
/// the turn to each other.
#[test]
fn the_common_lane_keeps_the_order_of_sends_across_clones_and_threads() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let sender = mailbox.sender();
        // One thread, a clone per step (a job per message).
        let mut got: Vec<(u32, u32)> = Vec::new();
        for round in 0..50u32 {
            sender.send((round, 0)).unwrap();
            let clone = sender.clone();
            clone.send((round, 1)).unwrap();
            drop(clone);
            sender.send((round, 2)).unwrap();
            if round % 7 == 0 {
                got.extend(mailbox.try_recv()); // a take between rounds
            }
        }
        got.extend(mailbox.drain());
        let expected: Vec<(u32, u32)> = (0..50u32)
            .flat_map(|r| (0..3).map(move |i| (r, i)))
            .collect();
        assert_eq!(got, expected, "{backend}");

        // Two threads taking turns, each with its own clone: a baton passed
        // through a channel orders each send after the other thread's last.
        let (to_b, from_a) = std::sync::mpsc::channel::<()>();
        let (to_a, from_b) = std::sync::mpsc::channel::<()>();
        let (a, b) = (sender.clone(), sender.clone());
        thread::scope(|s| {
            s.spawn(move || {
                for i in 0..200u32 {
                    a.send((1000 + i, 0)).unwrap();
                    to_b.send(()).unwrap();
                    from_b.recv().unwrap();
                }
            });
            s.spawn(move || {
                for i in 0..200u32 {
                    from_a.recv().unwrap();
                    b.send((1000 + i, 1)).unwrap();
                    to_a.send(()).unwrap();
                }
            });
        });
        let got: Vec<(u32, u32)> = mailbox.drain().collect();
        let expected: Vec<(u32, u32)> = (1000..1200u32).flat_map(|i| [(i, 0), (i, 1)]).collect();
        assert_eq!(got, expected, "{backend}");
    });
}

/// A clone of a Sender with a lane of its own shares the lane, and the lane
/// is given back only when its last Sender goes: a new lane Sender made
/// after a clone was dropped gets a lane of its own, not the one still in
/// use (whose messages would then run together with its own).
#[test]
fn a_lane_is_given_back_only_by_its_last_sender() {
    let mut mailbox = Mailbox::new().unwrap();
    let a = mailbox.sender_with_lane();
    drop(a.clone());
    let z = mailbox.sender_with_lane();
    a.send(1).unwrap();
    z.send(2).unwrap();
    a.send(3).unwrap();
    // Lane by lane, in the order they were listed: a's lane, then z's.
    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1, 3, 2]);
    let a2 = a.clone();
    drop(a);
    a2.send(4).unwrap();
    z.send(5).unwrap();
    a2.send(6).unwrap();
    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [4, 6, 5]);
}

/// A long backlog (read in place from the queue's slots rather than copied
/// out), a drain stopped early, then more messages: everything comes out
/// once, in the order sent, on the common lane and on a lane of its own.
#[test]
fn a_long_backlog_drained_in_parts_keeps_its_order() {
    const BACKLOG: u32 = 100_000;
    let mut mailbox = Mailbox::new().unwrap();
    for sender in [mailbox.sender(), mailbox.sender_with_lane()] {
        (0..BACKLOG).for_each(|i| sender.send(i).unwrap());
        let mut got: Vec<u32> = mailbox.drain().take(10).collect();
        (BACKLOG..BACKLOG + 5).for_each(|i| sender.send(i).unwrap());
        got.extend(mailbox.drain().take(20));
        while let Ok(i) = mailbox.try_recv() {
            got.push(i);
        }
        assert!(got.iter().copied().eq(0..BACKLOG + 5), "out of order");
    }
}
