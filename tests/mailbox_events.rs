//! No message is ever stranded: whatever the loop does with its readiness
//! events (drains everything, stops a drain early, drops a Drain, calls
//! `try_recv` once per event, mixes them, or has a wake write fail), every
//! message queued after a loop call returns has an event coming, for an
//! edge-triggered watcher (mio) and a level-triggered one (poll(2)), on every
//! backend. Also: disconnection.

mod util;

use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use util::{expect_no_wake, expect_wake, poll_retrying, readable_within, TIMEOUT};
use wakefd::{Backend, Mailbox, TryRecvError};

const MAILBOX: Token = Token(1);

/// How the loop consumes on each readiness event.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Drain everything.
    DrainAll,
    /// Take one message from a Drain, then drop it.
    DrainOne,
    /// Take up to three from a Drain (a per-event budget), then drop it.
    DrainBudget,
    /// One `try_recv` per event.
    TryRecvOnce,
    /// `try_recv` until it says `Empty`.
    TryRecvUntilEmpty,
    /// Alternate between the others.
    Mixed,
}

const PATTERNS: [Pattern; 6] = [
    Pattern::DrainAll,
    Pattern::DrainOne,
    Pattern::DrainBudget,
    Pattern::TryRecvOnce,
    Pattern::TryRecvUntilEmpty,
    Pattern::Mixed,
];

/// Consumes according to `pattern` (event number `n`), pushing what it took.
fn consume(
    pattern: Pattern,
    n: usize,
    mailbox: &mut Mailbox<(usize, u32)>,
    got: &mut Vec<(usize, u32)>,
) {
    match pattern {
        Pattern::DrainAll => got.extend(mailbox.drain()),
        Pattern::DrainOne => got.extend(mailbox.drain().next()),
        Pattern::DrainBudget => got.extend(mailbox.drain().take(3)),
        Pattern::TryRecvOnce => got.extend(mailbox.try_recv().ok()),
        Pattern::TryRecvUntilEmpty => {
            while let Ok(msg) = mailbox.try_recv() {
                got.push(msg);
            }
        }
        Pattern::Mixed => {
            let pattern = [Pattern::DrainOne, Pattern::TryRecvOnce, Pattern::DrainAll][n % 3];
            consume(pattern, n, mailbox, got)
        }
    }
}

/// 2 senders x `per_sender` messages; the loop waits for an event before
/// each consumption, never consumes without one, and must get everything in
/// order per sender. A missing event fails the test after `TIMEOUT`.
fn run(backend: Backend, pattern: Pattern, edge_triggered: bool, per_sender: u32) {
    let mut mailbox = Mailbox::<(usize, u32)>::with_backend(backend).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    if edge_triggered {
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
    }
    let senders: Vec<_> = (0..2)
        .map(|id| {
            let sender = mailbox.sender();
            thread::spawn(move || {
                for seq in 0..per_sender {
                    sender.send((id, seq)).unwrap();
                    if seq % 16 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let total = 2 * per_sender as usize;
    let mut got = Vec::with_capacity(total);
    let mut n = 0;
    while got.len() < total {
        if edge_triggered {
            let deadline = Instant::now() + TIMEOUT;
            loop {
                poll_retrying(&mut poll, &mut events, Some(TIMEOUT));
                if events.iter().any(|e| e.token() == MAILBOX) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{backend} {pattern:?} ET: stranded: no event with {} of {total} received",
                    got.len()
                );
            }
        } else {
            assert!(
                readable_within(&mailbox, TIMEOUT),
                "{backend} {pattern:?} LT: stranded: fd quiet with {} of {total} received",
                got.len()
            );
        }
        consume(pattern, n, &mut mailbox, &mut got);
        n += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
    let mut next = [0u32; 2];
    for (id, seq) in got {
        assert_eq!(
            seq, next[id],
            "{backend} {pattern:?}: out of order or duplicated"
        );
        next[id] += 1;
    }
}

#[test]
fn every_pattern_edge_triggered_strands_nothing() {
    for_each_backend!(|backend| {
        for pattern in PATTERNS {
            run(backend, pattern, true, 300);
        }
    });
}

#[test]
fn every_pattern_level_triggered_strands_nothing() {
    for_each_backend!(|backend| {
        for pattern in PATTERNS {
            run(backend, pattern, false, 300);
        }
    });
}

/// A Drain dropped early after two messages: the rest come with a fresh
/// event.
#[test]
fn a_drain_dropped_early_gets_a_fresh_event() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        for i in 0..10 {
            sender.send(i).unwrap();
        }
        expect_wake(&mut poll, &mut events, MAILBOX);
        let mut drain = mailbox.drain();
        assert_eq!((drain.next(), drain.next()), (Some(0), Some(1)));
        drop(drain);
        expect_wake(&mut poll, &mut events, MAILBOX);
        assert_eq!(
            mailbox.drain().collect::<Vec<_>>(),
            (2..10).collect::<Vec<_>>()
        );
    });
}

/// `try_recv` once per event under mio: every message comes with an event,
/// so a loop that takes one per event never hangs.
#[test]
fn try_recv_once_per_event_gets_one_event_per_message() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        sender.send(0).unwrap();
        sender.send(1).unwrap();
        let mut got = Vec::new();
        for i in 2..200 {
            expect_wake(&mut poll, &mut events, MAILBOX);
            got.push(mailbox.try_recv().unwrap());
            sender.send(i).unwrap();
        }
        while got.len() < 200 {
            expect_wake(&mut poll, &mut events, MAILBOX);
            got.push(mailbox.try_recv().unwrap());
        }
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    });
}

/// `try_recv` until `Empty` leaves no spurious event behind.
#[test]
fn try_recv_until_empty_leaves_the_fd_quiet() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        for round in 0..20 {
            for i in 0..5 {
                sender.send(round * 5 + i).unwrap();
            }
            expect_wake(&mut poll, &mut events, MAILBOX);
            for i in 0..5 {
                assert_eq!(mailbox.try_recv(), Ok(round * 5 + i));
            }
            assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
            expect_no_wake(&mut poll, &mut events, MAILBOX);
        }
    });
}

/// The drop of the last Sender wakes the loop, and `try_recv` then says
/// `Disconnected` once the queue is empty; a new sender reconnects.
#[test]
fn the_last_sender_drop_wakes_the_loop_and_disconnects() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        let second = sender.clone();
        sender.send(1).unwrap();
        expect_wake(&mut poll, &mut events, MAILBOX);
        assert_eq!(mailbox.try_recv(), Ok(1));
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
        drop(sender);
        expect_no_wake(&mut poll, &mut events, MAILBOX);
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
        thread::spawn(move || {
            second.send(2).unwrap();
            drop(second);
        })
        .join()
        .unwrap();
        expect_wake(&mut poll, &mut events, MAILBOX);
        // The message first, then the disconnection.
        assert_eq!(mailbox.try_recv(), Ok(2));
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
        let again = mailbox.sender();
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
        drop(again);
    });
}

/// `wait` returns as soon as every sender is gone, without waiting out its
/// timeout.
#[test]
fn wait_returns_when_disconnected() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::<u8>::with_backend(backend).unwrap();
        let sender = mailbox.sender();
        let dropper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(sender);
        });
        let start = Instant::now();
        assert!(!mailbox.wait(Some(TIMEOUT)).unwrap());
        assert!(start.elapsed() < TIMEOUT, "wait ran to its timeout");
        dropper.join().unwrap();
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn try_recv_error_is_a_std_error() {
    fn is_error<E: std::error::Error + Copy + Eq + Send + Sync + 'static>(_: E) {}
    is_error(TryRecvError::Empty);
    assert_ne!(TryRecvError::Empty, TryRecvError::Disconnected);
    assert!(TryRecvError::Disconnected
        .to_string()
        .contains("disconnected"));
}
