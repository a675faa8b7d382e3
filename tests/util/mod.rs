//! Helpers shared by the integration tests (mio's `tests/util` layout).
#![allow(dead_code)]

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
/// pipe or socket (`FIONREAD`; one wake is one byte).
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
