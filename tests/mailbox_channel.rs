//! The Mailbox as a channel: bounded capacity with back-pressure, state,
//! and blocking receive, through the public API.

mod util;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use util::{expect_wake, TIMEOUT};
use wakefd::{
    Backend, Mailbox, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};

const MAILBOX: Token = Token(1);

#[test]
fn a_capacity_of_zero_or_too_large_is_invalid_input() {
    for cap in [0, usize::MAX, usize::MAX / 2] {
        let err = Mailbox::<u8>::bounded(cap).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "cap {cap}");
    }
    let err = Mailbox::<u8>::bounded_with_backend(0, Backend::default()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(Mailbox::<u8>::bounded(usize::MAX / 4).is_ok());
}

#[test]
fn never_more_than_cap_count_and_the_loops_buffer_counts() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::bounded_with_backend(3, backend).unwrap();
        assert_eq!(mailbox.capacity(), Some(3));
        let sender = mailbox.sender();
        for i in 0..3 {
            sender.try_send(i).unwrap();
        }
        assert_eq!(sender.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!((mailbox.len(), sender.len()), (3, 3));
        // A dropped Drain's leftovers are still in the mailbox and count.
        assert_eq!(mailbox.drain().next(), Some(0));
        assert_eq!(mailbox.len(), 2);
        sender.try_send(3).unwrap();
        assert_eq!(sender.try_send(4), Err(TrySendError::Full(4)));
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(mailbox.is_empty());
        sender.try_send(4).unwrap();
        assert_eq!(mailbox.try_recv(), Ok(4));
    });
}

#[test]
fn an_unbounded_mailbox_is_never_full_and_counts_too() {
    let mut mailbox = Mailbox::new().unwrap();
    assert_eq!(mailbox.capacity(), None);
    let (common, own) = (mailbox.sender(), mailbox.sender_with_lane());
    for i in 0..1000 {
        common.try_send(i).unwrap();
        own.send(i).unwrap();
    }
    assert_eq!((mailbox.len(), common.len(), own.len()), (2000, 2000, 2000));
    assert_eq!(mailbox.drain().take(500).count(), 500);
    assert_eq!(mailbox.len(), 1500);
    assert_eq!(mailbox.drain().count(), 1500);
    assert!(mailbox.is_empty() && common.is_empty());
}

#[test]
fn a_blocked_send_is_woken_when_the_loop_takes_a_message() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::bounded_with_backend(1, backend).unwrap();
        let sender = mailbox.sender();
        sender.send(0).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let worker = {
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let sent = sender.send(1);
                done.store(true, Relaxed);
                sent
            })
        };
        thread::sleep(Duration::from_millis(20));
        assert!(!done.load(Relaxed), "send did not block on a full mailbox");
        assert_eq!(mailbox.recv_timeout(TIMEOUT), Ok(0));
        assert_eq!(worker.join().unwrap(), Ok(()));
        assert_eq!(mailbox.recv_timeout(TIMEOUT), Ok(1));
    });
}

#[test]
fn blocked_senders_get_their_message_back_when_the_mailbox_is_dropped() {
    let mailbox = Mailbox::bounded(1).unwrap();
    let sender = mailbox.sender();
    sender.send(String::from("queued")).unwrap();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let sender = sender.clone();
            thread::spawn(move || sender.send(format!("blocked {i}")))
        })
        .collect();
    thread::sleep(Duration::from_millis(20));
    drop(mailbox);
    for (i, worker) in workers.into_iter().enumerate() {
        let SendError(msg) = worker.join().unwrap().unwrap_err();
        assert_eq!(msg, format!("blocked {i}"));
    }
    assert!(sender.is_closed());
    assert_eq!(
        sender.try_send(String::from("late")).unwrap_err(),
        TrySendError::Disconnected(String::from("late"))
    );
}

#[test]
fn send_timeout_waits_at_least_its_timeout_and_duration_max_is_forever() {
    let mut mailbox = Mailbox::bounded(1).unwrap();
    let sender = mailbox.sender();
    sender.send_timeout(1, Duration::MAX).unwrap();
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    assert_eq!(
        sender.send_timeout(2, timeout),
        Err(SendTimeoutError::Timeout(2))
    );
    assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
    let worker = {
        let sender = sender.clone();
        thread::spawn(move || sender.send_timeout(3, Duration::MAX))
    };
    thread::sleep(Duration::from_millis(20));
    assert_eq!(mailbox.recv_timeout(TIMEOUT), Ok(1));
    assert_eq!(worker.join().unwrap(), Ok(()));
    assert_eq!(mailbox.recv_timeout(TIMEOUT), Ok(3));
    drop(mailbox);
    assert_eq!(
        sender.send_timeout(4, Duration::MAX),
        Err(SendTimeoutError::Disconnected(4))
    );
}

#[test]
fn error_types_display_debug_and_give_the_message_back() {
    struct NotDebug(u8);
    fn shown(e: impl std::error::Error) -> String {
        e.to_string()
    }
    // Each type's variants display differently.
    assert_ne!(
        shown(TrySendError::Full(NotDebug(1))),
        shown(TrySendError::Disconnected(NotDebug(1)))
    );
    assert_ne!(
        shown(SendTimeoutError::Timeout(NotDebug(1))),
        shown(SendTimeoutError::Disconnected(NotDebug(1)))
    );
    assert_ne!(
        shown(RecvTimeoutError::Timeout),
        shown(RecvTimeoutError::Disconnected)
    );
    assert!(!shown(RecvError).is_empty());
    assert!(!shown(SendError(NotDebug(1))).is_empty());
    assert_eq!(format!("{:?}", TrySendError::Full(NotDebug(0))), "Full(..)");
    assert_eq!(
        format!("{:?}", SendTimeoutError::Timeout(NotDebug(0))),
        "Timeout(..)"
    );
    assert_eq!(TrySendError::Full(NotDebug(7)).into_inner().0, 7);
    assert_eq!(TrySendError::Disconnected(NotDebug(6)).into_inner().0, 6);
    assert_eq!(SendTimeoutError::Timeout(NotDebug(9)).into_inner().0, 9);
    assert_eq!(
        SendTimeoutError::Disconnected(NotDebug(8)).into_inner().0,
        8
    );
}

#[test]
fn recv_takes_in_order_then_reports_disconnection() {
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::bounded_with_backend(4, backend).unwrap();
        let sender = mailbox.sender();
        let worker = thread::spawn(move || {
            for i in 0..100 {
                sender.send(i).unwrap();
            }
        });
        for i in 0..100 {
            assert_eq!(mailbox.recv_timeout(TIMEOUT), Ok(i));
        }
        worker.join().unwrap();
        assert!(mailbox.is_disconnected());
        assert_eq!(mailbox.recv(), Err(RecvError));
        assert_eq!(
            mailbox.recv_timeout(Duration::MAX),
            Err(RecvTimeoutError::Disconnected)
        );
    });
}

#[test]
fn recv_timeout_is_never_early_and_is_precise_on_linux() {
    let mut mailbox = Mailbox::<u8>::new().unwrap();
    let _sender = mailbox.sender();
    let timeout = Duration::from_micros(200);
    let mut took: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(
                mailbox.recv_timeout(timeout),
                Err(RecvTimeoutError::Timeout)
            );
            start.elapsed()
        })
        .collect();
    took.sort();
    assert!(took[0] >= timeout, "returned early: {:?}", took[0]);
    // ppoll(2): the median wait is well under the millisecond that poll(2)
    // would round it up to.
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert!(took[25] < Duration::from_millis(1), "median {:?}", took[25]);
    }
}

#[test]
fn sender_state_follows_the_mailbox() {
    let mut mailbox = Mailbox::new().unwrap();
    let sender = mailbox.sender();
    assert!(!sender.is_closed() && !mailbox.is_disconnected());
    sender.send(1).unwrap();
    drop(sender);
    // Disconnected with a message still queued: it is still handed out.
    assert!(mailbox.is_disconnected());
    assert_eq!(mailbox.len(), 1);
    assert_eq!(mailbox.try_recv(), Ok(1));
    assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
    let sender = mailbox.sender();
    assert!(!mailbox.is_disconnected());
    drop(mailbox);
    assert!(sender.is_closed());
}

/// 4 senders into a bounded mailbox through mio, with a slow loop that
/// takes one message per event: the count never passes the capacity and
/// reaches it, and every message arrives, FIFO per sender.
#[test]
fn a_bounded_four_to_one_stream_holds_at_most_cap_and_loses_nothing() {
    const CAP: usize = 8;
    const PER_SENDER: u32 = 300;
    for_each_backend!(|backend| {
        let mut mailbox = Mailbox::bounded_with_backend(CAP, backend).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(&mut mailbox, MAILBOX, Interest::READABLE)
            .unwrap();
        let workers: Vec<_> = (0..4u32)
            .map(|id| {
                let sender = mailbox.sender_with_lane();
                thread::spawn(move || {
                    for i in 0..PER_SENDER {
                        sender.send((id, i)).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u32; 4];
        let mut peak = 0;
        let deadline = Instant::now() + TIMEOUT * 3;
        while next.iter().any(|&n| n < PER_SENDER) {
            assert!(Instant::now() < deadline, "stuck at {next:?}");
            expect_wake(&mut poll, &mut events, MAILBOX);
            peak = peak.max(mailbox.len());
            assert!(mailbox.len() <= CAP, "{} counted", mailbox.len());
            if let Ok((id, i)) = mailbox.try_recv() {
                assert_eq!(i, next[id as usize], "sender {id} out of order");
                next[id as usize] += 1;
            }
            thread::sleep(Duration::from_micros(50)); // a slow loop
        }
        workers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(peak, CAP, "the senders never filled the mailbox");
        assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// Senders blocked on a full mailbox sleep: 4 of them blocked for 500 ms
/// use well under 100 ms of CPU between them (each measures its own
/// thread's CPU time, so other tests running meanwhile do not count).
#[cfg(unix)]
#[test]
fn blocked_senders_do_not_spin() {
    fn thread_cpu_time() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime fills the timespec it is given.
        let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(ret, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    let mut mailbox = Mailbox::bounded(1).unwrap();
    let sender = mailbox.sender();
    sender.send(0).unwrap();
    let workers: Vec<_> = (1..=4)
        .map(|i| {
            let sender = sender.clone();
            thread::spawn(move || {
                let before = thread_cpu_time();
                let started = Instant::now();
                sender.send(i).unwrap();
                (started.elapsed(), thread_cpu_time() - before)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let mut got = vec![];
    for _ in 0..5 {
        got.push(mailbox.recv_timeout(TIMEOUT).unwrap());
    }
    let (mut blocked, mut used) = (Duration::ZERO, Duration::ZERO);
    for worker in workers {
        let (b, u) = worker.join().unwrap();
        blocked += b;
        used += u;
    }
    got.sort();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(
        blocked >= Duration::from_millis(1500),
        "{blocked:?} blocked in all"
    );
    assert!(used < Duration::from_millis(100), "{used:?} of CPU");
}

/// `recv` on a mailbox with no Sender (none was ever made) cannot be
/// answered by anyone: it reports the disconnection instead of hanging.
#[test]
fn recv_with_no_sender_at_all_does_not_hang() {
    let mut mailbox = Mailbox::<u8>::new().unwrap();
    assert_eq!(mailbox.recv(), Err(RecvError));
    assert_eq!(
        mailbox.recv_timeout(Duration::MAX),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
}
