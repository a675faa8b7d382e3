//! Connection I/O and back-pressure.
//!
//! Reads go until `WouldBlock`; complete lines go to the workers, an
//! unfinished one waits for more (and one longer than [`MAX_LINE`] closes
//! the connection). Each connection has an output buffer; writes take what
//! the socket takes, and WRITABLE interest is registered only while the
//! buffer holds something. Once a client is owed more than [`HIGH_WATER`]
//! bytes of replies (in the workers or unwritten) the server stops reading
//! it until it is owed less than [`LOW_WATER`], so a client that sends
//! without reading cannot make the server buffer without bound. A
//! connection closes on an I/O error (logged with `verbose`, and closing
//! that connection only), on hang-up, or once the client has half-closed and
//! every reply is written.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::order::InOrder;
use super::stats::add;
use super::{Job, Server};

/// Stop reading a client that is owed this many bytes of replies.
pub const HIGH_WATER: usize = 256 * 1024;
/// Read it again once it is owed less than this.
pub const LOW_WATER: usize = 64 * 1024;
/// A line longer than this closes the connection.
pub const MAX_LINE: usize = 64 * 1024;

const READ_CHUNK: usize = 16 * 1024;

pub(super) struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read that do not end a line yet.
    input: Vec<u8>,
    /// Replies to write, from `out_pos` on.
    pub(super) out: Vec<u8>,
    out_pos: usize,
    /// Sequence numbers of the jobs, and replies that came back early.
    pub(super) order: InOrder,
    /// Bytes handed to the workers whose replies are not in `out` yet.
    pub(super) in_flight: usize,
    interest: Interest,
    /// Not reading: the client owes too much (see `HIGH_WATER`).
    paused: bool,
    /// The client half-closed: finish the replies, then close.
    eof: bool,
    /// Already in `Server::touched`.
    pub(super) touched: bool,
}

impl Conn {
    /// Reply bytes this client has yet to receive.
    fn owed(&self) -> usize {
        self.in_flight + (self.out.len() - self.out_pos)
    }

    fn finished(&self) -> bool {
        self.eof && self.order.all_out() && self.out_pos == self.out.len()
    }
}

impl Server<'_> {
    /// Registers a new connection under a token never used before, so a
    /// late reply cannot reach a new connection that got the number of a
    /// closed one.
    pub(super) fn add_conn(&mut self, mut stream: TcpStream, peer: SocketAddr) {
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
                order: InOrder::default(),
                in_flight: 0,
                interest: Interest::READABLE,
                paused: false,
                eof: false,
                touched: false,
            },
        );
    }

    pub(super) fn conn_event(&mut self, id: usize, event: &Event) {
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
                        seq: conn.order.next_job(),
                        lines,
                        data,
                    };
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

    /// Flushes every connection that got replies since the last call.
    pub(super) fn flush_touched(&mut self) {
        while let Some(id) = self.touched.pop() {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.touched = false;
                self.flush(id);
            }
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
        self.fd_freed();
    }
}
