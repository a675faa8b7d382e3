//! The small echo server of `examples/echo_server.rs`, run in this process
//! on a thread of its own: pipelining clients get every line back upper
//! case and in order (the replies come from the workers through the
//! mailbox), and a client that half-closes gets every reply, then EOF.
//!
//! The hardened server is tested in `tests/hardened_echo.rs`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

mod util;

#[path = "../examples/echo_server.rs"]
#[allow(dead_code)] // its `main`
mod example;

/// Every blocking socket call in this test gives up after this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Line `n` of client `id`, of varying length.
fn line(id: usize, n: usize) -> String {
    format!(
        "Client {id} line {n} {}\n",
        "ab".repeat((id * 31 + n * 37) % 700)
    )
}

/// Reads a reply per line of `sent`, each checked in order.
fn expect_replies(reader: &mut impl BufRead, id: usize, sent: &[String]) -> io::Result<()> {
    let mut reply = String::new();
    for line in sent {
        reply.clear();
        reader.read_line(&mut reply)?;
        if reply != line.to_uppercase() {
            return Err(io::Error::other(format!(
                "client {id}: got {:?}, expected {:?}",
                &reply[..reply.len().min(60)],
                &line[..line.len().min(60)],
            )));
        }
    }
    Ok(())
}

/// Rounds of lines, each reply checked in order: pipelined in one write
/// (read in a few chunks), or a line per write, none waiting for its reply
/// (many reads, whose lines are at the workers at the same time). Then more
/// lines and an unfinished one, a half-close, and the replies up to EOF.
fn client(addr: SocketAddr, id: usize) -> io::Result<()> {
    let mut conn = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut next = 0;
    let mut lines = |count: usize| -> Vec<String> {
        next += count;
        (next - count..next).map(|n| line(id, n)).collect()
    };
    for round in 0..10 {
        let sent = lines(100);
        if round % 2 == 0 {
            conn.write_all(sent.concat().as_bytes())?;
        } else {
            for line in &sent {
                conn.write_all(line.as_bytes())?;
            }
        }
        expect_replies(&mut reader, id, &sent)?;
    }
    let sent = lines(300);
    for line in &sent {
        conn.write_all(line.as_bytes())?;
    }
    conn.write_all(b"an unfinished line is not answered")?;
    conn.shutdown(Shutdown::Write)?;
    expect_replies(&mut reader, id, &sent)?;
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    if !rest.is_empty() {
        return Err(io::Error::other(format!(
            "client {id}: {} bytes after the last reply instead of EOF",
            rest.len()
        )));
    }
    Ok(())
}

#[test]
fn example_echo_server_answers_in_order_through_its_mailbox_and_closes_after_half_close() {
    let listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = listener.local_addr().unwrap();
    // It serves until this test binary exits.
    let server = thread::spawn(move || example::serve(listener));
    let clients: Vec<_> = (0..8)
        .map(|id| thread::spawn(move || client(addr, id)))
        .collect();
    util::join_clients(clients);
    assert!(
        !server.is_finished(),
        "the server returned: {:?}",
        server.join()
    );
}
