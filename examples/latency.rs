//! The notify-latency benchmark.
//!
//! Two threads play ping-pong, each blocked in its own event loop: the
//! measuring thread wakes its peer and waits to be woken back; one round trip
//! is two wakes and two event-loop returns. Every mechanism runs the same
//! loop: each wakefd [`Backend`] through `mio::Poll` + [`Notifier`] (drain on
//! every wake), `mio::Waker`, and two hand-written `libc` baselines, an
//! eventfd watched level-triggered by epoll with a `read` per wake, and an
//! eventfd watched edge-triggered with no read (the floor: one `write` and one
//! `epoll_wait` per wake). Every wait is bounded by `--timeout-ms`, so a lost
//! wake-up aborts the run instead of hanging it. The two threads are pinned
//! to the first two CPUs the process may use, so that every wake crosses
//! from one core to the other (`--no-pin` leaves them to the scheduler).
//!
//! Mechanisms run interleaved (A B C ... A B C ...) for `--rounds` rounds of
//! `--iters` round trips each, so that drift on the machine hits all of them
//! alike; the table shows the median over rounds of each round's percentile,
//! and ratios are the median over rounds of the per-round ratio.
//!
//! Burst mode (`--burst K`, 0 to skip) has `--senders` threads call
//! `notify()` K times each per round while the loop drains on every wake, and
//! reports how many wakes the loop saw and how many `write(2)` calls the
//! senders made (counted by the kernel, per thread, in
//! `/proc/thread-self/io`).
//!
//! The Mailbox comparison (`--mailbox N`, 0 to skip) sends N `u64`s from
//! each `--producers` count of threads to one consumer blocked in
//! `mio::Poll`, which drains everything on every wake: wakefd's `Mailbox`
//! against `crossbeam-channel` + `mio::Waker` with a hand-written coalescing
//! flag (two versions), `std::sync::mpsc` with the flag, and
//! `crossbeam-channel` waking per message. It runs interleaved with the
//! rest, so its ratios are per-round ratios too.
//!
//! ```text
//! cargo run --release --example latency -- --json docs/latency.json --plot docs/latency.svg
//! ```

use std::error::Error;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};
use wakefd::{Backend, Notifier, Waker};

/// Ping-pong wake latency and burst throughput of every wakefd backend
/// against mio::Waker and raw eventfd + epoll baselines.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Interleaved rounds; every mechanism runs once per round.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,

    /// Measured round trips per mechanism per round.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,

    /// Unrecorded round trips before each measured run.
    #[arg(long, default_value_t = 200)]
    warmup: u64,

    /// wakefd backends to run (repeat the flag or give a comma list);
    /// default: every backend available here.
    #[arg(long = "backend", value_name = "NAME", value_delimiter = ',')]
    backends: Vec<Backend>,

    /// Baselines to run (repeat or comma list): mio-waker, epoll-lt-read,
    /// epoll-et, or none; default: all three.
    #[arg(long = "baseline", value_name = "NAME", value_delimiter = ',')]
    baselines: Vec<BaselineArg>,

    /// notify() calls per sender per burst round; 0 skips burst mode.
    #[arg(long, default_value_t = 1_000_000)]
    burst: u64,

    /// Sender threads in burst mode.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    senders: u32,

    /// Messages per Mailbox-throughput run (one run per mechanism, producer
    /// count and round; the per-message-wake baseline gets a tenth); 0
    /// skips the Mailbox comparison.
    #[arg(long, default_value_t = 300_000)]
    mailbox: u64,

    /// Producer counts for the Mailbox comparison (repeat or comma list).
    #[arg(long, value_name = "N", value_delimiter = ',', default_values_t = [1u32, 4])]
    producers: Vec<u32>,

    /// Longest wait for any single wake before the run fails as a lost
    /// wake-up.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,

    /// Write every result (per round, medians, ratios, CDFs) to this file
    /// as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Draw the latency CDF of every mechanism to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// Let the scheduler place the two ping-pong threads instead of pinning
    /// them to two different CPUs.
    #[arg(long)]
    no_pin: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BaselineArg {
    /// mio::Waker (eventfd, edge-triggered, never read).
    MioWaker,
    /// eventfd + level-triggered epoll, one read per wake.
    EpollLtRead,
    /// eventfd + edge-triggered epoll, no read.
    EpollEt,
    /// No baselines.
    None,
}

/// One way of waking a thread blocked in an event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mech {
    /// A wakefd `Notifier` registered with `mio::Poll`, drained on wake.
    Wakefd(Backend),
    /// `mio::Waker`.
    MioWaker,
    /// eventfd + level-triggered epoll + one `read` per wake.
    EpollLtRead,
    /// eventfd + edge-triggered epoll, never read.
    EpollEt,
}

impl Mech {
    fn id(self) -> String {
        match self {
            Mech::Wakefd(b) => b.to_string(),
            Mech::MioWaker => "mio-waker".into(),
            Mech::EpollLtRead => "epoll-lt-read".into(),
            Mech::EpollEt => "epoll-et".into(),
        }
    }

    fn label(self) -> String {
        match self {
            Mech::Wakefd(b) => format!("wakefd {b} (mio)"),
            Mech::MioWaker => "mio::Waker".into(),
            Mech::EpollLtRead => "raw eventfd+epoll LT+read".into(),
            Mech::EpollEt => "raw eventfd+epoll ET (floor)".into(),
        }
    }
}

const TOKEN: Token = Token(0);

fn lost_wake(what: &str, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what}: no wake within {timeout:?}: lost wake-up"),
    )
}

/// One thread's end of a ping-pong pair: its own event loop, and a way to
/// wake the other thread's.
trait Side: Send {
    /// Wakes the peer's event loop.
    fn wake_peer(&self) -> io::Result<()>;
    /// Blocks in this side's event loop until the peer wakes it. Each
    /// blocking call is bounded by `timeout`; returning with nothing is a
    /// lost wake-up, reported as an error.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
}

/// `mio::Poll::poll`, retried on `EINTR`; `false` if it timed out empty.
fn mio_poll(poll: &mut Poll, events: &mut Events, timeout: Duration) -> io::Result<bool> {
    loop {
        match poll.poll(events, Some(timeout)) {
            Ok(()) => return Ok(!events.is_empty()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

struct WakefdSide {
    poll: Poll,
    events: Events,
    notifier: Notifier,
    peer: Waker,
}

impl Side for WakefdSide {
    fn wake_peer(&self) -> io::Result<()> {
        self.peer.notify()
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        loop {
            if !mio_poll(&mut self.poll, &mut self.events, timeout)? {
                return Err(lost_wake("wakefd", timeout));
            }
            // A drain that finds nothing pending was a stray edge (see the
            // crate's state.rs); keep waiting for the real wake.
            if self.notifier.drain()? {
                return Ok(());
            }
        }
    }
}

struct MioWakerSide {
    poll: Poll,
    events: Events,
    peer: Arc<mio::Waker>,
}

impl Side for MioWakerSide {
    fn wake_peer(&self) -> io::Result<()> {
        self.peer.wake()
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if mio_poll(&mut self.poll, &mut self.events, timeout)? {
            Ok(())
        } else {
            Err(lost_wake("mio::Waker", timeout))
        }
    }
}

fn wakefd_pair(backend: Backend) -> io::Result<(Box<dyn Side>, Box<dyn Side>)> {
    let side = |notifier: &mut Notifier| -> io::Result<(Poll, Events)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(notifier, TOKEN, Interest::READABLE)?;
        Ok((poll, Events::with_capacity(16)))
    };
    let mut na = Notifier::with_backend(backend)?;
    let mut nb = Notifier::with_backend(backend)?;
    let (pa, ea) = side(&mut na)?;
    let (pb, eb) = side(&mut nb)?;
    let (wa, wb) = (na.waker(), nb.waker());
    let a = WakefdSide {
        poll: pa,
        events: ea,
        notifier: na,
        peer: wb,
    };
    let b = WakefdSide {
        poll: pb,
        events: eb,
        notifier: nb,
        peer: wa,
    };
    Ok((Box::new(a), Box::new(b)))
}

fn mio_waker_pair() -> io::Result<(Box<dyn Side>, Box<dyn Side>)> {
    let (pa, pb) = (Poll::new()?, Poll::new()?);
    let wa = Arc::new(mio::Waker::new(pa.registry(), TOKEN)?);
    let wb = Arc::new(mio::Waker::new(pb.registry(), TOKEN)?);
    let a = MioWakerSide {
        poll: pa,
        events: Events::with_capacity(16),
        peer: wb,
    };
    let b = MioWakerSide {
        poll: pb,
        events: Events::with_capacity(16),
        peer: wa,
    };
    Ok((Box::new(a), Box::new(b)))
}

/// The hand-written baselines: an eventfd and an epoll instance per side,
/// straight `libc` calls, nothing else.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "common/flag.rs"]
mod flag;
use flag::Flag;

mod raw {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{lost_wake, Side};

    /// A non-blocking eventfd.
    pub struct EventFd(OwnedFd);

    impl EventFd {
        fn new() -> io::Result<EventFd> {
            // SAFETY: plain system call with constant flags; no pointers.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by eventfd and nothing else owns it.
            Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        /// Adds 1 to the counter. `EINTR` is retried; `EAGAIN` (a counter
        /// at 2^64 - 2, never reached here) means it is readable already.
        fn write(&self) -> io::Result<()> {
            let one: u64 = 1;
            loop {
                // SAFETY: writes 8 bytes from a live, aligned u64 to an fd
                // that `self` keeps open for the duration of the call.
                let n = unsafe {
                    libc::write(
                        self.0.as_raw_fd(),
                        (&one as *const u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                if n >= 0 {
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(()),
                    _ => return Err(err),
                }
            }
        }

        /// Reads and resets the counter; `false` if it was 0 (`EAGAIN`).
        /// `EINTR` is retried.
        fn read(&self) -> io::Result<bool> {
            let mut count: u64 = 0;
            loop {
                // SAFETY: reads at most 8 bytes into a live, aligned u64 from
                // an fd that `self` keeps open for the duration of the call.
                let n = unsafe {
                    libc::read(
                        self.0.as_raw_fd(),
                        (&mut count as *mut u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                if n >= 0 {
                    return Ok(true);
                }
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(false),
                    _ => return Err(err),
                }
            }
        }
    }

    /// An epoll instance watching one eventfd.
    struct Epoll(OwnedFd);

    impl Epoll {
        fn new(watch: &EventFd, edge: bool) -> io::Result<Epoll> {
            // SAFETY: plain system call with a constant flag; no pointers.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by epoll_create1 and nothing
            // else owns it.
            let epoll = Epoll(unsafe { OwnedFd::from_raw_fd(fd) });
            let mut flags = libc::EPOLLIN as u32;
            if edge {
                flags |= libc::EPOLLET as u32;
            }
            let mut event = libc::epoll_event {
                events: flags,
                u64: 0,
            };
            // SAFETY: both fds are open, and `event` is a valid epoll_event
            // that lives across the call.
            let ret = unsafe {
                libc::epoll_ctl(
                    epoll.0.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    watch.0.as_raw_fd(),
                    &mut event,
                )
            };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(epoll)
        }

        /// `epoll_wait` for one event; `false` on timeout. `EINTR` is
        /// retried.
        fn wait(&self, timeout: Duration) -> io::Result<bool> {
            let ms = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
            let mut event = libc::epoll_event { events: 0, u64: 0 };
            loop {
                // SAFETY: `event` is a valid buffer for exactly one event
                // and lives across the call; the epoll fd is open.
                let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut event, 1, ms) };
                match n {
                    0 => return Ok(false),
                    n if n > 0 => return Ok(true),
                    _ => {
                        let err = io::Error::last_os_error();
                        if err.kind() != io::ErrorKind::Interrupted {
                            return Err(err);
                        }
                    }
                }
            }
        }
    }

    struct RawSide {
        epoll: Epoll,
        own: Arc<EventFd>,
        peer: Arc<EventFd>,
        /// Level-triggered with a read per wake (true), or edge-triggered
        /// with no read (false).
        read: bool,
    }

    impl Side for RawSide {
        fn wake_peer(&self) -> io::Result<()> {
            self.peer.write()
        }

        fn wait(&mut self, timeout: Duration) -> io::Result<()> {
            loop {
                if !self.epoll.wait(timeout)? {
                    return Err(lost_wake("raw epoll", timeout));
                }
                if !self.read || self.own.read()? {
                    return Ok(());
                }
            }
        }
    }

    /// A ping-pong pair: level-triggered with a read per wake (`lt_read`),
    /// or edge-triggered with no read.
    pub fn pair(lt_read: bool) -> io::Result<(Box<dyn Side>, Box<dyn Side>)> {
        let (ea, eb) = (Arc::new(EventFd::new()?), Arc::new(EventFd::new()?));
        let a = RawSide {
            epoll: Epoll::new(&ea, !lt_read)?,
            own: Arc::clone(&ea),
            peer: Arc::clone(&eb),
            read: lt_read,
        };
        let b = RawSide {
            epoll: Epoll::new(&eb, !lt_read)?,
            own: eb,
            peer: ea,
            read: lt_read,
        };
        Ok((Box::new(a), Box::new(b)))
    }
}

fn make_pair(mech: Mech) -> io::Result<(Box<dyn Side>, Box<dyn Side>)> {
    match mech {
        Mech::Wakefd(b) => wakefd_pair(b),
        Mech::MioWaker => mio_waker_pair(),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Mech::EpollLtRead => raw::pair(true),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Mech::EpollEt => raw::pair(false),
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Mech::EpollLtRead | Mech::EpollEt => Err(io::ErrorKind::Unsupported.into()),
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// CPUs to pin the two ping-pong threads to: the first two this process
/// may run on, so that every wake crosses from one core to another. None
/// with `--no-pin`, or with fewer than two CPUs.
fn pin_cpus(args: &Args) -> Option<(usize, usize)> {
    if args.no_pin {
        return None;
    }
    let cpus = affinity::allowed_cpus();
    match cpus[..] {
        [a, b, ..] => Some((a, b)),
        _ => None,
    }
}

/// Thread-to-CPU pinning through `sched_setaffinity(2)`.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod affinity {
    use std::io;

    /// The CPUs the calling thread may run on.
    pub fn allowed_cpus() -> Vec<usize> {
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is a valid,
        // empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a live cpu_set_t and we pass its exact size.
        let ret = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if ret != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }

    /// Pins the calling thread to `cpu`.
    pub fn pin(cpu: usize) -> io::Result<()> {
        // SAFETY: as above, all zeroes is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` comes from `allowed_cpus`, below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a live cpu_set_t and we pass its exact size;
        // pid 0 is the calling thread.
        let ret = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        if ret == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod affinity {
    pub fn allowed_cpus() -> Vec<usize> {
        Vec::new()
    }

    pub fn pin(_cpu: usize) -> std::io::Result<()> {
        Ok(())
    }
}

/// One measured run: `warmup + iters` round trips, the last `iters` recorded.
/// Each side runs on its own thread (pinned to its own CPU if `pin`), and
/// the peer side is handed back afterwards.
fn ping_pong(
    a: &mut Box<dyn Side>,
    b: Box<dyn Side>,
    warmup: u64,
    iters: u64,
    timeout: Duration,
    pin: Option<(usize, usize)>,
) -> io::Result<(Histogram<u64>, Box<dyn Side>)> {
    let total = warmup + iters;
    thread::scope(|s| {
        let echo = s.spawn(move || -> (Box<dyn Side>, io::Result<()>) {
            let mut b = b;
            let mut run = || -> io::Result<()> {
                if let Some((_, cpu)) = pin {
                    affinity::pin(cpu)?;
                }
                for _ in 0..total {
                    b.wait(timeout)?;
                    b.wake_peer()?;
                }
                Ok(())
            };
            let result = run();
            (b, result)
        });
        let measure = s.spawn(move || -> io::Result<Histogram<u64>> {
            if let Some((cpu, _)) = pin {
                affinity::pin(cpu)?;
            }
            let mut hist = new_histogram();
            for i in 0..total {
                let t0 = Instant::now();
                a.wake_peer()?;
                a.wait(timeout)?;
                let ns = t0.elapsed().as_nanos() as u64;
                if i >= warmup {
                    hist.saturating_record(ns.max(1));
                }
            }
            Ok(hist)
        });
        // If the measuring side fails, the echo side times out in its next
        // wait and comes home too: both errors are bounded.
        let hist = measure.join().expect("measuring thread panicked");
        let (b, echo_result) = echo.join().expect("echo thread panicked");
        let hist = hist?;
        echo_result?;
        Ok((hist, b))
    })
}

/// The statistics the table shows, from one histogram.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Stats {
    fn of(h: &Histogram<u64>) -> Stats {
        let q = |q: f64| h.value_at_quantile(q) as f64;
        Stats {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64,
        }
    }

    fn json(&self) -> Value {
        json!({
            "p50_ns": self.p50, "p90_ns": self.p90, "p99_ns": self.p99,
            "p99_9_ns": self.p999, "max_ns": self.max,
        })
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty());
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

struct LatencyResult {
    mech: Mech,
    rounds: Vec<Stats>,
    all: Histogram<u64>,
}

impl LatencyResult {
    /// The median over rounds of each statistic; `max` is the largest of
    /// any round.
    fn median(&self) -> Stats {
        let m = |f: fn(&Stats) -> f64| median(self.rounds.iter().map(f).collect());
        Stats {
            p50: m(|s| s.p50),
            p90: m(|s| s.p90),
            p99: m(|s| s.p99),
            p999: m(|s| s.p999),
            max: self.rounds.iter().map(|s| s.max).fold(0.0, f64::max),
        }
    }

    /// The median over rounds of this mechanism's (p50, p99) divided by
    /// `base`'s in the same round.
    fn ratio(&self, base: &LatencyResult) -> (f64, f64) {
        let per_round = |f: fn(&Stats) -> f64| {
            median(
                self.rounds
                    .iter()
                    .zip(&base.rounds)
                    .map(|(s, b)| f(s) / f(b))
                    .collect(),
            )
        };
        (per_round(|s| s.p50), per_round(|s| s.p99))
    }
}

/// What one burst round measured.
#[derive(Clone, Copy, Debug, Default)]
struct BurstRound {
    /// notify() calls made in the timed part, all senders together.
    notifies: u64,
    /// From the first sender's start to the last sender's end.
    secs: f64,
    /// Event-loop returns with an event.
    wakes: u64,
    /// Drains that found a wake pending (None for mio::Waker: it has none).
    drains_true: Option<u64>,
    /// write(2) calls the sender threads made, as the kernel counts them
    /// (None where the mechanism writes with send(2), which it does not
    /// count).
    writes: Option<u64>,
}

impl BurstRound {
    fn rate(&self) -> f64 {
        self.notifies as f64 / self.secs
    }
}

/// The kernel's count of write-type system calls made by the calling
/// thread (`syscw` in `/proc/thread-self/io`); None where unavailable.
fn thread_syscw() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BurstMech {
    Wakefd(Backend),
    MioWaker,
}

impl BurstMech {
    fn label(self) -> String {
        match self {
            BurstMech::Wakefd(b) => format!("wakefd {b} (mio)"),
            BurstMech::MioWaker => "mio::Waker".into(),
        }
    }

    fn id(self) -> String {
        match self {
            BurstMech::Wakefd(b) => b.to_string(),
            BurstMech::MioWaker => "mio-waker".into(),
        }
    }

    /// Whether its wakes are write(2) calls, which `syscw` counts
    /// (send(2) on a socket is not counted there).
    fn writes_counted(self) -> bool {
        match self {
            BurstMech::Wakefd(b) => matches!(b, Backend::EventFd | Backend::Pipe),
            BurstMech::MioWaker => cfg!(any(target_os = "linux", target_os = "android")),
        }
    }
}

/// The senders' handle on the loop's wake.
#[derive(Clone)]
enum AnyWaker {
    Wakefd(Waker),
    Mio(Arc<mio::Waker>),
}

impl AnyWaker {
    #[inline]
    fn wake(&self) -> io::Result<()> {
        match self {
            AnyWaker::Wakefd(w) => w.notify(),
            AnyWaker::Mio(w) => w.wake(),
        }
    }
}

struct SenderStats {
    start: Instant,
    end: Instant,
    writes: Option<u64>,
}

/// One burst round: `senders` threads each wake the loop `k` times as fast
/// as they can, while this thread runs the loop and drains on every wake.
fn burst_round(mech: BurstMech, senders: u32, k: u64, timeout: Duration) -> io::Result<BurstRound> {
    let mut poll = Poll::new()?;
    let mut notifier = None;
    let waker = match mech {
        BurstMech::Wakefd(b) => {
            let mut n = Notifier::with_backend(b)?;
            poll.registry()
                .register(&mut n, TOKEN, Interest::READABLE)?;
            let w = n.waker();
            notifier = Some(n);
            AnyWaker::Wakefd(w)
        }
        BurstMech::MioWaker => AnyWaker::Mio(Arc::new(mio::Waker::new(poll.registry(), TOKEN)?)),
    };
    let drain = |n: &Option<Notifier>| -> io::Result<bool> {
        match n {
            Some(n) => n.drain(),
            None => Ok(true),
        }
    };
    let done = AtomicUsize::new(0);
    let barrier = Barrier::new(senders as usize);
    let mut events = Events::with_capacity(16);
    let (mut wakes, mut drains_true) = (0u64, 0u64);

    let (loop_result, stats) = thread::scope(|s| {
        let handles: Vec<_> = (0..senders)
            .map(|_| {
                let (waker, done, barrier) = (waker.clone(), &done, &barrier);
                s.spawn(move || -> io::Result<SenderStats> {
                    barrier.wait();
                    let w0 = thread_syscw();
                    let start = Instant::now();
                    let mut result = Ok(());
                    for _ in 0..k {
                        if let Err(e) = waker.wake() {
                            result = Err(e);
                            break;
                        }
                    }
                    let end = Instant::now();
                    // Tell the loop we are done, then wake it once more so
                    // that it sees `done` after a wake (not counted in the
                    // rate; its write, if any, is in `writes`).
                    done.fetch_add(1, Ordering::Release);
                    let last = waker.wake();
                    let w1 = thread_syscw();
                    result?;
                    last?;
                    Ok(SenderStats {
                        start,
                        end,
                        writes: w0.zip(w1).map(|(a, b)| b - a),
                    })
                })
            })
            .collect();

        let mut run = || -> io::Result<()> {
            while done.load(Ordering::Acquire) < senders as usize {
                if !mio_poll(&mut poll, &mut events, timeout)? {
                    return Err(lost_wake("burst", timeout));
                }
                wakes += 1;
                if drain(&notifier)? {
                    drains_true += 1;
                }
            }
            Ok(())
        };
        let loop_result = run();
        let stats: Vec<io::Result<SenderStats>> = handles
            .into_iter()
            .map(|h| h.join().expect("sender panicked"))
            .collect();
        (loop_result, stats)
    });
    loop_result?;
    let stats = stats.into_iter().collect::<io::Result<Vec<_>>>()?;
    // Every sender has returned, so every write it made has landed: pick up
    // the last wake if the loop left before it.
    if mio_poll(&mut poll, &mut events, Duration::ZERO)? {
        wakes += 1;
        if drain(&notifier)? {
            drains_true += 1;
        }
    }
    let start = stats.iter().map(|s| s.start).min().expect("one sender");
    let end = stats.iter().map(|s| s.end).max().expect("one sender");
    let writes = if mech.writes_counted() {
        stats.iter().map(|s| s.writes).sum::<Option<u64>>()
    } else {
        None
    };
    Ok(BurstRound {
        notifies: k * u64::from(senders),
        secs: (end - start).as_secs_f64(),
        wakes,
        drains_true: notifier.as_ref().map(|_| drains_true),
        writes,
    })
}

struct BurstResult {
    mech: BurstMech,
    k: u64,
    rounds: Vec<BurstRound>,
}

impl BurstResult {
    fn median_of(&self, f: impl Fn(&BurstRound) -> Option<f64>) -> Option<f64> {
        let xs: Option<Vec<f64>> = self.rounds.iter().map(f).collect();
        xs.map(median)
    }
}

/// The queue + wake pairs of the Mailbox comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MailMech {
    /// `wakefd::Mailbox`, drained with `drain()` on every wake.
    Wakefd,
    /// crossbeam-channel + coalescing flag (load first, SeqCst fences) +
    /// `mio::Waker`.
    CrossbeamFlagLoad,
    /// crossbeam-channel + coalescing flag (always swap) + `mio::Waker`.
    CrossbeamFlagSwap,
    /// `std::sync::mpsc` + coalescing flag (load first) + `mio::Waker`.
    StdMpscFlag,
    /// crossbeam-channel + `mio::Waker::wake()` after every message.
    CrossbeamWakeEach,
}

const MAIL_MECHS: [MailMech; 5] = [
    MailMech::Wakefd,
    MailMech::CrossbeamFlagLoad,
    MailMech::CrossbeamFlagSwap,
    MailMech::StdMpscFlag,
    MailMech::CrossbeamWakeEach,
];

impl MailMech {
    fn id(self) -> &'static str {
        match self {
            MailMech::Wakefd => "wakefd-mailbox",
            MailMech::CrossbeamFlagLoad => "crossbeam-flag-load-first",
            MailMech::CrossbeamFlagSwap => "crossbeam-flag-swap",
            MailMech::StdMpscFlag => "std-mpsc-flag",
            MailMech::CrossbeamWakeEach => "crossbeam-wake-each",
        }
    }

    fn label(self) -> &'static str {
        match self {
            MailMech::Wakefd => "wakefd Mailbox",
            MailMech::CrossbeamFlagLoad => "crossbeam + flag (load) + mio::Waker",
            MailMech::CrossbeamFlagSwap => "crossbeam + flag (swap) + mio::Waker",
            MailMech::StdMpscFlag => "std mpsc + flag (load) + mio::Waker",
            MailMech::CrossbeamWakeEach => "crossbeam + mio::Waker per message",
        }
    }
}

/// One producer's send: for crossbeam and std channels, optionally behind a
/// flag; for wakefd, a Mailbox sender.
enum MailTx {
    Wakefd(wakefd::Sender<u64>),
    Crossbeam(
        crossbeam_channel::Sender<u64>,
        Option<Arc<Flag>>,
        Option<Arc<mio::Waker>>,
    ),
    Std(std::sync::mpsc::Sender<u64>, Arc<Flag>),
}

impl MailTx {
    #[inline]
    fn send(&self, i: u64) -> io::Result<()> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "consumer gone");
        match self {
            MailTx::Wakefd(tx) => tx.send(i).map_err(|_| closed()),
            MailTx::Crossbeam(tx, flag, each) => {
                tx.send(i).map_err(|_| closed())?;
                match (flag, each) {
                    (Some(flag), _) => flag.after_send(),
                    (None, Some(waker)) => waker.wake(),
                    (None, None) => Ok(()),
                }
            }
            MailTx::Std(tx, flag) => {
                tx.send(i).map_err(|_| closed())?;
                flag.after_send()
            }
        }
    }
}

/// One Mailbox-comparison run: `producers` threads send `msgs` messages in
/// all, started together; this thread is the consumer, blocked in
/// `mio::Poll` and draining everything on every wake. Messages per second,
/// from the start to the last message received.
fn mailbox_run(mech: MailMech, producers: u32, msgs: u64, timeout: Duration) -> io::Result<f64> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    let mut wait = |poll: &mut Poll| -> io::Result<()> {
        if mio_poll(poll, &mut events, timeout)? {
            Ok(())
        } else {
            Err(lost_wake("mailbox", timeout))
        }
    };
    let mut mailbox = None;
    let mut cb_rx = None;
    let mut std_rx = None;
    let mut flag = None;
    let mut each_waker = None;
    let txs: Vec<MailTx> = match mech {
        MailMech::Wakefd => {
            let mut m = wakefd::Mailbox::<u64>::new()?;
            poll.registry()
                .register(&mut m, TOKEN, Interest::READABLE)?;
            let txs = (0..producers).map(|_| MailTx::Wakefd(m.sender())).collect();
            mailbox = Some(m);
            txs
        }
        MailMech::CrossbeamFlagLoad | MailMech::CrossbeamFlagSwap | MailMech::CrossbeamWakeEach => {
            let (tx, rx) = crossbeam_channel::unbounded();
            cb_rx = Some(rx);
            if mech == MailMech::CrossbeamWakeEach {
                let waker = Arc::new(mio::Waker::new(poll.registry(), TOKEN)?);
                // The consumer keeps one too: the eventfd must outlive the
                // producers, or their last wake goes with it.
                each_waker = Some(Arc::clone(&waker));
                (0..producers)
                    .map(|_| MailTx::Crossbeam(tx.clone(), None, Some(Arc::clone(&waker))))
                    .collect()
            } else {
                let load_first = mech == MailMech::CrossbeamFlagLoad;
                let f = Arc::new(Flag::new(poll.registry(), TOKEN, load_first)?);
                flag = Some(Arc::clone(&f));
                (0..producers)
                    .map(|_| MailTx::Crossbeam(tx.clone(), Some(Arc::clone(&f)), None))
                    .collect()
            }
        }
        MailMech::StdMpscFlag => {
            let (tx, rx) = std::sync::mpsc::channel();
            std_rx = Some(rx);
            let f = Arc::new(Flag::new(poll.registry(), TOKEN, true)?);
            flag = Some(Arc::clone(&f));
            (0..producers)
                .map(|_| MailTx::Std(tx.clone(), Arc::clone(&f)))
                .collect()
        }
    };
    let barrier = Barrier::new(producers as usize + 1);
    thread::scope(|s| -> io::Result<f64> {
        let handles: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(p, tx)| {
                let barrier = &barrier;
                let p = p as u64;
                let n = u64::from(producers);
                let share = msgs / n + u64::from(p < msgs % n);
                s.spawn(move || -> io::Result<()> {
                    barrier.wait();
                    (0..share).try_for_each(|i| tx.send(i))
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut got = 0;
        let mut consume = || -> io::Result<()> {
            while got < msgs {
                wait(&mut poll)?;
                if let Some(m) = &mut mailbox {
                    for msg in m.drain() {
                        std::hint::black_box(msg);
                        got += 1;
                    }
                    continue;
                }
                if let Some(f) = &flag {
                    f.clear();
                }
                if let Some(rx) = &cb_rx {
                    while let Ok(msg) = rx.try_recv() {
                        std::hint::black_box(msg);
                        got += 1;
                    }
                }
                if let Some(rx) = &std_rx {
                    while let Ok(msg) = rx.try_recv() {
                        std::hint::black_box(msg);
                        got += 1;
                    }
                }
            }
            Ok(())
        };
        let result = consume();
        let secs = start.elapsed().as_secs_f64();
        // Drop the receivers first, so that producers blocked on nothing
        // but still sending after a consumer failure get an error and end.
        drop((cb_rx.take(), std_rx.take(), mailbox.take()));
        drop(each_waker);
        for h in handles {
            h.join().expect("producer panicked")?;
        }
        result?;
        Ok(msgs as f64 / secs)
    })
}

struct MailResult {
    mech: MailMech,
    producers: u32,
    msgs: u64,
    /// Messages per second, one per round.
    rates: Vec<f64>,
}

impl MailResult {
    /// The median over rounds of wakefd's rate divided by this one's in the
    /// same round.
    fn wakefd_ratio(&self, wakefd: &MailResult) -> f64 {
        median(
            wakefd
                .rates
                .iter()
                .zip(&self.rates)
                .map(|(w, r)| w / r)
                .collect(),
        )
    }
}

fn mailbox_table(results: &[MailResult], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Mailbox throughput: producers -> 1 consumer blocked in mio::Poll that drains \
         everything on every wake; {} messages per run ({} for the per-message-wake \
         baseline); median over {} interleaved rounds, M msg/s; wakefd/x = median over \
         rounds of wakefd Mailbox's rate over this one's in the same round",
        args.mailbox,
        (args.mailbox / 10).max(1),
        args.rounds
    );
    let _ = writeln!(out);
    let mut header = format!("| {:<38} |", "mechanism");
    let mut rule = format!("|{:-<40}|", "");
    for p in &args.producers {
        header += &format!(" {:>10} | {:>8} |", format!("{p}->1 M/s"), "wakefd/x");
        rule += &format!("{:->12}|{:->10}|", ":", ":");
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{rule}");
    for mech in MAIL_MECHS {
        let mut line = format!("| {:<38} |", mech.label());
        for &p in &args.producers {
            let find = |m: MailMech| results.iter().find(|r| r.mech == m && r.producers == p);
            match (find(mech), find(MailMech::Wakefd)) {
                (Some(r), Some(w)) => {
                    line += &format!(
                        " {:>10.1} | {:>8.2} |",
                        median(r.rates.clone()) / 1e6,
                        r.wakefd_ratio(w)
                    );
                }
                _ => line += &format!(" {:>10} | {:>8} |", "-", "-"),
            }
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpus": cpus, "kernel": kernel, "cpu_model": cpu })
}

fn us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

fn latency_table(results: &[LatencyResult], args: &Args) -> String {
    let base = results.iter().find(|r| r.mech == Mech::EpollLtRead);
    let mio = results.iter().find(|r| r.mech == Mech::MioWaker);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "round-trip latency, µs: {} interleaved rounds x {} round trips per mechanism \
         ({} warm-up); median over rounds of each round's percentile; max is the \
         largest of any round",
        args.rounds, args.iters, args.warmup
    );
    let _ = writeln!(
        out,
        "threads: {}",
        match pin_cpus(args) {
            Some((a, b)) => format!("measuring side pinned to CPU {a}, echo side to CPU {b}"),
            None => "placed by the scheduler (not pinned)".into(),
        }
    );
    let _ = writeln!(
        out,
        "ratios: median over rounds of the per-round ratio, vs the raw eventfd+epoll \
         LT+read baseline (/LT) and vs mio::Waker (/mio)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| {:<28} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>6} | {:>6} | {:>7} | {:>7} |",
        "mechanism", "p50", "p90", "p99", "p99.9", "max", "p50/LT", "p99/LT", "p50/mio", "p99/mio"
    );
    let _ = writeln!(
        out,
        "|{:-<30}|{:->9}|{:->9}|{:->9}|{:->9}|{:->10}|{:->8}|{:->8}|{:->9}|{:->9}|",
        "", ":", ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for r in results {
        let m = r.median();
        let ratio = |b: Option<&LatencyResult>| match b {
            Some(b) => {
                let (p50, p99) = r.ratio(b);
                (format!("{p50:.3}"), format!("{p99:.3}"))
            }
            None => ("-".into(), "-".into()),
        };
        let (l50, l99) = ratio(base);
        let (m50, m99) = ratio(mio);
        let _ = writeln!(
            out,
            "| {:<28} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>6} | {:>6} | {:>7} | {:>7} |",
            r.mech.label(),
            us(m.p50),
            us(m.p90),
            us(m.p99),
            us(m.p999),
            us(m.max),
            l50,
            l99,
            m50,
            m99
        );
    }
    out
}

fn burst_table(results: &[BurstResult], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "burst: {} sender threads each call notify() K times per round as fast as they can, \
         while the loop thread polls and drains on every wake; median over {} rounds",
        args.senders, args.rounds
    );
    let _ = writeln!(
        out,
        "wakes = event-loop returns; drains = drain() calls that found a wake pending; \
         writes = write(2) calls made by the sender threads, counted by the kernel \
         (/proc/thread-self/io syscw; n/a where wakes are send(2), which it does not count)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| {:<23} | {:>9} | {:>10} | {:>9} | {:>9} | {:>9} | {:>13} | {:>12} |",
        "mechanism",
        "K",
        "notifies/s",
        "wakes",
        "drains",
        "writes",
        "notifies/write",
        "writes/drain"
    );
    let _ = writeln!(
        out,
        "|{:-<25}|{:->11}|{:->12}|{:->11}|{:->11}|{:->11}|{:->15}|{:->14}|",
        "", ":", ":", ":", ":", ":", ":", ":"
    );
    for r in results {
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.prec$}"));
        let rate = r.median_of(|b| Some(b.rate())).unwrap_or(0.0);
        let wakes = r.median_of(|b| Some(b.wakes as f64));
        let drains = r.median_of(|b| b.drains_true.map(|d| d as f64));
        let writes = r.median_of(|b| b.writes.map(|w| w as f64));
        let per_write = r.median_of(|b| b.writes.map(|w| b.notifies as f64 / w.max(1) as f64));
        let per_drain = r.median_of(|b| {
            b.writes
                .zip(b.drains_true)
                .map(|(w, d)| w as f64 / d.max(1) as f64)
        });
        let _ = writeln!(
            out,
            "| {:<23} | {:>9} | {:>8.1} M | {:>9} | {:>9} | {:>9} | {:>13} | {:>12} |",
            r.mech.label(),
            r.k,
            rate / 1e6,
            opt(wakes, 0),
            opt(drains, 0),
            opt(writes, 0),
            opt(per_write, 0),
            opt(per_drain, 3),
        );
    }
    out
}

fn to_json(
    args: &Args,
    latency: &[LatencyResult],
    burst: &[BurstResult],
    mail: &[MailResult],
) -> Value {
    let base = latency.iter().find(|r| r.mech == Mech::EpollLtRead);
    let mio = latency.iter().find(|r| r.mech == Mech::MioWaker);
    let ratio_json = |r: &LatencyResult, b: Option<&LatencyResult>| {
        b.map(|b| {
            let (p50, p99) = r.ratio(b);
            json!({ "p50": p50, "p99": p99 })
        })
    };
    let lat: Vec<Value> = latency
        .iter()
        .map(|r| {
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "median_over_rounds": r.median().json(),
                "ratio_vs_epoll_lt_read": ratio_json(r, base),
                "ratio_vs_mio_waker": ratio_json(r, mio),
                "all_rounds_pooled": Stats::of(&r.all).json(),
                "rounds": r.rounds.iter().map(Stats::json).collect::<Vec<_>>(),
                "cdf": cdf_points(&r.all).iter().map(|&(ns, q)| json!([ns, q])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let bur: Vec<Value> = burst
        .iter()
        .map(|r| {
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "senders": args.senders,
                "notifies_per_sender": r.k,
                "median_notifies_per_sec": r.median_of(|b| Some(b.rate())),
                "median_wakes": r.median_of(|b| Some(b.wakes as f64)),
                "median_drains_true": r.median_of(|b| b.drains_true.map(|d| d as f64)),
                "median_writes": r.median_of(|b| b.writes.map(|w| w as f64)),
                "rounds": r.rounds.iter().map(|b| json!({
                    "notifies": b.notifies,
                    "secs": b.secs,
                    "notifies_per_sec": b.rate(),
                    "wakes": b.wakes,
                    "drains_true": b.drains_true,
                    "writes": b.writes,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "machine": machine(),
        "config": {
            "rounds": args.rounds,
            "iters": args.iters,
            "warmup": args.warmup,
            "timeout_ms": args.timeout_ms,
            "burst": args.burst,
            "senders": args.senders,
            "mailbox": args.mailbox,
            "producers": args.producers,
            "pinned_cpus": pin_cpus(args).map(|(a, b)| [a, b]),
        },
        "latency": lat,
        "burst": bur,
        "mailbox": mail.iter().map(|r| {
            let wakefd = mail
                .iter()
                .find(|w| w.mech == MailMech::Wakefd && w.producers == r.producers);
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "producers": r.producers,
                "messages_per_run": r.msgs,
                "median_msgs_per_sec": median(r.rates.clone()),
                "wakefd_ratio": wakefd.map(|w| r.wakefd_ratio(w)),
                "rounds_msgs_per_sec": r.rates,
            })
        }).collect::<Vec<_>>(),
    })
}

/// (latency in ns, cumulative fraction) points of a histogram's CDF, dense
/// in the tail.
fn cdf_points(h: &Histogram<u64>) -> Vec<(u64, f64)> {
    let mut qs: Vec<f64> = (0..=98).map(|i| f64::from(i) / 100.0).collect();
    qs.extend((0..10).map(|i| 0.99 + f64::from(i) / 1000.0));
    qs.extend((0..10).map(|i| 0.999 + f64::from(i) / 10_000.0));
    qs.extend([0.9999, 0.99999, 1.0]);
    qs.into_iter()
        .map(|q| (h.value_at_quantile(q), q))
        .collect()
}

fn plot(path: &Path, results: &[LatencyResult], args: &Args) -> Result<(), Box<dyn Error>> {
    use plotters::prelude::*;

    let curves: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let pts = cdf_points(&r.all)
                .into_iter()
                .map(|(ns, q)| (ns as f64 / 1000.0, q))
                .collect();
            (r.mech.label(), pts)
        })
        .collect();
    let lo = curves
        .iter()
        .flat_map(|(_, p)| p.first().map(|&(x, _)| x))
        .fold(f64::INFINITY, f64::min)
        .max(0.01);
    let hi = results
        .iter()
        .map(|r| r.all.value_at_quantile(0.999) as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(lo * 2.0);

    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "wakefd: ping-pong round-trip latency CDF ({} rounds x {} round trips)",
        args.rounds, args.iters
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0f64..1.0f64)?;
    chart
        .configure_mesh()
        .x_desc("round-trip latency, µs (log scale; cut at the largest p99.9)")
        .y_desc("fraction of round trips")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (i, (label, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).mix(0.9);
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                pts.into_iter().filter(|&(x, _)| x <= hi * 1.1),
                style,
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn mechanisms(args: &Args) -> Vec<Mech> {
    let available = Backend::available();
    let backends: Vec<Backend> = if args.backends.is_empty() {
        available
    } else {
        let mut v = Vec::new();
        for &b in &args.backends {
            if !v.contains(&b) {
                v.push(b);
            }
        }
        v
    };
    let mut mechs: Vec<Mech> = backends.into_iter().map(Mech::Wakefd).collect();
    let want = |b: BaselineArg| {
        args.baselines.is_empty()
            || (args.baselines.contains(&b) && !args.baselines.contains(&BaselineArg::None))
    };
    if want(BaselineArg::MioWaker) {
        mechs.push(Mech::MioWaker);
    }
    if cfg!(any(target_os = "linux", target_os = "android")) {
        if want(BaselineArg::EpollLtRead) {
            mechs.push(Mech::EpollLtRead);
        }
        if want(BaselineArg::EpollEt) {
            mechs.push(Mech::EpollEt);
        }
    }
    mechs
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let pin = pin_cpus(args);
    let mechs = mechanisms(args);
    let mut burst_mechs: Vec<BurstMech> = Vec::new();
    if args.burst > 0 {
        burst_mechs.extend(mechs.iter().filter_map(|m| match m {
            Mech::Wakefd(b) => Some(BurstMech::Wakefd(*b)),
            _ => None,
        }));
        if mechs.contains(&Mech::MioWaker) {
            burst_mechs.push(BurstMech::MioWaker);
        }
    }
    // mio::Waker writes once per wake: give it a tenth of the notifies, or
    // it alone would take most of the run. The rate is per second either way.
    let burst_k = |m: BurstMech| match m {
        BurstMech::MioWaker => (args.burst / 10).max(1),
        BurstMech::Wakefd(_) => args.burst,
    };

    let mut mail: Vec<MailResult> = Vec::new();
    if args.mailbox > 0 {
        for &producers in &args.producers {
            for mech in MAIL_MECHS {
                let msgs = match mech {
                    // A write per message: a tenth is plenty for its rate.
                    MailMech::CrossbeamWakeEach => (args.mailbox / 10).max(1),
                    _ => args.mailbox,
                };
                mail.push(MailResult {
                    mech,
                    producers: producers.max(1),
                    msgs,
                    rates: Vec::new(),
                });
            }
        }
    }

    let steps = u64::from(args.rounds)
        * (mechs.len() + burst_mechs.len() + usize::from(!mail.is_empty())) as u64;
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );

    let mut pairs = Vec::new();
    for &m in &mechs {
        let (a, b) = make_pair(m).map_err(|e| format!("{}: {e}", m.label()))?;
        pairs.push((a, Some(b)));
    }
    let mut latency: Vec<LatencyResult> = mechs
        .iter()
        .map(|&mech| LatencyResult {
            mech,
            rounds: Vec::new(),
            all: new_histogram(),
        })
        .collect();
    let mut burst: Vec<BurstResult> = burst_mechs
        .iter()
        .map(|&mech| BurstResult {
            mech,
            k: burst_k(mech),
            rounds: Vec::new(),
        })
        .collect();

    for round in 1..=args.rounds {
        for (res, (a, b)) in latency.iter_mut().zip(&mut pairs) {
            bar.set_message(format!("round {round}: {}", res.mech.label()));
            let peer = b.take().expect("peer side is home between runs");
            let (hist, peer) = ping_pong(a, peer, args.warmup, args.iters, timeout, pin)
                .map_err(|e| format!("{}: {e}", res.mech.label()))?;
            *b = Some(peer);
            res.rounds.push(Stats::of(&hist));
            res.all.add(&hist).expect("same bounds");
            bar.inc(1);
        }
        for res in &mut burst {
            bar.set_message(format!("round {round}: burst {}", res.mech.label()));
            let r = burst_round(res.mech, args.senders, res.k, timeout)
                .map_err(|e| format!("burst {}: {e}", res.mech.label()))?;
            res.rounds.push(r);
            bar.inc(1);
        }
        if !mail.is_empty() {
            bar.set_message(format!("round {round}: mailbox"));
            for res in &mut mail {
                let rate = mailbox_run(res.mech, res.producers, res.msgs, timeout)
                    .map_err(|e| format!("mailbox {}: {e}", res.mech.label()))?;
                res.rates.push(rate);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    drop(pairs);

    let m = machine();
    println!(
        "wakefd notify latency — {} CPUs, Linux {}, {}",
        m["cpus"],
        m["kernel"].as_str().unwrap_or("?"),
        m["cpu_model"].as_str().unwrap_or("?")
    );
    println!();
    print!("{}", latency_table(&latency, args));
    if !burst.is_empty() {
        println!();
        print!("{}", burst_table(&burst, args));
    }
    if !mail.is_empty() {
        println!();
        print!("{}", mailbox_table(&mail, args));
    }
    println!();
    println!("no lost wake-ups: every wait returned within {timeout:?}");

    if let Some(path) = &args.json {
        let v = to_json(args, &latency, &burst, &mail);
        std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, &latency, args).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
