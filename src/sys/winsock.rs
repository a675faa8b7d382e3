//! The loopback TCP pair as Windows drives it (`tcp.rs` builds it), and
//! [`WSAPoll`] for a wait without a reactor.
//!
//! A wake is one byte sent on the write socket; `read_wakes` receives until
//! a short read or `WSAEWOULDBLOCK`. Winsock raises no signal, and the read
//! end lives as long as the write end (both are dropped together).
//!
//! Two rules differ from Unix:
//!
//! * **mio re-arms a socket only when an I/O call made through mio fails
//!   with `WouldBlock`.** Its selector polls sockets through AFD and clears
//!   a socket's interest after each event, so that it behaves
//!   edge-triggered (mio's `Poll` docs: on Windows all I/O must go through
//!   mio). The read end is therefore held as a [`mio::net::TcpStream`],
//!   registered as itself, and read through it; a drain that stops at a
//!   short read re-arms it with `try_io` as a `WouldBlock` would, so that
//!   the next wake is a fresh event. A sleep-aware `poll` that returns
//!   without a drain (a spurious event) re-arms it the same way.
//! * **A `WouldBlock` from the wake's send means "already readable" only if
//!   the read end holds a byte.** Under wine, non-blocking 1-byte sends from
//!   several threads can fail with `WouldBlock` while the receive buffer is
//!   empty. So the writer peeks at the read end; if it is empty, the send
//!   is retried (yielding between tries) for at most [`SEND_RETRY`], then
//!   the wake fails and the next `notify` writes again.
//!
//! Both sockets are created and accepted non-inheritable by socket2
//! (`WSA_FLAG_NO_HANDLE_INHERIT`), and each is closed once, by its owner.
//!
//! [`WSAPoll`]: https://learn.microsoft.com/en-us/windows/win32/api/winsock2/nf-winsock2-wsapoll

use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::windows::io::{AsRawSocket, BorrowedSocket, RawSocket};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use socket2::{SockRef, Socket};
use windows_sys::Win32::Networking::WinSock as ws;

/// How long a wake's send is retried while it fails with `WouldBlock` and
/// the read end is empty.
const SEND_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct TcpPair {
    /// The read end. mio's registration lives in it and needs `&mut` to
    /// change; the lock is taken by the loop's side only (drain and
    /// registration), never by a `notify`.
    read: Mutex<mio::net::TcpStream>,
    /// The read end's socket, for a `notify`'s peek and for `WSAPoll`
    /// without the lock. Owned by `read`, open as long as `self` lives.
    read_raw: RawSocket,
    write: Socket,
}

impl TcpPair {
    /// Takes two connected TCP sockets and makes them non-blocking. On
    /// error both are closed (dropped).
    pub(crate) fn from_connected(read: Socket, write: Socket) -> io::Result<TcpPair> {
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let read = mio::net::TcpStream::from_std(read.into());
        Ok(TcpPair {
            read_raw: read.as_raw_socket(),
            read: Mutex::new(read),
            write,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedSocket<'_> {
        // SAFETY: `read_raw` is the socket `self.read` owns; it stays open
        // until `self` is dropped, which the borrow of `self` outlives.
        unsafe { BorrowedSocket::borrow_raw(self.read_raw) }
    }

    fn lock(&self) -> MutexGuard<'_, mio::net::TcpStream> {
        // Nothing panics while holding the lock; a poisoned one still holds
        // a sound stream.
        self.read.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(
        &self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        registry.register(&mut *self.lock(), token, interests)
    }

    pub(crate) fn reregister(
        &self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        registry.reregister(&mut *self.lock(), token, interests)
    }

    /// Re-arms the registration after an event, without reading.
    pub(crate) fn rearm_after_event(&self) -> io::Result<()> {
        rearm(&self.lock())
    }

    pub(crate) fn deregister(&self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut *self.lock())
    }

    pub(crate) fn write_wake(&self) -> io::Result<()> {
        let mut give_up = None;
        loop {
            match self.write.send(&[1]) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.read_end_holds_a_byte()? {
                        return Ok(());
                    }
                    let now = Instant::now();
                    if now >= *give_up.get_or_insert(now + SEND_RETRY) {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "loopback TCP: the wake's send kept failing with WouldBlock \
                             while the read end was empty",
                        ));
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a byte sits unread in the read end (a peek, `MSG_PEEK`).
    fn read_end_holds_a_byte(&self) -> io::Result<bool> {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        loop {
            match SockRef::from(&self.fd()).peek(&mut byte) {
                // End of stream cannot happen while we hold both ends; it
                // holds no byte either way.
                Ok(n) => return Ok(n > 0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn read_wakes(&self) -> io::Result<()> {
        let stream = self.lock();
        // One wake is one byte and at most one is written per drain cycle
        // (plus one stray, see state.rs), so one read almost always empties
        // the stream.
        let mut buf = [0u8; 64];
        loop {
            // Through mio: a `WouldBlock` re-arms the registration.
            match (&*stream).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                // Short (end of stream, `Ok(0)`, cannot happen while we hold
                // both ends): empty now, and mio re-arms as on a `WouldBlock`.
                Ok(_) => return rearm(&stream),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Re-arms `stream`'s mio registration (if it has one) as a read that failed
/// with `WouldBlock` would, without a system call for the read.
fn rearm(stream: &mio::net::TcpStream) -> io::Result<()> {
    match stream.try_io(|| Err::<(), _>(io::ErrorKind::WouldBlock.into())) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

/// Sets `SO_EXCLUSIVEADDRUSE` on a socket about to be bound: no other
/// socket may bind its address while it is open.
pub(crate) fn set_exclusive_addr_use(socket: &Socket) -> io::Result<()> {
    let on: i32 = 1;
    // SAFETY: `socket` is an open socket; `optval` points to an i32 on this
    // stack frame that lives across the call, and `optlen` is its size.
    let ret = unsafe {
        ws::setsockopt(
            socket.as_raw_socket() as ws::SOCKET,
            ws::SOL_SOCKET,
            ws::SO_EXCLUSIVEADDRUSE,
            (&on as *const i32).cast(),
            std::mem::size_of::<i32>() as i32,
        )
    };
    if ret == ws::SOCKET_ERROR {
        // SAFETY: no preconditions; reads this thread's last Winsock error.
        return Err(io::Error::from_raw_os_error(unsafe {
            ws::WSAGetLastError()
        }));
    }
    Ok(())
}

/// Blocks until `socket` is readable or `deadline` passes (`None`: no
/// deadline), never returning `Ok(false)` before the deadline. `Ok(true)` if
/// readable (or in error, which the next read reports).
///
/// [`WSAPoll`] takes a millisecond timeout, rounded up here so that it never
/// wakes before the deadline and spins on a zero timeout; one that wakes
/// early goes round with the time that is left, as does `WSAEINTR`.
///
/// [`WSAPoll`]: https://learn.microsoft.com/en-us/windows/win32/api/winsock2/nf-winsock2-wsapoll
pub(crate) fn poll_readable(
    socket: BorrowedSocket<'_>,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        let mut pfd = ws::WSAPOLLFD {
            fd: socket.as_raw_socket() as ws::SOCKET,
            events: ws::POLLRDNORM,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid, initialized WSAPOLLFD that lives across
        // the call, with a count of exactly one.
        let n = unsafe { ws::WSAPoll(&mut pfd, 1, timeout_ms) };
        match n {
            ws::SOCKET_ERROR => {
                // SAFETY: no preconditions; reads this thread's last error.
                let err = io::Error::from_raw_os_error(unsafe { ws::WSAGetLastError() });
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
