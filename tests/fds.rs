//! Its own test binary, with one test, because it counts the process's open
//! fds and lowers `RLIMIT_NOFILE`: nothing else may run beside it.
#![cfg(unix)] // counts fds and lowers RLIMIT_NOFILE

mod util;

use util::{assert_cloexec, assert_nonblocking, open_fds, NofileLimit};
use wakefd::{Backend, Mailbox, Notifier};

fn fds_held(backend: Backend) -> usize {
    if backend == Backend::EventFd {
        1
    } else {
        2
    }
}

#[test]
fn fds_are_cloexec_nonblocking_closed_once_and_never_leaked() {
    // 1. What each backend opens: the right count, all close-on-exec and
    //    non-blocking (the TCP listener is already closed).
    for_each_backend!(|backend| {
        let before = open_fds();
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        let new: Vec<i32> = open_fds().difference(&before).copied().collect();
        assert_eq!(new.len(), fds_held(backend), "{backend}: new fds {new:?}");
        for &fd in &new {
            assert_cloexec(fd);
            assert_nonblocking(fd);
        }
        // The fds outlive the Notifier while a Waker may still write...
        drop(notifier);
        assert_eq!(open_fds().difference(&before).count(), fds_held(backend));
        // ...and are closed with the last Waker.
        drop(waker);
        assert_eq!(open_fds(), before, "{backend}: fds left open");
    });

    // 2. Thousands of create/use/drop cycles leave the count unchanged.
    let before = open_fds();
    for_each_backend!(|backend| {
        let cycles = if backend == Backend::TcpLoopback {
            500
        } else {
            2_000
        };
        for i in 0..cycles {
            let notifier = Notifier::with_backend(backend).unwrap();
            let waker = notifier.waker();
            waker.notify().unwrap();
            assert!(notifier.drain().unwrap());
            if i % 2 == 0 {
                drop(notifier); // either end may go first
            } else {
                drop(waker);
            }
        }
        let mailbox = Mailbox::<u32>::with_backend(backend).unwrap();
        mailbox.sender().send(1).unwrap();
        drop(mailbox);
    });
    assert_eq!(open_fds(), before, "create/drop cycles leaked fds");

    // 3. With RLIMIT_NOFILE lowered so creation fails part-way (TCP opens a
    //    listener, a connector and the accepted socket in turn), the error
    //    is EMFILE and nothing already opened is leaked.
    for_each_backend!(|backend| {
        let needed = if backend == Backend::TcpLoopback {
            3
        } else {
            fds_held(backend)
        };
        for free in 0..needed {
            let before = open_fds();
            let limit = NofileLimit::leaving_free(free);
            let result = Notifier::with_backend(backend);
            drop(limit);
            let err = result.expect_err("created with too few fds");
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EMFILE),
                "{backend} with {free} free: {err}"
            );
            assert_eq!(open_fds(), before, "{backend} leaked with {free} free fds");
        }
        // And with just enough, it works.
        let before = open_fds();
        let limit = NofileLimit::leaving_free(needed);
        let result = Notifier::with_backend(backend);
        drop(limit);
        drop(result.unwrap());
        assert_eq!(open_fds(), before);
    });
}
