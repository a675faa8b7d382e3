//! Sleep-aware loops, spinning, stats and failed writes through the public
//! API, on every backend.

mod util;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use util::{is_readable, TIMEOUT};
use wakefd::{KeyedNotifier, Mailbox, Notifier, Stats};

const NOTIFIER: Token = Token(0);

fn registered(backend: wakefd::Backend) -> (Poll, Notifier, Events) {
    util::registered_with(Notifier::with_backend(backend).unwrap(), NOTIFIER)
}

/// A mailbox on `backend`, registered with a new `Poll` under `NOTIFIER`.
fn registered_mailbox(backend: wakefd::Backend) -> (Poll, Mailbox<u32>, Events) {
    util::registered_with(Mailbox::with_backend(backend).unwrap(), NOTIFIER)
}

/// While the loop is awake, a notify makes no system call (nothing is
/// written), and the next `poll` returns at once with the wake.
#[test]
fn notify_to_an_awake_loop_writes_nothing() {
    for_each_backend!(|backend| {
        let (mut poll, notifier, mut events) = registered(backend);
        let waker = notifier.waker();
        let _awake = notifier.announce_awake();
        assert!(!notifier
            .poll(&mut poll, &mut events, Some(Duration::ZERO))
            .unwrap());
        for _ in 0..100 {
            waker.notify().unwrap();
            waker.notify().unwrap();
            let start = Instant::now();
            assert!(notifier
                .poll(&mut poll, &mut events, Some(TIMEOUT))
                .unwrap());
            assert!(start.elapsed() < TIMEOUT);
        }
        let stats = notifier.stats();
        assert_eq!(stats.wakes_written, 0, "{stats:?}");
        assert_eq!(stats.wakes_absorbed, 100, "{stats:?}");
        assert_eq!(stats.drains_woken, 100, "{stats:?}");
        assert!(!is_readable(&notifier));
    });
}

/// A loop blocked in `poll` is woken by a write, exactly as without the
/// announcements.
#[test]
fn a_sleeping_loop_is_woken_by_a_write() {
    for_each_backend!(|backend| {
        let (mut poll, notifier, mut events) = registered(backend);
        let waker = notifier.waker();
        let worker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            waker.notify().unwrap();
        });
        assert!(notifier
            .poll(&mut poll, &mut events, Some(TIMEOUT))
            .unwrap());
        worker.join().unwrap();
        let stats = notifier.stats();
        assert_eq!((stats.wakes_written, stats.sleeps), (1, 1), "{stats:?}");
    });
}

/// Many senders, a sleep-aware loop: every notify's work is seen, no poll
/// waits out its timeout.
#[test]
fn senders_racing_a_sleep_aware_loop_lose_nothing() {
    const SENDERS: u64 = 3;
    const PER_SENDER: u64 = 20_000;
    for_each_backend!(|backend| {
        let (mut poll, notifier, mut events) = registered(backend);
        let done = Arc::new(AtomicU64::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (waker, done) = (notifier.waker(), Arc::clone(&done));
                thread::spawn(move || {
                    for i in 0..PER_SENDER {
                        done.fetch_add(1, Ordering::Relaxed);
                        waker.notify().unwrap();
                        if i % 64 == 0 {
                            thread::sleep(Duration::from_micros(50));
                        }
                    }
                })
            })
            .collect();
        let mut seen = 0;
        while seen < SENDERS * PER_SENDER {
            let start = Instant::now();
            let woken = notifier
                .poll(&mut poll, &mut events, Some(TIMEOUT))
                .unwrap();
            assert!(start.elapsed() < TIMEOUT, "lost wake at {seen}");
            if woken {
                seen = done.load(Ordering::Relaxed);
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        let stats = notifier.stats();
        assert!(
            stats.wakes_written <= stats.drains_woken + stats.drains_spurious + 1,
            "{stats:?}"
        );
    });
}

/// A loop that announces nothing behaves as before: every wake written.
#[test]
fn a_loop_that_announces_nothing_gets_every_wake_written() {
    let notifier = Notifier::new().unwrap();
    let waker = notifier.waker();
    for _ in 0..10 {
        waker.notify().unwrap();
        assert!(is_readable(&notifier));
        assert!(notifier.drain().unwrap());
    }
    assert_eq!(notifier.stats().wakes_written, 10);
    assert_eq!(notifier.stats().wakes_absorbed, 0);
}

/// The raw-reactor way: announce, poll(2) (WSAPoll on Windows), announce,
/// drain.
#[test]
fn announcements_around_a_raw_poll() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        let awake = notifier.announce_awake();
        waker.notify().unwrap(); // absorbed
        assert!(!is_readable(&notifier));
        assert!(
            !awake.announce_sleep(),
            "a pending wake must stop the sleep"
        );
        awake.announce_awake();
        assert!(notifier.drain().unwrap());
        // Now asleep for real: the next wake is written.
        assert!(awake.announce_sleep());
        waker.notify().unwrap();
        assert!(util::readable_within(&notifier, TIMEOUT));
        awake.announce_awake();
        assert!(notifier.drain().unwrap());
        assert!(!is_readable(&notifier));
        let stats = notifier.stats();
        assert_eq!(
            (stats.wakes_absorbed, stats.wakes_written),
            (1, 1),
            "{stats:?}"
        );
    });
}

/// Two threads ping-pong through spinning `wait`s: after warm-up, no wake
/// is written (each finds the other spinning).
#[test]
fn spinning_ping_pong_writes_no_wake() {
    let mut a = Notifier::new().unwrap();
    let mut b = Notifier::new().unwrap();
    // Generous, so that a descheduled peer rarely makes the other sleep.
    a.set_spin(Duration::from_millis(50));
    b.set_spin(Duration::from_millis(50));
    assert_eq!(a.spin(), Duration::from_millis(50));
    let (to_a, to_b) = (a.waker(), b.waker());
    const ROUNDS: u32 = 2_000;
    let peer = thread::spawn(move || {
        for _ in 0..ROUNDS {
            assert!(b.wait(Some(TIMEOUT)).unwrap());
            to_a.notify().unwrap();
        }
        b.stats()
    });
    for _ in 0..ROUNDS {
        to_b.notify().unwrap();
        assert!(a.wait(Some(TIMEOUT)).unwrap());
    }
    let b_stats: Stats = peer.join().unwrap();
    let a_stats = a.stats();
    let written = a_stats.wakes_written + b_stats.wakes_written;
    let absorbed = a_stats.wakes_absorbed + b_stats.wakes_absorbed;
    assert_eq!(
        written + absorbed,
        2 * u64::from(ROUNDS),
        "{a_stats:?} {b_stats:?}"
    );
    // Nearly every wake finds the peer spinning; allow for preemption on a
    // loaded machine.
    assert!(written * 10 < absorbed, "{a_stats:?} {b_stats:?}");
}

/// Spinning `poll` through mio still sees I/O on other sources.
#[test]
fn a_spinning_poll_still_sees_other_io() {
    let mut poll = Poll::new().unwrap();
    let mut notifier = Notifier::new().unwrap();
    notifier.set_spin(Duration::from_millis(200));
    poll.registry()
        .register(&mut notifier, NOTIFIER, Interest::READABLE)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (rx, _) = listener.accept().unwrap();
    rx.set_nonblocking(true).unwrap();
    let mut rx = mio::net::TcpStream::from_std(rx);
    poll.registry()
        .register(&mut rx, Token(1), Interest::READABLE)
        .unwrap();
    std::io::Write::write_all(&mut tx, b"x").unwrap();
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    let woken = notifier
        .poll(&mut poll, &mut events, Some(TIMEOUT))
        .unwrap();
    assert!(!woken);
    assert!(events.iter().any(|e| e.token() == Token(1)));
    assert!(start.elapsed() < TIMEOUT);
}

/// The Mailbox's sleep-aware poll: sends to an awake loop make no system
/// call, and leftovers make the next poll return at once.
#[test]
fn mailbox_poll_absorbs_sends_and_strands_nothing() {
    for_each_backend!(|backend| {
        let (mut poll, mut mailbox, mut events) = registered_mailbox(backend);
        let sender = mailbox.sender();
        let _awake = mailbox.announce_awake();
        assert!(!mailbox
            .poll(&mut poll, &mut events, Some(Duration::ZERO))
            .unwrap());
        for i in 0..10 {
            sender.send(i).unwrap();
        }
        assert!(mailbox.poll(&mut poll, &mut events, Some(TIMEOUT)).unwrap());
        assert_eq!(mailbox.drain().next(), Some(0)); // leftovers
        let start = Instant::now();
        assert!(mailbox.poll(&mut poll, &mut events, Some(TIMEOUT)).unwrap());
        assert!(start.elapsed() < TIMEOUT);
        assert_eq!(
            mailbox.drain().collect::<Vec<_>>(),
            (1..10).collect::<Vec<_>>()
        );
        assert_eq!(mailbox.stats().wakes_written, 0);
        // Asleep: a send from another thread wakes it.
        let worker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            sender.send(99).unwrap();
        });
        assert!(mailbox.poll(&mut poll, &mut events, Some(TIMEOUT)).unwrap());
        worker.join().unwrap();
        assert_eq!(mailbox.try_recv(), Ok(99));
    });
}

/// Misuse never loses a wake: a loop that used `Mailbox::poll` and then
/// blocks in a plain `Poll::poll` (a shutdown path, a helper) sees the
/// message's event, since without an `Awake` guard the loop is plain once
/// `poll` returns.
#[test]
fn a_plain_poll_after_mailbox_poll_sees_the_next_send() {
    for_each_backend!(|backend| {
        let (mut poll, mut mailbox, mut events) = registered_mailbox(backend);
        let sender = mailbox.sender();
        assert!(!mailbox
            .poll(&mut poll, &mut events, Some(Duration::ZERO))
            .unwrap());
        sender.send(1).unwrap();
        util::expect_wake(&mut poll, &mut events, NOTIFIER);
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1]);
    });
}

/// The same with a spin budget: the loop spins announced awake, and is
/// plain again when `poll` returns.
#[test]
fn a_plain_poll_after_a_spinning_poll_sees_the_next_notify() {
    for_each_backend!(|backend| {
        let (mut poll, mut notifier, mut events) = registered(backend);
        notifier.set_spin(Duration::from_micros(200));
        let waker = notifier.waker();
        let notifies = thread::spawn(move || waker.notify().unwrap());
        assert!(notifier
            .poll(&mut poll, &mut events, Some(TIMEOUT))
            .unwrap());
        notifies.join().unwrap();
        notifier.waker().notify().unwrap();
        util::expect_wake(&mut poll, &mut events, NOTIFIER);
        assert!(notifier.drain().unwrap());
    });
}

/// Dropping the `Awake` guard writes a wake it absorbed, so a plain
/// blocking call next (here a raw poll(2)) sees it; and a guard dropped at
/// once (`notifier.announce_awake();`, which the compiler warns about)
/// leaves the loop plain.
#[test]
fn dropping_the_awake_guard_makes_an_absorbed_wake_visible() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        let awake = notifier.announce_awake();
        waker.notify().unwrap(); // absorbed: nothing written
        assert!(!is_readable(&notifier));
        drop(awake);
        assert!(util::readable_within(&notifier, TIMEOUT));
        assert!(notifier.drain().unwrap());

        #[allow(unused_must_use)]
        {
            notifier.announce_awake(); // the guard goes at once
        }
        waker.notify().unwrap();
        assert!(util::readable_within(&notifier, TIMEOUT));
        assert!(notifier.drain().unwrap());
        let stats = notifier.stats();
        assert_eq!((stats.wakes_absorbed, stats.wakes_written), (1, 2));
    });
}

/// A spin budget of `Duration::MAX` is valid input: `poll` and `wait`
/// spin until woken or their timeout, and never panic.
#[test]
fn a_spin_budget_of_duration_max_does_not_panic() {
    for_each_backend!(|backend| {
        let (mut poll, mut notifier, mut events) = registered(backend);
        notifier.set_spin(Duration::MAX);
        assert_eq!(notifier.spin(), Duration::MAX);
        assert!(!notifier.wait(Some(Duration::from_millis(2))).unwrap());
        assert!(!notifier
            .poll(&mut poll, &mut events, Some(Duration::from_millis(2)))
            .unwrap());
        notifier.waker().notify().unwrap();
        assert!(notifier.wait(Some(TIMEOUT)).unwrap());
        notifier.waker().notify().unwrap();
        assert!(notifier
            .poll(&mut poll, &mut events, Some(TIMEOUT))
            .unwrap());
    });
}

/// A wake absorbed while the loop was awake (PENDING set, nothing written)
/// and still pending when the loop announced sleep is seen by a `wait` that
/// follows: it returns `true` at once, not after its timeout.
#[test]
fn wait_sees_a_wake_absorbed_before_announce_sleep() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        let _awake = notifier.announce_awake();
        waker.notify().unwrap(); // absorbed: no write
        assert!(!notifier.announce_sleep(), "a wake is pending");
        let start = Instant::now();
        let woken = notifier.wait(Some(Duration::from_millis(300))).unwrap();
        assert!(
            woken,
            "wait returned false after {:?} although a notify returned Ok and was never drained",
            start.elapsed()
        );
    });
}

/// The same through `KeyedNotifier::wait`: it yields the key whose wake was
/// absorbed.
#[test]
fn keyed_wait_sees_a_key_absorbed_before_announce_sleep() {
    let mut notifier = KeyedNotifier::new(8).unwrap();
    let waker = notifier.waker(3).unwrap();
    let _awake = notifier.announce_awake();
    waker.notify().unwrap();
    assert!(!notifier.announce_sleep());
    let keys: Vec<usize> = notifier
        .wait(Some(Duration::from_millis(300)))
        .unwrap()
        .collect();
    assert_eq!(keys, [3]);
}

/// An `Awake` guard dropped on another thread while the loop blocks in
/// `Mailbox::poll` still ends the awake state: a plain `Poll::poll` next sees
/// the next send.
#[test]
fn a_guard_dropped_on_another_thread_during_poll_leaves_the_loop_plain() {
    for_each_backend!(|backend| {
        let (mut poll, mut mailbox, mut events) = registered_mailbox(backend);
        let sender = mailbox.sender();
        let awake = mailbox.announce_awake();
        let dropper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(awake);
        });
        assert!(!mailbox
            .poll(&mut poll, &mut events, Some(Duration::from_millis(100)))
            .unwrap());
        dropper.join().unwrap();
        sender.send(1).unwrap();
        util::expect_wake(&mut poll, &mut events, NOTIFIER);
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1]);
    });
}

/// A sleep-aware loop whose `Mailbox::poll` reports the mailbox's event and
/// which takes the message only after another poll (so its take reads
/// nothing) still gets an event for the next send.
#[test]
fn a_mailbox_polled_again_before_its_take_gets_the_next_event() {
    for_each_backend!(|backend| {
        let (mut poll, mut mailbox, mut events) = registered_mailbox(backend);
        let sender = mailbox.sender();
        sender.send(1).unwrap(); // a plain loop: the wake is written
        let _awake = mailbox.announce_awake();
        assert!(mailbox.poll(&mut poll, &mut events, Some(TIMEOUT)).unwrap());
        assert!(events.iter().any(|e| e.token() == NOTIFIER));
        assert!(mailbox.poll(&mut poll, &mut events, Some(TIMEOUT)).unwrap());
        assert_eq!(mailbox.try_recv(), Ok(1));

        let late = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            sender.send(2).unwrap();
        });
        let start = Instant::now();
        let mut got = None;
        while got.is_none() {
            assert!(start.elapsed() < TIMEOUT, "no event for the second send");
            if mailbox.poll(&mut poll, &mut events, Some(TIMEOUT)).unwrap() {
                got = mailbox.try_recv().ok();
            }
        }
        assert_eq!(got, Some(2));
        assert!(
            start.elapsed() < TIMEOUT,
            "the second send waited for the timeout"
        );
        late.join().unwrap();
    });
}
