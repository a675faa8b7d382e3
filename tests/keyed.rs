//! `KeyedNotifier` and `KeyedWaker` through the public API, on every backend.

mod util;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use mio::{Events, Interest, Poll, Token};
use util::{assert_send, assert_sync, expect_no_wake, expect_wake, wakes_in_fd, TIMEOUT};
use wakefd::{Backend, KeyOutOfRange, KeyedNotifier, KeyedWaker, Keys};

const TOKEN: Token = Token(7);

/// Collects one drain, asserting that its keys come in strictly ascending
/// order (so none twice) and are all in range.
fn collect(keys: Keys<'_>, capacity: usize) -> Vec<usize> {
    let keys: Vec<usize> = keys.collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "a drain yielded keys out of order or twice: {keys:?}"
    );
    assert!(keys.iter().all(|&k| k < capacity), "key out of range");
    keys
}

#[test]
fn keyed_types_are_send_and_sync() {
    assert_send::<KeyedNotifier>();
    assert_sync::<KeyedNotifier>();
    assert_send::<KeyedWaker>();
    assert_sync::<KeyedWaker>();
    fn assert_clone<T: Clone>() {}
    assert_clone::<KeyedWaker>();
    // One pointer, so that a std::task::Waker carries it as it is.
    assert_eq!(
        std::mem::size_of::<KeyedWaker>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn key_out_of_range_is_rejected() {
    let notifier = KeyedNotifier::new(100).unwrap();
    assert!(notifier.waker(99).is_ok());
    for key in [100, 101, 1 << 20, usize::MAX] {
        let err = notifier.waker(key).unwrap_err();
        assert_eq!(err.key(), key);
        assert_eq!(err.capacity(), 100);
        assert!(err.to_string().contains("out of range"), "{err}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    }
    let empty = KeyedNotifier::new(0).unwrap();
    let err: KeyOutOfRange = empty.waker(0).unwrap_err();
    assert_eq!((err.key(), err.capacity()), (0, 0));
}

#[test]
fn each_key_is_yielded_once_per_drain_however_often_notified() {
    for_each_backend!(|backend| {
        let mut notifier = KeyedNotifier::with_backend(backend, 300).unwrap();
        for key in [250, 0, 64, 250, 63, 0, 250] {
            notifier.waker(key).unwrap().notify().unwrap();
        }
        assert_eq!(collect(notifier.drain().unwrap(), 300), [0, 63, 64, 250]);
        assert_eq!(collect(notifier.drain().unwrap(), 300), []);
        // Notified again after being yielded: yielded again.
        notifier.waker(64).unwrap().notify().unwrap();
        assert_eq!(collect(notifier.drain().unwrap(), 300), [64]);
    });
}

#[test]
fn many_notifies_between_drains_write_one_wake() {
    for_each_backend!(|backend| {
        let mut notifier = KeyedNotifier::with_backend(backend, 1000).unwrap();
        let wakers: Vec<KeyedWaker> = (0..1000).map(|k| notifier.waker(k).unwrap()).collect();
        for _ in 0..3 {
            for waker in &wakers {
                waker.notify().unwrap();
            }
        }
        assert_eq!(wakes_in_fd(&notifier, backend), 1, "one wake for all keys");
        assert_eq!(collect(notifier.drain().unwrap(), 1000).len(), 1000);
        assert_eq!(wakes_in_fd(&notifier, backend), 0);
    });
}

#[test]
fn all_65536_keys_work_through_mio() {
    const KEYS: usize = 65_536;
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut notifier = KeyedNotifier::with_backend(backend, KEYS).unwrap();
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();
        let wakers: Vec<KeyedWaker> = (0..KEYS).map(|k| notifier.waker(k).unwrap()).collect();
        for waker in wakers.iter().rev() {
            waker.notify().unwrap();
            waker.notify().unwrap();
        }
        expect_wake(&mut poll, &mut events, TOKEN);
        let keys = collect(notifier.drain().unwrap(), KEYS);
        assert_eq!(keys, (0..KEYS).collect::<Vec<_>>());
        expect_no_wake(&mut poll, &mut events, TOKEN);
        assert!(notifier.drain().unwrap().next().is_none());

        // Every 1000th key, once more.
        for waker in wakers.iter().step_by(1000) {
            waker.notify().unwrap();
        }
        expect_wake(&mut poll, &mut events, TOKEN);
        let keys = collect(notifier.drain().unwrap(), KEYS);
        assert_eq!(keys, (0..KEYS).step_by(1000).collect::<Vec<_>>());
    });
}

/// Per key, the number of notifies its sender made; each increment happens
/// before the notify that reports it.
struct Work {
    sent: Vec<AtomicU64>,
}

/// `threads` senders, each owning the keys `k` with `k % threads == t`,
/// bump the key's counter and notify it, `rounds` times over their keys.
/// Returns the join handles.
fn spawn_senders(
    notifier: &KeyedNotifier,
    work: &Arc<Work>,
    threads: usize,
    rounds: u64,
) -> Vec<thread::JoinHandle<()>> {
    let capacity = notifier.capacity();
    let barrier = Arc::new(Barrier::new(threads));
    (0..threads)
        .map(|t| {
            let wakers: Vec<KeyedWaker> = (t..capacity)
                .step_by(threads)
                .map(|k| notifier.waker(k).unwrap())
                .collect();
            let (work, barrier) = (Arc::clone(work), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                for round in 0..rounds {
                    for (i, waker) in wakers.iter().enumerate() {
                        // Not every key every round, so that keys fire at
                        // different times.
                        if (i as u64 + round) % 3 == 0 || round + 1 == rounds {
                            work.sent[waker.key()].fetch_add(1, Ordering::Relaxed);
                            waker.notify().unwrap();
                        }
                    }
                }
            })
        })
        .collect()
}

/// Records what a drain yielded: for each key, the counter value it sees
/// now, which may only grow. (It may equal the last one: a sender can bump
/// the counter after a yield read it, and notify after that yield.)
fn record(keys: Vec<usize>, work: &Work, seen: &mut [u64]) {
    for key in keys {
        let now = work.sent[key].load(Ordering::Relaxed);
        assert!(now >= seen[key] && now > 0, "key {key} went back in time");
        seen[key] = now;
    }
}

fn done(work: &Work, seen: &[u64], senders_done: bool) -> bool {
    senders_done
        && work
            .sent
            .iter()
            .zip(seen)
            .all(|(sent, &seen)| sent.load(Ordering::Relaxed) == seen)
}

#[test]
fn senders_on_many_keys_through_mio_lose_nothing() {
    const KEYS: usize = 5_000;
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut notifier = KeyedNotifier::with_backend(backend, KEYS).unwrap();
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();
        let work = Arc::new(Work {
            sent: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        });
        let mut seen = vec![0; KEYS];
        let senders = spawn_senders(&notifier, &work, 4, 30);
        let deadline = Instant::now() + TIMEOUT;
        let mut senders = Some(senders);
        loop {
            // Only join once every sender is done, so that the wait below
            // is for wakes that must come.
            if senders
                .as_ref()
                .is_some_and(|s| s.iter().all(|h| h.is_finished()))
            {
                for h in senders.take().unwrap() {
                    h.join().unwrap();
                }
            }
            if done(&work, &seen, senders.is_none()) {
                break;
            }
            assert!(Instant::now() < deadline, "lost wake: keys not yielded");
            util::poll_retrying(
                &mut poll,
                &mut events,
                Some(std::time::Duration::from_millis(100)),
            );
            if events.iter().any(|e| e.token() == TOKEN) {
                record(collect(notifier.drain().unwrap(), KEYS), &work, &mut seen);
            }
        }
        // What is still on its way is stale: a wake written after an
        // earlier drain had taken its key, or a key notified after a yield
        // had already read its sender's latest count. Drain it; then the
        // notifier settles: no event, nothing to drain.
        util::poll_retrying(
            &mut poll,
            &mut events,
            Some(std::time::Duration::from_millis(50)),
        );
        record(collect(notifier.drain().unwrap(), KEYS), &work, &mut seen);
        expect_no_wake(&mut poll, &mut events, TOKEN);
        assert!(notifier.drain().unwrap().next().is_none());
    });
}

#[test]
fn senders_on_many_keys_through_wait_lose_nothing() {
    const KEYS: usize = 5_000;
    for_each_backend!(|backend| {
        let mut notifier = KeyedNotifier::with_backend(backend, KEYS).unwrap();
        let work = Arc::new(Work {
            sent: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        });
        let mut seen = vec![0; KEYS];
        let senders = spawn_senders(&notifier, &work, 3, 30);
        let mut senders = Some(senders);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if senders
                .as_ref()
                .is_some_and(|s| s.iter().all(|h| h.is_finished()))
            {
                for h in senders.take().unwrap() {
                    h.join().unwrap();
                }
            }
            if done(&work, &seen, senders.is_none()) {
                break;
            }
            assert!(Instant::now() < deadline, "lost wake: keys not yielded");
            let keys = notifier
                .wait(Some(std::time::Duration::from_millis(100)))
                .unwrap();
            record(collect(keys, KEYS), &work, &mut seen);
        }
        // Stale wakes and keys (see the mio test above) are drained, then
        // the notifier settles.
        let keys = notifier
            .wait(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        record(collect(keys, KEYS), &work, &mut seen);
        let keys = notifier
            .wait(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        assert!(collect(keys, KEYS).is_empty(), "a wake with nothing new");
    });
}

#[test]
fn a_drain_dropped_early_strands_no_key() {
    for_each_backend!(|backend| {
        // Edge-triggered through mio: the keys left must bring a new event.
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut notifier = KeyedNotifier::with_backend(backend, 10_000).unwrap();
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();
        let keys = [3, 4, 200, 9_999];
        for key in keys {
            notifier.waker(key).unwrap().notify().unwrap();
        }
        let mut taken = Vec::new();
        for _ in 0..keys.len() {
            expect_wake(&mut poll, &mut events, TOKEN);
            taken.extend(notifier.drain().unwrap().next()); // one per event
        }
        assert_eq!(taken, keys);
        expect_no_wake(&mut poll, &mut events, TOKEN);

        // Level-triggered, through wait: a drain dropped untouched.
        let mut notifier = KeyedNotifier::with_backend(backend, 100).unwrap();
        notifier.waker(42).unwrap().notify().unwrap();
        drop(notifier.drain().unwrap());
        assert!(util::is_readable(&notifier), "no wake for the keys left");
        let keys = notifier.wait(Some(TIMEOUT)).unwrap();
        assert_eq!(collect(keys, 100), [42]);
    });
}

#[test]
fn a_panic_in_the_drain_loop_strands_no_key() {
    let mut notifier = KeyedNotifier::new(100).unwrap();
    for key in [1, 2, 3] {
        notifier.waker(key).unwrap().notify().unwrap();
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for key in notifier.drain().unwrap() {
            assert_ne!(key, 2, "handler failed");
        }
    }));
    assert!(result.is_err());
    // Key 2 was yielded (its handler panicked); key 3 was not, and is kept.
    let keys = notifier.wait(Some(TIMEOUT)).unwrap();
    assert_eq!(collect(keys, 100), [3]);
}

#[test]
fn notify_after_keyed_notifier_drop_is_broken_pipe() {
    for_each_backend!(|backend| {
        let notifier = KeyedNotifier::with_backend(backend, 10).unwrap();
        let (pending, fresh) = (notifier.waker(1).unwrap(), notifier.waker(2).unwrap());
        pending.notify().unwrap();
        drop(notifier);
        for waker in [&pending, &fresh, &pending.clone()] {
            let err = waker.notify().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "key {}", waker.key());
        }
    });
}

#[test]
fn the_fd_is_the_inner_notifiers_and_backend_is_kept() {
    for_each_backend!(|backend| {
        let notifier = KeyedNotifier::with_backend(backend, 10).unwrap();
        assert_eq!(notifier.backend(), backend);
        #[cfg(unix)]
        {
            use std::os::fd::{AsFd, AsRawFd};
            assert_eq!(notifier.as_fd().as_raw_fd(), notifier.as_raw_fd());
            util::assert_nonblocking(notifier.as_raw_fd());
            util::assert_cloexec(notifier.as_raw_fd());
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::{AsRawSocket, AsSocket};
            assert_eq!(
                notifier.as_socket().as_raw_socket(),
                notifier.as_raw_socket()
            );
            util::assert_cloexec(notifier.as_raw_socket());
        }
        assert!(!util::is_readable(&notifier));
        notifier.waker(0).unwrap().notify().unwrap();
        assert!(util::is_readable(&notifier));
    });
    assert_eq!(KeyedNotifier::new(1).unwrap().backend(), Backend::default());
}

#[test]
fn a_capacity_beyond_memory_is_invalid_input_and_opens_nothing() {
    for capacity in [usize::MAX, 1 << 60, usize::MAX / 3] {
        let err = KeyedNotifier::new(capacity).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{capacity}: {err}");
        assert!(err.to_string().contains(&capacity.to_string()), "{err}");
        for_each_backend!(|backend| {
            let err = KeyedNotifier::with_backend(backend, capacity).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{capacity}: {err}");
        });
    }
    // What fits still works.
    let mut notifier = KeyedNotifier::new(1 << 20).unwrap();
    notifier.waker((1 << 20) - 1).unwrap().notify().unwrap();
    assert_eq!(collect(notifier.drain().unwrap(), 1 << 20), [(1 << 20) - 1]);
}

/// `Keys` is a `FusedIterator`: after its first `None` it yields nothing,
/// even when a key fires later in a summary word it had not reached; that
/// key comes with a wake of its own and the next drain yields it.
#[test]
fn keys_stay_ended_when_a_key_fires_after_the_end() {
    for_each_backend!(|backend| {
        let mut notifier = KeyedNotifier::with_backend(backend, 65_536).unwrap();
        let (early, late) = (notifier.waker(10).unwrap(), notifier.waker(40_000).unwrap());
        early.notify().unwrap();
        let mut keys = notifier.drain().unwrap();
        assert_eq!(keys.next(), Some(10));
        assert_eq!(keys.next(), None);
        late.notify().unwrap();
        assert_eq!(keys.next(), None, "Keys yielded a key after its end");
        assert_eq!(keys.next(), None);
        drop(keys);
        assert!(util::is_readable(&notifier), "no wake for the late key");
        assert_eq!(
            collect(notifier.wait(Some(TIMEOUT)).unwrap(), 65_536),
            [40_000]
        );
    });
}

/// `KeyedNotifier::wait` honours its timeout as `Notifier::wait` does:
/// never early, and to well under a millisecond where the platform allows
/// (ppoll on Linux).
#[test]
fn keyed_wait_timeout_is_never_early_and_precise_on_linux() {
    use std::time::Duration;
    let mut notifier = KeyedNotifier::new(8).unwrap();
    let timeout = Duration::from_micros(200);
    let mut took: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(notifier.wait(Some(timeout)).unwrap().next(), None);
            start.elapsed()
        })
        .collect();
    took.sort();
    assert!(took[0] >= timeout, "a wait returned early: {:?}", took[0]);
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert!(took[25] < Duration::from_millis(1), "median {:?}", took[25]);
    }
    // A key set before the wait ends it at once, whatever the timeout.
    notifier.waker(5).unwrap().notify().unwrap();
    let keys = notifier.wait(Some(Duration::MAX)).unwrap();
    assert_eq!(collect(keys, 8), [5]);
}
