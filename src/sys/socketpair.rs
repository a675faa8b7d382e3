//! A connected pair of stream sockets: an AF_UNIX [`socketpair(2)`], or the
//! loopback TCP pair that `tcp.rs` builds and hands over as the same type.
//!
//! A wake is one byte sent on the write socket with `MSG_NOSIGNAL`, so a
//! peer that is gone would give `EPIPE` rather than `SIGPIPE` (it cannot be
//! gone: both sockets are dropped together). `read_wakes` receives until a
//! short read or `EAGAIN`. A full socket buffer is already readable, so a
//! send that fails with `EAGAIN` succeeds as a wake.
//!
//! [`socketpair(2)`]: https://man7.org/linux/man-pages/man2/socketpair.2.html

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use socket2::{Domain, Socket, Type};

use super::{read_stream, write_stream};

/// `send` flags: never raise `SIGPIPE`. Apple platforms have no
/// `MSG_NOSIGNAL` and use the `SO_NOSIGPIPE` socket option instead
/// (socket2 sets it on every socket it creates there).
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = 0;

#[derive(Debug)]
pub(crate) struct SocketPair {
    read: Socket,
    write: Socket,
}

impl SocketPair {
    /// An AF_UNIX stream socketpair. socket2 opens it close-on-exec.
    pub(crate) fn new() -> io::Result<SocketPair> {
        let (read, write) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
        SocketPair::from_connected(read, write)
    }

    /// Takes two connected stream sockets and makes them non-blocking.
    /// On error both are closed (dropped).
    pub(crate) fn from_connected(read: Socket, write: Socket) -> io::Result<SocketPair> {
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(SocketPair { read, write })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub(crate) fn write_wake(&self) -> io::Result<()> {
        write_stream(|buf| self.write.send_with_flags(buf, SEND_FLAGS))
    }

    pub(crate) fn read_wakes(&self) -> io::Result<()> {
        read_stream(|buf| (&self.read).read(buf))
    }
}
