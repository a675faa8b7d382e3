//! The Mailbox comparison: producer threads send `u64`s to one consumer
//! blocked in `mio::Poll`, which takes everything queued on every wake.
//! wakefd's `Mailbox` against what one would write by hand: a channel and a
//! `mio::Waker`, woken per message or behind the coalescing flag of
//! `flag.rs`. One copy, shared by the latency example and
//! `benches/notify.rs`; both include `event_loop.rs` and `flag.rs` at their
//! crate root (as `crate::event_loop` and `crate::flag`) beside this file.
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

use crate::event_loop::{lost_wake, EventLoop, TOKEN};
use crate::flag::Flag;

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
    /// together, while this thread consumes them; the time from the start
    /// to the last message received. Every wait is bounded by `timeout`.
    pub fn run(self, producers: u32, total: u64, timeout: Duration) -> io::Result<Duration> {
        match self {
            Contender::Wakefd => wakefd_mailbox(producers, total, timeout, true),
            Contender::WakefdCommonLane => wakefd_mailbox(producers, total, timeout, false),
            Contender::WakefdSleepAware => wakefd_mailbox_sleep_aware(producers, total, timeout),
            Contender::CrossbeamFlagLoad => crossbeam_flag(producers, total, timeout, true),
            Contender::CrossbeamFlagSwap => crossbeam_flag(producers, total, timeout, false),
            Contender::StdMpscFlag => std_mpsc_flag(producers, total, timeout),
            Contender::CrossbeamWakeEach => crossbeam_wake_each(producers, total, timeout),
        }
    }
}

/// Runs one thread per sender, each calling `send(i)` for its share of
/// `total` messages, started together, while `consume` (on this thread)
/// receives them all; returns the time from the start to the last message
/// received. `consume` owns the receiving end, so that a consumer that
/// fails drops it and its producers' next send fails too.
fn run_producers<S>(
    senders: Vec<S>,
    total: u64,
    consume: impl FnOnce(u64) -> io::Result<()>,
) -> io::Result<Duration>
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
            thread::spawn(move || -> io::Result<()> {
                barrier.wait();
                (0..share).try_for_each(&mut send)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let consumed = consume(total);
    let elapsed = start.elapsed();
    // Join them all before looking at any result.
    let produced: Vec<io::Result<()>> = handles
        .into_iter()
        .map(|h| h.join().expect("producer panicked"))
        .collect();
    consumed?;
    produced.into_iter().collect::<io::Result<()>>()?;
    Ok(elapsed)
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
    lanes: bool,
) -> io::Result<Duration> {
    let (mut ev, mut mailbox, senders) = wakefd_setup(producers, lanes)?;
    run_producers(senders, total, move |total| {
        let mut got = 0;
        while got < total {
            ev.wait(timeout)?;
            got += take_all(mailbox.drain());
        }
        Ok(())
    })
}

/// wakefd: `Sender::send`; the consumer waits in `Mailbox::poll` (the
/// sleep-aware loop) and drains on every return.
fn wakefd_mailbox_sleep_aware(
    producers: u32,
    total: u64,
    timeout: Duration,
) -> io::Result<Duration> {
    let (mut ev, mut mailbox, senders) = wakefd_setup(producers, true)?;
    run_producers(senders, total, move |total| {
        // Sleep-aware while this guard lives: sends that find the loop
        // awake make no system call.
        let _awake = mailbox.announce_awake();
        let mut got = 0;
        let mut deadline = Instant::now() + timeout;
        while got < total {
            let (poll, events) = ev.parts();
            // `false` is not a lost wake by itself: the wake may have been
            // for messages an earlier drain already took (the loop was
            // awake when they came). Only no progress until the deadline is.
            let left = deadline.saturating_duration_since(Instant::now());
            if mailbox.poll(poll, events, Some(left))? {
                got += take_all(mailbox.drain());
                deadline = Instant::now() + timeout;
            } else if Instant::now() >= deadline {
                return Err(lost_wake(timeout));
            }
        }
        Ok(())
    })
}

/// crossbeam-channel + the coalescing flag + `mio::Waker`.
fn crossbeam_flag(
    producers: u32,
    total: u64,
    timeout: Duration,
    load_first: bool,
) -> io::Result<Duration> {
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
    run_producers(senders, total, move |total| {
        let mut got = 0;
        while got < total {
            ev.wait(timeout)?;
            flag.clear();
            got += take_all(rx.try_iter());
        }
        Ok(())
    })
}

/// `std::sync::mpsc` + the coalescing flag (load first) + `mio::Waker`.
fn std_mpsc_flag(producers: u32, total: u64, timeout: Duration) -> io::Result<Duration> {
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
    run_producers(senders, total, move |total| {
        let mut got = 0;
        while got < total {
            ev.wait(timeout)?;
            flag.clear();
            got += take_all(rx.try_iter());
        }
        Ok(())
    })
}

/// crossbeam-channel + `mio::Waker::wake()` after every message.
fn crossbeam_wake_each(producers: u32, total: u64, timeout: Duration) -> io::Result<Duration> {
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
    run_producers(senders, total, move |total| {
        let mut got = 0;
        while got < total {
            ev.wait(timeout)?;
            got += take_all(rx.try_iter());
        }
        Ok(())
    })
}
