//! The mechanisms behind a `Notifier`, one file per kernel object.
//!
//! Every backend meets the same contract, written once here:
//!
//! * **Creation** opens its fds non-blocking and close-on-exec (sockets
//!   not inheritable on Windows), and on any
//!   failure closes whatever it had already opened (every fd is an `OwnedFd`
//!   or a `socket2::Socket` from the moment it exists) and returns the OS
//!   error, `EMFILE` included.
//! * **`write_wake`** makes the read end readable. A full buffer (`EAGAIN`)
//!   means it is readable already, which is success. `EINTR` is retried.
//!   Nothing ever raises `SIGPIPE`: the read end lives as long as the write
//!   end (both are dropped together, when the last `Waker` or the `Notifier`
//!   goes), and sockets are written with `MSG_NOSIGNAL` (`SO_NOSIGPIPE` on
//!   Apple platforms) all the same.
//! * **`read_wakes`** empties the read end: one `read` for an eventfd, reads
//!   until a short read or `EAGAIN` for a byte stream.
//! * **`fd`** is the read end, the one a reactor watches (a socket on
//!   Windows); `register`, `reregister` and `deregister` put it in a
//!   `mio::Poll`, and `poll_readable` waits for it without one.
//! * **mio** sees the same events on every platform: after a drain, a fresh
//!   event for the next wake. On Windows that takes the drain's reads to go
//!   through mio (`winsock.rs`).
//!
//! The choice between mechanisms is made at run time from a [`Backend`]; what
//! a platform lacks is compiled out and reported as `ErrorKind::Unsupported`.
//! Unix has all four (eventfd on Linux and Android only); Windows has the
//! loopback TCP pair alone.

use std::io;
#[cfg(unix)]
use std::os::fd::{AsRawFd, BorrowedFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, BorrowedSocket};
use std::time::{Duration, Instant};

#[cfg(unix)]
use mio::event::Source as _;
use mio::{Interest, Registry, Token};

use crate::state::Signal;
use crate::Backend;

#[cfg(unix)]
use errno::ErrnoGuard;

#[cfg(unix)]
mod errno;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod eventfd;
#[cfg(unix)]
mod pipe;
#[cfg(unix)]
mod socketpair;
mod tcp;
#[cfg(windows)]
mod winsock;

#[cfg(windows)]
pub(crate) use winsock::poll_readable;

/// The read end as the façades hand it out: an fd on Unix, a socket on
/// Windows.
#[cfg(unix)]
pub(crate) type Handle<'a> = BorrowedFd<'a>;
/// The read end as the façades hand it out: an fd on Unix, a socket on
/// Windows.
#[cfg(windows)]
pub(crate) type Handle<'a> = BorrowedSocket<'a>;

/// The raw number of a [`Handle`].
#[cfg(unix)]
pub(crate) type RawHandle = std::os::fd::RawFd;
/// The raw number of a [`Handle`].
#[cfg(windows)]
pub(crate) type RawHandle = std::os::windows::io::RawSocket;

/// The error a failed write reports in fault-injection builds.
#[cfg(all(wakefd_fault_injection, unix))]
const ENOBUFS: i32 = libc::ENOBUFS;
#[cfg(all(wakefd_fault_injection, windows))]
const ENOBUFS: i32 = windows_sys::Win32::Networking::WinSock::WSAENOBUFS;

/// One open backend, as the protocol drives it: the wake write keeps
/// `errno` (a `notify` may run in a signal handler), and in builds with
/// `--cfg wakefd_fault_injection` the next writes can be made to fail.
#[derive(Debug)]
pub(crate) struct Sys {
    mech: Mech,
    /// Test seam: the next this many wake writes fail with `ENOBUFS`.
    ///
    /// Every place that writes a wake, and what retries it when the write
    /// fails (the `FAILED` bit of `state.rs` makes the next notify of the
    /// same word write again instead of coalescing):
    ///
    /// * `Waker::notify` / `KeyedWaker::notify`: the error is returned; the
    ///   caller's next notify writes again.
    /// * a send into an empty mailbox (`mailbox.rs`, `send_with`): sets the
    ///   mailbox's `rewake` flag and tries once more; the next send wakes
    ///   while `rewake` is set, and the wake stays `PENDING|FAILED`, so the
    ///   loop's next call re-arms and looks.
    /// * the loop's own wake for leftovers and for a disconnection it
    ///   consumed (`ring_with`): tried once more at once; if that fails
    ///   too, `rewake` makes the next send wake, and the wake stays
    ///   `PENDING|FAILED`, so the loop's next call re-arms, looks, and rings
    ///   again.
    /// * the last `Sender`'s drop (`disconnect_with`): tried once more at
    ///   once. No send follows it, so if both writes fail only the loop's
    ///   next call of its own sees the disconnection (the pending wake makes
    ///   it look).
    /// * the wake an `Awake` guard absorbed, written at its drop
    ///   (`State::write_absorbed`): a failure sets `FAILED`, so the next
    ///   notify writes.
    #[cfg(wakefd_fault_injection)]
    fail_writes: std::sync::atomic::AtomicUsize,
}

/// The mechanism behind a `Sys`: its fds and how to write and read a wake.
#[derive(Debug)]
enum Mech {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    EventFd(eventfd::EventFd),
    #[cfg(unix)]
    Pipe(pipe::Pipe),
    /// Both the AF_UNIX socketpair and the loopback TCP pair.
    #[cfg(unix)]
    Socket(socketpair::SocketPair),
    /// The loopback TCP pair, its read end watched through mio.
    #[cfg(windows)]
    Tcp(winsock::TcpPair),
}

impl Sys {
    /// Opens the fds of `backend`.
    pub(crate) fn new(backend: Backend) -> io::Result<Sys> {
        let mech = match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::EventFd => eventfd::EventFd::new().map(Mech::EventFd),
            #[cfg(unix)]
            Backend::Pipe => pipe::Pipe::new().map(Mech::Pipe),
            #[cfg(unix)]
            Backend::UnixSocketPair => socketpair::SocketPair::new().map(Mech::Socket),
            #[cfg(unix)]
            Backend::TcpLoopback => tcp::pair().map(Mech::Socket),
            #[cfg(windows)]
            Backend::TcpLoopback => tcp::pair().map(Mech::Tcp),
            #[allow(unreachable_patterns)] // reachable where a mechanism is compiled out
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {other} backend is not available on this platform"),
            )),
        }?;
        Ok(Sys {
            mech,
            #[cfg(wakefd_fault_injection)]
            fail_writes: Default::default(),
        })
    }

    /// Test seam: the next `n` wake writes fail with `ENOBUFS`, as a socket
    /// write can when the kernel is short of memory.
    #[cfg(wakefd_fault_injection)]
    pub(crate) fn fail_next_writes(&self, n: usize) {
        self.fail_writes
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The read end, the fd (socket) a reactor watches. It is the same and
    /// open for as long as the `Sys` lives.
    pub(crate) fn fd(&self) -> Handle<'_> {
        match &self.mech {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mech::EventFd(e) => e.fd(),
            #[cfg(unix)]
            Mech::Pipe(p) => p.fd(),
            #[cfg(unix)]
            Mech::Socket(s) => s.fd(),
            #[cfg(windows)]
            Mech::Tcp(t) => t.fd(),
        }
    }

    /// The raw number of the read end.
    pub(crate) fn raw(&self) -> RawHandle {
        #[cfg(unix)]
        return self.fd().as_raw_fd();
        #[cfg(windows)]
        return self.fd().as_raw_socket();
    }

    /// Blocks until the read end is readable or `deadline` passes (`None`:
    /// no deadline); see [`poll_readable`].
    pub(crate) fn poll_readable(&self, deadline: Option<Instant>) -> io::Result<bool> {
        poll_readable(self.fd(), deadline)
    }

    /// Registers the read end with mio, as a `Source` for `Interest::READABLE`.
    pub(crate) fn register(
        &self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        #[cfg(unix)]
        return mio::unix::SourceFd(&self.raw()).register(registry, token, interests);
        #[cfg(windows)]
        return self.tcp().register(registry, token, interests);
    }

    /// Changes the read end's mio registration.
    pub(crate) fn reregister(
        &self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        #[cfg(unix)]
        return mio::unix::SourceFd(&self.raw()).reregister(registry, token, interests);
        #[cfg(windows)]
        return self.tcp().reregister(registry, token, interests);
    }

    /// After mio reported an event for the read end: makes sure another one
    /// comes for the next wake even if the loop does not drain now. Nothing
    /// to do on Unix, where epoll reports every write to a watcher
    /// edge-triggered; on Windows mio's selector clears the interest with
    /// each event, and this restores it as a read that would block does (an
    /// unread byte then brings the event again).
    pub(crate) fn rearm_after_event(&self) -> io::Result<()> {
        #[cfg(unix)]
        return Ok(());
        #[cfg(windows)]
        return self.tcp().rearm_after_event();
    }

    /// Takes the read end out of mio.
    pub(crate) fn deregister(&self, registry: &Registry) -> io::Result<()> {
        #[cfg(unix)]
        return mio::unix::SourceFd(&self.raw()).deregister(registry);
        #[cfg(windows)]
        return self.tcp().deregister(registry);
    }

    /// The one mechanism Windows has.
    #[cfg(windows)]
    fn tcp(&self) -> &winsock::TcpPair {
        let Mech::Tcp(tcp) = &self.mech;
        tcp
    }

    /// Whether an edge-triggered watcher (mio on epoll) gets a fresh event for
    /// every write even when nothing is ever read, so `drain` may skip the
    /// read. True of an eventfd: every write wakes its epoll watchers, and the
    /// 64-bit counter takes 2^64 - 2 writes to fill (and `write_wake` resets
    /// it when it does, as `mio::Waker` does). False of byte streams: once
    /// their buffer is full a write adds no edge.
    pub(crate) fn edge_needs_no_read(&self) -> bool {
        match &self.mech {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mech::EventFd(_) => true,
            #[cfg(unix)]
            Mech::Pipe(_) | Mech::Socket(_) => false,
            #[cfg(windows)]
            Mech::Tcp(_) => false,
        }
    }
}

impl Signal for Sys {
    fn write_wake(&self) -> io::Result<()> {
        #[cfg(unix)]
        let _errno = ErrnoGuard::save();
        #[cfg(wakefd_fault_injection)]
        {
            use std::sync::atomic::Ordering::Relaxed;
            if self
                .fail_writes
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(io::Error::from_raw_os_error(ENOBUFS));
            }
        }
        match &self.mech {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mech::EventFd(e) => e.write_wake(),
            #[cfg(unix)]
            Mech::Pipe(p) => p.write_wake(),
            #[cfg(unix)]
            Mech::Socket(s) => s.write_wake(),
            #[cfg(windows)]
            Mech::Tcp(t) => t.write_wake(),
        }
    }

    fn read_wakes(&self) -> io::Result<()> {
        match &self.mech {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mech::EventFd(e) => e.read_wakes(),
            #[cfg(unix)]
            Mech::Pipe(p) => p.read_wakes(),
            #[cfg(unix)]
            Mech::Socket(s) => s.read_wakes(),
            #[cfg(windows)]
            Mech::Tcp(t) => t.read_wakes(),
        }
    }
}

/// Writes one byte to a byte stream (pipe or socket). `EINTR` is retried; a
/// full buffer (`WouldBlock`) means the reader has bytes to read: success.
#[cfg(unix)]
fn write_stream(mut write: impl FnMut(&[u8]) -> io::Result<usize>) -> io::Result<()> {
    loop {
        match write(&[1]) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Empties a byte stream: reads until a short read (the stream had fewer
/// bytes than the buffer, so it is empty now) or `WouldBlock`. `EINTR` is
/// retried.
#[cfg(unix)]
fn read_stream(mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<()> {
    // One wake is one byte and at most one is written per drain cycle (plus
    // one stray, see state.rs), so one read almost always empties the stream.
    let mut buf = [0u8; 64];
    loop {
        match read(&mut buf) {
            // A full buffer: there may be more. (End of stream, `Ok(0)`,
            // cannot happen while we hold both ends, and is short too.)
            Ok(n) if n == buf.len() => continue,
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Blocks until `fd` is readable or `deadline` passes (`None`: no
/// deadline), never returning `Ok(false)` before the deadline. `EINTR` is
/// retried with the time that is left. `Ok(true)` if readable.
///
/// On Linux and Android this is [`ppoll(2)`], whose timeout is a
/// `timespec`, so a wait is as precise as the kernel's timer (a 200 µs
/// timeout returns after about 200 µs); elsewhere [`poll(2)`], whose
/// millisecond timeout is rounded up.
///
/// [`ppoll(2)`]: https://man7.org/linux/man-pages/man2/ppoll.2.html
/// [`poll(2)`]: https://man7.org/linux/man-pages/man2/poll.2.html
#[cfg(unix)]
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let n = poll_one(&mut pfd, left);
        match n {
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            0 if deadline.is_some_and(|d| Instant::now() >= d) => return Ok(false),
            0 => {} // woke a little early; go round with what is left
            _ => return Ok(true),
        }
    }
}

/// One `ppoll` of `pfd` for at most `left` (`None`: no limit).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn poll_one(pfd: &mut libc::pollfd, left: Option<Duration>) -> libc::c_int {
    let ts = left.map(|left| libc::timespec {
        // A timeout of more than 2^63 s is no limit in practice: clamp it.
        tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: left.subsec_nanos() as _,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |ts| ts as *const _);
    // SAFETY: `pfd` is a valid, initialized pollfd that lives across the
    // call, with a count of exactly one; `ts_ptr` is null (no limit) or
    // points to a valid timespec on this stack frame; a null signal mask
    // leaves the thread's mask alone.
    unsafe { libc::ppoll(pfd, 1, ts_ptr, std::ptr::null()) }
}

/// One `poll` of `pfd` for at most `left` (`None`: no limit), rounded up to
/// whole milliseconds so that it never wakes before the deadline and spins
/// on a zero timeout.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn poll_one(pfd: &mut libc::pollfd, left: Option<Duration>) -> libc::c_int {
    let timeout_ms = match left {
        None => -1,
        Some(left) => {
            let ms = left.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    };
    // SAFETY: `pfd` is a valid, initialized pollfd that lives across the
    // call, and we pass a count of exactly one.
    unsafe { libc::poll(pfd, 1, timeout_ms) }
}

/// The deadline `timeout` from now, or `None` for "no deadline" (also when
/// the addition overflows, which only a near-infinite timeout does).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
