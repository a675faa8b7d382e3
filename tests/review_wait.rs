//! Review: `wait` after a wake that was absorbed while the loop was awake.

mod util;

use std::time::{Duration, Instant};

use wakefd::{KeyedNotifier, Notifier};

/// The loop was awake, a `notify` was absorbed (PENDING set, nothing
/// written), the loop announced sleep (told "a wake is pending, don't
/// block") and then waits in `Notifier::wait`. The wake was notified and never
/// drained, so `wait` must return `true` at once. It blocks for the whole
/// timeout instead and returns `false`: the non-sleep-aware path of
/// `block_once` polls the fd only and ignores `PENDING`.
#[test]
fn review_wait_sees_a_wake_absorbed_before_announce_sleep() {
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

/// The same through `KeyedNotifier::wait`: the key is set, its wake was
/// absorbed, and `wait` times out with no key.
#[test]
fn review_keyed_wait_sees_a_key_absorbed_before_announce_sleep() {
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
