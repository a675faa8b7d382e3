//! Moving a notifier from mio to a level-triggered watcher of its raw fd.
//!
//! While a notifier is registered with mio on a backend whose edge-triggered
//! watcher gets an edge per write (an eventfd), `drain` skips the read, so
//! the fd stays readable. `deregister` restores reading: after it, one
//! `drain` leaves the fd quiet for `poll(2)`. A `Poll` dropped without
//! deregistering leaves `drain` skipping the read (documented on
//! `Notifier::drain`: "deregister it before you drop the Poll"), but `wait`
//! always reads.

mod util;

use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use util::{expect_wake, is_readable, TIMEOUT};
use wakefd::{Backend, Mailbox, Notifier};

const TOKEN: Token = Token(3);

#[test]
fn after_deregister_one_drain_leaves_the_fd_quiet_for_poll2() {
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();

        waker.notify().unwrap();
        expect_wake(&mut poll, &mut events, TOKEN);
        assert!(notifier.drain().unwrap());
        if backend == Backend::EventFd {
            // Registered with mio: the counter was not read.
            assert!(is_readable(&notifier), "eventfd read while registered");
        }

        poll.registry().deregister(&mut notifier).unwrap();
        // Nothing new is pending, but the left-over counter is read.
        assert!(!notifier.drain().unwrap());
        assert!(
            !is_readable(&notifier),
            "fd readable after deregister + drain"
        );

        // From now on every drain reads: a level-triggered cycle.
        for _ in 0..3 {
            waker.notify().unwrap();
            assert!(is_readable(&notifier));
            assert!(notifier.drain().unwrap());
            assert!(!is_readable(&notifier), "fd readable after drain");
        }

        // Registered again: mio gets an edge for the next notify.
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();
        waker.notify().unwrap();
        expect_wake(&mut poll, &mut events, TOKEN);
        assert!(notifier.drain().unwrap());
    });
}

#[test]
fn after_deregister_a_mailbox_drain_leaves_the_fd_quiet_for_poll2() {
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut mailbox = Mailbox::with_backend(backend).unwrap();
        let sender = mailbox.sender();
        poll.registry()
            .register(&mut mailbox, TOKEN, Interest::READABLE)
            .unwrap();

        sender.send(1).unwrap();
        expect_wake(&mut poll, &mut events, TOKEN);
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1]);

        poll.registry().deregister(&mut mailbox).unwrap();
        assert_eq!(mailbox.drain().len(), 0);
        assert!(
            !is_readable(&mailbox),
            "fd readable after deregister + drain"
        );

        sender.send(2).unwrap();
        assert!(is_readable(&mailbox));
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [2]);
        assert!(!is_readable(&mailbox), "fd readable after drain");
    });
}

#[test]
fn after_dropping_the_poll_without_deregistering_wait_still_reads() {
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();
        waker.notify().unwrap();
        expect_wake(&mut poll, &mut events, TOKEN);
        assert!(notifier.drain().unwrap());
        drop(poll); // no deregister: the misuse `Notifier::drain` warns of

        if backend == Backend::EventFd {
            // The documented caveat: `drain` still skips the read, so a
            // level-triggered watcher of the raw fd would see it readable
            // (and a loop on it would spin) however often it drains.
            waker.notify().unwrap();
            assert!(notifier.drain().unwrap());
            assert!(notifier.drain().is_ok());
            assert!(is_readable(&notifier), "drain now reads: update the docs");
        }

        // `wait` always reads: a left-over counter is consumed and is not a
        // wake, and the fd is quiet afterwards.
        assert!(!notifier.wait(Some(Duration::from_millis(20))).unwrap());
        assert!(
            !is_readable(&notifier),
            "fd readable after a wait timed out"
        );
        for _ in 0..3 {
            waker.notify().unwrap();
            assert!(notifier.wait(Some(TIMEOUT)).unwrap());
            assert!(
                !is_readable(&notifier),
                "fd readable after wait returned true"
            );
        }

        // And from another thread, with the loop blocked in wait.
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            waker.notify()
        });
        assert!(notifier.wait(Some(TIMEOUT)).unwrap());
        worker.join().unwrap().unwrap();
        assert!(!is_readable(&notifier));
    });
}
