//! Failed wake writes, through the hidden fault hook: a wake write that
//! fails is never the end of a wake, on every backend, under mio and under a
//! level-triggered poll(2). Built only with
//! `RUSTFLAGS="--cfg wakefd_fault_injection"` (`.ci/run` does).
#![cfg(wakefd_fault_injection)]

mod util;

use mio::{Events, Interest, Poll, Token};
use util::{expect_no_wake, expect_wake, readable_within, TIMEOUT};
use wakefd::{Backend, Mailbox, Notifier, TryRecvError};

const NOTIFIER: Token = Token(0);
const MAILBOX: Token = Token(1);

fn registered(backend: Backend) -> (Poll, Notifier, Events) {
    util::registered_with(Notifier::with_backend(backend).unwrap(), NOTIFIER)
}

/// A failed wake write does not swallow the next notify.
#[test]
fn a_failed_write_swallows_no_later_notify() {
    for_each_backend!(|backend| {
        let (mut poll, notifier, mut events) = registered(backend);
        let waker = notifier.waker();
        notifier.fail_next_writes(1);
        let err = waker.notify().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS));
        waker.notify().unwrap(); // writes, instead of coalescing
        expect_wake(&mut poll, &mut events, NOTIFIER);
        assert!(notifier.drain().unwrap());
        let stats = notifier.stats();
        assert_eq!(
            (stats.write_errors, stats.wakes_written),
            (1, 1),
            "{stats:?}"
        );
    });
}

/// A wake write that fails: the message is not lost, and the next send
/// wakes the loop although it finds the queue non-empty.
#[test]
fn a_failed_wake_write_is_made_up_by_the_next_send() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let sender = mailbox.sender();
        // One failure: the send retries at once.
        mailbox.fail_next_writes(1);
        sender.send(0).unwrap();
        expect_wake(&mut poll, &mut events, MAILBOX);
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [0]);
        // Two: the wake and its retry fail.
        mailbox.fail_next_writes(2);
        sender.send(1).unwrap();
        expect_no_wake(&mut poll, &mut events, MAILBOX);
        sender.send(2).unwrap(); // the queue is not empty, but it wakes
        expect_wake(&mut poll, &mut events, MAILBOX);
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1, 2]);
        let stats = mailbox.stats();
        assert_eq!((stats.write_errors, stats.wakes_written), (3, 2));
        // And everything after is normal.
        sender.send(3).unwrap();
        expect_wake(&mut poll, &mut events, MAILBOX);
        assert_eq!(mailbox.try_recv(), Ok(3));
    });
}

/// A failed wake write of the loop's own wake for leftovers is retried by
/// the next send.
#[test]
fn a_failed_wake_for_leftovers_is_retried_by_a_send() {
    let mut mailbox = Mailbox::new().unwrap();
    let sender = mailbox.sender();
    sender.send(1).unwrap();
    sender.send(2).unwrap();
    assert!(mailbox.wait(Some(TIMEOUT)).unwrap());
    mailbox.fail_next_writes(1);
    assert_eq!(mailbox.try_recv(), Ok(1)); // its wake for `2` fails
    sender.send(3).unwrap(); // finds the queue empty: wakes
    assert!(readable_within(&mailbox, TIMEOUT));
    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [2, 3]);
}

/// How the loop watches the fd in a failed-write test.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// Registered with mio (edge-triggered).
    Mio,
    /// A level-triggered poll(2) of the raw fd.
    Level,
}

/// A mailbox on `backend`, watched as `watch`; `ready` waits for a
/// readiness event (up to `TIMEOUT`), `quiet` asserts none comes.
struct Watched {
    mailbox: Mailbox<u32>,
    poll: Poll,
    events: Events,
    watch: Watch,
}

impl Watched {
    fn new(backend: Backend, watch: Watch) -> Watched {
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let poll = Poll::new().unwrap();
        if let Watch::Mio = watch {
            poll.registry()
                .register(&mut mailbox, MAILBOX, Interest::READABLE)
                .unwrap();
        }
        Watched {
            mailbox,
            poll,
            events: Events::with_capacity(8),
            watch,
        }
    }

    fn ready(&mut self) {
        match self.watch {
            Watch::Mio => expect_wake(&mut self.poll, &mut self.events, MAILBOX),
            Watch::Level => assert!(
                readable_within(&self.mailbox, TIMEOUT),
                "not readable within {TIMEOUT:?}"
            ),
        }
    }
}

const WATCHES: [Watch; 2] = [Watch::Mio, Watch::Level];

/// The last Sender's drop wakes the loop even when its first write fails:
/// the loop learns of the disconnection.
#[test]
fn a_failed_disconnect_wake_is_retried() {
    for_each_backend!(|backend| {
        for watch in WATCHES {
            eprintln!("-- {watch:?}");
            let mut w = Watched::new(backend, watch);
            let sender = w.mailbox.sender();
            w.mailbox.fail_next_writes(1);
            drop(sender);
            w.ready();
            assert_eq!(w.mailbox.try_recv(), Err(TryRecvError::Disconnected));
            assert_eq!(w.mailbox.stats().write_errors, 1);
        }
    });
}

/// The loop's own wake for the messages a `try_recv` leaves behind is
/// retried when its write fails: the next event comes without any send.
#[test]
fn a_failed_leftovers_wake_is_retried_by_the_loop() {
    for_each_backend!(|backend| {
        for watch in WATCHES {
            eprintln!("-- {watch:?}");
            let mut w = Watched::new(backend, watch);
            let sender = w.mailbox.sender();
            sender.send(1).unwrap();
            sender.send(2).unwrap();
            w.ready();
            w.mailbox.fail_next_writes(1);
            assert_eq!(w.mailbox.try_recv(), Ok(1)); // its wake for `2` fails once
            w.ready();
            assert_eq!(w.mailbox.try_recv(), Ok(2));
            assert_eq!(w.mailbox.stats().write_errors, 1);
        }
    });
}

/// The same for a `Drain` dropped early.
#[test]
fn a_failed_wake_for_a_dropped_drain_is_retried() {
    for_each_backend!(|backend| {
        for watch in WATCHES {
            eprintln!("-- {watch:?}");
            let mut w = Watched::new(backend, watch);
            let sender = w.mailbox.sender();
            for i in 0..3 {
                sender.send(i).unwrap();
            }
            w.ready();
            w.mailbox.fail_next_writes(1);
            assert_eq!(w.mailbox.drain().next(), Some(0));
            w.ready();
            assert_eq!(w.mailbox.drain().collect::<Vec<_>>(), [1, 2]);
        }
    });
}
