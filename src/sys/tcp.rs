//! A loopback TCP connection, for platforms and sandboxes where AF_UNIX
//! sockets are unavailable, built the way libevent's `evutil_socketpair`
//! emulation does it:
//!
//! 1. listen on `127.0.0.1:0` (or `[::1]:0` if IPv4 loopback is missing);
//! 2. connect to it;
//! 3. accept, and **check that the accepted connection is our own connector**:
//!    its peer address must equal the connector's local address. Any other
//!    local process may connect to the port between `listen` and `accept`; such
//!    a stray connection is closed and accept is retried, at most
//!    [`MAX_STRAYS`] times, then creation fails;
//! 4. close the listener, set `TCP_NODELAY` and non-blocking on both ends.
//!
//! The pair is then a [`SocketPair`]: a wake is one byte sent with
//! `MSG_NOSIGNAL`. Every socket is opened close-on-exec (socket2 does it).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::socketpair::SocketPair;
use super::{deadline, poll_readable};

/// How many stray connections are closed before giving up.
const MAX_STRAYS: usize = 16;

/// How long connect and accept may take on loopback before we give up.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn pair() -> io::Result<SocketPair> {
    let listener = listen_on_loopback()?;
    let addr = inet(listener.local_addr()?)?;
    let connector = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    connector.connect_timeout(&SockAddr::from(addr), TIMEOUT)?;
    let ours = inet(connector.local_addr()?)?;
    let accepted = accept_own(&listener, ours)?;
    drop(listener);
    accepted.set_tcp_nodelay(true)?;
    connector.set_tcp_nodelay(true)?;
    SocketPair::from_connected(accepted, connector)
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
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(MAX_STRAYS as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Errors that mean "this address family has no loopback here", as opposed
/// to errors (`EMFILE`, ...) that the other family would meet as well.
fn loopback_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable
        || matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
        )
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
                if !poll_readable(listener.as_fd(), deadline)? {
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
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}
