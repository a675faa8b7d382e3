//! The mechanisms under test, and the one shape every one of them takes: a
//! [`Loop`] that blocks in its event loop, and a [`Wake`] any thread calls
//! to wake it. Ping-pong, burst and the reports all work from [`Mech`]
//! alone; the `match`es on it are all in this file.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use mio::{Events, Interest, Poll};
use wakefd::{Backend, Notifier, Stats, Waker};

use crate::event_loop::{EventLoop, TOKEN};

/// One way of waking a thread blocked in an event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    /// A wakefd `Notifier` registered with `mio::Poll`, drained on wake.
    Wakefd(Backend),
    /// A wakefd `Notifier` in a sleep-aware loop: `Notifier::poll` instead
    /// of `Poll::poll` + `drain`, spinning `spin_us` µs first (0: never).
    SleepAware { backend: Backend, spin_us: u64 },
    /// Something to measure wakefd against.
    Baseline(Baseline),
}

/// The baselines; `--baseline` takes their names (the doc comments are its
/// help), and so does the JSON.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// mio::Waker (eventfd, edge-triggered, never read).
    MioWaker,
    /// eventfd + level-triggered epoll, one read per wake.
    EpollLtRead,
    /// eventfd + edge-triggered epoll, no read.
    EpollEt,
}

/// What one blocking call of a [`Loop`] came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// Nothing within the timeout.
    TimedOut,
    /// An event; this mechanism does not read its fd.
    Unread,
    /// An event, then a drain that found a wake pending (`true`) or not
    /// (`false`: a stray edge; see the crate's `state.rs`).
    Drained(bool),
}

/// A thread's event loop: blocks until woken or `timeout`, once.
pub type Loop = Box<dyn FnMut(Duration) -> io::Result<Woke> + Send>;

/// Wakes one [`Loop`], from any thread. Every `Fn() -> io::Result<()>`
/// closure is one; `open` hands it out as an `Arc<dyn Wake>`.
pub trait Wake: Send + Sync {
    fn wake(&self) -> io::Result<()>;

    /// The counters of the notifier this wakes, for wakefd mechanisms.
    fn stats(&self) -> Option<Stats> {
        None
    }

    /// `n` wakes in a row, stopping at the first error: burst mode's hot
    /// loop. Compiled for each closure type, so that the loop pays one
    /// dynamic call for all `n` (one per wake is measurably slower than
    /// a coalesced notify alone, and would be counted in its rate).
    fn wake_n(&self, n: u64) -> io::Result<()> {
        (0..n).try_for_each(|_| self.wake())
    }
}

impl<F> Wake for F
where
    F: Fn() -> io::Result<()> + Send + Sync,
{
    #[inline]
    fn wake(&self) -> io::Result<()> {
        self()
    }
}

impl Mech {
    /// Its name in JSON.
    pub fn id(self) -> String {
        match self {
            Mech::Wakefd(b) => b.to_string(),
            Mech::SleepAware {
                backend,
                spin_us: 0,
            } => format!("wakefd-{backend}-sleepaware"),
            Mech::SleepAware { backend, spin_us } => format!("wakefd-{backend}-spin{spin_us}"),
            Mech::Baseline(b) => b
                .to_possible_value()
                .expect("no baseline is skipped")
                .get_name()
                .to_owned(),
        }
    }

    /// Its name in tables and the plot.
    pub fn label(self) -> String {
        match self {
            Mech::Wakefd(b) => format!("wakefd {b} (mio)"),
            Mech::SleepAware {
                backend,
                spin_us: 0,
            } => format!("wakefd {backend} sleep-aware"),
            Mech::SleepAware { backend, spin_us } => format!("wakefd {backend} spin {spin_us}µs"),
            Mech::Baseline(Baseline::MioWaker) => "mio::Waker".into(),
            Mech::Baseline(Baseline::EpollLtRead) => "raw eventfd+epoll LT+read".into(),
            Mech::Baseline(Baseline::EpollEt) => "raw eventfd+epoll ET (floor)".into(),
        }
    }

    /// Whether it runs on this platform.
    pub fn available(self) -> bool {
        match self {
            Mech::Wakefd(b) | Mech::SleepAware { backend: b, .. } => {
                Backend::available().contains(&b)
            }
            Mech::Baseline(Baseline::MioWaker) => true,
            Mech::Baseline(Baseline::EpollLtRead | Baseline::EpollEt) => {
                cfg!(any(target_os = "linux", target_os = "android"))
            }
        }
    }

    /// A fresh event loop and the handle that wakes it.
    pub fn open(self) -> io::Result<(Loop, Arc<dyn Wake>)> {
        match self {
            Mech::Wakefd(b) => wakefd(b),
            Mech::SleepAware { backend, spin_us } => {
                sleep_aware(backend, Duration::from_micros(spin_us))
            }
            Mech::Baseline(Baseline::MioWaker) => mio_waker(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mech::Baseline(Baseline::EpollLtRead) => crate::baselines::epoll(true),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Mech::Baseline(Baseline::EpollEt) => crate::baselines::epoll(false),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Mech::Baseline(Baseline::EpollLtRead | Baseline::EpollEt) => {
                Err(io::ErrorKind::Unsupported.into())
            }
        }
    }

    /// `notify()` calls per sender per burst round, given `--burst`; None
    /// to leave it out of burst mode.
    pub fn burst_notifies(self, burst: u64) -> Option<u64> {
        match self {
            Mech::Wakefd(_) | Mech::SleepAware { .. } => Some(burst),
            // A write per wake: a tenth of the notifies, or it alone would
            // take most of the run. The rate is per second either way.
            Mech::Baseline(Baseline::MioWaker) => Some((burst / 10).max(1)),
            // The same write per wake as mio::Waker: nothing more to learn.
            Mech::Baseline(Baseline::EpollLtRead | Baseline::EpollEt) => None,
        }
    }

    /// Whether its wakes are write(2) calls, which the kernel's per-thread
    /// `syscw` counts (send(2) on a socket is not counted there).
    pub fn wakes_are_writes(self) -> bool {
        match self {
            Mech::Wakefd(b) | Mech::SleepAware { backend: b, .. } => {
                matches!(b, Backend::EventFd | Backend::Pipe)
            }
            Mech::Baseline(Baseline::MioWaker) => {
                cfg!(any(target_os = "linux", target_os = "android"))
            }
            Mech::Baseline(Baseline::EpollLtRead | Baseline::EpollEt) => true,
        }
    }
}

/// A wakefd `Notifier` registered with `mio::Poll`, drained on every event.
fn wakefd(backend: Backend) -> io::Result<(Loop, Arc<dyn Wake>)> {
    let mut ev = EventLoop::new()?;
    let mut notifier = Notifier::with_backend(backend)?;
    ev.registry()
        .register(&mut notifier, TOKEN, Interest::READABLE)?;
    let notifier = Arc::new(notifier);
    let wake = NotifierWake::of(&notifier);
    let poll = move |timeout| {
        Ok(if ev.poll(timeout)? {
            Woke::Drained(notifier.drain()?)
        } else {
            Woke::TimedOut
        })
    };
    Ok((Box::new(poll), Arc::new(wake)))
}

/// A wakefd `Notifier` in a sleep-aware loop: `Notifier::poll` announces
/// sleep, polls (with a zero timeout if a wake is pending, after spinning
/// `spin` if it is not zero), announces the loop awake and drains. Between
/// two calls the loop is awake, and a wake makes no system call.
fn sleep_aware(backend: Backend, spin: Duration) -> io::Result<(Loop, Arc<dyn Wake>)> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    let mut notifier = Notifier::with_backend(backend)?;
    notifier.set_spin(spin);
    poll.registry()
        .register(&mut notifier, TOKEN, Interest::READABLE)?;
    // Sleep-aware for as long as the loop (this closure) lives.
    let awake = notifier.announce_awake();
    let notifier = Arc::new(notifier);
    let wake = NotifierWake::of(&notifier);
    let wait = move |timeout: Duration| {
        let _awake = &awake;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if notifier.poll(&mut poll, &mut events, Some(left))? {
                return Ok(Woke::Drained(true));
            }
            if !events.is_empty() {
                // Our own event with nothing pending: a stray edge.
                return Ok(Woke::Drained(false));
            }
            // No event, no wake: the timeout, or EINTR (which `poll`
            // returns as no events) with time left.
            if left.is_zero() {
                return Ok(Woke::TimedOut);
            }
        }
    };
    Ok((Box::new(wait), Arc::new(wake)))
}

/// A wakefd [`Waker`], and the [`Notifier`] it wakes for its [`Stats`]
/// (the loop owns the other handle to it).
struct NotifierWake {
    waker: Waker,
    notifier: Arc<Notifier>,
}

impl NotifierWake {
    fn of(notifier: &Arc<Notifier>) -> NotifierWake {
        NotifierWake {
            waker: notifier.waker(),
            notifier: Arc::clone(notifier),
        }
    }
}

impl Wake for NotifierWake {
    #[inline]
    fn wake(&self) -> io::Result<()> {
        self.waker.notify()
    }

    fn stats(&self) -> Option<Stats> {
        Some(self.notifier.stats())
    }
}

/// `mio::Waker`: never read. Its eventfd lives as long as the [`Wake`]:
/// keep that until the loop has seen the last wake.
fn mio_waker() -> io::Result<(Loop, Arc<dyn Wake>)> {
    let mut ev = EventLoop::new()?;
    let waker = mio::Waker::new(ev.registry(), TOKEN)?;
    let poll = move |timeout| {
        Ok(if ev.poll(timeout)? {
            Woke::Unread
        } else {
            Woke::TimedOut
        })
    };
    Ok((Box::new(poll), Arc::new(move || waker.wake())))
}
