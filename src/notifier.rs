//! The loop's end ([`Notifier`]) and the senders' end ([`Waker`]).

use std::fmt;
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};
use std::sync::atomic::{
    AtomicBool, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};

use crate::fork;
use crate::state::{Notified, State};
use crate::sys::{self, Sys};
use crate::Backend;

/// What a `Notifier` and its `Waker`s share. The fds live here, so they are
/// closed only when the `Notifier` and every `Waker` are gone: no fd is ever
/// closed while another thread may still write to it.
#[derive(Debug)]
struct Inner {
    state: State,
    sys: Sys,
    /// The process generation the notifier was made in (see `fork.rs`).
    generation: usize,
    /// The [`Awake`] guards alive: while there is one, the loop stays
    /// announced awake between its blocking calls.
    guards: AtomicUsize,
    /// The loop has announced that it is awake (the `AWAKE` bit is ours).
    /// Loop-local: atomics only because the loop's calls take `&self`.
    awake: AtomicBool,
    /// A wake may have been written since the last read. Always true for a
    /// loop that announces nothing; a sleep-aware loop clears it when it
    /// reads while awake (no write happens while it is awake) and sets it
    /// when it announces sleep.
    maybe_written: AtomicBool,
}

impl Inner {
    fn announce_sleep(&self) -> bool {
        self.maybe_written.store(true, Relaxed);
        self.awake.store(false, Relaxed);
        self.state.announce_sleep()
    }

    fn announce_awake(&self) {
        self.awake.store(true, Relaxed);
        self.state.announce_awake();
    }

    /// After a sleep-aware blocking call with a guard alive at its start:
    /// awake again, unless the last guard went meanwhile (dropped on another
    /// thread), in which case the loop leaves the awake state itself. With
    /// the guard's drop (`fetch_sub` of `guards`, then `leave_awake`'s swap
    /// of `awake`), this is a store-then-load on each side: SeqCst on all
    /// four, so that at least one side sees the other and leaves.
    fn rejoin_awake(&self, flush: bool) {
        // The word's AWAKE bit first: a drop that sees `awake` set then
        // comes after it, and its `leave_awake` clears it.
        self.state.announce_awake();
        self.awake.store(true, SeqCst);
        if self.guards.load(SeqCst) == 0 {
            self.leave_awake(flush);
        }
    }

    /// Back to the plain behaviour, for a loop that is announced awake and
    /// may block without announcing sleep next: clears `AWAKE`, and if a
    /// wake is pending and `flush`, writes it, so that any watcher of the fd
    /// sees it (it may have been absorbed, with nothing written).
    fn leave_awake(&self, flush: bool) {
        // SeqCst: see `rejoin_awake`. The swap also makes one caller of
        // two (the loop and a guard's drop) do the rest.
        if !self.awake.swap(false, SeqCst) {
            return;
        }
        self.maybe_written.store(true, Relaxed);
        if self.state.leave_awake() && flush {
            // A failure sets FAILED: the next notify writes again.
            let _ = self.state.write_absorbed(&self.sys);
        }
    }
}

/// How often a spinning `poll` looks for I/O with a zero-timeout poll.
const PEEK_EVERY: Duration = Duration::from_micros(50);

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
    inner: Arc<Inner>,
    backend: Backend,
    /// Registered edge-triggered through mio with a backend whose watcher
    /// gets an edge per write, so `drain` need not read. Only `register`,
    /// `reregister` and `deregister` change it, and they take `&mut self`.
    skip_read: bool,
    /// The token it is registered with in mio, if it is.
    token: Option<Token>,
    /// How long `poll` and `wait` spin before they block, as set.
    spin: Duration,
    /// The budget they really spin: zero with a single CPU, where the
    /// spinning thread would only take time from the one that wakes it.
    spin_effective: Duration,
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
        let generation = fork::generation()?;
        let sys = Sys::new(backend)?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                state: State::new(),
                sys,
                generation,
                guards: AtomicUsize::new(0),
                awake: AtomicBool::new(false),
                maybe_written: AtomicBool::new(true),
            }),
            backend,
            skip_read: false,
            token: None,
            spin: Duration::ZERO,
            spin_effective: Duration::ZERO,
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
        self.backend
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
            inner: Arc::clone(&self.inner),
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
        self.check_fork()?;
        self.rearm(!self.skip_read)
    }

    /// Re-arms: reads the fd if `read` and a wake may have been written, then
    /// clears the pending bit. `Ok(true)` if a wake was pending.
    pub(crate) fn rearm(&self, read: bool) -> io::Result<bool> {
        let read = read && self.inner.maybe_written.load(Relaxed);
        let woken = self.inner.state.drain(&self.inner.sys, read);
        if read && self.inner.awake.load(Relaxed) {
            // While the loop is awake no wake is written, so until it next
            // announces sleep the fd holds nothing new (a byte from a sender
            // that decided to write before the announcement of wake-up and is
            // still writing is a stray: it makes the fd readable, and the loop
            // reads it after its next announcement of sleep).
            self.inner.maybe_written.store(false, Relaxed);
        }
        woken
    }

    /// Makes a wake pending from the loop's own thread, as a `Waker` would
    /// (used by the Mailbox to keep a readiness event coming for messages it
    /// holds).
    pub(crate) fn notify_self(&self) -> io::Result<()> {
        self.check_fork()?;
        self.inner.state.notify(&self.inner.sys).map(drop)
    }

    /// Whether this is a forked child's copy (no error built).
    pub(crate) fn inherited(&self) -> bool {
        fork::inherited(self.inner.generation)
    }

    /// Whether a wake is pending (notified, not yet drained).
    pub(crate) fn is_pending(&self) -> bool {
        self.inner.state.is_pending()
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
        self.check_fork()?;
        let deadline = sys::deadline(timeout);
        loop {
            if !self.block_once(deadline, || false, false)? {
                return Ok(false);
            }
            // poll(2) is level-triggered, so the fd must really be read here
            // even where `drain` may skip the read.
            if self.rearm(true)? {
                return Ok(true);
            }
            // A stray byte from a wake that an earlier drain had already
            // reported (see state.rs), or a counter left unread while the
            // notifier was registered with mio: nothing new, keep waiting.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Blocks in `poll(2)` until the fd is readable, a wake is pending (for a
    /// sleep-aware loop, which spins first if it has a budget), `ready()`, or
    /// the deadline. `Ok(false)` only if the deadline passed with none of
    /// the others. `flush`: the caller does not drain next, so a wake
    /// absorbed while spinning is written on the way out (see `leave`).
    pub(crate) fn block_once(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
        flush: bool,
    ) -> io::Result<bool> {
        if !self.is_sleep_aware() {
            // A wake absorbed while the loop was announced awake (and then
            // `announce_sleep` returned false) wrote nothing: don't wait for
            // the fd.
            return Ok(ready() || self.is_pending() || self.inner.sys.poll_readable(deadline)?);
        }
        let mut readable = false;
        self.sleep_cycle(
            deadline,
            &ready,
            || Ok(false),
            |timeout| {
                readable = self.inner.sys.poll_readable(sys::deadline(timeout))?;
                Ok(())
            },
            flush,
        )?;
        Ok(readable || self.is_pending() || ready())
    }

    /// A loop that holds an [`Awake`] guard, or spins.
    fn is_sleep_aware(&self) -> bool {
        self.inner.guards.load(Relaxed) != 0 || !self.spin_effective.is_zero()
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
        self.inner.announce_sleep()
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
        self.inner.guards.fetch_add(1, Relaxed);
        self.inner.announce_awake();
        Awake {
            inner: Arc::clone(&self.inner),
            _one_thread: std::marker::PhantomData,
        }
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
        self.check_fork()?;
        self.poll_events(poll, events, timeout, || false, false)?;
        self.rearm(!self.skip_read)
    }

    /// The sleep cycle of `poll` without the drain; `ready()` true means
    /// there is work already (don't block). `flush` as in `block_once`.
    pub(crate) fn poll_events(
        &self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
        ready: impl Fn() -> bool,
        flush: bool,
    ) -> io::Result<()> {
        events.clear();
        let poll = std::cell::RefCell::new((poll, events));
        let result = self.sleep_cycle(
            sys::deadline(timeout),
            ready,
            || {
                let (poll, events) = &mut *poll.borrow_mut();
                poll.poll(events, Some(Duration::ZERO))?;
                Ok(!events.is_empty())
            },
            |timeout| {
                let (poll, events) = &mut *poll.borrow_mut();
                poll.poll(events, timeout)
            },
            flush,
        );
        let (_, events) = poll.into_inner();
        // EINTR: return with no events, as a timeout would; the loop goes
        // round.
        let result = match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            other => other,
        };
        if let Some(token) = self.token {
            // mio is edge-triggered: a written wake shows up as an event for
            // our token, now or in a later poll (if `events` was too small).
            // With one, read (even if it came from the zero-timeout look for
            // I/O while spinning, which announced no sleep); without one,
            // there is nothing to read yet.
            let ours = events.iter().any(|e| e.token() == token);
            if self.inner.awake.load(Relaxed) {
                self.inner.maybe_written.store(ours, Relaxed);
            }
            if ours {
                // The caller need not drain after a spurious event.
                self.inner.sys.rearm_after_event()?;
            }
        }
        result
    }

    /// One sleep-aware wait: spins (with a budget), announces sleep, blocks
    /// unless a wake is pending or `ready()`, and announces the loop awake
    /// again if an [`Awake`] guard lives (otherwise the loop leaves it plain,
    /// writing a wake absorbed while it spun if `flush`). `block(timeout)` is
    /// the blocking call (`None`: no limit); `peek()` looks for I/O without
    /// blocking while spinning, `true` if there is.
    fn sleep_cycle(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
        mut peek: impl FnMut() -> io::Result<bool>,
        block: impl FnOnce(Option<Duration>) -> io::Result<()>,
        flush: bool,
    ) -> io::Result<()> {
        let guarded = self.inner.guards.load(Relaxed) != 0;
        if !self.spin_effective.is_zero() {
            if !self.inner.awake.load(Relaxed) {
                self.inner.announce_awake();
            }
            let found = self.spin_until(deadline, &ready, &mut peek);
            if !matches!(found, Ok(false)) {
                if !guarded {
                    self.inner.leave_awake(flush);
                }
                return found.map(drop);
            }
        }
        let may_block = self.inner.announce_sleep() && !ready();
        let timeout = match deadline {
            _ if !may_block => Some(Duration::ZERO),
            None => None,
            Some(d) => Some(d.saturating_duration_since(Instant::now())),
        };
        let result = block(timeout);
        if guarded {
            self.inner.rejoin_awake(flush);
        }
        result
    }

    /// Spins, announced awake, until a wake is pending, `ready()`, `peek()`
    /// finds I/O (`Ok(true)` for those), or the budget or the deadline runs
    /// out (`Ok(false)`). A budget too large for the clock spins until one
    /// of the others.
    fn spin_until(
        &self,
        deadline: Option<Instant>,
        ready: &impl Fn() -> bool,
        peek: &mut impl FnMut() -> io::Result<bool>,
    ) -> io::Result<bool> {
        let start = Instant::now();
        let end = match (start.checked_add(self.spin_effective), deadline) {
            (Some(budget), Some(deadline)) => Some(budget.min(deadline)),
            (budget, None) => budget,
            (None, deadline) => deadline,
        };
        let mut next_peek = start + PEEK_EVERY;
        let mut spins = 0u32;
        loop {
            if self.inner.state.is_pending() || ready() {
                return Ok(true);
            }
            spins = spins.wrapping_add(1);
            // Reading the clock costs more than a look at the word: do it
            // every 64 spins.
            if spins % 64 == 0 {
                let now = Instant::now();
                if end.is_some_and(|end| now >= end) {
                    return Ok(false);
                }
                if now >= next_peek {
                    if peek()? {
                        return Ok(true);
                    }
                    next_peek = now + PEEK_EVERY;
                }
            }
            std::hint::spin_loop();
        }
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
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.spin = budget;
        self.spin_effective = if cpus > 1 { budget } else { Duration::ZERO };
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
        self.spin
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
        let c = &self.inner.state.counters;
        Stats {
            wakes_written: c.wakes_written.load(Relaxed),
            wakes_absorbed: c.wakes_absorbed.load(Relaxed),
            write_errors: c.write_errors.load(Relaxed),
            drains_woken: c.drains_woken.load(Relaxed),
            drains_spurious: c.drains_spurious.load(Relaxed),
            sleeps: c.sleeps.load(Relaxed),
        }
    }

    /// Test-only fault injection: the next `n` wake writes fail with
    /// `ENOBUFS`, as a socket write can when the kernel is short of memory.
    #[cfg(wakefd_fault_injection)]
    #[doc(hidden)]
    pub fn fail_next_writes(&self, n: usize) {
        self.inner.sys.fail_next_writes(n);
    }

    fn check_fork(&self) -> io::Result<()> {
        self.check_fork_as("Notifier")
    }

    /// Fails in a forked child, naming the object as `what`.
    pub(crate) fn check_fork_as(&self, what: &'static str) -> io::Result<()> {
        fork::check(self.inner.generation, what)
    }

    /// Whether `drain` may skip the read (see the field).
    pub(crate) fn skip_read(&self) -> bool {
        self.skip_read
    }
}

/// The loop's awake state, from [`Notifier::announce_awake`] (or the
/// Mailbox's and KeyedNotifier's): while it lives, a `notify` that finds
/// the loop awake makes no system call, and the loop must announce sleep
/// before it blocks (`poll` and `wait` do). Dropping it makes the loop
/// plain again and writes any wake it absorbed, so that a plain blocking
/// call next sees it.
///
/// It holds the notifier's shared state, not a borrow, so a Mailbox loop
/// can hold it across `&mut` calls; several guards count as one.
///
/// # Examples
///
/// A custom reactor's loop (here a `mio::Poll` it blocks in itself) with
/// sleep announcements:
///
/// ```
/// use std::time::Duration;
///
/// let notifier = wakefd::Notifier::new()?;
/// let waker = notifier.waker();
/// let mut reactor = mio::Poll::new()?;
/// let mut events = mio::Events::with_capacity(8);
/// let awake = notifier.announce_awake();
/// for round in 0..3 {
///     waker.notify()?; // the loop is awake: absorbed, no system call
///     let timeout = if awake.announce_sleep() { Duration::from_secs(10) } else { Duration::ZERO };
///     reactor.poll(&mut events, Some(timeout))?;
///     awake.announce_awake();
///     assert!(notifier.drain()?, "round {round}");
/// }
/// assert_eq!(notifier.stats().wakes_written, 0);
/// # std::io::Result::Ok(())
/// ```
///
/// Make it on the loop's thread, for the loop: a guard made by another
/// thread while the loop blocks the plain way would make that loop count as
/// awake. It may move to the loop's thread (`Send`), but not be shared
/// (`!Sync`); dropped on another thread while the loop blocks in `poll` or
/// `wait`, it still ends the awake state (the loop looks again after its
/// blocking call).
///
/// ```compile_fail
/// fn shared(awake: &wakefd::Awake) {
///     std::thread::scope(|s| {
///         s.spawn(|| awake.announce_awake()); // `Awake` is not `Sync`
///     });
/// }
/// ```
#[must_use = "the loop is awake only while the guard lives; dropped at once, it has no effect"]
pub struct Awake {
    inner: Arc<Inner>,
    /// Not `Sync`: one thread at a time announces through it.
    _one_thread: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Awake {
    /// As [`Notifier::announce_sleep`]: `false` means a wake is pending,
    /// and the loop must not block.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let awake = notifier.announce_awake();
    /// assert!(awake.announce_sleep()); // nothing pending: may block
    /// awake.announce_awake();
    /// # std::io::Result::Ok(())
    /// ```
    #[must_use = "`false` means a wake is pending: the loop must not block"]
    pub fn announce_sleep(&self) -> bool {
        self.inner.announce_sleep()
    }

    /// Announces that the loop is awake again, after its blocking call
    /// returned (whatever it returned: an error or `EINTR` too).
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let awake = notifier.announce_awake();
    /// let _ = awake.announce_sleep();
    /// awake.announce_awake();
    /// notifier.waker().notify()?;
    /// assert_eq!(notifier.stats().wakes_absorbed, 1);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_awake(&self) {
        self.inner.announce_awake();
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        // SeqCst: see `Inner::rejoin_awake`.
        if self.inner.guards.fetch_sub(1, SeqCst) == 1 {
            self.inner.leave_awake(true);
        }
    }
}

impl fmt::Debug for Awake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Awake")
            .field("fd", &self.inner.sys.raw())
            .finish()
    }
}

/// Counts of what a [`Notifier`] (or [`Mailbox`](crate::Mailbox)) did, from
/// [`Notifier::stats`]. They are kept on the slow paths only (a wake that
/// writes or is absorbed, a drain, an announcement), so a coalesced `notify`
/// stays one atomic operation. Counts are since creation and wrap at 2^64.
///
/// # Examples
///
/// Wakes written per drain, the figure to watch in a busy loop (near 0 for a
/// sleep-aware loop that is seldom asleep; 1 for a plain loop):
///
/// ```
/// let notifier = wakefd::Notifier::new()?;
/// let waker = notifier.waker();
/// waker.notify()?;
/// notifier.drain()?;
/// let _awake = notifier.announce_awake(); // from here on, wakes are absorbed
/// waker.notify()?;
/// notifier.drain()?;
/// let wakefd::Stats { wakes_written, wakes_absorbed, drains_woken, .. } = notifier.stats();
/// assert_eq!((wakes_written, wakes_absorbed, drains_woken), (1, 1, 2));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Wakes written to the fd (a system call each).
    pub wakes_written: u64,
    /// Wakes that found the loop awake (or spinning) and needed no system
    /// call.
    pub wakes_absorbed: u64,
    /// Wake writes that failed (the next `notify` writes again).
    pub write_errors: u64,
    /// Drains that found a wake pending.
    pub drains_woken: u64,
    /// Drains that found none (a spurious readiness event, or a sleep-aware
    /// loop that woke for other I/O).
    pub drains_spurious: u64,
    /// Announcements of sleep after which the loop could block (no wake was
    /// pending).
    pub sleeps: u64,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.inner.state.close();
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("backend", &self.backend)
            .field("fd", &self.inner.sys.raw())
            .finish()
    }
}

#[cfg(unix)]
impl AsFd for Notifier {
    /// The fd to watch for readability (see "I/O safety" above).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.sys.fd()
    }
}

#[cfg(unix)]
impl AsRawFd for Notifier {
    /// The fd to watch for readability.
    fn as_raw_fd(&self) -> RawFd {
        self.inner.sys.raw()
    }
}

#[cfg(windows)]
impl AsSocket for Notifier {
    /// The socket to watch for readability (see "I/O safety" above).
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.inner.sys.fd()
    }
}

#[cfg(windows)]
impl AsRawSocket for Notifier {
    /// The socket to watch for readability.
    fn as_raw_socket(&self) -> RawSocket {
        self.inner.sys.raw()
    }
}

/// Fails for interests that can never see a wake.
fn check_interest(interests: Interest) -> io::Result<()> {
    if interests.is_readable() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a wakefd source must be registered with Interest::READABLE",
        ))
    }
}

impl mio::event::Source for Notifier {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        check_interest(interests)?;
        self.inner.sys.register(registry, token, interests)?;
        self.skip_read = self.inner.sys.edge_needs_no_read();
        self.token = Some(token);
        Ok(())
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        check_interest(interests)?;
        self.inner.sys.reregister(registry, token, interests)?;
        self.skip_read = self.inner.sys.edge_needs_no_read();
        self.token = Some(token);
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.sys.deregister(registry)?;
        self.skip_read = false;
        self.token = None;
        // Wakes may have been left unread while mio watched the fd.
        self.inner.maybe_written.store(true, Relaxed);
        Ok(())
    }
}

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
    inner: Arc<Inner>,
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
        self.check_fork()?;
        match self.inner.state.notify(&self.inner.sys) {
            Ok(Notified::Coalesced | Notified::Absorbed | Notified::Written) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

impl Waker {
    /// Whether this is a forked child's copy (no error built).
    pub(crate) fn inherited(&self) -> bool {
        fork::inherited(self.inner.generation)
    }

    /// Fails in a forked child.
    pub(crate) fn check_fork(&self) -> io::Result<()> {
        fork::check(self.inner.generation, "Waker")
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("fd", &self.inner.sys.raw())
            .finish()
    }
}

impl Waker {
    /// The shared state's pointer, owning this waker's reference (for the
    /// `std::task::Waker` in `task.rs`).
    pub(crate) fn into_raw(self) -> *const () {
        Arc::into_raw(self.inner).cast()
    }

    /// The waker whose reference `ptr` owns.
    ///
    /// # Safety
    ///
    /// `ptr` comes from [`into_raw`](Waker::into_raw), and its reference has
    /// not been taken back yet; this takes it back.
    pub(crate) unsafe fn from_raw(ptr: *const ()) -> Waker {
        Waker {
            // SAFETY: `ptr` is `Arc::into_raw` of an `Arc<Inner>` whose
            // reference is still owned (our caller's contract).
            inner: unsafe { Arc::from_raw(ptr.cast::<Inner>()) },
        }
    }
}
