//! A loopback TCP connection: on Unix for sandboxes where AF_UNIX sockets
//! are unavailable, on Windows the one mechanism there is. It is built the
//! way libevent's `evutil_socketpair` emulation does it, with CPython's
//! checks in both directions:
//!
//! 1. listen on `127.0.0.1:0` (or `[::1]:0` if IPv4 loopback is missing),
//!    never with `SO_REUSEADDR`, and on Windows with `SO_EXCLUSIVEADDRUSE`
//!    (there `SO_REUSEADDR` would let another socket bind our port, and
//!    without the exclusive option a socket of another user could);
//! 2. connect to it, and **check that the connector's peer is our
//!    listener's address**;
//! 3. accept, and **check that the accepted connection is our own
//!    connector**: its peer address must equal the connector's local
//!    address. Any other local process may connect to the port between
//!    `listen` and `accept`; such a stray connection is closed and accept is
//!    retried, at most [`MAX_STRAYS`] times and for at most [`TIMEOUT`], then
//!    creation fails;
//! 4. close the listener, set `TCP_NODELAY` and non-blocking on both ends.
//!
//! Every socket is opened close-on-exec on Unix and non-inheritable on
//! Windows (socket2 creates and accepts them with `SOCK_CLOEXEC` /
//! `WSA_FLAG_NO_HANDLE_INHERIT`), and each is owned by a `Socket` from the
//! moment it exists, so an error path closes what was opened. The pair is
//! then a `SocketPair` on Unix (a wake is one byte sent with `MSG_NOSIGNAL`)
//! or a `TcpPair` on Windows (`winsock.rs`).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
#[cfg(unix)]
use std::os::fd::AsFd;
#[cfg(windows)]
use std::os::windows::io::AsSocket;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

#[cfg(unix)]
use super::socketpair::SocketPair as Pair;
#[cfg(windows)]
use super::winsock::TcpPair as Pair;
use super::{deadline, poll_readable};

/// How many stray connections are closed before giving up.
const MAX_STRAYS: usize = 16;

/// How long connect and accept may take on loopback before we give up.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn pair() -> io::Result<Pair> {
    pair_with(|_| {})
}

/// [`pair`], calling `before_connect` with the listener once it listens
/// (the seam through which a test connects strays).
fn pair_with(before_connect: impl FnOnce(&Socket)) -> io::Result<Pair> {
    let listener = listen_on_loopback()?;
    let addr = inet(listener.local_addr()?)?;
    before_connect(&listener);
    let connector = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    connector.connect_timeout(&SockAddr::from(addr), TIMEOUT)?;
    if inet(connector.peer_addr()?)? != addr {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "loopback TCP: our connector reached another address than our listener's",
        ));
    }
    let ours = inet(connector.local_addr()?)?;
    let accepted = accept_own(&listener, ours)?;
    drop(listener);
    accepted.set_tcp_nodelay(true)?;
    connector.set_tcp_nodelay(true)?;
    Pair::from_connected(accepted, connector)
}

/// A listener on an ephemeral loopback port, IPv4 first.
fn listen_on_loopback() -> io::Result<Socket> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    match listen(v4) {
        Err(e) if loopback_missing(&e) => listen(v6),
        result => result,
    }
}

fn listen(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(windows)]
    super::winsock::set_exclusive_addr_use(&socket)?;
    socket.bind(&SockAddr::from(addr))?;
    // Room in the backlog for the strays we tolerate and our connector.
    socket.listen(MAX_STRAYS as i32 + 1)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Errors that mean "this address family has no loopback here", as opposed
/// to errors (`EMFILE`, ...) that the other family would meet as well.
fn loopback_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable
        || matches!(e.raw_os_error(), Some(code) if errors::NO_FAMILY.contains(&code))
}

fn inet(addr: SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::other("loopback TCP: socket has no inet address"))
}

/// Accepts until the connection from `ours` arrives, closing strays.
fn accept_own(listener: &Socket, ours: SocketAddr) -> io::Result<Socket> {
    let deadline = deadline(Some(TIMEOUT));
    let mut strays = 0;
    while strays < MAX_STRAYS {
        match listener.accept() {
            Ok((socket, peer)) if peer.as_socket() == Some(ours) => return Ok(socket),
            // Someone else's connection: close it and keep looking.
            Ok(_) => strays += 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A peer that reset before we accepted it is a stray too, and so
            // is a connection whose network error accept(2) reports (Linux
            // passes them on; its man page says to retry).
            Err(e) if is_pending_network_error(&e) => strays += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                #[cfg(unix)]
                let handle = listener.as_fd();
                #[cfg(windows)]
                let handle = listener.as_socket();
                if !poll_readable(handle, deadline)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "loopback TCP: our own connection never reached accept",
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!(
            "loopback TCP: accepted {MAX_STRAYS} connections that were not our own; \
             another process is connecting to our ephemeral port"
        ),
    ))
}

/// Errors of `accept` that belong to the connection being accepted, not to
/// the listener: retry with the next one.
fn is_pending_network_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if errors::PENDING_NETWORK.contains(&code))
}

#[cfg(unix)]
mod errors {
    /// The address family (or its loopback) is missing.
    pub(super) const NO_FAMILY: &[i32] = &[
        libc::EAFNOSUPPORT,
        libc::EADDRNOTAVAIL,
        libc::EPROTONOSUPPORT,
    ];

    /// `accept` reports an error of the connection it dequeued.
    pub(super) const PENDING_NETWORK: &[i32] = &[
        libc::ECONNABORTED,
        libc::EPROTO,
        libc::ENETDOWN,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::EHOSTUNREACH,
        libc::EOPNOTSUPP,
        libc::ENETUNREACH,
    ];
}

#[cfg(windows)]
mod errors {
    use windows_sys::Win32::Networking::WinSock as ws;

    /// The address family (or its loopback) is missing.
    pub(super) const NO_FAMILY: &[i32] = &[
        ws::WSAEAFNOSUPPORT,
        ws::WSAEADDRNOTAVAIL,
        ws::WSAEPROTONOSUPPORT,
    ];

    /// `accept` reports an error of the connection it dequeued: Winsock
    /// fails with `WSAECONNRESET` for a peer that reset before it was
    /// accepted.
    pub(super) const PENDING_NETWORK: &[i32] = &[
        ws::WSAECONNRESET,
        ws::WSAECONNABORTED,
        ws::WSAENETDOWN,
        ws::WSAEHOSTUNREACH,
        ws::WSAENETUNREACH,
    ];
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;

    /// The listener's address, as a stray would learn it.
    fn addr_of(listener: &Socket) -> SocketAddr {
        inet(listener.local_addr().unwrap()).unwrap()
    }

    /// Whether `stray` sees its connection closed (end of stream or a
    /// reset) within the test's bound, instead of being kept open.
    fn refused(mut stray: TcpStream) -> bool {
        stray
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        match stray.read(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    fn assert_pair_wakes(pair: &Pair) {
        pair.write_wake().unwrap();
        assert!(poll_readable(pair.fd(), deadline(Some(Duration::from_secs(10)))).unwrap());
        pair.read_wakes().unwrap();
        assert!(!poll_readable(pair.fd(), deadline(Some(Duration::from_millis(20)))).unwrap());
    }

    #[test]
    fn the_listener_is_loopback_only_and_never_reuses_addresses() {
        let pair = pair_with(|listener| {
            assert!(addr_of(listener).ip().is_loopback());
            assert!(!listener.reuse_address().unwrap());
        })
        .unwrap();
        assert_pair_wakes(&pair);
    }

    #[test]
    fn a_stray_connection_during_creation_is_refused() {
        let mut stray = None;
        let pair = pair_with(|listener| {
            // Connected before our connector: the listener's backlog hands
            // it to accept first.
            stray = Some(TcpStream::connect(addr_of(listener)).unwrap());
        })
        .unwrap();
        assert!(refused(stray.unwrap()), "the stray was served");
        assert_pair_wakes(&pair);
    }

    #[test]
    fn more_strays_than_the_limit_fail_creation_instead_of_hanging() {
        let mut strays = Vec::new();
        let start = Instant::now();
        let err = pair_with(|listener| {
            let addr = addr_of(listener);
            strays.extend((0..MAX_STRAYS).map(|_| TcpStream::connect(addr).unwrap()));
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        assert!(start.elapsed() < TIMEOUT);
        for stray in strays {
            assert!(refused(stray), "a stray was served");
        }
    }
}
