//! Its own test binary, with one test, because it counts the process's open
//! fds and lowers `RLIMIT_NOFILE`: nothing else may run beside it.

mod util;

use std::collections::BTreeSet;
use std::io;

use util::{assert_cloexec, assert_nonblocking};
use wakefd::{Backend, Mailbox, Notifier};

fn open_fds() -> BTreeSet<i32> {
    // The directory listing's own fd is closed again when `read_dir` ends,
    // but it shows up in the listing, so drop any entry that is gone now.
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect::<Vec<i32>>()
        .into_iter()
        // SAFETY: F_GETFD only asks whether the fd is open.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect()
}

fn fds_held(backend: Backend) -> usize {
    if backend == Backend::EventFd {
        1
    } else {
        2
    }
}

fn set_nofile(soft: libc::rlim_t) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers to rlimit structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &new),
            0,
            "{}",
            io::Error::last_os_error()
        );
    }
    old
}

fn restore_nofile(old: libc::rlimit) {
    // SAFETY: setrlimit with a valid pointer to an rlimit struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
}

/// The lowest limit under which exactly `free` more fds can be opened.
fn limit_with_free_slots(free: usize) -> libc::rlim_t {
    let open = open_fds();
    let mut limit = 0usize;
    let mut slots = 0;
    loop {
        if !open.contains(&(limit as i32)) {
            if slots == free {
                return limit as libc::rlim_t;
            }
            slots += 1;
        }
        limit += 1;
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
            let old = set_nofile(limit_with_free_slots(free));
            let result = Notifier::with_backend(backend);
            restore_nofile(old);
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
        let old = set_nofile(limit_with_free_slots(needed));
        let result = Notifier::with_backend(backend);
        restore_nofile(old);
        drop(result.unwrap());
        assert_eq!(open_fds(), before);
    });
}
