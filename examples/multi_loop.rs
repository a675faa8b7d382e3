//! memcached's `thread_init` shape: one acceptor thread, N I/O threads.
//!
//! The acceptor hands each new connection (a `std::net::TcpStream`, that is
//! an fd) round-robin to one I/O thread through that thread's
//! `wakefd::Mailbox`, as memcached's `dispatch_conn_new` pushes a connection
//! item on a worker's queue and writes a byte to its notify pipe. Each I/O
//! thread runs its own mio loop and echoes bytes back on its connections.
//! After `--seconds` the acceptor stops the I/O threads (a `Stop` message
//! through the same mailboxes) and prints each one's load.
//!
//! ```text
//! cargo run --release --example multi_loop -- --threads 4 --seconds 10 &
//! cargo run --release --example echo_load -- --addr 127.0.0.1:7879 --echo --clients 40
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};
use wakefd::{Backend, Mailbox};

/// An echo server with one acceptor and N I/O threads fed through mailboxes.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7879")]
    addr: SocketAddr,
    /// I/O threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Run this long, then print each I/O thread's load and exit.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Backend of the mailboxes: eventfd, pipe, socketpair or tcp.
    #[arg(long, default_value_t = Backend::default())]
    backend: Backend,
}

/// What the acceptor sends an I/O thread.
enum Msg {
    /// A new connection to serve (blocking or not; the I/O thread sets it
    /// non-blocking).
    Conn(std::net::TcpStream),
    /// Close everything and return.
    Stop,
}

/// One I/O thread's totals.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    connections: u64,
    open_at_exit: u64,
    bytes: u64,
}

const MAILBOX: Token = Token(0);
/// Stop reading a connection while this much echo waits to be written.
const MAX_PENDING: usize = 64 * 1024;
/// How long the acceptor waits before accepting again after an error such
/// as `EMFILE` (Linux fails `accept` with it even when nothing is waiting,
/// so retrying at once would spin). Connections wait in the backlog.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multi_loop: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let listener = bind(args.addr)?;
    println!(
        "multi_loop listening on {} with {} I/O threads ({} mailboxes) for {} s",
        listener.local_addr()?,
        args.threads,
        args.backend,
        args.seconds
    );

    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for i in 0..args.threads.max(1) {
        let mailbox = Mailbox::with_backend(args.backend)?;
        senders.push(mailbox.sender());
        threads.push(
            thread::Builder::new()
                .name(format!("io-{i}"))
                .spawn(move || io_thread(mailbox))?,
        );
    }

    accept_until(
        listener,
        Instant::now() + Duration::from_secs(args.seconds),
        |i, conn| {
            let sender = &senders[i % senders.len()];
            if sender.send(Msg::Conn(conn)).is_err() {
                eprintln!("multi_loop: I/O thread {} is gone", i % senders.len());
            }
        },
    )?;

    for sender in &senders {
        let _ = sender.send(Msg::Stop);
    }
    println!("thread  connections  open at exit  bytes echoed");
    let mut total = Load::default();
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(Ok(load)) => {
                println!(
                    "{i:>6}  {:>11}  {:>12}  {:>12}",
                    load.connections, load.open_at_exit, load.bytes
                );
                total.connections += load.connections;
                total.open_at_exit += load.open_at_exit;
                total.bytes += load.bytes;
            }
            Ok(Err(e)) => println!("{i:>6}  failed: {e}"),
            Err(_) => println!("{i:>6}  panicked"),
        }
    }
    println!(
        " total  {:>11}  {:>12}  {:>12}",
        total.connections, total.open_at_exit, total.bytes
    );
    Ok(())
}

/// A listener with the system's maximum backlog.
fn bind(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(libc::SOMAXCONN);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// The acceptor: accepts until `deadline`, handing the `n`th connection to
/// `dispatch(n, conn)`.
fn accept_until(
    listener: StdTcpListener,
    deadline: Instant,
    mut dispatch: impl FnMut(usize, std::net::TcpStream),
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)?;
    let mut events = Events::with_capacity(16);
    let mut retry_at: Option<Instant> = None;
    let mut n = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        let wake_at = retry_at.map_or(deadline, |r| r.min(deadline));
        match poll.poll(&mut events, Some(wake_at - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if events.is_empty() && retry_at.map_or(true, |r| Instant::now() < r) {
            continue;
        }
        retry_at = None;
        loop {
            match listener.accept() {
                Ok((conn, _peer)) => {
                    dispatch(n, conn.into());
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    eprintln!("multi_loop: accept: {e}; retrying in {ACCEPT_RETRY:?}");
                    retry_at = Some(Instant::now() + ACCEPT_RETRY);
                    break;
                }
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet written back.
    pending: Vec<u8>,
    interest: Interest,
    /// The peer half-closed: write what is left, then close.
    read_closed: bool,
}

/// One I/O thread: its own mio loop, fed connections through `mailbox`.
fn io_thread(mut mailbox: Mailbox<Msg>) -> io::Result<Load> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut mailbox, MAILBOX, Interest::READABLE)?;
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_token = 1;
    let mut load = Load::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == MAILBOX {
                for msg in mailbox.drain() {
                    match msg {
                        Msg::Conn(conn) => {
                            let token = Token(next_token);
                            next_token += 1;
                            if let Err(e) = adopt(conn, token, poll.registry(), &mut conns) {
                                eprintln!("multi_loop: taking a connection: {e}");
                                continue;
                            }
                            load.connections += 1;
                        }
                        Msg::Stop => {
                            load.open_at_exit = conns.len() as u64;
                            return Ok(load);
                        }
                    }
                }
            } else if let Some(conn) = conns.get_mut(&event.token()) {
                let keep = echo(conn, &mut buf, &mut load)
                    && update_interest(conn, event.token(), poll.registry());
                if !keep {
                    if let Some(mut conn) = conns.remove(&event.token()) {
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                }
            }
        }
    }
}

fn adopt(
    conn: std::net::TcpStream,
    token: Token,
    registry: &Registry,
    conns: &mut HashMap<Token, Conn>,
) -> io::Result<()> {
    conn.set_nonblocking(true)?;
    conn.set_nodelay(true)?;
    let mut stream = TcpStream::from_std(conn);
    registry.register(&mut stream, token, Interest::READABLE)?;
    conns.insert(
        token,
        Conn {
            stream,
            pending: Vec::new(),
            interest: Interest::READABLE,
            read_closed: false,
        },
    );
    Ok(())
}

/// Writes what is pending and reads what has come, until the socket would
/// block either way or `MAX_PENDING` is waiting (then WRITABLE brings us
/// back). `false` when the connection is done or failed.
fn echo(conn: &mut Conn, buf: &mut [u8], load: &mut Load) -> bool {
    loop {
        while !conn.pending.is_empty() {
            match conn.stream.write(&conn.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    conn.pending.drain(..n);
                    load.bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if conn.read_closed {
            return !conn.pending.is_empty();
        }
        if conn.pending.len() >= MAX_PENDING {
            return true;
        }
        match conn.stream.read(buf) {
            Ok(0) => conn.read_closed = true,
            Ok(n) => conn.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// WRITABLE interest only while something waits to be written.
fn update_interest(conn: &mut Conn, token: Token, registry: &Registry) -> bool {
    let wanted = if conn.pending.is_empty() {
        Interest::READABLE
    } else {
        Interest::READABLE | Interest::WRITABLE
    };
    if wanted != conn.interest {
        if registry
            .reregister(&mut conn.stream, token, wanted)
            .is_err()
        {
            return false;
        }
        conn.interest = wanted;
    }
    true
}
