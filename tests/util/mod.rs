//! Helpers shared by the integration tests (mio's `tests/util` layout).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::{Events, Poll, Token};
use wakefd::Backend;

/// How long any test waits for something that should happen at once. A
/// lost wake fails the test after this instead of hanging it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the body once per available backend, with `$backend` bound to it,
/// and names the backend in any panic message.
#[macro_export]
macro_rules! for_each_backend {
    (|$backend:ident| $body:block) => {
        for $backend in ::wakefd::Backend::available() {
            eprintln!("-- backend {}", $backend);
            $body
        }
    };
}

pub fn assert_send<T: Send>() {}
pub fn assert_sync<T: Sync>() {}

/// Polls until an event for `token` arrives; panics after [`TIMEOUT`].
pub fn expect_wake(poll: &mut Poll, events: &mut Events, token: Token) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no event for {token:?} within {TIMEOUT:?}");
        poll_retrying(poll, events, Some(left));
        if events.iter().any(|e| e.token() == token && e.is_readable()) {
            return;
        }
    }
}

/// Polls for a short while and asserts no event for `token` arrives.
pub fn expect_no_wake(poll: &mut Poll, events: &mut Events, token: Token) {
    poll_retrying(poll, events, Some(Duration::from_millis(50)));
    assert!(
        !events.iter().any(|e| e.token() == token),
        "unexpected event for {token:?}"
    );
}

/// `Poll::poll`, retrying `EINTR`.
pub fn poll_retrying(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) {
    loop {
        match poll.poll(events, timeout) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("poll failed: {e}"),
        }
    }
}

fn fd_flags(fd: RawFd) -> (libc::c_int, libc::c_int) {
    // SAFETY: fcntl with F_GETFD/F_GETFL only reads flags of `fd`.
    let (fd_flags, fl_flags) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    assert!(
        fd_flags >= 0 && fl_flags >= 0,
        "fcntl({fd}): {}",
        io::Error::last_os_error()
    );
    (fd_flags, fl_flags)
}

pub fn assert_cloexec(fd: RawFd) {
    assert_ne!(
        fd_flags(fd).0 & libc::FD_CLOEXEC,
        0,
        "fd {fd} is not close-on-exec"
    );
}

pub fn assert_nonblocking(fd: RawFd) {
    assert_ne!(fd_flags(fd).1 & libc::O_NONBLOCK, 0, "fd {fd} is blocking");
}

/// Waits until `fd` is readable (level-triggered), up to `timeout`.
pub fn readable_within(fd: &impl AsRawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis() as libc::c_int;
    // SAFETY: one valid pollfd, living across the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0
}

/// Whether a level-triggered `poll(2)` of the fd says it is readable now.
pub fn is_readable(fd: &impl AsRawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    assert!(n >= 0, "poll: {}", io::Error::last_os_error());
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// How many wakes sit unread in the notifier's fd, without reading them:
/// the eventfd counter from `/proc/self/fdinfo`, or the bytes queued in a
/// pipe or socket (`FIONREAD`; one wake is one byte). (`/proc` is only
/// read for an eventfd, which only Linux and Android have.)
pub fn wakes_in_fd(fd: &impl AsRawFd, backend: Backend) -> u64 {
    let fd = fd.as_raw_fd();
    if backend == Backend::EventFd {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix("eventfd-count:"))
            .expect("eventfd-count in fdinfo");
        u64::from_str_radix(line.trim(), 16).unwrap()
    } else {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int to the pointer we pass.
        let ret = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        assert!(ret >= 0, "FIONREAD: {}", io::Error::last_os_error());
        n as u64
    }
}

/// The fds open in this process.
///
/// Linux and Android list `/proc/self/fd`. Elsewhere every number below the
/// soft `RLIMIT_NOFILE` (at most 65 536 of them) is probed with
/// `fcntl(F_GETFD)`: `/dev/fd` lists only 0 to 2 on a FreeBSD without
/// fdescfs, and a test's fds are the lowest free numbers anyway.
pub fn open_fds() -> BTreeSet<RawFd> {
    // /proc is Linux's (mio and polling gate it the same way).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let candidates: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let candidates = 0..nofile_limit().rlim_cur.min(1 << 16) as RawFd;
    candidates
        .into_iter()
        // The listing's own fd shows up in it but is closed again by now;
        // keep only what is still open.
        // SAFETY: F_GETFD only reads the flags of `fd` if it is open, and
        // fails with EBADF if not.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect()
}

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    limit
}

/// A lowered soft `RLIMIT_NOFILE`, restored when dropped (even on a failed
/// assert). It is process-wide: a test that uses it has a binary of its own.
#[derive(Debug)]
pub struct NofileLimit {
    saved: libc::rlimit,
}

impl NofileLimit {
    /// Lowers the soft limit to `soft`: no fd numbered `soft` or higher can
    /// be opened.
    pub fn lower_to(soft: libc::rlim_t) -> NofileLimit {
        let saved = nofile_limit();
        let lowered = libc::rlimit {
            rlim_cur: soft,
            rlim_max: saved.rlim_max,
        };
        // SAFETY: `lowered` is a valid rlimit that outlives the call.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) };
        assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
        NofileLimit { saved }
    }

    /// Lowers the soft limit as far as it goes while exactly `free` more
    /// fds can still be opened (0: none at all).
    pub fn leaving_free(free: usize) -> NofileLimit {
        let open = open_fds();
        let limit = (0..)
            .filter(|fd| !open.contains(fd))
            .nth(free)
            .expect("a free fd number");
        NofileLimit::lower_to(limit as libc::rlim_t)
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        // SAFETY: `saved` is the valid rlimit getrlimit filled in.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.saved) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            // Panicking while a failed assert unwinds would abort.
            if std::thread::panicking() {
                eprintln!("restoring RLIMIT_NOFILE: {err}");
            } else {
                panic!("restoring RLIMIT_NOFILE: {err}");
            }
        }
    }
}
