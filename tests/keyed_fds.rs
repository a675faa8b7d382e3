//! Its own test binary, with one test, because it counts the process's open
//! fds: nothing else may run beside it.
#![cfg(target_os = "linux")] // counts fds through /proc/self/fd

mod util;

use std::collections::BTreeSet;

use wakefd::{Backend, KeyedNotifier};

fn open_fds() -> BTreeSet<i32> {
    // The directory listing's own fd shows up in the listing and is closed
    // once `read_dir` ends, so keep only the entries still open.
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect::<Vec<i32>>()
        .into_iter()
        // SAFETY: F_GETFD only asks whether the fd is open.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect()
}

#[test]
fn a_keyed_notifier_holds_its_backends_fds_and_no_more() {
    for_each_backend!(|backend| {
        let held = if backend == Backend::EventFd { 1 } else { 2 };
        let before = open_fds();
        let mut notifier = KeyedNotifier::with_backend(backend, 65_536).unwrap();
        // Wakers for every key, notified and drained: still the same fds.
        let wakers: Vec<_> = (0..65_536).map(|k| notifier.waker(k).unwrap()).collect();
        for waker in &wakers {
            waker.notify().unwrap();
        }
        assert_eq!(notifier.drain().unwrap().count(), 65_536);
        let new: Vec<i32> = open_fds().difference(&before).copied().collect();
        assert_eq!(new.len(), held, "{backend}: new fds {new:?}");
        // Closed once the notifier and every waker are gone.
        drop(notifier);
        assert_eq!(open_fds().difference(&before).count(), held);
        drop(wakers);
        assert_eq!(open_fds(), before, "{backend}: fds left open");
    });
}
