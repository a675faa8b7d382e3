//! The loop's end ([`Notifier`]) and the senders' end ([`Waker`]): façades
//! over the engine (`engine.rs`) with no work besides the wake itself.

use std::fmt;
use std::io;
use std::time::Duration;

use mio::{Events, Poll};

use crate::engine::{forward_to_engine, Engine, Handle};
use crate::sys;
use crate::{Awake, Backend, Stats};
#[cfg(doc)]
use mio::Interest;

/// The event loop's end: a non-blocking fd that becomes readable when a
/// [`Waker`] calls [`notify`](Waker::notify).
///
/// Register it with a [`mio::Poll`] (it implements [`mio::event::Source`];
/// use [`Interest::READABLE`]) or watch its raw fd with any reactor. When it
/// is readable, call [`drain`](Notifier::drain), then look at the work the
/// other threads left. Threads with no reactor can block in
/// [`wait`](Notifier::wait) instead.
///
/// # Sleep-aware loops
///
/// A loop that tells the notifier when it sleeps gets its wakes without a
/// system call while it is awake:
///
/// | call | what it does |
/// | --- | --- |
/// | [`poll`](Notifier::poll) | the one call for mio loops: announces sleep, `Poll::poll`s (with a zero timeout if a wake is pending), announces that the loop is awake, drains; `Ok(true)` if woken |
/// | [`announce_sleep`](Notifier::announce_sleep) | before a blocking call of your own reactor; `false`: a wake is pending, don't block |
/// | [`announce_awake`](Notifier::announce_awake) | after that call returns, for whatever reason |
/// | [`set_spin`](Notifier::set_spin) | spin this long, awake to senders, before blocking in `poll` or `wait` |
/// | [`stats`](Notifier::stats) | wakes written and absorbed, drains, sleeps |
///
/// While the loop is awake (between `announce_awake` and the next
/// `announce_sleep`), `notify()` only sets the pending bit; the loop sees it
/// when it next announces sleep and then does not block. So once a loop has
/// announced it is awake, it must announce sleep before *every* blocking
/// call, or use `poll`/`wait`, which do. A loop that announces nothing
/// behaves exactly as without these calls: every wake is written.
///
/// Dropping the `Notifier` makes every later `notify` fail with
/// `BrokenPipe`. Deregister it from a `Poll` that outlives it first: the fd
/// stays open until the last `Waker` is dropped too.
///
/// # I/O safety
///
/// The fd that `as_fd` returns (on Windows the socket of `as_socket`) is
/// the same, and open, from creation until the `Notifier` is dropped: a reactor may keep it
/// registered for that long (tokio's `AsyncFd`, async-io's `Async`,
/// `polling`, calloop's `Generic` rely on exactly that). The same holds for
/// a [`Mailbox`](crate::Mailbox) and a [`KeyedNotifier`](crate::KeyedNotifier).
///
/// # Examples
///
/// ```
/// use mio::{Events, Interest, Poll, Token};
/// use std::time::Duration;
/// use wakefd::Notifier;
///
/// let mut poll = Poll::new()?;
/// let mut notifier = Notifier::new()?;
/// poll.registry().register(&mut notifier, Token(0), Interest::READABLE)?;
///
/// let waker = notifier.waker();
/// let worker = std::thread::spawn(move || waker.notify());
///
/// let mut events = Events::with_capacity(8);
/// poll.poll(&mut events, Some(Duration::from_secs(10)))?;
/// assert!(events.iter().any(|e| e.token() == Token(0)));
/// assert!(notifier.drain()?);
/// worker.join().unwrap()?;
/// # std::io::Result::Ok(())
/// ```
pub struct Notifier {
    engine: Engine,
}

impl Notifier {
    /// A notifier on the platform's default backend ([`Backend::default`]).
    ///
    /// # Errors
    ///
    /// The OS error of the failed system call, such as `EMFILE` when the
    /// process is out of file descriptors. Nothing opened is leaked.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// assert_eq!(notifier.backend(), wakefd::Backend::default());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn new() -> io::Result<Notifier> {
        Notifier::with_backend(Backend::default())
    }

    /// A notifier on the given backend.
    ///
    /// # Errors
    ///
    /// `ErrorKind::Unsupported` if the platform lacks `backend` (see
    /// [`Backend::available`]); otherwise the OS error of the failed system
    /// call, with nothing leaked.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Backend, Notifier};
    ///
    /// let notifier = Notifier::with_backend(Backend::TcpLoopback)?;
    /// notifier.waker().notify()?;
    /// assert!(notifier.drain()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_backend(backend: Backend) -> io::Result<Notifier> {
        Ok(Notifier {
            engine: Engine::new(backend, "Notifier")?,
        })
    }

    /// The backend this notifier was created with.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Backend, Notifier};
    ///
    /// let notifier = Notifier::with_backend(Backend::TcpLoopback)?;
    /// assert_eq!(notifier.backend(), Backend::TcpLoopback);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// A new handle for waking this notifier from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let waker = notifier.waker();
    /// std::thread::spawn(move || waker.notify()).join().unwrap()?;
    /// assert!(notifier.drain()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn waker(&self) -> Waker {
        Waker {
            handle: self.engine.handle(),
        }
    }

    /// Consumes every pending wake and re-arms; `Ok(true)` if one was pending.
    ///
    /// Call it when the fd is readable, *before* looking at the work the
    /// wakers left: everything a thread did before its `notify()` returned is
    /// visible after this call. Afterwards a level-triggered watcher of the
    /// raw fd sees it quiet until the next `notify`, and an edge-triggered one
    /// gets a fresh event for the next `notify`.
    ///
    /// While the notifier is registered with mio and its backend is
    /// [`Backend::EventFd`], this makes no system call: mio watches it
    /// edge-triggered, and an eventfd raises an edge for every write, so the
    /// counter need not be read (`mio::Waker` never reads it either). Don't
    /// also watch the raw fd level-triggered while it is registered with mio,
    /// and deregister it before you drop the `Poll` if you will watch it
    /// level-triggered afterwards: until `deregister`, the counter is not
    /// read and stays readable. A sleep-aware loop also skips the read when
    /// no wake can have been written since the last one.
    ///
    /// A readiness event may find nothing to drain (`Ok(false)`): a `notify`
    /// whose work an earlier `drain` already covered can still be writing its
    /// wake when that drain ends. Such a spurious event costs one more drain;
    /// a loop must simply not assume that every event carries work.
    ///
    /// # Errors
    ///
    /// The OS error of a failed `read` (none is expected on these fds), and
    /// in a forked child an error saying the notifier belongs to the parent
    /// process. `EINTR` is retried and `EAGAIN` means "empty".
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let waker = notifier.waker();
    /// assert!(!notifier.drain()?); // nothing pending
    /// waker.notify()?;
    /// waker.notify()?; // coalesced with the first
    /// assert!(notifier.drain()?);
    /// assert!(!notifier.drain()?); // consumed, and re-armed
    /// # std::io::Result::Ok(())
    /// ```
    pub fn drain(&self) -> io::Result<bool> {
        self.engine.drain()
    }

    /// For a thread with no reactor: blocks in [`poll(2)`] (`WSAPoll` on
    /// Windows) until notified or
    /// until `timeout` passes (`None`: no limit), then drains. `Ok(true)` if
    /// it was notified.
    ///
    /// With a spin budget ([`set_spin`](Notifier::set_spin)) it first spins
    /// that long, and a wake that comes meanwhile costs the sender one atomic
    /// operation and this thread no system call. A loop that has announced
    /// that it is awake ([`announce_awake`](Notifier::announce_awake)) stays
    /// announced awake when `wait` returns; one that has not stays as it was.
    ///
    /// # Errors
    ///
    /// The OS error of a failed `poll` or `read`; `EINTR` is retried with the
    /// time that is left. In a forked child, an error saying the notifier
    /// belongs to the parent process.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let notifier = wakefd::Notifier::new()?;
    /// assert!(!notifier.wait(Some(Duration::from_millis(1)))?);
    /// notifier.waker().notify()?;
    /// assert!(notifier.wait(Some(Duration::from_secs(10)))?);
    /// # std::io::Result::Ok(())
    /// ```
    ///
    /// [`poll(2)`]: https://man7.org/linux/man-pages/man2/poll.2.html
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.engine.wait(sys::deadline(timeout), &())
    }

    /// Announces that the loop is about to block: from now on a `notify`
    /// writes a wake to the fd. Returns `false` if a wake is pending already:
    /// then don't block (poll with a zero timeout), since no write may come
    /// for it.
    ///
    /// Call it right before the blocking call of a reactor of your own, then
    /// [`Awake::announce_awake`] right after it returns, and
    /// [`drain`](Notifier::drain) when the fd was readable *or* a wake was
    /// pending, before you look at the work. (With mio,
    /// [`poll`](Notifier::poll) does all of that.) **The rule:** while an
    /// [`Awake`] guard lives, announce sleep before every blocking call;
    /// without one, the loop behaves as a plain one and needs no
    /// announcement.
    ///
    /// # Examples
    ///
    /// A loop's own reactor (here a `mio::Poll` it blocks in itself):
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let notifier = wakefd::Notifier::new()?;
    /// let waker = notifier.waker();
    /// let mut reactor = mio::Poll::new()?;
    /// let mut events = mio::Events::with_capacity(8);
    /// let awake = notifier.announce_awake(); // the loop is running
    /// waker.notify()?; // no system call: the loop is awake
    ///
    /// let timeout = if awake.announce_sleep() { Duration::from_secs(10) } else { Duration::ZERO };
    /// assert_eq!(timeout, Duration::ZERO); // a wake is pending: don't block
    /// reactor.poll(&mut events, Some(timeout))?;
    /// awake.announce_awake();
    /// assert!(notifier.drain()?);
    /// assert_eq!(notifier.stats().wakes_written, 0);
    /// # std::io::Result::Ok(())
    /// ```
    #[must_use = "`false` means a wake is pending: the loop must not block"]
    pub fn announce_sleep(&self) -> bool {
        self.engine.announce_sleep(&())
    }

    /// Announces that the loop is awake, for as long as the returned
    /// [`Awake`] guard lives: until the loop next announces sleep, a
    /// `notify` makes no system call, and so it is between the blocking
    /// calls of [`poll`](Notifier::poll) and [`wait`](Notifier::wait).
    ///
    /// **The rule:** while the guard lives, block only through `poll` /
    /// `wait`, or after [`Awake::announce_sleep`]. Dropping the guard ends
    /// the awake state and writes any wake it absorbed, so that code which
    /// then blocks the plain way (a shutdown path, a helper) sees it.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let waker = notifier.waker();
    /// let awake = notifier.announce_awake();
    /// waker.notify()?; // no system call
    /// assert!(notifier.drain()?); // the wake is seen all the same
    /// assert_eq!(notifier.stats().wakes_written, 0);
    ///
    /// waker.notify()?; // absorbed too
    /// drop(awake); // writes it: a plain watcher of the fd sees it
    /// assert_eq!(notifier.stats().wakes_written, 1);
    /// assert!(notifier.wait(Some(std::time::Duration::ZERO))?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_awake(&self) -> Awake {
        self.engine.announce_awake()
    }

    /// The sleep-aware `mio` loop in one call: announces sleep, calls
    /// `poll.poll(events, timeout)` (with a zero timeout if a wake is
    /// pending; after the spin budget, if one is set), announces that the
    /// loop is awake if an [`Awake`] guard lives, and drains this notifier.
    /// `Ok(true)` if a wake was pending, and the work the wakers left is
    /// visible now.
    ///
    /// `events` holds the other sources' events as after `Poll::poll`. The
    /// notifier's own event, if there is one, needs no other handling (a
    /// `drain` on it returns `false`). **The rule:** with an [`Awake`] guard
    /// alive ([`announce_awake`](Notifier::announce_awake)), wakes that come
    /// while the loop runs between two calls make no system call, so block
    /// only through this call while it lives; without one, the loop is
    /// plain once this returns, and a plain `Poll::poll` next is fine.
    ///
    /// # Errors
    ///
    /// The error of `Poll::poll` or of the drain. `EINTR` is not an error:
    /// the call returns with no events, as on a timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use mio::{Events, Interest, Poll, Token};
    /// use std::time::Duration;
    /// use wakefd::Notifier;
    ///
    /// let mut poll = Poll::new()?;
    /// let mut notifier = Notifier::new()?;
    /// poll.registry().register(&mut notifier, Token(0), Interest::READABLE)?;
    /// let waker = notifier.waker();
    ///
    /// let mut events = Events::with_capacity(64);
    /// let awake = notifier.announce_awake(); // sleep-aware from here on
    /// assert!(!notifier.poll(&mut poll, &mut events, Some(Duration::ZERO))?);
    /// waker.notify()?; // the loop is awake: no system call
    /// assert!(notifier.poll(&mut poll, &mut events, Some(Duration::from_secs(10)))?);
    /// assert_eq!(notifier.stats().wakes_written, 0);
    /// assert_eq!(notifier.stats().wakes_absorbed, 1);
    /// drop(awake); // plain again
    /// # std::io::Result::Ok(())
    /// ```
    pub fn poll(
        &self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        self.engine.poll(poll, events, timeout, &())
    }

    /// Sets how long [`poll`](Notifier::poll) and [`wait`](Notifier::wait)
    /// spin before they block (`Duration::ZERO`, the default: never).
    ///
    /// While it spins the loop counts as awake: a `notify` costs the sender
    /// one atomic operation and the loop no system call, and the loop sees it
    /// within tens of nanoseconds instead of the microseconds a kernel wake
    /// takes. The price is the spin itself: a core at 100% for up to the
    /// budget after every wake that finds no work. Worth it for a loop that
    /// is woken again within the budget most of the time (a request/response
    /// pipeline, a hot queue), on a machine with a core to spare; not for a
    /// loop that is mostly idle, or on a machine whose cores are all busy
    /// (the spinning thread takes time from the one that would wake it).
    /// Through mio, `poll` also looks for I/O with a zero-timeout poll every
    /// 50 µs while it spins, so sockets are not starved.
    ///
    /// While it spins the loop is announced awake; after `poll` or `wait`
    /// returns it stays so only if an [`Awake`] guard lives (see
    /// [`announce_awake`](Notifier::announce_awake)). Any budget is valid,
    /// `Duration::MAX` included (spin until woken or the call's timeout).
    ///
    /// On a machine with a single CPU
    /// ([`std::thread::available_parallelism`] is 1) the budget is kept but
    /// not spent: the spinning thread would only take the CPU from the one
    /// that is to wake it, so `poll` and `wait` block at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut notifier = wakefd::Notifier::new()?;
    /// notifier.set_spin(Duration::from_micros(50));
    /// let waker = notifier.waker();
    /// let worker = std::thread::spawn(move || waker.notify());
    /// assert!(notifier.wait(Some(Duration::from_secs(10)))?);
    /// worker.join().unwrap()?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_spin(&mut self, budget: Duration) {
        self.engine.set_spin(budget);
    }

    /// The spin budget set with [`set_spin`](Notifier::set_spin) (zero, the
    /// default: no spinning).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut notifier = wakefd::Notifier::new()?;
    /// assert_eq!(notifier.spin(), Duration::ZERO);
    /// notifier.set_spin(Duration::from_micros(50));
    /// assert_eq!(notifier.spin(), Duration::from_micros(50));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spin(&self) -> Duration {
        self.engine.spin()
    }

    /// A snapshot of the wake counters (see [`Stats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// notifier.waker().notify()?;
    /// notifier.waker().notify()?; // coalesced: not counted anywhere
    /// notifier.drain()?;
    /// let stats = notifier.stats();
    /// assert_eq!((stats.wakes_written, stats.drains_woken), (1, 1));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Test-only fault injection: the next `n` wake writes fail with
    /// `ENOBUFS`, as a socket write can when the kernel is short of memory.
    #[cfg(wakefd_fault_injection)]
    #[doc(hidden)]
    pub fn fail_next_writes(&self, n: usize) {
        self.engine.fail_next_writes(n);
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.engine.fmt(f)
    }
}

forward_to_engine!(Notifier);

/// Wakes a [`Notifier`] from any thread. Cheap to clone, one pointer wide.
///
/// # Examples
///
/// ```
/// let notifier = wakefd::Notifier::new()?;
/// let waker = notifier.waker();
/// std::thread::spawn(move || waker.notify()).join().unwrap()?;
/// assert!(notifier.drain()?);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Waker {
    handle: Handle,
}

impl Waker {
    /// Makes the notifier readable, unless a wake is already pending or the
    /// loop is awake.
    ///
    /// While a wake is pending (notified and not yet drained) this makes no
    /// system call: one atomic operation is its whole cost. Between two
    /// drains at most one wake is written to the fd, whatever the number of
    /// callers. While a sleep-aware loop is awake (see [`Notifier::poll`]) it
    /// makes none either. Everything this thread did before `notify` returned
    /// `Ok` is visible to the loop after the `drain` that follows its next
    /// readiness event. It never raises `SIGPIPE`.
    ///
    /// # Async-signal-safety
    ///
    /// `notify` may be called from a signal handler (the self-pipe trick):
    /// on every path it only does atomic operations and at most one `write`,
    /// allocates and frees nothing, takes no lock, does not panic, and leaves
    /// `errno` as it found it. (The one exception is the call in a forked
    /// child, whose error message is allocated.) [`Sender::send`](crate::Sender::send)
    /// is *not* async-signal-safe: its queue may allocate.
    ///
    /// # Errors
    ///
    /// `ErrorKind::BrokenPipe` once the `Notifier` is dropped. In a forked
    /// child, an error saying the waker belongs to the parent process.
    /// Otherwise the OS error of a failed `write` (none is expected; a full
    /// buffer is success, `EINTR` is retried); the next call writes again
    /// instead of coalescing. A call on another thread that coalesced into
    /// the failed wake meanwhile returned `Ok`; its work is seen after the
    /// next wake.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let waker = notifier.waker();
    /// waker.notify()?;
    /// drop(notifier);
    /// assert_eq!(waker.notify().unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn notify(&self) -> io::Result<()> {
        self.handle.notify("Waker")
    }

    /// The senders' handle inside (for the `std::task::Waker` in `task.rs`).
    pub(crate) fn into_handle(self) -> Handle {
        self.handle
    }

    /// A waker over `handle`.
    pub(crate) fn from_handle(handle: Handle) -> Waker {
        Waker { handle }
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("fd", &self.handle.raw())
            .finish()
    }
}
