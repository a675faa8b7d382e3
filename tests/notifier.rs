//! Notifier and Waker through the public API, on every backend.

mod util;

use std::io;
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use util::{expect_no_wake, expect_wake, is_readable, poll_retrying, wakes_in_fd, TIMEOUT};
use wakefd::{Backend, Notifier, Waker};

const NOTIFIER: Token = Token(7);

#[test]
fn types_are_send_sync_and_waker_is_one_pointer() {
    util::assert_send::<Notifier>();
    util::assert_sync::<Notifier>();
    util::assert_send::<Waker>();
    util::assert_sync::<Waker>();
    assert_eq!(std::mem::size_of::<Waker>(), std::mem::size_of::<usize>());
    assert_eq!(
        std::mem::size_of::<Option<Waker>>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn backend_names_round_trip() {
    let names = [
        (Backend::EventFd, "eventfd"),
        (Backend::Pipe, "pipe"),
        (Backend::UnixSocketPair, "socketpair"),
        (Backend::TcpLoopback, "tcp"),
    ];
    for (backend, name) in names {
        assert_eq!(backend.to_string(), name);
        assert_eq!(name.parse::<Backend>().unwrap(), backend);
    }
}

#[test]
fn unknown_backend_name_lists_the_valid_ones() {
    let err = "bogus".parse::<Backend>().unwrap_err();
    let msg = err.to_string();
    for name in ["bogus", "eventfd", "pipe", "socketpair", "tcp"] {
        assert!(msg.contains(name), "{msg:?} does not mention {name}");
    }
    let _: &dyn std::error::Error = &err;
}

// eventfd is Linux/Android-only (the cfg mio and polling use for it).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn linux_has_all_four_backends_eventfd_first() {
    assert_eq!(Backend::default(), Backend::EventFd);
    assert_eq!(
        Backend::available(),
        [
            Backend::EventFd,
            Backend::Pipe,
            Backend::UnixSocketPair,
            Backend::TcpLoopback
        ]
    );
    assert_eq!(Notifier::new().unwrap().backend(), Backend::EventFd);
}

// Elsewhere on Unix there is no eventfd: the pipe is the best backend.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
#[test]
fn without_eventfd_the_pipe_comes_first_and_eventfd_is_unsupported() {
    assert_eq!(Backend::default(), Backend::Pipe);
    assert_eq!(
        Backend::available(),
        [Backend::Pipe, Backend::UnixSocketPair, Backend::TcpLoopback]
    );
    assert_eq!(Notifier::new().unwrap().backend(), Backend::Pipe);
    let err = Notifier::with_backend(Backend::EventFd).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
}

// Windows has the loopback TCP pair alone.
#[cfg(windows)]
#[test]
fn windows_has_tcp_loopback_only_and_the_others_are_unsupported() {
    assert_eq!(Backend::default(), Backend::TcpLoopback);
    assert_eq!(Backend::available(), [Backend::TcpLoopback]);
    assert_eq!(Notifier::new().unwrap().backend(), Backend::TcpLoopback);
    for other in [Backend::EventFd, Backend::Pipe, Backend::UnixSocketPair] {
        let err = Notifier::with_backend(other).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    }
}

#[test]
fn wakes_across_threads_through_mio_poll() {
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut notifier = Notifier::with_backend(backend).unwrap();
        assert_eq!(notifier.backend(), backend);
        poll.registry()
            .register(&mut notifier, NOTIFIER, Interest::READABLE)
            .unwrap();
        expect_no_wake(&mut poll, &mut events, NOTIFIER);

        let waker = notifier.waker();
        let worker = thread::spawn(move || waker.notify());
        expect_wake(&mut poll, &mut events, NOTIFIER);
        worker.join().unwrap().unwrap();
        assert!(notifier.drain().unwrap(), "the wake was pending");
        assert!(!notifier.drain().unwrap(), "drained already");

        // Re-armed: the next notify is a fresh event.
        expect_no_wake(&mut poll, &mut events, NOTIFIER);
        notifier.waker().notify().unwrap();
        expect_wake(&mut poll, &mut events, NOTIFIER);
        assert!(notifier.drain().unwrap());
    });
}

#[test]
fn drain_without_notify_is_false() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        assert!(!notifier.drain().unwrap());
    });
}

#[test]
fn many_notifies_from_several_threads_leave_exactly_one_wake() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 30_000;
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let start = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (waker, start) = (notifier.waker(), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..PER_THREAD {
                        waker.notify().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(wakes_in_fd(&notifier, backend), 1, "coalescing failed");
        assert!(notifier.drain().unwrap());
        assert_eq!(wakes_in_fd(&notifier, backend), 0);
        assert!(!is_readable(&notifier));
    });
}

/// Two loops, each blocked in its own `mio::Poll` (edge-triggered), wake
/// each other in turn. A lost wake fails the round's bounded wait.
#[test]
fn edge_triggered_ping_pong_loses_no_wake() {
    // A loopback round trip under wine goes through its wineserver and takes
    // over a millisecond: fewer rounds keep the test within seconds there.
    const ROUNDS: u64 = if cfg!(windows) { 5_000 } else { 20_000 };
    for_each_backend!(|backend| {
        let mut ping = Notifier::with_backend(backend).unwrap();
        let mut pong = Notifier::with_backend(backend).unwrap();
        let (ping_waker, pong_waker) = (ping.waker(), pong.waker());

        let other = thread::spawn(move || {
            let mut poll = Poll::new().unwrap();
            let mut events = Events::with_capacity(8);
            poll.registry()
                .register(&mut pong, NOTIFIER, Interest::READABLE)
                .unwrap();
            for _ in 0..ROUNDS {
                wait_for_wake(&mut poll, &mut events, &pong);
                ping_waker.notify().unwrap();
            }
        });

        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut ping, NOTIFIER, Interest::READABLE)
            .unwrap();
        for _ in 0..ROUNDS {
            pong_waker.notify().unwrap();
            wait_for_wake(&mut poll, &mut events, &ping);
        }
        other.join().unwrap();
    });
}

/// Polls and drains until a drain reports a wake, each poll bounded.
fn wait_for_wake(poll: &mut Poll, events: &mut Events, notifier: &Notifier) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "lost wake: nothing within {TIMEOUT:?}");
        poll_retrying(poll, events, Some(left));
        if !events.is_empty() && notifier.drain().unwrap() {
            return;
        }
    }
}

#[test]
fn work_stored_relaxed_before_notify_is_seen_after_drain() {
    const ROUNDS: u64 = 5_000;
    for_each_backend!(|backend| {
        let mut notifier = Notifier::with_backend(backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut notifier, NOTIFIER, Interest::READABLE)
            .unwrap();
        let value = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let worker = {
            let (waker, value, acked) = (notifier.waker(), Arc::clone(&value), Arc::clone(&acked));
            thread::spawn(move || {
                for i in 1..=ROUNDS {
                    value.store(i, Ordering::Relaxed);
                    waker.notify().unwrap();
                    // Wait for the loop to see it before publishing the next.
                    let deadline = Instant::now() + TIMEOUT;
                    while acked.load(Ordering::Acquire) < i {
                        assert!(Instant::now() < deadline, "loop never acknowledged {i}");
                        thread::yield_now();
                    }
                }
            })
        };
        let mut seen = 0;
        while seen < ROUNDS {
            wait_for_wake(&mut poll, &mut events, &notifier);
            let now = value.load(Ordering::Relaxed);
            assert!(now > seen, "drained a wake but saw {now}, not past {seen}");
            seen = now;
            acked.store(seen, Ordering::Release);
        }
        worker.join().unwrap();
    });
}

/// A reactor that is not mio: a level-triggered poll of the raw fd
/// (`poll(2)`, which every Unix has; `WSAPoll` on Windows).
#[test]
fn level_triggered_poll_sees_readable_after_notify_and_quiet_after_drain() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let ready = |ms| util::readable_within(&notifier, Duration::from_millis(ms));

        assert!(!ready(0), "readable before any notify");
        notifier.waker().notify().unwrap();
        assert!(ready(1000), "not readable after notify");
        assert!(ready(0), "level-triggered: still readable until drained");
        assert!(notifier.drain().unwrap());
        assert!(!ready(0), "still readable after drain");
        notifier.waker().notify().unwrap();
        assert!(ready(1000), "not readable after the second notify");
        assert!(notifier.drain().unwrap());
        assert!(!ready(0));
    });
}

/// The same through level-triggered epoll.
// epoll is Linux/Android-only (the cfg mio and polling use for it).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn level_triggered_epoll_sees_readable_after_notify_and_quiet_after_drain() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        // SAFETY: plain system call; we own and close the returned fd.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epfd >= 0);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 42,
        };
        // SAFETY: registers the notifier's live fd with our epoll fd.
        let ret =
            unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, notifier.as_raw_fd(), &mut ev) };
        assert_eq!(ret, 0, "epoll_ctl: {}", io::Error::last_os_error());
        let ready = |timeout_ms: i32| {
            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
            // SAFETY: `out` has room for the 4 events we allow.
            let n = unsafe { libc::epoll_wait(epfd, out.as_mut_ptr(), 4, timeout_ms) };
            assert!(n >= 0, "epoll_wait: {}", io::Error::last_os_error());
            n
        };

        assert_eq!(ready(0), 0, "readable before any notify");
        notifier.waker().notify().unwrap();
        assert_eq!(ready(1000), 1, "not readable after notify");
        assert_eq!(ready(0), 1, "level-triggered: still readable until drained");
        assert!(notifier.drain().unwrap());
        assert_eq!(ready(0), 0, "still readable after drain");
        notifier.waker().notify().unwrap();
        assert_eq!(ready(1000), 1, "not readable after the second notify");
        assert!(notifier.drain().unwrap());
        assert_eq!(ready(0), 0);
        // SAFETY: closes the epoll fd we created, once.
        unsafe { libc::close(epfd) };
    });
}

#[test]
fn wait_times_out_then_wakes() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let start = Instant::now();
        assert!(!notifier.wait(Some(Duration::from_millis(30))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30), "woke early");
        assert!(!notifier.wait(Some(Duration::ZERO)).unwrap());

        let waker = notifier.waker();
        let worker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            waker.notify()
        });
        assert!(notifier.wait(Some(TIMEOUT)).unwrap());
        worker.join().unwrap().unwrap();
        assert!(!is_readable(&notifier), "wait drains");
        assert!(!notifier.drain().unwrap());

        notifier.waker().notify().unwrap();
        assert!(notifier.wait(None).unwrap());
    });
}

#[test]
fn notify_after_notifier_drop_is_broken_pipe() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        waker.notify().unwrap();
        drop(notifier);
        for w in [waker.clone(), waker] {
            assert_eq!(w.notify().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        }
    });
}

#[test]
fn registering_without_readable_interest_is_an_error() {
    let poll = Poll::new().unwrap();
    let mut notifier = Notifier::new().unwrap();
    let err = poll
        .registry()
        .register(&mut notifier, NOTIFIER, Interest::WRITABLE)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// Deregistered from mio, the eventfd backend reads again on drain, so a
/// level-triggered watcher sees it quiet.
#[test]
fn drain_reads_again_after_deregister() {
    for_each_backend!(|backend| {
        let poll = Poll::new().unwrap();
        let mut notifier = Notifier::with_backend(backend).unwrap();
        poll.registry()
            .register(&mut notifier, NOTIFIER, Interest::READABLE)
            .unwrap();
        notifier.waker().notify().unwrap();
        assert!(notifier.drain().unwrap());
        poll.registry().deregister(&mut notifier).unwrap();
        notifier.waker().notify().unwrap();
        assert!(notifier.drain().unwrap());
        assert!(!is_readable(&notifier), "readable after drain");
        assert_eq!(wakes_in_fd(&notifier, backend), 0);
    });
}

/// An eventfd counter that is never read (the mio no-read mode) fills after
/// 2^64 - 2 wakes; notify then resets it so mio still gets an edge.
// eventfd is Linux/Android-only (the cfg mio and polling use for it).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn full_eventfd_counter_still_wakes_mio() {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let mut notifier = Notifier::with_backend(Backend::EventFd).unwrap();
    poll.registry()
        .register(&mut notifier, NOTIFIER, Interest::READABLE)
        .unwrap();
    let fill: u64 = u64::MAX - 1;
    // SAFETY: writes 8 bytes from a live u64 to the notifier's open fd.
    let n = unsafe { libc::write(notifier.as_raw_fd(), (&fill as *const u64).cast(), 8) };
    assert_eq!(n, 8);
    expect_wake(&mut poll, &mut events, NOTIFIER);
    assert!(!notifier.drain().unwrap(), "no wake was pending");
    notifier.waker().notify().unwrap();
    expect_wake(&mut poll, &mut events, NOTIFIER);
    assert!(notifier.drain().unwrap());
}

#[test]
fn debug_output_names_the_backend() {
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let text = format!("{notifier:?} {:?}", notifier.waker());
        assert!(text.contains(&format!("{backend:?}")), "{text}");
    });
}

/// While registered with mio the eventfd counter is not read, so it stays
/// non-zero; neither `wait` nor a later `drain` may take that for a wake.
#[test]
fn an_unread_counter_is_not_reported_as_a_wake() {
    for_each_backend!(|backend| {
        let poll = Poll::new().unwrap();
        let mut notifier = Notifier::with_backend(backend).unwrap();
        poll.registry()
            .register(&mut notifier, NOTIFIER, Interest::READABLE)
            .unwrap();
        notifier.waker().notify().unwrap();
        assert!(notifier.drain().unwrap());
        let start = Instant::now();
        assert!(
            !notifier.wait(Some(Duration::from_millis(50))).unwrap(),
            "spurious wake"
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
        poll.registry().deregister(&mut notifier).unwrap();
        assert!(!notifier.drain().unwrap(), "no notify since the last drain");
        assert!(!is_readable(&notifier));
    });
}
