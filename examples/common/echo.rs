//! The line echo server shared by `examples/echo_server.rs` and the tests.
//!
//! One I/O thread runs a mio loop: it accepts, reads lines, hands them to a
//! pool of worker threads, and writes the replies the workers send back
//! through a [`wakefd::Mailbox`]. The workers uppercase each line (after an
//! optional busy delay that stands for real work).
//!
//! What it does right, that the select/poll/epoll tutorials skip:
//!
//! - **Ordered replies.** The lines of one read go to a worker as one job
//!   with a per-connection sequence number; replies that come back early wait
//!   in a small map until their turn, so each connection gets its replies in
//!   the order of its lines whichever worker finishes first.
//! - **Partial writes and back-pressure.** Each connection has an output
//!   buffer; WRITABLE interest is registered only while it holds something.
//!   Once a client owes us more than [`HIGH_WATER`] bytes of replies (in the
//!   workers or unwritten) we stop reading it until it drops below
//!   [`LOW_WATER`], so a client that sends without reading cannot make the
//!   server buffer without bound.
//! - **Accepting.** The listener has the system's maximum backlog; accepts
//!   loop until `WouldBlock`; `ECONNABORTED` is skipped; on `EMFILE`/`ENFILE`
//!   the server closes a reserve fd, accepts the connection and closes it at
//!   once (shedding it: the client reads EOF), and reopens the reserve, as
//!   libuv and libev do. If the reserve cannot be had back, it stops watching
//!   the listener until a connection closes or [`ACCEPT_PAUSE`] passes. It
//!   never spins on an error it cannot clear.
//! - **Closing.** A connection closes on an I/O error, on hang-up, or once
//!   the client has half-closed and every reply is written. An I/O error is
//!   logged (with `verbose`) and closes that connection only.
//! - **Stopping.** The loop watches a [`wakefd::Notifier`]; any thread stops
//!   the server through one of its wakers.
//! - **Sleep-aware.** The loop blocks in [`Mailbox::poll`] instead of
//!   `Poll::poll`: it tells the mailbox when it sleeps, so a worker's reply
//!   makes no system call while the loop is busy (it finds the reply before
//!   it next blocks). `Config::plain_poll` restores `Poll::poll` + a drain
//!   on the mailbox's event, to compare; [`Snapshot`] counts the wakes
//!   written either way.
//!
//! Only the public API of `wakefd` is used.

// Each includer uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use wakefd::{Backend, Mailbox, Notifier, Sender, Waker};

/// Stop reading a client that is owed this many bytes of replies.
pub const HIGH_WATER: usize = 256 * 1024;
/// Read it again once it is owed less than this.
pub const LOW_WATER: usize = 64 * 1024;
/// A line longer than this closes the connection.
pub const MAX_LINE: usize = 64 * 1024;
/// How long accepting pauses when the server cannot shed a connection.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

const READ_CHUNK: usize = 16 * 1024;

const LISTENER: Token = Token(0);
const REPLIES: Token = Token(1);
const STOP: Token = Token(2);
const FIRST_CONN: usize = 3;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads (at least one is started).
    pub workers: usize,
    /// Busy work per line, standing for real work.
    pub work_per_line: Duration,
    /// Backend of the reply mailbox.
    pub backend: Backend,
    /// Log every connection error, not only accept trouble.
    pub verbose: bool,
    /// Block in `Poll::poll` and drain the mailbox on its event, instead of
    /// the sleep-aware [`Mailbox::poll`].
    pub plain_poll: bool,
    /// Spin budget of the sleep-aware poll ([`Mailbox::set_spin`]).
    pub spin: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workers: thread::available_parallelism().map_or(2, |n| n.get()),
            work_per_line: Duration::ZERO,
            backend: Backend::default(),
            verbose: false,
            plain_poll: false,
            spin: Duration::ZERO,
        }
    }
}

/// Counters the I/O thread updates as it goes; read them with
/// [`Stats::snapshot`] from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    closed: AtomicU64,
    errors: AtomicU64,
    shed: AtomicU64,
    accept_pauses: AtomicU64,
    lines: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    reordered: AtomicU64,
    replies: AtomicU64,
    reply_wakeups: AtomicU64,
    reply_wakes_written: AtomicU64,
    reply_wakes_absorbed: AtomicU64,
}

/// The [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Of those, closed (by either side).
    pub closed: u64,
    /// Of those, closed on an I/O error (reset, broken pipe, line too long).
    pub errors: u64,
    /// Connections accepted and closed at once because fds ran out.
    pub shed: u64,
    /// Times the server stopped watching the listener.
    pub accept_pauses: u64,
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Replies that came back from the workers before their turn.
    pub reordered: u64,
    /// Replies (one per job: the lines of one read) taken from the mailbox.
    pub replies: u64,
    /// Times the reply mailbox woke the loop; fewer than `replies` when
    /// wakes coalesce.
    pub reply_wakeups: u64,
    /// Wakes the workers wrote to the reply mailbox (a system call each),
    /// from its `stats()`: counted when the loop stops.
    pub reply_wakes_written: u64,
    /// Wakes that found the loop awake and made no system call (only a
    /// sleep-aware loop has them): counted when the loop stops.
    pub reply_wakes_absorbed: u64,
}

impl Snapshot {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted - self.closed
    }

    /// Wakes written to the reply mailbox per 1000 replies taken from it
    /// (None before the first reply, or before the loop stops).
    pub fn wakes_written_per_1000_replies(&self) -> Option<f64> {
        (self.replies > 0).then(|| self.reply_wakes_written as f64 * 1000.0 / self.replies as f64)
    }
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            accepted: get(&self.accepted),
            closed: get(&self.closed),
            errors: get(&self.errors),
            shed: get(&self.shed),
            accept_pauses: get(&self.accept_pauses),
            lines: get(&self.lines),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            reordered: get(&self.reordered),
            replies: get(&self.replies),
            reply_wakeups: get(&self.reply_wakeups),
            reply_wakes_written: get(&self.reply_wakes_written),
            reply_wakes_absorbed: get(&self.reply_wakes_absorbed),
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

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

/// Runs the server on `listener` until `stop` is notified (through one of
/// its wakers). Returns once the workers have exited; open connections are
/// closed.
///
/// # Errors
///
/// Setting up (the poll, the mailbox, the reserve fd, the workers) or a
/// failed `epoll_wait`. Errors on a connection only close that connection.
pub fn serve(
    listener: StdTcpListener,
    config: &Config,
    mut stop: Notifier,
    stats: &Stats,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    let mut replies = Mailbox::<Reply>::with_backend(config.backend)?;
    replies.set_spin(config.spin);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    poll.registry()
        .register(&mut replies, REPLIES, Interest::READABLE)?;
    poll.registry()
        .register(&mut stop, STOP, Interest::READABLE)?;
    let reserve = Some(open_reserve()?);

    let (jobs, job_queue) = crossbeam_channel::unbounded::<Job>();
    let mut workers = Vec::new();
    for i in 0..config.workers.max(1) {
        // A lane per worker: replies carry their sequence number, so they
        // need no order between workers, and workers then share no memory
        // per reply.
        let (queue, sender, work) = (
            job_queue.clone(),
            replies.sender_with_lane(),
            config.work_per_line,
        );
        workers.push(
            thread::Builder::new()
                .name(format!("echo-worker-{i}"))
                .spawn(move || worker(queue, sender, work))?,
        );
    }
    drop(job_queue);

    let mut server = Server {
        poll,
        listener,
        listening: true,
        accept_retry: None,
        reserve,
        out_of_fds: false,
        conns: HashMap::new(),
        next_id: FIRST_CONN,
        jobs,
        touched: Vec::new(),
        config,
        stats,
    };
    let result = server.run(&mut replies);
    let wakes = replies.stats();
    stats
        .reply_wakes_written
        .store(wakes.wakes_written, Ordering::Relaxed);
    stats
        .reply_wakes_absorbed
        .store(wakes.wakes_absorbed, Ordering::Relaxed);
    // Closes the job queue and the connections, then the mailbox: a worker
    // exits when the queue is empty or when its next reply cannot be sent,
    // so stopping does not wait for the work still queued.
    drop(server);
    drop(replies);
    for worker in workers {
        if worker.join().is_err() {
            eprintln!("echo: a worker panicked");
        }
    }
    result
}

/// A server running on its own thread, for `main` and the tests.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: Waker,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Starts [`serve`] on a new thread.
    pub fn start(listener: StdTcpListener, config: Config) -> io::Result<Running> {
        let addr = listener.local_addr()?;
        let stop = Notifier::new()?;
        let waker = stop.waker();
        let stats = Arc::new(Stats::default());
        let shared = Arc::clone(&stats);
        let thread = thread::Builder::new()
            .name("echo-io".into())
            .spawn(move || serve(listener, &config, stop, &shared))?;
        Ok(Running {
            addr,
            stop: waker,
            stats,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters now.
    pub fn stats(&self) -> Snapshot {
        self.stats.snapshot()
    }

    /// Stops it and waits for it; its counters at the end.
    pub fn stop(mut self) -> io::Result<Snapshot> {
        // Fails only if the server already returned; join tells why.
        let _ = self.stop.notify();
        self.join()
    }

    /// Waits until it returns, which it does on its own only on error.
    pub fn wait(mut self) -> io::Result<Snapshot> {
        self.join()
    }

    fn join(&mut self) -> io::Result<Snapshot> {
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| io::Error::other("the echo server thread panicked"))??;
        }
        Ok(self.stats.snapshot())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.notify();
        // While a failed test unwinds, don't wait for a server that may be
        // stuck: that would turn the failure into a hang.
        if !thread::panicking() {
            let _ = self.join();
        }
    }
}

/// Lines of one read, for a worker.
struct Job {
    conn: usize,
    seq: u64,
    lines: usize,
    data: Vec<u8>,
}

/// A worker's answer to a [`Job`], back to the I/O thread.
struct Reply {
    conn: usize,
    seq: u64,
    data: Vec<u8>,
}

fn worker(jobs: crossbeam_channel::Receiver<Job>, replies: Sender<Reply>, work: Duration) {
    for mut job in jobs {
        if !work.is_zero() {
            let lines = u32::try_from(job.lines).unwrap_or(u32::MAX);
            busy(work.saturating_mul(lines));
        }
        job.data.make_ascii_uppercase();
        let reply = Reply {
            conn: job.conn,
            seq: job.seq,
            data: job.data,
        };
        if replies.send(reply).is_err() {
            return; // the I/O thread is gone
        }
    }
}

/// Burns CPU for `d`, like real work would.
fn busy(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// An fd kept open so that, when the process runs out, closing it makes
/// room to accept (and shed) one connection.
fn open_reserve() -> io::Result<File> {
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

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read that do not end a line yet.
    input: Vec<u8>,
    /// Replies to write, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    /// Sequence number of the next job.
    next_seq: u64,
    /// Sequence number of the next reply to append to `out`.
    next_out: u64,
    /// Replies that came back before their turn.
    early: BTreeMap<u64, Vec<u8>>,
    /// Bytes handed to the workers whose replies are not in `out` yet.
    in_flight: usize,
    interest: Interest,
    /// Not reading: the client owes too much (see `HIGH_WATER`).
    paused: bool,
    /// The client half-closed: finish the replies, then close.
    eof: bool,
    /// Already in `Server::touched`.
    touched: bool,
}

impl Conn {
    /// Reply bytes this client has yet to receive.
    fn owed(&self) -> usize {
        self.in_flight + (self.out.len() - self.out_pos)
    }

    fn finished(&self) -> bool {
        self.eof && self.next_out == self.next_seq && self.out_pos == self.out.len()
    }
}

struct Server<'a> {
    poll: Poll,
    listener: TcpListener,
    /// The listener is registered (not paused).
    listening: bool,
    /// When to try accepting again while paused.
    accept_retry: Option<Instant>,
    reserve: Option<File>,
    /// In an `EMFILE` episode (logged once per episode).
    out_of_fds: bool,
    conns: HashMap<usize, Conn>,
    /// Tokens are never reused, so a late reply cannot reach a new
    /// connection that got the number of a closed one.
    next_id: usize,
    jobs: crossbeam_channel::Sender<Job>,
    /// Connections with new replies in `out`, to flush.
    touched: Vec<usize>,
    config: &'a Config,
    stats: &'a Stats,
}

impl Server<'_> {
    fn run(&mut self, replies: &mut Mailbox<Reply>) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        // Sleep-aware while the guard lives: this loop blocks only in
        // `Mailbox::poll`, so replies that find it awake make no system call.
        let _awake = (!self.config.plain_poll).then(|| replies.announce_awake());
        loop {
            let timeout = self
                .accept_retry
                .map(|t| t.saturating_duration_since(Instant::now()));
            let got_replies = if self.config.plain_poll {
                match self.poll.poll(&mut events, timeout) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                events.iter().any(|e| e.token() == REPLIES)
            } else {
                // Announces sleep, polls (at once if replies are waiting),
                // announces the loop awake (the guard above): until the next
                // call, a reply makes no system call. `EINTR` comes back as
                // no events.
                replies.poll(&mut self.poll, &mut events, timeout)?
            };
            for event in events.iter() {
                match event.token() {
                    STOP => return Ok(()),
                    LISTENER => self.accept_all(),
                    // Handled through `got_replies` either way.
                    REPLIES => {}
                    Token(id) => self.conn_event(id, event),
                }
            }
            if got_replies {
                add(&self.stats.reply_wakeups, 1);
                let drained = replies.drain();
                add(&self.stats.replies, drained.len());
                for reply in drained {
                    self.take_reply(reply);
                }
                while let Some(id) = self.touched.pop() {
                    if let Some(conn) = self.conns.get_mut(&id) {
                        conn.touched = false;
                        self.flush(id);
                    }
                }
            }
            if self.accept_retry.is_some_and(|t| Instant::now() >= t) {
                self.resume_accepting();
            }
        }
    }

    fn accept_all(&mut self) {
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

    fn resume_accepting(&mut self) {
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

    fn add_conn(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id), Interest::READABLE)
        {
            eprintln!("echo: registering {peer}: {e}");
            return;
        }
        // Replies are written as soon as they are ready; don't let Nagle
        // hold them back while the client waits for the previous ones.
        let _ = stream.set_nodelay(true);
        add(&self.stats.accepted, 1);
        self.conns.insert(
            id,
            Conn {
                stream,
                peer,
                input: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                next_seq: 0,
                next_out: 0,
                early: BTreeMap::new(),
                in_flight: 0,
                interest: Interest::READABLE,
                paused: false,
                eof: false,
                touched: false,
            },
        );
    }

    fn conn_event(&mut self, id: usize, event: &Event) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return; // closed earlier in this batch of events
        };
        if event.is_error() {
            let err = match conn.stream.take_error() {
                Ok(Some(e)) => e,
                Ok(None) => io::Error::other("socket error"),
                Err(e) => e,
            };
            self.close(id, Some(err));
            return;
        }
        if (event.is_readable() || event.is_read_closed()) && !self.read(id) {
            return;
        }
        if event.is_writable() || event.is_write_closed() {
            self.flush(id);
        }
    }

    /// Reads until `WouldBlock`, EOF or back-pressure, handing complete
    /// lines to the workers. `false` if the connection was closed.
    fn read(&mut self, id: usize) -> bool {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return false;
            };
            if conn.eof {
                return true;
            }
            if conn.owed() >= HIGH_WATER {
                // Edge-triggered: data left unread raises no new event, so
                // `flush` reads again when the client has caught up.
                conn.paused = true;
                return true;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    conn.eof = true;
                    // An unfinished last line is dropped.
                    conn.input = Vec::new();
                    if conn.finished() {
                        self.close(id, None);
                        return false;
                    }
                    return true;
                }
                Ok(n) => {
                    add(&self.stats.bytes_in, n);
                    let chunk = &buf[..n];
                    let Some(last_nl) = chunk.iter().rposition(|&b| b == b'\n') else {
                        conn.input.extend_from_slice(chunk);
                        if conn.input.len() > MAX_LINE {
                            let e = io::Error::new(io::ErrorKind::InvalidData, "line too long");
                            self.close(id, Some(e));
                            return false;
                        }
                        continue;
                    };
                    // Complete lines: what was left over plus the chunk up
                    // to its last newline; the rest waits for more.
                    let mut data = std::mem::take(&mut conn.input);
                    data.extend_from_slice(&chunk[..=last_nl]);
                    conn.input.extend_from_slice(&chunk[last_nl + 1..]);
                    let lines = chunk[..=last_nl].iter().filter(|&&b| b == b'\n').count();
                    add(&self.stats.lines, lines);
                    conn.in_flight += data.len();
                    let job = Job {
                        conn: id,
                        seq: conn.next_seq,
                        lines,
                        data,
                    };
                    conn.next_seq += 1;
                    if self.jobs.send(job).is_err() {
                        let e = io::Error::other("no worker left");
                        self.close(id, Some(e));
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(id, Some(e));
                    return false;
                }
            }
        }
    }

    /// Puts a worker's reply in line; replies whose turn has come go to the
    /// connection's output buffer.
    fn take_reply(&mut self, reply: Reply) {
        let Some(conn) = self.conns.get_mut(&reply.conn) else {
            return; // the connection closed meanwhile
        };
        if reply.seq != conn.next_out {
            add(&self.stats.reordered, 1);
            conn.early.insert(reply.seq, reply.data);
            return;
        }
        let mut data = reply.data;
        loop {
            conn.in_flight -= data.len();
            conn.out.extend_from_slice(&data);
            conn.next_out += 1;
            match conn.early.remove(&conn.next_out) {
                Some(next) => data = next,
                None => break,
            }
        }
        if !conn.touched {
            conn.touched = true;
            self.touched.push(reply.conn);
        }
    }

    /// Writes what it can; watches for WRITABLE only while output is left.
    /// Resumes reading a paused client that has caught up, and closes a
    /// half-closed one that has everything.
    fn flush(&mut self, id: usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        while conn.out_pos < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => {
                    self.close(id, Some(io::ErrorKind::WriteZero.into()));
                    return;
                }
                Ok(n) => {
                    conn.out_pos += n;
                    add(&self.stats.bytes_out, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(id, Some(e));
                    return;
                }
            }
        }
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        } else if conn.out_pos >= conn.out.len() / 2 {
            conn.out.drain(..conn.out_pos);
            conn.out_pos = 0;
        }
        let wanted = if conn.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if wanted != conn.interest {
            let registry = self.poll.registry();
            if let Err(e) = registry.reregister(&mut conn.stream, Token(id), wanted) {
                self.close(id, Some(e));
                return;
            }
            conn.interest = wanted;
        }
        if conn.finished() {
            self.close(id, None);
        } else if conn.paused && conn.owed() < LOW_WATER {
            conn.paused = false;
            self.read(id);
        }
    }

    fn close(&mut self, id: usize, error: Option<io::Error>) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(e) = error {
            add(&self.stats.errors, 1);
            if self.config.verbose {
                eprintln!("echo: {}: {e}", conn.peer);
            }
        }
        add(&self.stats.closed, 1);
        drop(conn);
        // An fd is free again: try accepting now rather than at the timeout.
        if self.accept_retry.is_some() {
            self.accept_retry = Some(Instant::now());
        }
    }
}
