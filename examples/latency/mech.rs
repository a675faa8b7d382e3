//! The mechanisms under test, and the one shape every one of them takes: a
//! [`Loop`] that blocks in its event loop, and a [`Wake`] any thread calls
//! to wake it. Ping-pong, burst and the reports all work from [`Mech`]
//! alone; the `match`es on it are all in this file.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use mio::Interest;
use wakefd::{Backend, Notifier};

use crate::event_loop::{EventLoop, TOKEN};

/// One way of waking a thread blocked in an event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    /// A wakefd `Notifier` registered with `mio::Poll`, drained on wake.
    Wakefd(Backend),
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
            Mech::Baseline(Baseline::MioWaker) => "mio::Waker".into(),
            Mech::Baseline(Baseline::EpollLtRead) => "raw eventfd+epoll LT+read".into(),
            Mech::Baseline(Baseline::EpollEt) => "raw eventfd+epoll ET (floor)".into(),
        }
    }

    /// Whether it runs on this platform.
    pub fn available(self) -> bool {
        match self {
            Mech::Wakefd(b) => Backend::available().contains(&b),
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
            Mech::Wakefd(_) => Some(burst),
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
            Mech::Wakefd(b) => matches!(b, Backend::EventFd | Backend::Pipe),
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
    let waker = notifier.waker();
    let poll = move |timeout| {
        Ok(if ev.poll(timeout)? {
            Woke::Drained(notifier.drain()?)
        } else {
            Woke::TimedOut
        })
    };
    Ok((Box::new(poll), Arc::new(move || waker.notify())))
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
