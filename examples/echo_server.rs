//! A mio TCP echo server whose replies are made on worker threads and handed
//! back to the I/O thread through a `wakefd::Mailbox`.
//!
//! The I/O thread accepts connections and reads lines; it sends the complete
//! lines of each read to a worker, which does the work (upper case) and sends
//! the reply back through the mailbox. The mailbox is a mio `Source` like a
//! socket: the loop wakes for it, drains the replies and writes each one to
//! its connection. A connection's lines always go to the same worker, and a
//! mailbox is FIFO per sender, so replies come in the order of their lines.
//! The loop blocks in `Mailbox::poll`, which tells the mailbox when it
//! sleeps: a reply sent while the loop is busy makes no system call.
//!
//! `hardened_echo` (`examples/common/echo/`) is this server made for real
//! loads: back-pressure, shedding when fds run out, replies ordered across
//! workers, counters.
//!
//! ```text
//! cargo run --example echo_server [-- 127.0.0.1:7878]
//! printf 'hello\nworld\n' | nc -q1 127.0.0.1 7878       # HELLO WORLD
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use wakefd::{Mailbox, Sender};

const SERVER: Token = Token(0);
const REPLIES: Token = Token(1);
const WORKERS: usize = 2;

/// The complete lines of one read, on their way to a worker and back.
struct Lines {
    conn: Token,
    data: Vec<u8>,
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7878".into());
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(addr)?;
    println!("echo_server listening on {}", listener.local_addr()?);
    serve(listener)
}

/// Serves `listener` until an I/O error (`tests/echo_server.rs` runs it on
/// a thread of its own).
pub fn serve(mut listener: TcpListener) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut replies = Mailbox::<Lines>::new()?;
    let registry = poll.registry();
    registry.register(&mut listener, SERVER, Interest::READABLE)?;
    registry.register(&mut replies, REPLIES, Interest::READABLE)?;

    // Each worker has a queue of its own and a sender of the mailbox.
    let workers: Vec<mpsc::Sender<Lines>> = (0..WORKERS)
        .map(|_| {
            let (jobs, queue) = mpsc::channel();
            let replies = replies.sender();
            thread::spawn(move || work(queue, replies));
            jobs
        })
        .collect();

    let mut connections = HashMap::new();
    // Tokens are never reused, so a late reply cannot reach a new connection.
    let mut next_token = REPLIES.0 + 1;
    let mut events = Events::with_capacity(128);
    // Sleep-aware from here on: this loop blocks only in `Mailbox::poll`.
    let _awake = replies.announce_awake();
    loop {
        // `true` if replies may be waiting. `EINTR` comes back as no events.
        let got_replies = replies.poll(&mut poll, &mut events, None)?;
        for event in events.iter() {
            match event.token() {
                SERVER => loop {
                    let (mut stream, _) = match listener.accept() {
                        Ok(accepted) => accepted,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // Out of fds, say: `hardened_echo` sheds instead.
                        Err(e) => return Err(e),
                    };
                    let token = Token(next_token);
                    next_token += 1;
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut stream, token, interest)?;
                    let (input, output) = (Vec::new(), Vec::new());
                    let conn = Connection {
                        stream,
                        input,
                        output,
                        in_flight: 0,
                        read_closed: false,
                    };
                    connections.insert(token, conn);
                },
                // Handled below, through `got_replies`.
                REPLIES => {}
                token => {
                    let worker = &workers[token.0 % WORKERS];
                    let Some(conn) = connections.get_mut(&token) else {
                        continue; // closed meanwhile
                    };
                    // Edge-triggered: on any event, read what came and
                    // write what is due.
                    let open = (conn.read_closed || conn.read(token, worker))
                        && conn.write()
                        && !conn.finished();
                    if !open {
                        close(&poll, &mut connections, token)?;
                    }
                }
            }
        }
        if got_replies {
            for reply in replies.drain() {
                let Some(conn) = connections.get_mut(&reply.conn) else {
                    continue; // closed meanwhile
                };
                conn.in_flight -= 1;
                conn.output.extend_from_slice(&reply.data);
                if !conn.write() || conn.finished() {
                    close(&poll, &mut connections, reply.conn)?;
                }
            }
        }
    }
}

/// Deregisters a connection and closes it (mio wants a source deregistered
/// before it is dropped).
fn close(poll: &Poll, conns: &mut HashMap<Token, Connection>, token: Token) -> io::Result<()> {
    match conns.remove(&token) {
        Some(mut conn) => poll.registry().deregister(&mut conn.stream),
        None => Ok(()),
    }
}

/// A worker: upper-cases each batch of lines and hands it back to the loop.
fn work(jobs: mpsc::Receiver<Lines>, replies: Sender<Lines>) {
    for mut lines in jobs {
        lines.data.make_ascii_uppercase();
        // Queues the reply and wakes the loop: a system call only if the
        // loop may be asleep and no wake is pending yet.
        if replies.send(lines).is_err() {
            return; // the loop is gone
        }
    }
}

/// A client connection.
struct Connection {
    stream: TcpStream,
    /// Bytes read that do not end a line yet.
    input: Vec<u8>,
    /// Replies the socket has not taken yet.
    output: Vec<u8>,
    /// Batches of lines at a worker whose replies are not back yet.
    in_flight: usize,
    /// The client has shut down its side: close once it has every reply.
    read_closed: bool,
}

impl Connection {
    /// Reads until `WouldBlock`, sending complete lines to `worker` (an
    /// unfinished last line waits for more). `false` on an error.
    fn read(&mut self, token: Token, worker: &mpsc::Sender<Lines>) -> bool {
        let mut buf = [0; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.read_closed = true;
                    return true;
                }
                Ok(n) => {
                    let start = self.input.len();
                    self.input.extend_from_slice(&buf[..n]);
                    if let Some(last) = buf[..n].iter().rposition(|&b| b == b'\n') {
                        let rest = self.input.split_off(start + last + 1);
                        let data = std::mem::replace(&mut self.input, rest);
                        self.in_flight += 1;
                        if worker.send(Lines { conn: token, data }).is_err() {
                            return false;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Writes what the socket takes; the rest waits for a WRITABLE event.
    /// `false` on an error.
    fn write(&mut self) -> bool {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return false,
                Ok(n) => drop(self.output.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        true
    }

    /// The client is done sending and has every reply.
    fn finished(&self) -> bool {
        self.read_closed && self.in_flight == 0 && self.output.is_empty()
    }
}
