//! Helpers shared by the integration tests (mio's `tests/util` layout).
#![allow(dead_code)]

pub mod counting;

#[cfg(unix)]
use std::collections::BTreeSet;
use std::io;
#[cfg(unix)]
use std::os::fd::RawFd;
use std::time::Duration;

/// What the tests watch: an fd on Unix, a socket on Windows.
#[cfg(unix)]
pub use std::os::fd::AsRawFd as AsRawSource;
/// What the tests watch: an fd on Unix, a socket on Windows.
#[cfg(windows)]
pub use std::os::windows::io::AsRawSocket as AsRawSource;

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

/// `source` registered for readability with a new `Poll` under `token`,
/// and room for its events.
pub fn registered_with<S: mio::event::Source>(mut source: S, token: Token) -> (Poll, S, Events) {
    let poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut source, token, mio::Interest::READABLE)
        .unwrap();
    (poll, source, Events::with_capacity(16))
}

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

#[cfg(unix)]
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

/// That a child process gets no copy: close-on-exec on Unix.
#[cfg(unix)]
pub fn assert_cloexec(fd: RawFd) {
    assert_ne!(
        fd_flags(fd).0 & libc::FD_CLOEXEC,
        0,
        "fd {fd} is not close-on-exec"
    );
}

/// That a child process gets no copy: not inheritable on Windows.
#[cfg(windows)]
pub fn assert_cloexec(socket: std::os::windows::io::RawSocket) {
    use windows_sys::Win32::Foundation::{GetHandleInformation, HANDLE_FLAG_INHERIT};
    let mut flags = 0u32;
    // SAFETY: `socket` is an open socket handle; `flags` is a live u32 for
    // the call to fill.
    let ok = unsafe { GetHandleInformation(socket as _, &mut flags) };
    assert_ne!(
        ok,
        0,
        "GetHandleInformation: {}",
        io::Error::last_os_error()
    );
    assert_eq!(
        flags & HANDLE_FLAG_INHERIT,
        0,
        "socket {socket} is inheritable"
    );
}

#[cfg(unix)]
pub fn assert_nonblocking(fd: RawFd) {
    assert_ne!(fd_flags(fd).1 & libc::O_NONBLOCK, 0, "fd {fd} is blocking");
}

/// One level-triggered poll of `fd` for readability: `poll(2)` on Unix,
/// `WSAPoll` on Windows.
#[cfg(unix)]
fn poll_in(fd: &impl AsRawSource, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, living across the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    assert!(n >= 0, "poll: {}", io::Error::last_os_error());
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// One level-triggered poll of `socket` for readability: `poll(2)` on Unix,
/// `WSAPoll` on Windows.
#[cfg(windows)]
fn poll_in(socket: &impl AsRawSource, timeout_ms: i32) -> bool {
    use windows_sys::Win32::Networking::WinSock as ws;
    let mut pfd = ws::WSAPOLLFD {
        fd: socket.as_raw_socket() as ws::SOCKET,
        events: ws::POLLRDNORM,
        revents: 0,
    };
    // SAFETY: one valid WSAPOLLFD, living across the call.
    let n = unsafe { ws::WSAPoll(&mut pfd, 1, timeout_ms) };
    // SAFETY: no preconditions; this thread's last Winsock error.
    let err = unsafe { ws::WSAGetLastError() };
    assert!(n >= 0, "WSAPoll: {}", io::Error::from_raw_os_error(err));
    n == 1 && pfd.revents & ws::POLLRDNORM != 0
}

/// Waits until `fd` is readable (level-triggered), up to `timeout`.
pub fn readable_within(fd: &impl AsRawSource, timeout: Duration) -> bool {
    poll_in(fd, timeout.as_millis().try_into().unwrap_or(i32::MAX))
}

/// Whether a level-triggered poll of the fd (`poll(2)`, `WSAPoll`) says it
/// is readable now.
pub fn is_readable(fd: &impl AsRawSource) -> bool {
    poll_in(fd, 0)
}

/// How many wakes sit unread in the notifier's fd, without reading them:
/// the eventfd counter from `/proc/self/fdinfo`, or the bytes queued in a
/// pipe or socket (`FIONREAD`; one wake is one byte). (`/proc` is only
/// read for an eventfd, which only Linux and Android have.)
#[cfg(unix)]
pub fn wakes_in_fd(fd: &impl AsRawSource, backend: Backend) -> u64 {
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

/// How many wakes sit unread in the notifier's socket, without reading
/// them: the bytes queued in it (`FIONREAD`; one wake is one byte).
#[cfg(windows)]
pub fn wakes_in_fd(socket: &impl AsRawSource, _backend: Backend) -> u64 {
    use windows_sys::Win32::Networking::WinSock as ws;
    let mut n: u32 = 0;
    // SAFETY: FIONREAD writes one u32 to the pointer we pass.
    let ret =
        unsafe { ws::ioctlsocket(socket.as_raw_socket() as ws::SOCKET, ws::FIONREAD, &mut n) };
    // SAFETY: no preconditions; this thread's last Winsock error.
    let err = unsafe { ws::WSAGetLastError() };
    assert_eq!(ret, 0, "FIONREAD: {}", io::Error::from_raw_os_error(err));
    u64::from(n)
}

/// The fds open in this process.
///
/// Linux and Android list `/proc/self/fd`. Elsewhere every number below the
/// soft `RLIMIT_NOFILE` (at most 65 536 of them) is probed with
/// `fcntl(F_GETFD)`: `/dev/fd` lists only 0 to 2 on a FreeBSD without
/// fdescfs, and a test's fds are the lowest free numbers anyway.
#[cfg(unix)]
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

#[cfg(unix)]
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
#[cfg(unix)]
#[derive(Debug)]
pub struct NofileLimit {
    saved: libc::rlimit,
}

#[cfg(unix)]
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

#[cfg(unix)]
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

/// Joins every client thread and fails the test with the errors of those
/// that failed or panicked.
pub fn join_clients(clients: Vec<std::thread::JoinHandle<io::Result<()>>>) {
    let errors: Vec<String> = clients
        .into_iter()
        .filter_map(|c| match c.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("client panicked".into()),
        })
        .collect();
    assert!(
        errors.is_empty(),
        "{} clients failed: {errors:?}",
        errors.len()
    );
}
