//! Accepting, and shedding load when file descriptors run out.
//!
//! The listener has the system's maximum backlog; accepts loop until
//! `WouldBlock`; errors that concern one connection only (`ECONNABORTED`,
//! ...) are skipped. On `EMFILE`/`ENFILE` the server closes a reserve fd,
//! accepts the connection and closes it at once (shedding it: the client
//! reads EOF), and reopens the reserve, as libuv and libev do. If the reserve
//! cannot be had back, it stops watching the listener until a connection
//! closes or [`ACCEPT_PAUSE`] passes. It never spins on an error it cannot
//! clear.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::time::{Duration, Instant};

use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use super::stats::add;
use super::{Server, LISTENER};

/// How long accepting pauses when the server cannot shed a connection.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// `SOMAXCONN`: on Windows winsock2's 0x7fffffff, "the provider's maximum".
#[cfg(unix)]
const SOMAXCONN: i32 = libc::SOMAXCONN;
#[cfg(windows)]
const SOMAXCONN: i32 = i32::MAX;

/// The listen backlog the system allows: `/proc/sys/net/core/somaxconn`, or
/// `SOMAXCONN` where that cannot be read.
pub fn max_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(SOMAXCONN)
}

/// A listener on `addr` with the maximum backlog, and `SO_REUSEADDR` on
/// Unix (on Windows it would let another socket take the port).
pub fn bind(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(max_backlog())?;
    Ok(socket.into())
}

/// An fd kept open so that, when the process runs out, closing it makes
/// room to accept (and shed) one connection.
pub(super) fn open_reserve() -> io::Result<File> {
    #[cfg(unix)]
    return File::open("/dev/null");
    #[cfg(windows)]
    return File::open("NUL");
}

#[cfg(unix)]
fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(windows)]
fn is_out_of_fds(e: &io::Error) -> bool {
    use windows_sys::Win32::Networking::WinSock::{WSAEMFILE, WSAENOBUFS};
    matches!(e.raw_os_error(), Some(WSAEMFILE | WSAENOBUFS))
}

/// Accept errors that concern one connection only, not the listener (on
/// Windows a peer that reset before it was accepted is `WSAECONNRESET`).
fn is_transient_accept_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
        || e.kind() == io::ErrorKind::ConnectionAborted
        || e.kind() == io::ErrorKind::ConnectionReset
        || is_transient_errno(e)
}

#[cfg(unix)]
fn is_transient_errno(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}

#[cfg(windows)]
fn is_transient_errno(_: &io::Error) -> bool {
    false
}

impl Server<'_> {
    /// Accepts until `WouldBlock`, shedding or pausing when fds run out.
    pub(super) fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    self.out_of_fds = false;
                    self.add_conn(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_transient_accept_error(&e) => continue,
                // Linux fails accept with EMFILE even when no connection is
                // waiting: `shed_one` finds out which.
                Err(e) if is_out_of_fds(&e) => {
                    if !self.shed_one(&e) {
                        return;
                    }
                }
                Err(e) => {
                    // ENOBUFS, ENOMEM, ...: nothing to do but wait.
                    eprintln!("echo: accept: {e}; pausing for {ACCEPT_PAUSE:?}");
                    self.pause_accepting();
                    return;
                }
            }
        }
    }

    /// Out of fds: close the reserve, accept one connection and close it,
    /// reopen the reserve. `true` to go on accepting.
    fn shed_one(&mut self, error: &io::Error) -> bool {
        if self.reserve.take().is_none() {
            // The reserve was lost: stop watching the listener for a while
            // rather than wake up for connections we cannot take.
            self.pause_accepting();
            return false;
        }
        let accepted = self.listener.accept();
        let go_on = match accepted {
            Ok((stream, peer)) => {
                drop(stream); // the client reads EOF
                add(&self.stats.shed, 1);
                if !self.out_of_fds {
                    self.out_of_fds = true;
                    eprintln!("echo: accept: {error}; shedding connections until some close");
                }
                if self.config.verbose {
                    eprintln!("echo: shed {peer}");
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) if is_transient_accept_error(&e) => true,
            Err(e) => {
                // Another thread took the fd we freed.
                eprintln!("echo: accept with the reserve closed: {e}");
                self.pause_accepting();
                false
            }
        };
        self.reserve = open_reserve().ok();
        go_on
    }

    fn pause_accepting(&mut self) {
        if self.listening {
            if let Err(e) = self.poll.registry().deregister(&mut self.listener) {
                eprintln!("echo: deregistering the listener: {e}");
            }
            self.listening = false;
            add(&self.stats.accept_pauses, 1);
        }
        self.accept_retry = Some(Instant::now() + ACCEPT_PAUSE);
    }

    /// Watches the listener again once [`ACCEPT_PAUSE`] has passed or an fd
    /// is free, and accepts what queued meanwhile.
    pub(super) fn resume_accepting(&mut self) {
        self.accept_retry = None;
        if self.reserve.is_none() {
            self.reserve = open_reserve().ok();
        }
        if !self.listening {
            let registry = self.poll.registry();
            if let Err(e) = registry.register(&mut self.listener, LISTENER, Interest::READABLE) {
                eprintln!("echo: registering the listener: {e}");
                self.accept_retry = Some(Instant::now() + ACCEPT_PAUSE);
                return;
            }
            self.listening = true;
        }
        // Connections that queued while paused raised no new edge.
        self.accept_all();
    }

    /// A connection closed, so an fd is free again: while paused, try
    /// accepting now rather than at the timeout.
    pub(super) fn fd_freed(&mut self) {
        if self.accept_retry.is_some() {
            self.accept_retry = Some(Instant::now());
        }
    }
}
