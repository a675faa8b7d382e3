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
//! Each I/O thread blocks in the sleep-aware `Mailbox::poll` rather than
//! `Poll::poll`: while it is busy echoing, the acceptor's sends make no
//! system call. The load table counts the wakes written (system calls) per
//! 1000 messages; `--plain-poll` runs the loop of before (`Poll::poll` and a
//! drain on the mailbox's event) to compare.
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
    /// Block in `Poll::poll` and drain the mailbox on its event, instead of
    /// the sleep-aware `Mailbox::poll`.
    #[arg(long)]
    plain_poll: bool,
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
    /// Messages taken from the mailbox (connections and the stop).
    messages: u64,
    /// Wakes the acceptor wrote to the mailbox, from its `stats()`.
    wakes_written: u64,
}

impl Load {
    fn add(&mut self, other: &Load) {
        self.connections += other.connections;
        self.open_at_exit += other.open_at_exit;
        self.bytes += other.bytes;
        self.messages += other.messages;
        self.wakes_written += other.wakes_written;
    }

    /// One line of the table.
    fn row(&self, name: &str) -> String {
        let per_1000 = if self.messages == 0 {
            "n/a".to_owned()
        } else {
            format!(
                "{:.1}",
                self.wakes_written as f64 * 1000.0 / self.messages as f64
            )
        };
        format!(
            "{name:>6}  {:>11}  {:>12}  {:>12}  {:>8}  {:>13}  {per_1000:>13}",
            self.connections, self.open_at_exit, self.bytes, self.messages, self.wakes_written
        )
    }
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
        "multi_loop listening on {} with {} I/O threads ({} mailboxes, {}) for {} s",
        listener.local_addr()?,
        args.threads,
        args.backend,
        if args.plain_poll {
            "plain Poll::poll"
        } else {
            "sleep-aware Mailbox::poll"
        },
        args.seconds
    );

    let plain_poll = args.plain_poll;
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for i in 0..args.threads.max(1) {
        let mailbox = Mailbox::with_backend(args.backend)?;
        senders.push(mailbox.sender());
        threads.push(
            thread::Builder::new()
                .name(format!("io-{i}"))
                .spawn(move || io_thread(mailbox, plain_poll))?,
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
    println!(
        "thread  connections  open at exit  bytes echoed  messages  wakes written  per 1000 msgs"
    );
    let mut total = Load::default();
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(Ok(load)) => {
                println!("{}", load.row(&i.to_string()));
                total.add(&load);
            }
            Ok(Err(e)) => println!("{i:>6}  failed: {e}"),
            Err(_) => println!("{i:>6}  panicked"),
        }
    }
    println!("{}", total.row("total"));
    Ok(())
}

/// `SOMAXCONN`: on Windows winsock2's 0x7fffffff, "the provider's maximum".
#[cfg(unix)]
const SOMAXCONN: i32 = libc::SOMAXCONN;
#[cfg(windows)]
const SOMAXCONN: i32 = i32::MAX;

/// A listener with the system's maximum backlog.
fn bind(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(SOMAXCONN);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // On Windows SO_REUSEADDR would let another socket take the port.
    #[cfg(unix)]
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

/// One I/O thread: its own mio loop, fed connections through `mailbox`;
/// sleep-aware unless `plain_poll`.
fn io_thread(mut mailbox: Mailbox<Msg>, plain_poll: bool) -> io::Result<Load> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut mailbox, MAILBOX, Interest::READABLE)?;
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_token = 1;
    let mut load = Load::default();
    let mut buf = vec![0u8; 16 * 1024];
    // The sleep-aware loop: awake (sends make no system call) while the
    // guard lives, blocking only in `Mailbox::poll`.
    let _awake = (!plain_poll).then(|| mailbox.announce_awake());
    loop {
        let woken = if plain_poll {
            match poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            events.iter().any(|e| e.token() == MAILBOX)
        } else {
            // Announces sleep, polls (at once if messages are waiting),
            // announces the loop awake. `EINTR` comes back as no events.
            mailbox.poll(&mut poll, &mut events, None)?
        };
        let mut stop = false;
        if woken {
            for msg in mailbox.drain() {
                load.messages += 1;
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
                        stop = true;
                        break;
                    }
                }
            }
        }
        if stop {
            load.open_at_exit = conns.len() as u64;
            load.wakes_written = mailbox.stats().wakes_written;
            return Ok(load);
        }
        for event in events.iter() {
            if event.token() == MAILBOX {
                // Handled through `woken` above.
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
