//! The hardened line echo server: `examples/hardened_echo.rs` runs it,
//! `examples/signals.rs` stops it on a signal, and the tests
//! (`tests/hardened_echo.rs`, `tests/echo_rlimit.rs`) drive it.
//!
//! One I/O thread runs a mio loop: it accepts, reads lines, hands them to a
//! pool of worker threads, and writes the replies the workers send back
//! through a [`wakefd::Mailbox`]. The workers uppercase each line (after an
//! optional busy delay that stands for real work). What the small
//! `examples/echo_server.rs` leaves out is here, one job per file:
//!
//! - `accept.rs`: accepting, and shedding connections when fds run out;
//! - `conn.rs`: connection I/O, partial writes, back-pressure and closing;
//! - `order.rs`: replies in the order of their lines, whichever worker
//!   finishes first;
//! - `stats.rs`: the counters any thread can read.
//!
//! This file holds the loop, the workers and the handle that starts and
//! stops them:
//!
//! - **Stopping.** The loop watches a [`wakefd::Notifier`]; any thread stops
//!   the server through one of its wakers.
//! - **Sleep-aware.** The loop blocks in [`Mailbox::poll`] instead of
//!   `Poll::poll`: it tells the mailbox when it sleeps, so a worker's reply
//!   makes no system call while the loop is busy (it finds the reply before
//!   it next blocks). `Config::plain_poll` blocks in `Poll::poll` and drains
//!   on the mailbox's event instead, to compare; [`Snapshot`] counts the
//!   wakes written either way.
//!
//! Only the public API of `wakefd` is used.

// Each includer uses a different part of this module.
#![allow(dead_code)]

mod accept;
mod conn;
mod order;
mod stats;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use wakefd::{Backend, Mailbox, Notifier, Sender, Waker};

// The includers' surface; each uses a different part of it.
#[allow(unused_imports)]
pub use accept::{bind, max_backlog, ACCEPT_PAUSE};
#[allow(unused_imports)]
pub use conn::{HIGH_WATER, LOW_WATER, MAX_LINE};
pub use stats::{Snapshot, Stats};

use conn::Conn;
use stats::add;

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
    let reserve = Some(accept::open_reserve()?);

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
    stats::set(&stats.reply_wakes_written, wakes.wakes_written);
    stats::set(&stats.reply_wakes_absorbed, wakes.wakes_absorbed);
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

/// The I/O thread's state; its methods are in the files of their jobs.
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
                self.flush_touched();
            }
            if self.accept_retry.is_some_and(|t| Instant::now() >= t) {
                self.resume_accepting();
            }
        }
    }
}
