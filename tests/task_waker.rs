//! Its own test binary: a counting global allocator proves that the
//! `std::task::Waker`s made from a `Waker` or a `KeyedWaker` allocate
//! nothing to convert, clone, wake or drop, the wake counters show that
//! their wakes coalesce like `notify`, and the notifier's fd shows that they
//! hold exactly one reference each (it closes with the last of them).

mod util;

#[cfg(unix)]
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::task::Waker as TaskWaker;
use std::thread;

use util::counting::{Counting, ALLOCS, COUNTING};
use util::TIMEOUT;
use wakefd::{KeyedNotifier, Notifier};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests run one at a time: the fd test must not see another test
/// reuse a closed fd's number.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `fd` is open in this process.
#[cfg(unix)] // fcntl
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the fd's flags; a closed fd is EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The allocations `f` makes on this thread, and its result.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCS.load(Ordering::Relaxed) - before, result)
}

#[test]
fn task_wakers_from_a_waker_allocate_nothing() {
    let _serial = serial();
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        let (allocs, ()) = allocations(|| {
            let task = TaskWaker::from(waker.clone());
            let clone = task.clone();
            assert!(clone.will_wake(&task));
            task.wake_by_ref(); // writes the wake
            clone.wake_by_ref(); // coalesced
            clone.wake();
            task.wake_by_ref();
            drop(task);
        });
        assert_eq!(allocs, 0, "allocations to convert, clone, wake and drop");
        assert!(
            notifier.drain().unwrap(),
            "the task waker did not wake the loop"
        );
        assert_eq!(notifier.stats().wakes_written, 1);
    });
}

#[test]
fn task_wakers_from_a_keyed_waker_allocate_nothing() {
    let _serial = serial();
    for_each_backend!(|backend| {
        let mut notifier = KeyedNotifier::with_backend(backend, 1_000).unwrap();
        let wakers = [notifier.waker(7).unwrap(), notifier.waker(700).unwrap()];
        let (allocs, ()) = allocations(|| {
            for waker in &wakers {
                let task = TaskWaker::from(waker.clone());
                let clone = task.clone();
                task.wake_by_ref();
                clone.wake_by_ref();
                clone.wake();
                drop(task);
            }
        });
        assert_eq!(allocs, 0, "allocations to convert, clone, wake and drop");
        let keys: Vec<usize> = notifier.drain().unwrap().collect();
        assert_eq!(keys, [7, 700]);
        assert_eq!(notifier.stats().wakes_written, 1);
    });
}

/// 1 000 000 `wake_by_ref`s from two threads while a wake is pending: one
/// fd write per drain, through a `Waker` and a `KeyedWaker` alike.
#[test]
fn a_million_wake_by_refs_while_pending_write_one_wake_per_drain() {
    const WAKES: usize = 1_000_000;
    let _serial = serial();
    let notifier = Notifier::new().unwrap();
    let mut keyed = KeyedNotifier::new(64).unwrap();
    let tasks = [
        TaskWaker::from(notifier.waker()),
        TaskWaker::from(keyed.waker(9).unwrap()),
    ];
    for round in 1..=3 {
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..WAKES / 2 {
                        for task in &tasks {
                            task.wake_by_ref();
                        }
                    }
                });
            }
        });
        assert!(notifier.wait(Some(TIMEOUT)).unwrap(), "round {round}");
        let keys: Vec<usize> = keyed.wait(Some(TIMEOUT)).unwrap().collect();
        assert_eq!(keys, [9], "round {round}");
        let (plain, by_key) = (notifier.stats(), keyed.stats());
        assert_eq!(
            (plain.wakes_written, plain.drains_woken),
            (round, round),
            "Waker: writes and drains after round {round}"
        );
        assert_eq!(
            (by_key.wakes_written, by_key.drains_woken),
            (round, round),
            "KeyedWaker: writes and drains after round {round}"
        );
    }
}

/// Each task waker and clone holds one reference to the waker's shared
/// state, and gives it back once: the fds stay open while any is alive
/// (waking after the notifier's drop is harmless), and close with the last.
#[cfg(unix)] // tells an open fd from a closed one with fcntl
#[test]
fn task_wakers_keep_the_fd_open_until_the_last_is_dropped() {
    let _serial = serial();
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let keyed = KeyedNotifier::with_backend(backend, 8).unwrap();
        let fds = [notifier.as_raw_fd(), keyed.as_raw_fd()];
        let tasks = [
            TaskWaker::from(notifier.waker()),
            TaskWaker::from(keyed.waker(3).unwrap()),
        ];
        let clones: Vec<TaskWaker> = (0..3).flat_map(|_| tasks.iter().cloned()).collect();
        drop((notifier, keyed));
        for clone in clones {
            clone.wake_by_ref(); // BrokenPipe, discarded
            clone.wake(); // gives its reference back
        }
        assert!(
            fds.iter().all(|&fd| is_open(fd)),
            "closed while a task waker lives"
        );
        drop(tasks);
        for fd in fds {
            assert!(!is_open(fd), "fd {fd} still open: a reference was leaked");
        }
    });
}
