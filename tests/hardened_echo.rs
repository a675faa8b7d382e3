//! The hardened echo server (`examples/common/echo/`, run by
//! `examples/hardened_echo.rs`), driven by real clients over
//! loopback: many pipelining clients, workers that finish out of order,
//! clients that vanish mid-write, and clients that never read.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

mod util;

#[path = "../examples/common/echo/mod.rs"]
mod echo;

/// Every blocking socket call in these tests gives up after this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn start(config: echo::Config) -> echo::Running {
    let listener = echo::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    echo::Running::start(listener, config).expect("start the server")
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let conn = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

/// Line `n` of client `id`: mixed case, of varying length, some longer than
/// a read chunk of the server's or a socket buffer's worth of small lines.
fn line(id: usize, n: usize) -> String {
    let pad = match n % 7 {
        0 => 0,
        3 => 5000 + id,
        _ => (id * 31 + n * 17) % 200,
    };
    format!("Client {id} line {n} {}\n", "ab".repeat(pad))
}

/// Sends `per_round` lines in one write, reads and checks their replies;
/// `rounds` times.
fn pipelined_client(conn: TcpStream, id: usize, rounds: usize, per_round: usize) -> io::Result<()> {
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut reply = String::new();
    for round in 0..rounds {
        let lines: Vec<String> = (0..per_round)
            .map(|i| line(id, round * per_round + i))
            .collect();
        writer.write_all(lines.concat().as_bytes())?;
        for sent in &lines {
            reply.clear();
            reader.read_line(&mut reply)?;
            if reply != sent.to_uppercase() {
                return Err(io::Error::other(format!(
                    "client {id}: got {:?}, expected {:?}",
                    trim(&reply),
                    trim(sent)
                )));
            }
        }
    }
    Ok(())
}

fn trim(s: &str) -> &str {
    &s[..s.len().min(60)]
}

/// Polls `cond` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn spawn_client<F>(f: F) -> thread::JoinHandle<io::Result<()>>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn a client thread")
}

/// Runs `clients` pipelining clients at once; each sends `per_round` lines
/// in one write, `rounds` times. Panics on any wrong or missing reply.
fn run_clients(addr: SocketAddr, first_id: usize, clients: usize, rounds: usize, per_round: usize) {
    let all_connected = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (first_id..first_id + clients)
        .map(|id| {
            let all_connected = Arc::clone(&all_connected);
            spawn_client(move || {
                let conn = connect(addr);
                // Everyone is connected before anyone sends.
                all_connected.wait();
                pipelined_client(conn?, id, rounds, per_round)
            })
        })
        .collect();
    util::join_clients(handles);
}

#[test]
fn two_hundred_pipelining_clients_get_every_reply_in_order() {
    let server = start(echo::Config {
        workers: 4,
        ..echo::Config::default()
    });
    run_clients(server.addr(), 0, 200, 3, 20);
    assert!(
        eventually(IO_TIMEOUT, || server.stats().open() == 0),
        "connections left open: {:?}",
        server.stats()
    );
    let stats = server.stop().expect("server result");
    assert_eq!(stats.accepted, 200);
    assert_eq!(stats.closed, 200);
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(stats.lines, 200 * 3 * 20);
    assert_eq!(stats.bytes_out, stats.bytes_in);
}

/// Writes `bursts` times a big batch of lines then, a little later, one
/// small line; then reads and checks every reply.
fn big_then_small_client(addr: SocketAddr, id: usize, bursts: usize) -> io::Result<()> {
    let conn = connect(addr)?;
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut expected = Vec::new();
    for burst in 0..bursts {
        let big: Vec<String> = (0..500)
            .map(|i| format!("big {id} {burst} {i}\n"))
            .collect();
        writer.write_all(big.concat().as_bytes())?;
        expected.extend(big);
        thread::sleep(Duration::from_millis(2));
        let small = format!("small {id} {burst}\n");
        writer.write_all(small.as_bytes())?;
        expected.push(small);
    }
    let mut reader = BufReader::new(conn);
    let mut reply = String::new();
    for sent in &expected {
        reply.clear();
        reader.read_line(&mut reply)?;
        if reply != sent.to_uppercase() {
            return Err(io::Error::other(format!(
                "got {reply:?}, expected {sent:?}"
            )));
        }
    }
    Ok(())
}

#[test]
fn replies_keep_line_order_when_workers_finish_out_of_order() {
    // A big job then a small one on the same connection: with work per line
    // the small one finishes first on another worker, and must wait for the
    // big one's reply. Few clients and more workers than clients, so that a
    // worker is free for the small job while the big one is being worked on.
    let server = start(echo::Config {
        workers: 4,
        work_per_line: Duration::from_micros(20),
        ..echo::Config::default()
    });
    // Scheduling decides whether a reply overtakes another: go on (a few
    // tens of ms a round) until some did, so the ordering is really tested.
    for round in 0..20 {
        let handles: Vec<_> = (0..3)
            .map(|id| {
                let addr = server.addr();
                spawn_client(move || big_then_small_client(addr, round * 10 + id, 5))
            })
            .collect();
        for h in handles {
            h.join().expect("client panicked").expect("client");
        }
        if server.stats().reordered > 0 {
            break;
        }
    }
    let stats = server.stop().expect("server result");
    assert!(
        stats.reordered > 0,
        "no reply came back early, so ordering was not tested: {stats:?}"
    );
    assert_eq!(stats.errors, 0, "{stats:?}");
}

#[test]
fn half_closed_client_gets_every_reply_then_eof() {
    let server = start(echo::Config::default());
    let mut conn = connect(server.addr()).unwrap();
    let sent: String = (0..500).map(|n| line(7, n)).collect();
    conn.write_all(sent.as_bytes()).unwrap();
    // An unfinished last line is not answered.
    conn.write_all(b"no newline").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).expect("replies, then EOF");
    assert!(got == sent.to_uppercase(), "wrong replies");
    assert!(eventually(IO_TIMEOUT, || server.stats().open() == 0));
    let stats = server.stop().unwrap();
    assert_eq!((stats.accepted, stats.closed, stats.errors), (1, 1, 0));
}

#[test]
fn vanishing_clients_do_not_disturb_others() {
    let server = start(echo::Config {
        workers: 2,
        ..echo::Config::default()
    });
    let addr = server.addr();
    const EACH: usize = 10;
    let mut vanishers = Vec::new();
    for i in 0..EACH {
        // Half a line, then gone.
        vanishers.push(spawn_client(move || {
            let mut conn = connect(addr)?;
            conn.write_all(b"half a li")?;
            Ok(())
        }));
        // Many lines, then gone without reading a single reply.
        vanishers.push(spawn_client(move || {
            let mut conn = connect(addr)?;
            conn.set_nonblocking(true)?;
            let lines: String = (0..5000).map(|n| line(1000 + i, n)).collect();
            let mut buf = lines.as_bytes();
            while !buf.is_empty() {
                match conn.write(buf) {
                    Ok(n) => buf = &buf[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
        // Some lines, one reply read, then a reset (SO_LINGER 0).
        vanishers.push(spawn_client(move || {
            let mut conn = connect(addr)?;
            let lines: String = (0..200).map(|n| line(2000 + i, n)).collect();
            conn.write_all(lines.as_bytes())?;
            let mut first = [0u8; 8];
            conn.read_exact(&mut first)?;
            SockRef::from(&conn).set_linger(Some(Duration::ZERO))?;
            Ok(())
        }));
        // Connected, then gone at once.
        vanishers.push(spawn_client(move || connect(addr).map(drop)));
    }
    // Meanwhile, well-behaved clients.
    let good = thread::spawn(move || run_clients(addr, 0, 50, 10, 20));
    for v in vanishers {
        v.join().expect("vanisher panicked").expect("vanisher");
    }
    good.join().expect("well-behaved clients failed");
    // And after them.
    run_clients(addr, 100, 20, 2, 20);

    // Every connection, vanished or not, is closed by the server.
    assert!(
        eventually(IO_TIMEOUT, || server.stats().open() == 0),
        "connections left open: {:?}",
        server.stats()
    );
    let stats = server.stop().expect("server result");
    assert_eq!(stats.accepted, (4 * EACH + 50 + 20) as u64, "{stats:?}");
    // At least the resets were seen as errors, and closed the connection.
    assert!(stats.errors >= EACH as u64, "{stats:?}");
}

#[test]
fn client_that_does_not_read_is_throttled_then_served() {
    let server = start(echo::Config {
        workers: 2,
        ..echo::Config::default()
    });
    let mut conn = connect(server.addr()).unwrap();
    // Fixed-size lines, so the replies can be checked by number.
    let line = |n: usize| format!("line {n:08} of the client that does not read yet......\n");
    let len = line(0).len();
    // Write without reading until the server stops taking lines. Without
    // back-pressure it would buffer every reply and never stop.
    const LIMIT: usize = 64 << 20;
    conn.set_nonblocking(true).unwrap();
    let (mut written, mut pending, mut n) = (0usize, Vec::new(), 0usize);
    let deadline = Instant::now() + IO_TIMEOUT;
    'fill: loop {
        assert!(
            written < LIMIT && Instant::now() < deadline,
            "the server kept reading a client that does not read: {written} bytes"
        );
        if pending.is_empty() {
            pending = (n..n + 1000).map(line).collect::<String>().into_bytes();
            n += 1000;
        }
        let mut at = 0;
        while at < pending.len() {
            match conn.write(&pending[at..]) {
                Ok(k) => at += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Give the server time to catch up, in case it is only
                    // slow; it is stuck if the buffers stay full.
                    thread::sleep(Duration::from_millis(200));
                    match conn.write(&pending[at..]) {
                        Ok(k) => at += k,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            written += at;
                            break 'fill;
                        }
                        Err(e) => panic!("write: {e}"),
                    }
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        written += at;
        pending.clear();
    }
    let stalled = server.stats();
    assert!(
        stalled.bytes_in < written as u64,
        "the server read everything: {stalled:?}"
    );
    // What it holds for the client (read, not yet written) stays bounded.
    let held = stalled.bytes_in - stalled.bytes_out;
    assert!(
        held <= (echo::HIGH_WATER + 64 * 1024) as u64,
        "the server holds {held} bytes for a client that does not read"
    );
    // Now read: the server writes, resumes reading, and answers every
    // complete line in order; half-closing makes it close after that.
    conn.set_nonblocking(false).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut reader = BufReader::new(conn);
    let mut reply = Vec::new();
    for i in 0..written / len {
        reply.clear();
        reader.read_until(b'\n', &mut reply).expect("a reply");
        assert!(
            reply == line(i).to_uppercase().as_bytes(),
            "reply {i} is wrong"
        );
    }
    reply.clear();
    assert_eq!(reader.read_to_end(&mut reply).expect("EOF"), 0);
    let stats = server.stop().unwrap();
    assert_eq!(stats.lines, (written / len) as u64);
    assert_eq!(stats.errors, 0, "{stats:?}");
}
