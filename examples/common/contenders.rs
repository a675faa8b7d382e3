//! The Mailbox comparison: producer threads send `u64`s to one consumer
//! blocked in `mio::Poll`, which takes everything queued on every wake.
//! wakefd's `Mailbox` against what one would write by hand: a channel and a
//! `mio::Waker`, woken per message or behind the coalescing flag of
//! `flag.rs`. One copy, shared by the latency example and
//! `benches/notify.rs`; both include `affinity.rs`, `event_loop.rs` and
//! `flag.rs` at their crate root (as `crate::affinity`, `crate::event_loop`
//! and `crate::flag`) beside this file.
//!
//! Every contender runs in either [`Placement`]: all threads left to the
//! scheduler, or the loop pinned alone to a CPU with the producers on the
//! others. With more busy threads than CPUs the first measures how the
//! scheduler shares the CPUs out as much as the queue (a producer that
//! never waits keeps its CPU, one that backs off and yields gives it to the
//! loop); the second gives every contender's loop the same whole CPU.
//!
//! To add a contender: a variant of [`Contender`], its arms in `id`,
//! `label` and `run`, and a function shaped like the others (senders made
//! up front, then [`run_producers`]).

use std::hint::black_box;
use std::io;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mio::Interest;
use wakefd::Mailbox;

use crate::affinity::{self, PinnedFor};
use crate::event_loop::{lost_wake, EventLoop, TOKEN};
use crate::flag::Flag;

/// Where the loop and the producer threads run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Every thread left to the scheduler.
    Unpinned,
    /// The loop (the consumer) pinned to the first CPU this process may
    /// use, every producer to the set of the others.
    LoopAlone,
}

impl Placement {
    /// Its name in JSON and in the bench's group names (with `_` for `-`).
    pub fn id(self) -> &'static str {
        match self {
            Placement::Unpinned => "unpinned",
            Placement::LoopAlone => "loop-alone",
        }
    }

    /// The loop's CPU and the producers' CPUs; None when unpinned, and
    /// for `LoopAlone` where there are not two CPUs to split (or pinning is
    /// not implemented).
    pub fn cpus(self) -> Option<(usize, Vec<usize>)> {
        match self {
            Placement::Unpinned => None,
            Placement::LoopAlone => match &affinity::allowed_cpus()[..] {
                [first, rest @ ..] if !rest.is_empty() => Some((*first, rest.to_vec())),
                _ => None,
            },
        }
    }

    /// Whether it can run here.
    pub fn available(self) -> bool {
        self == Placement::Unpinned || self.cpus().is_some()
    }

    /// What it does, for a report's header.
    #[allow(dead_code)] // the bench names placements by `id` only
    pub fn describe(self) -> String {
        match (self, self.cpus()) {
            (Placement::Unpinned, _) => "every thread placed by the scheduler".into(),
            (Placement::LoopAlone, Some((l, p))) => format!(
                "loop pinned alone to CPU {l}, producers to CPU{} {}",
                if p.len() == 1 { "" } else { "s" },
                p.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
            ),
            (Placement::LoopAlone, None) => "loop alone: not available (one CPU)".into(),
        }
    }
}

/// A queue + wake pair in the Mailbox comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// `wakefd::Mailbox`, drained with `drain()` on every wake; each
    /// producer sends through a `Sender` with a lane of its own
    /// (`Mailbox::sender_with_lane`), as the docs advise for several busy
    /// producer threads that need no order between them.
    Wakefd,
    /// As `Wakefd`, with every producer on the mailbox's common lane
    /// (`Mailbox::sender`): one order for all messages, as a channel.
    WakefdCommonLane,
    /// `wakefd::Mailbox` in the sleep-aware loop (`Mailbox::poll`): a send
    /// while the loop is awake makes no system call. Lanes as `Wakefd`.
    WakefdSleepAware,
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

impl Contender {
    /// Every contender, in the order they run and are reported.
    pub const ALL: [Contender; 7] = [
        Contender::Wakefd,
        Contender::WakefdCommonLane,
        Contender::WakefdSleepAware,
        Contender::CrossbeamFlagLoad,
        Contender::CrossbeamFlagSwap,
        Contender::StdMpscFlag,
        Contender::CrossbeamWakeEach,
    ];

    /// Its name in JSON (the bench uses it with `_` for `-`).
    pub fn id(self) -> &'static str {
        match self {
            Contender::Wakefd => "wakefd-mailbox",
            Contender::WakefdCommonLane => "wakefd-mailbox-common-lane",
            Contender::WakefdSleepAware => "wakefd-mailbox-sleep-aware",
            Contender::CrossbeamFlagLoad => "crossbeam-flag-load-first",
            Contender::CrossbeamFlagSwap => "crossbeam-flag-swap",
            Contender::StdMpscFlag => "std-mpsc-flag",
            Contender::CrossbeamWakeEach => "crossbeam-wake-each",
        }
    }

    /// Its name in a table.
    #[allow(dead_code)] // the bench names contenders by `id` only
    pub fn label(self) -> &'static str {
        match self {
            Contender::Wakefd => "wakefd Mailbox",
            Contender::WakefdCommonLane => "wakefd Mailbox, common lane",
            Contender::WakefdSleepAware => "wakefd Mailbox, sleep-aware poll",
            Contender::CrossbeamFlagLoad => "crossbeam + flag (load) + mio::Waker",
            Contender::CrossbeamFlagSwap => "crossbeam + flag (swap) + mio::Waker",
            Contender::StdMpscFlag => "std mpsc + flag (load) + mio::Waker",
            Contender::CrossbeamWakeEach => "crossbeam + mio::Waker per message",
        }
    }

    /// One run: `producers` threads send `total` messages in all, started
    /// together, while this thread consumes them, placed as `placement`
    /// says; the time from the start to the last message received. Every
    /// wait is bounded by `timeout`.
    pub fn run(
        self,
        producers: u32,
        total: u64,
        timeout: Duration,
        placement: Placement,
    ) -> io::Result<Run> {
        let at = placement.cpus();
        let at = at.as_ref();
        match self {
            Contender::Wakefd => wakefd_mailbox(producers, total, timeout, at, true),
            Contender::WakefdCommonLane => wakefd_mailbox(producers, total, timeout, at, false),
            Contender::WakefdSleepAware => {
                wakefd_mailbox_sleep_aware(producers, total, timeout, at)
            }
            Contender::CrossbeamFlagLoad => crossbeam_flag(producers, total, timeout, at, true),
            Contender::CrossbeamFlagSwap => crossbeam_flag(producers, total, timeout, at, false),
            Contender::StdMpscFlag => std_mpsc_flag(producers, total, timeout, at),
            Contender::CrossbeamWakeEach => crossbeam_wake_each(producers, total, timeout, at),
        }
    }
}

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// From the first thread's start to the last message taken.
    pub took: Duration,
    /// The loop's returns from its wait: the wakes it took.
    #[allow(dead_code)] // the bench times runs only
    pub loop_wakes: u64,
}

/// The loop's CPU and the producers' CPUs, when pinned.
type Cpus<'a> = Option<&'a (usize, Vec<usize>)>;

/// Runs one thread per sender, each calling `send(i)` for its share of
/// `total` messages, started together, while `consume` (on this thread)
/// receives them all and returns the instant it took the last one and how
/// many times its wait returned. The run
/// is timed from the first thread out of the starting barrier (a producer
/// may start sending before the loop is back from it) to that instant, so
/// neither the threads' start nor the queue's drop is in it. With `at`,
/// this thread is pinned to the loop's CPU for the run (and given its CPUs
/// back after) and every producer to the producers' CPUs. `consume` owns
/// the receiving end, so that a consumer that fails drops it and its
/// producers' next send fails too.
fn run_producers<S>(
    senders: Vec<S>,
    total: u64,
    at: Cpus<'_>,
    consume: impl FnOnce(u64) -> io::Result<(Instant, u64)>,
) -> io::Result<Run>
where
    S: FnMut(u64) -> io::Result<()> + Send + 'static,
{
    let n = senders.len() as u64;
    let barrier = Arc::new(Barrier::new(senders.len() + 1));
    let handles: Vec<_> = (0..n)
        .zip(senders)
        .map(|(p, mut send)| {
            let barrier = Arc::clone(&barrier);
            // Spread the remainder over the first producers.
            let share = total / n + u64::from(p < total % n);
            let cpus = at.map(|(_, producers)| producers.clone());
            thread::spawn(move || -> io::Result<Instant> {
                let pinned = cpus.map_or(Ok(()), |cpus| affinity::pin_set(&cpus));
                barrier.wait();
                let start = Instant::now();
                pinned?;
                (0..share).try_for_each(&mut send)?;
                Ok(start)
            })
        })
        .collect();
    // Every producer passes the barrier whatever happens here, so that a
    // failed pin cannot leave one waiting for ever.
    let pinned = at.map(|(cpu, _)| PinnedFor::cpus(&[*cpu])).transpose();
    barrier.wait();
    let start = Instant::now();
    let consumed = consume(total);
    // Join them all before looking at any result.
    let produced: Vec<io::Result<Instant>> = handles
        .into_iter()
        .map(|h| h.join().expect("producer panicked"))
        .collect();
    let _unpin = pinned?;
    let (end, loop_wakes) = consumed?;
    let starts = produced.into_iter().collect::<io::Result<Vec<Instant>>>()?;
    let start = starts.into_iter().fold(start, Instant::min);
    Ok(Run {
        took: end.saturating_duration_since(start),
        loop_wakes,
    })
}

/// Takes every message `msgs` yields; how many.
fn take_all(msgs: impl Iterator<Item = u64>) -> u64 {
    msgs.map(black_box).count() as u64
}

fn consumer_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "consumer gone")
}

/// A Mailbox registered with a new event loop, and one `Sender::send`
/// closure per producer, each on a lane of its own if `lanes`: the setup of
/// every wakefd contender.
#[allow(clippy::type_complexity)] // an `impl Trait` can't go in a type alias
fn wakefd_setup(
    producers: u32,
    lanes: bool,
) -> io::Result<(
    EventLoop,
    Mailbox<u64>,
    Vec<impl FnMut(u64) -> io::Result<()> + Send + 'static>,
)> {
    let ev = EventLoop::new()?;
    let mut mailbox = Mailbox::<u64>::new()?;
    ev.registry()
        .register(&mut mailbox, TOKEN, Interest::READABLE)?;
    let senders = (0..producers)
        .map(|_| {
            let tx = if lanes {
                mailbox.sender_with_lane()
            } else {
                mailbox.sender()
            };
            move |i| tx.send(i).map_err(|_| consumer_gone())
        })
        .collect();
    Ok((ev, mailbox, senders))
}

/// wakefd: `Sender::send`; the consumer drains the Mailbox on every wake.
fn wakefd_mailbox(
    producers: u32,
    total: u64,
    timeout: Duration,
    at: Cpus<'_>,
    lanes: bool,
) -> io::Result<Run> {
    let (mut ev, mut mailbox, senders) = wakefd_setup(producers, lanes)?;
    run_producers(senders, total, at, move |total| {
        let (mut got, mut wakes) = (0, 0);
        while got < total {
            ev.wait(timeout)?;
            wakes += 1;
            got += take_all(mailbox.drain());
        }
        Ok((Instant::now(), wakes))
    })
}

/// wakefd: `Sender::send`; the consumer waits in `Mailbox::poll` (the
/// sleep-aware loop) and drains on every return.
fn wakefd_mailbox_sleep_aware(
    producers: u32,
    total: u64,
    timeout: Duration,
    at: Cpus<'_>,
) -> io::Result<Run> {
    let (mut ev, mut mailbox, senders) = wakefd_setup(producers, true)?;
    run_producers(senders, total, at, move |total| {
        // Sleep-aware while this guard lives: sends that find the loop
        // awake make no system call.
        let _awake = mailbox.announce_awake();
        let (mut got, mut wakes) = (0, 0);
        let mut deadline = Instant::now() + timeout;
        while got < total {
            let (poll, events) = ev.parts();
            // `false` is not a lost wake by itself: the wake may have been
            // for messages an earlier drain already took (the loop was
            // awake when they came). Only no progress until the deadline is.
            let left = deadline.saturating_duration_since(Instant::now());
            if mailbox.poll(poll, events, Some(left))? {
                wakes += 1;
                got += take_all(mailbox.drain());
                deadline = Instant::now() + timeout;
            } else if Instant::now() >= deadline {
                return Err(lost_wake(timeout));
            }
        }
        Ok((Instant::now(), wakes))
    })
}

/// crossbeam-channel + the coalescing flag + `mio::Waker`.
fn crossbeam_flag(
    producers: u32,
    total: u64,
    timeout: Duration,
    at: Cpus<'_>,
    load_first: bool,
) -> io::Result<Run> {
    let mut ev = EventLoop::new()?;
    let flag = Arc::new(Flag::new(ev.registry(), TOKEN, load_first)?);
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let senders = (0..producers)
        .map(|_| {
            let (tx, flag) = (tx.clone(), Arc::clone(&flag));
            move |i| {
                tx.send(i).map_err(|_| consumer_gone())?;
                flag.after_send()
            }
        })
        .collect();
    drop(tx);
    run_producers(senders, total, at, move |total| {
        let (mut got, mut wakes) = (0, 0);
        while got < total {
            ev.wait(timeout)?;
            wakes += 1;
            flag.clear();
            got += take_all(rx.try_iter());
        }
        Ok((Instant::now(), wakes))
    })
}

/// `std::sync::mpsc` + the coalescing flag (load first) + `mio::Waker`.
fn std_mpsc_flag(producers: u32, total: u64, timeout: Duration, at: Cpus<'_>) -> io::Result<Run> {
    let mut ev = EventLoop::new()?;
    let flag = Arc::new(Flag::new(ev.registry(), TOKEN, true)?);
    let (tx, rx) = mpsc::channel::<u64>();
    let senders = (0..producers)
        .map(|_| {
            let (tx, flag) = (tx.clone(), Arc::clone(&flag));
            move |i| {
                tx.send(i).map_err(|_| consumer_gone())?;
                flag.after_send()
            }
        })
        .collect();
    drop(tx);
    run_producers(senders, total, at, move |total| {
        let (mut got, mut wakes) = (0, 0);
        while got < total {
            ev.wait(timeout)?;
            wakes += 1;
            flag.clear();
            got += take_all(rx.try_iter());
        }
        Ok((Instant::now(), wakes))
    })
}

/// crossbeam-channel + `mio::Waker::wake()` after every message.
fn crossbeam_wake_each(
    producers: u32,
    total: u64,
    timeout: Duration,
    at: Cpus<'_>,
) -> io::Result<Run> {
    let mut ev = EventLoop::new()?;
    // This one stays here until every producer has finished: the eventfd
    // must outlive the producers, or their last wake goes with it.
    let waker = Arc::new(mio::Waker::new(ev.registry(), TOKEN)?);
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let senders = (0..producers)
        .map(|_| {
            let (tx, waker) = (tx.clone(), Arc::clone(&waker));
            move |i| {
                tx.send(i).map_err(|_| consumer_gone())?;
                waker.wake()
            }
        })
        .collect();
    drop(tx);
    run_producers(senders, total, at, move |total| {
        let (mut got, mut wakes) = (0, 0);
        while got < total {
            ev.wait(timeout)?;
            wakes += 1;
            got += take_all(rx.try_iter());
        }
        Ok((Instant::now(), wakes))
    })
}
