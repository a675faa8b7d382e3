//! The echo server, shut down cleanly on `SIGINT` or `SIGTERM`: the self-pipe
//! trick through a `wakefd::Notifier`.
//!
//! The signal handler does the one thing a handler may: it records which
//! signal came (an atomic store) and calls `Waker::notify`, which is
//! async-signal-safe (no allocation, no lock, `errno` kept). The main thread
//! blocks in `Notifier::wait`; when it wakes it stops the server (which
//! closes the connections and joins the workers) and prints its counters. A
//! second signal before the shutdown is done exits at once.
//!
//! ```text
//! cargo run --example signals -- --addr 127.0.0.1:7878 &
//! printf 'hello\n' | nc -q1 127.0.0.1 7878      # HELLO
//! kill -INT %1                                    # or Ctrl-C
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::low_level;
use wakefd::{Backend, Notifier};

#[path = "common/echo/mod.rs"]
mod echo;

/// The echo server of `hardened_echo`, stopped by SIGINT or SIGTERM.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Worker threads [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// Backend of the server's reply mailbox and of the signal notifier.
    #[arg(long, default_value_t = Backend::default())]
    backend: Backend,
}

/// What the handlers saw: the first signal, and how many came.
#[derive(Debug, Default)]
struct Caught {
    first: AtomicI32,
    count: AtomicU32,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signals: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> std::io::Result<()> {
    // The notifier first, so that a signal that comes while the server
    // starts is not lost: its wake waits in the fd.
    let notifier = Notifier::with_backend(args.backend)?;
    let caught = Arc::new(Caught::default());
    let mut ids = Vec::new();
    for signal in [SIGINT, SIGTERM] {
        let (waker, caught) = (notifier.waker(), Arc::clone(&caught));
        let handler = move || {
            if caught.count.fetch_add(1, Ordering::Relaxed) == 0 {
                caught.first.store(signal, Ordering::Relaxed);
            } else {
                // The second signal: the user wants out now. `_exit`, the
                // async-signal-safe exit.
                low_level::exit(130);
            }
            // Async-signal-safe; its error (none is expected here: the
            // notifier outlives the handlers) can only be ignored in a
            // handler.
            let _ = waker.notify();
        };
        // SAFETY: the handler only does atomic operations, `Waker::notify`
        // (async-signal-safe: see its docs) and `_exit`; it allocates and
        // frees nothing and takes no lock.
        ids.push(unsafe { low_level::register(signal, handler) }?);
    }

    let mut config = echo::Config {
        backend: args.backend,
        ..echo::Config::default()
    };
    if let Some(workers) = args.workers {
        config.workers = workers.max(1);
    }
    let listener = echo::bind(args.addr)?;
    let server = echo::Running::start(listener, config)?;
    println!(
        "signals: echo server on {} (pid {}); stop it with SIGINT (Ctrl-C) or SIGTERM",
        server.addr(),
        std::process::id(),
    );

    // `wait` retries EINTR itself (the signal that wakes us interrupts it),
    // and returns once a handler's notify has made the fd readable.
    while !notifier.wait(None)? {}
    let signal = caught.first.load(Ordering::Relaxed);
    let name = low_level::signal_name(signal).unwrap_or("a signal");
    println!("signals: {name} caught, stopping the server");

    let stats = server.stop()?;
    for id in ids {
        low_level::unregister(id);
    }
    println!("{stats:#?}");
    println!("signals: notifier {:?}", notifier.stats());
    Ok(())
}
