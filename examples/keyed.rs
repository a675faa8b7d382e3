//! A mio loop that owns 10 000 keyed wake sources on one fd, woken at random
//! from 4 threads, and learns which ones fired without scanning the rest.
//!
//! ```text
//! cargo run --release --example keyed -- --seconds 3
//! ```
//!
//! Each sender bumps a per-source counter (its "work") and then notifies
//! that source's key. The loop drains on every readiness event and, for each
//! key yielded, takes the counter's value. At the end it checks that it has
//! seen every source's last value (no wake lost), and prints the rates and
//! the number of fds the keyed notifier holds.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::{Events, Interest, Poll, Token};
use wakefd::{KeyedNotifier, KeyedWaker};

const SOURCES: usize = 10_000;
const THREADS: usize = 4;
const TOKEN: Token = Token(0);

#[derive(Parser)]
#[command(about = "10 000 keyed wake sources on one fd, woken from 4 threads")]
struct Args {
    /// How long the senders run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

/// A small xorshift generator: random enough to pick keys.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The number of fds open in this process.
#[cfg(target_os = "linux")]
fn open_fds() -> Option<usize> {
    // Minus the directory's own fd, open while it is listed.
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() - 1)
}

#[cfg(not(target_os = "linux"))]
fn open_fds() -> Option<usize> {
    None
}

/// What the loop has seen.
struct Tally {
    /// Per source, the counter value read when its key was last yielded.
    seen: Vec<u64>,
    drains: u64,
    keys_yielded: u64,
}

impl Tally {
    /// One readiness event: drain, and take the work of every key yielded.
    fn drain(&mut self, notifier: &mut KeyedNotifier, work: &[AtomicU64]) -> io::Result<()> {
        self.drains += 1;
        for key in notifier.drain()? {
            self.seen[key] = work[key].load(Ordering::Relaxed);
            self.keys_yielded += 1;
        }
        Ok(())
    }
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let run_for = Duration::from_secs_f64(args.seconds);

    let mut poll = Poll::new()?;
    let before = open_fds();
    let mut notifier = KeyedNotifier::new(SOURCES)?;
    let fds = before.zip(open_fds()).map(|(b, a)| a - b);
    poll.registry()
        .register(&mut notifier, TOKEN, Interest::READABLE)?;

    let work: Arc<Vec<AtomicU64>> = Arc::new((0..SOURCES).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let wakers: Vec<KeyedWaker> = (0..SOURCES)
                .map(|k| notifier.waker(k))
                .collect::<Result<_, _>>()?;
            let (work, stop) = (Arc::clone(&work), Arc::clone(&stop));
            Ok(thread::spawn(move || -> io::Result<u64> {
                let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut notifies = 0;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let key = (xorshift(&mut rng) % SOURCES as u64) as usize;
                        work[key].fetch_add(1, Ordering::Relaxed);
                        wakers[key].notify()?;
                        notifies += 1;
                    }
                }
                Ok(notifies)
            }))
        })
        .collect::<io::Result<_>>()?;

    let mut tally = Tally {
        seen: vec![0; SOURCES],
        drains: 0,
        keys_yielded: 0,
    };
    let mut events = Events::with_capacity(16);

    let start = Instant::now();
    while start.elapsed() < run_for {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        if !events.is_empty() {
            tally.drain(&mut notifier, &work)?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut notifies = 0;
    for sender in senders {
        notifies += sender.join().expect("sender panicked")?;
    }

    // Every source's last notify must still reach the loop.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lost = loop {
        let lost = (0..SOURCES)
            .filter(|&k| tally.seen[k] != work[k].load(Ordering::Relaxed))
            .count();
        if lost == 0 || Instant::now() > deadline {
            break lost;
        }
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        if !events.is_empty() {
            tally.drain(&mut notifier, &work)?;
        }
    };

    let Tally {
        drains,
        keys_yielded,
        ..
    } = tally;
    let secs = elapsed.as_secs_f64();
    println!("{SOURCES} sources, {THREADS} sender threads, {secs:.1} s");
    println!(
        "notify calls: {:>12.0}/s ({notifies} in all)",
        notifies as f64 / secs
    );
    println!(
        "keys yielded: {:>12.0}/s ({keys_yielded} in all, {:.1} per drain)",
        keys_yielded as f64 / secs,
        keys_yielded as f64 / drains.max(1) as f64
    );
    println!("drains:       {:>12.0}/s", drains as f64 / secs);
    match fds {
        Some(fds) => println!("fds held by the keyed notifier: {fds}"),
        None => println!("fds held by the keyed notifier: (not counted on this platform)"),
    }
    println!("sources whose last notify was lost: {lost}");
    if lost != 0 {
        return Err(io::Error::other("lost wakes"));
    }
    Ok(())
}
