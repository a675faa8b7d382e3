//! The echo server of `echo_server`, hardened: the tool to load and measure.
//!
//! One I/O thread accepts and reads lines; a pool of workers uppercases them
//! (after `--work-us` of busy work per line) and hands each reply back to the
//! I/O thread through a `wakefd::Mailbox`. The I/O thread writes the replies
//! in the order of each connection's lines, with partial writes and
//! back-pressure handled, and sheds connections instead of spinning when the
//! process runs out of file descriptors. The server itself is in
//! `examples/common/echo/`, one file per job, which the tests share.
//!
//! The I/O loop is sleep-aware: it blocks in `Mailbox::poll`, so a reply
//! makes no system call while the loop is busy. At exit (`--seconds`) it
//! prints its counters and the wakes written per 1000 replies; run it again
//! with `--plain-poll` (`Poll::poll` + a drain on the mailbox's event, the
//! loop of before) to compare.
//!
//! ```text
//! cargo run --release --example hardened_echo -- --workers 2
//! printf 'hello\nworld\n' | nc -q1 127.0.0.1 7878       # HELLO WORLD
//! cargo run --release --example echo_load -- --clients 50 --seconds 5
//! cargo run --release --example hardened_echo -- --workers 2 --seconds 7 [--plain-poll] &
//! cargo run --release --example echo_load -- --clients 50 --pipeline 16 --seconds 5
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wakefd::Backend;

#[path = "common/echo/mod.rs"]
mod echo;

/// A line echo server (replies in upper case) whose workers answer through a
/// wakefd Mailbox.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// Worker threads [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// Busy work per line, in microseconds, standing for real work.
    #[arg(long, default_value_t = 0)]
    work_us: u64,
    /// Backend of the reply mailbox: eventfd, pipe, socketpair or tcp.
    #[arg(long, default_value_t = Backend::default())]
    backend: Backend,
    /// Stop after this many seconds and print the counters (default: run
    /// until killed).
    #[arg(long)]
    seconds: Option<u64>,
    /// Log every connection error.
    #[arg(long, short)]
    verbose: bool,
    /// Block in `Poll::poll` and drain the reply mailbox on its event, as
    /// before sleep-aware loops, instead of `Mailbox::poll` (to compare the
    /// wakes written).
    #[arg(long)]
    plain_poll: bool,
    /// Spin this many µs in the sleep-aware poll before blocking (the
    /// workers' replies then find the I/O thread awake more often; it costs
    /// CPU the workers may need on a small machine).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = echo::Config {
        work_per_line: Duration::from_micros(args.work_us),
        backend: args.backend,
        verbose: args.verbose,
        plain_poll: args.plain_poll,
        spin: Duration::from_micros(args.spin_us),
        ..echo::Config::default()
    };
    if let Some(workers) = args.workers {
        config.workers = workers.max(1);
    }
    let listener = match echo::bind(args.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hardened_echo: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "hardened_echo listening on {} (backlog {}, {} workers, {} us of work per line, {} mailbox, {})",
        listener.local_addr().map_or(args.addr, |a| a),
        echo::max_backlog(),
        config.workers,
        args.work_us,
        config.backend,
        if config.plain_poll {
            "plain Poll::poll"
        } else {
            "sleep-aware Mailbox::poll"
        },
    );
    let server = match echo::Running::start(listener, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hardened_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.seconds {
        Some(secs) => {
            std::thread::sleep(Duration::from_secs(secs));
            server.stop()
        }
        None => server.wait(),
    };
    match result {
        Ok(stats) => {
            println!("{stats:#?}");
            match stats.wakes_written_per_1000_replies() {
                Some(w) => println!("wakes written per 1000 replies: {w:.2}"),
                None => println!("wakes written per 1000 replies: n/a (no replies)"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hardened_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
