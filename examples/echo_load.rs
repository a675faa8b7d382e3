//! A small load client for `hardened_echo` and `echo_server` (and
//! `multi_loop` with `--echo`).
//!
//! Each of `--clients` connections sends `--pipeline` lines in one write,
//! reads and checks their replies, and repeats until `--seconds` pass. It
//! prints requests (lines) per second over all connections, and exits with
//! an error if a reply is wrong or missing.
//!
//! ```text
//! cargo run --release --example hardened_echo &
//! cargo run --release --example echo_load -- --clients 50 --pipeline 16 --seconds 5
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;

/// Load client for the echo examples: pipelined lines, checked replies.
#[derive(Debug, Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Lines sent per round trip on each connection.
    #[arg(long, default_value_t = 16)]
    pipeline: usize,
    /// Bytes of padding per line (each line is about 20 bytes longer).
    #[arg(long, default_value_t = 16)]
    line_len: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Expect each line back unchanged (`multi_loop`), not uppercased.
    #[arg(long)]
    echo: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let start = Arc::new(Barrier::new(args.clients + 1));
    let duration = Duration::from_secs(args.seconds);
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let start = Arc::clone(&start);
            let (addr, pipeline, pad, echo) = (args.addr, args.pipeline, args.line_len, args.echo);
            thread::spawn(move || {
                let conn = TcpStream::connect(addr);
                start.wait();
                client(conn?, id, pipeline, pad, echo, duration)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let (mut requests, mut failures) = (0u64, 0usize);
    for (id, c) in clients.into_iter().enumerate() {
        match c.join() {
            Ok(Ok(n)) => requests += n,
            Ok(Err(e)) => {
                failures += 1;
                eprintln!("echo_load: client {id}: {e}");
            }
            Err(_) => failures += 1,
        }
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{} clients, pipeline {}: {requests} requests in {secs:.2} s = {:.0} requests/s",
        args.clients,
        args.pipeline,
        requests as f64 / secs,
    );
    if failures > 0 {
        eprintln!("echo_load: {failures} clients failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One connection's loop; the number of replies it got and checked.
fn client(
    conn: TcpStream,
    id: usize,
    pipeline: usize,
    pad: usize,
    echo: bool,
    duration: Duration,
) -> io::Result<u64> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let padding = "x".repeat(pad);
    let deadline = Instant::now() + duration;
    let (mut batch, mut expected, mut line) = (Vec::new(), Vec::new(), Vec::new());
    let mut n = 0u64;
    while Instant::now() < deadline {
        batch.clear();
        expected.clear();
        for _ in 0..pipeline {
            let sent = format!("client {id} line {n} {padding}\n");
            batch.extend_from_slice(sent.as_bytes());
            expected.push(if echo { sent } else { sent.to_uppercase() });
            n += 1;
        }
        writer.write_all(&batch)?;
        for want in &expected {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if line != want.as_bytes() {
                let got = String::from_utf8_lossy(&line);
                return Err(io::Error::other(format!(
                    "wrong reply {got:?}, expected {want:?}"
                )));
            }
        }
    }
    Ok(n)
}
