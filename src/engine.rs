//! The loop's side, written once for the three consumer types.
//!
//! [`Notifier`](crate::Notifier), [`Mailbox`](crate::Mailbox) and
//! [`KeyedNotifier`](crate::KeyedNotifier) are façades over an [`Engine`]:
//! the fd and its re-arm, the one wait loop, the one sleep-aware poll, the
//! spin, mio registration, the fork check and the stats. What differs
//! between them is what they hold besides the fd (messages, keys), and they
//! tell the engine about it through one small hook, [`Work`]. The senders'
//! side of every type is a [`Handle`] on the same shared state.
//!
//! # The engine's rules
//!
//! * **Re-arm before looking.** A re-arm consumes the fd (when a wake may
//!   have been written since the last read), then clears the pending bit
//!   (`state.rs`); the consumer looks at its work after.
//! * **A sleep-aware loop** (one with an [`Awake`] guard, or a spin budget)
//!   announces sleep before it blocks and awake after; while it is awake a
//!   `notify` only sets the pending bit, and the loop does not block while
//!   a wake is pending or the consumer has work waiting.
//! * **Waits are deadline-based**: a timeout becomes a deadline once, every
//!   blocking call gets the time left, and a wake that brings nothing (a
//!   stray byte, a wake whose work an earlier re-arm covered) is consumed
//!   and the wait goes on until the deadline.

use std::fmt;
use std::io;
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

mod awake;
mod stats;

pub use awake::Awake;
pub use stats::Stats;

/// What an engine and its handles share. The fds live here, so they are
/// closed only when the engine and every handle are gone: no fd is ever
/// closed while another thread may still write to it.
#[derive(Debug)]
struct Inner {
    state: State,
    sys: Sys,
    /// The process generation the engine was made in (see `fork.rs`).
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

/// The hook by which a consumer type tells the engine about the work it
/// holds besides the fd. The defaults are a plain notifier's: no work but
/// the wake itself.
pub(crate) trait Work {
    /// The consumer sees its work without the fd (a Mailbox looks at its
    /// queue), and its own take re-arms before it looks. Its waits and
    /// polls then return with a wake still pending for that take (a wake
    /// absorbed while spinning is written on the way out, so that any other
    /// watcher of the fd sees it too), instead of draining.
    const TAKES_OWN_WAKE: bool = false;

    /// Work is waiting that needs no wake (messages queued): the engine
    /// does not block, and announcing sleep says "don't block".
    fn waiting(&self) -> bool {
        false
    }

    /// A wait returns at once, with or without work (every sender is gone).
    fn finished(&self) -> bool {
        false
    }

    /// A wait re-armed the fd (`woken`: a wake was pending): whether it has
    /// something to return for. `false` makes it wait on.
    fn rearmed(&self, woken: bool) -> bool {
        woken
    }
}

/// A plain notifier's work: the wake itself.
impl Work for () {}

/// How often a spinning `poll` looks for I/O with a zero-timeout poll.
const PEEK_EVERY: Duration = Duration::from_micros(50);

/// The loop's end of the fd, with everything the loop does with it.
pub(crate) struct Engine {
    inner: Arc<Inner>,
    backend: Backend,
    /// What the façade is called, for the fork error.
    what: &'static str,
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

impl Engine {
    /// An engine on `backend`, for a façade called `what`.
    pub(crate) fn new(backend: Backend, what: &'static str) -> io::Result<Engine> {
        let generation = fork::generation()?;
        let sys = Sys::new(backend)?;
        Ok(Engine {
            inner: Arc::new(Inner {
                state: State::new(),
                sys,
                generation,
                guards: AtomicUsize::new(0),
                awake: AtomicBool::new(false),
                maybe_written: AtomicBool::new(true),
            }),
            backend,
            what,
            skip_read: false,
            token: None,
            spin: Duration::ZERO,
            spin_effective: Duration::ZERO,
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A senders' handle.
    pub(crate) fn handle(&self) -> Handle {
        Handle(Arc::clone(&self.inner))
    }

    /// `Notifier::drain`: consumes every pending wake and re-arms.
    pub(crate) fn drain(&self) -> io::Result<bool> {
        self.check_fork()?;
        self.rearm(!self.skip_read)
    }

    /// Re-arms: reads the fd if `read` and a wake may have been written,
    /// then clears the pending bit. `Ok(true)` if a wake was pending.
    fn rearm(&self, read: bool) -> io::Result<bool> {
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

    /// The re-arm of a consumer that takes its own wake: as `drain` (the
    /// read always made if `force_read`), without the fork check.
    pub(crate) fn rearm_for_take(&self, force_read: bool) -> io::Result<bool> {
        self.rearm(force_read || !self.skip_read)
    }

    /// Makes a wake pending from the loop's own thread, as a handle would.
    pub(crate) fn notify_self(&self) -> io::Result<()> {
        self.check_fork()?;
        self.inner.state.notify(&self.inner.sys).map(drop)
    }

    /// Whether a wake is pending (notified, not yet re-armed).
    pub(crate) fn is_pending(&self) -> bool {
        self.inner.state.is_pending()
    }

    /// Whether this is a forked child's copy (no error built).
    #[inline]
    pub(crate) fn inherited(&self) -> bool {
        fork::inherited(self.inner.generation)
    }

    /// Fails in a forked child, naming the façade.
    pub(crate) fn check_fork(&self) -> io::Result<()> {
        fork::check(self.inner.generation, self.what)
    }

    /// The one wait loop: blocks in `poll(2)` until `work` has something to
    /// return for, or the deadline (`None`: none; `sys::deadline` makes it
    /// from a timeout) passes. `Ok(false)` on time-out.
    pub(crate) fn wait<W: Work>(&self, deadline: Option<Instant>, work: &W) -> io::Result<bool> {
        self.check_fork()?;
        loop {
            if work.finished() || (W::TAKES_OWN_WAKE && work.waiting()) {
                return Ok(true);
            }
            if !self.block_once(deadline, || work.waiting(), W::TAKES_OWN_WAKE)? {
                return Ok(false);
            }
            if work.waiting() {
                // The wake stays pending for the consumer's take, and for
                // a reactor that watches the fd too.
                return Ok(true);
            }
            // poll(2) is level-triggered, so the fd must really be read here
            // even where `drain` may skip the read.
            if work.rearmed(self.rearm(true)?) {
                return Ok(true);
            }
            // A stray byte from a wake that an earlier drain had already
            // reported (see state.rs), a wake whose work was covered, or a
            // counter left unread while registered with mio: nothing new.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Blocks in `poll(2)` until the fd is readable, a wake is pending (for a
    /// sleep-aware loop, which spins first if it has a budget), `ready()`, or
    /// the deadline. `Ok(false)` only if the deadline passed with none of
    /// the others. `flush`: the caller does not re-arm next, so a wake
    /// absorbed while spinning is written on the way out (see `leave_awake`).
    fn block_once(
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

    /// `announce_sleep` of every façade: `false` (don't block) if a wake is
    /// pending or work is waiting.
    pub(crate) fn announce_sleep(&self, work: &impl Work) -> bool {
        self.inner.announce_sleep() && !work.waiting()
    }

    /// `announce_awake` of every façade.
    pub(crate) fn announce_awake(&self) -> Awake {
        self.inner.guards.fetch_add(1, Relaxed);
        self.inner.announce_awake();
        Awake::new(Arc::clone(&self.inner))
    }

    /// The one sleep-aware mio poll: announces sleep, `poll.poll`s (not
    /// blocking if a wake is pending or work is waiting; after the spin
    /// budget, if one is set), announces that the loop is awake if a guard
    /// lives, and drains, or for a consumer that takes its own wake, leaves
    /// the wake for that take. `Ok(true)` if woken (or work is waiting).
    pub(crate) fn poll<W: Work>(
        &self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
        work: &W,
    ) -> io::Result<bool> {
        self.check_fork()?;
        self.poll_events(poll, events, timeout, || work.waiting(), W::TAKES_OWN_WAKE)?;
        if W::TAKES_OWN_WAKE {
            Ok(work.waiting() || self.is_pending())
        } else {
            self.rearm(!self.skip_read)
        }
    }

    /// The sleep cycle of `poll` without the re-arm; `ready()` true means
    /// there is work already (don't block). `flush` as in `block_once`.
    fn poll_events(
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

    /// `set_spin` of every façade: a budget of zero on a single CPU.
    pub(crate) fn set_spin(&mut self, budget: Duration) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.spin = budget;
        self.spin_effective = if cpus > 1 { budget } else { Duration::ZERO };
    }

    pub(crate) fn spin(&self) -> Duration {
        self.spin
    }

    pub(crate) fn stats(&self) -> Stats {
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

    /// The test fault hook (`sys`): the next `n` wake writes fail.
    #[cfg(wakefd_fault_injection)]
    pub(crate) fn fail_next_writes(&self, n: usize) {
        self.inner.sys.fail_next_writes(n);
    }

    /// The fd to watch (on Windows, the socket).
    pub(crate) fn fd(&self) -> sys::Handle<'_> {
        self.inner.sys.fd()
    }

    pub(crate) fn raw(&self) -> sys::RawHandle {
        self.inner.sys.raw()
    }

    /// `Source::register` and `reregister` of every façade.
    pub(crate) fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
        again: bool,
    ) -> io::Result<()> {
        if !interests.is_readable() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a wakefd source must be registered with Interest::READABLE",
            ));
        }
        if again {
            self.inner.sys.reregister(registry, token, interests)?;
        } else {
            self.inner.sys.register(registry, token, interests)?;
        }
        self.skip_read = self.inner.sys.edge_needs_no_read();
        self.token = Some(token);
        Ok(())
    }

    /// `Source::deregister` of every façade.
    pub(crate) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.sys.deregister(registry)?;
        self.skip_read = false;
        self.token = None;
        // Wakes may have been left unread while mio watched the fd.
        self.inner.maybe_written.store(true, Relaxed);
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.inner.state.close();
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.what)
            .field("backend", &self.backend)
            .field("fd", &self.inner.sys.raw())
            .finish()
    }
}

/// The senders' side: what every `Waker`, `Sender` and `KeyedWaker` holds.
/// One pointer wide.
#[derive(Clone)]
pub(crate) struct Handle(Arc<Inner>);

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("fd", &self.raw()).finish()
    }
}

impl Handle {
    /// Makes the engine's fd readable, unless a wake is already pending or
    /// the loop is awake (`Waker::notify`'s documented contract; `what`
    /// names the caller in the fork error).
    pub(crate) fn notify(&self, what: &'static str) -> io::Result<()> {
        self.check_fork(what)?;
        match self.0.state.notify(&self.0.sys) {
            Ok(Notified::Coalesced | Notified::Absorbed | Notified::Written) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Whether this is a forked child's copy (no error built).
    #[inline]
    pub(crate) fn inherited(&self) -> bool {
        fork::inherited(self.0.generation)
    }

    /// Fails in a forked child.
    pub(crate) fn check_fork(&self, what: &'static str) -> io::Result<()> {
        fork::check(self.0.generation, what)
    }

    pub(crate) fn raw(&self) -> sys::RawHandle {
        self.0.sys.raw()
    }

    /// The shared state's pointer, owning this handle's reference.
    pub(crate) fn into_raw(self) -> *const () {
        Arc::into_raw(self.0).cast()
    }

    /// The handle whose reference `ptr` owns.
    ///
    /// # Safety
    ///
    /// `ptr` comes from [`into_raw`](Handle::into_raw), and its reference
    /// has not been taken back yet; this takes it back.
    pub(crate) unsafe fn from_raw(ptr: *const ()) -> Handle {
        // SAFETY: `ptr` is `Arc::into_raw` of an `Arc<Inner>` whose
        // reference is still owned (our caller's contract).
        Handle(unsafe { Arc::from_raw(ptr.cast::<Inner>()) })
    }
}

/// The handle traits and `mio::event::Source` of a façade with an `engine`
/// field: forwarding only.
macro_rules! forward_to_engine {
    ($ty:ty $(, $g:ident)?) => {
        #[cfg(unix)]
        impl$(<$g>)? std::os::fd::AsFd for $ty {
            /// The fd to watch for readability (see "I/O safety" in
            /// [`Notifier`](crate::Notifier)).
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.engine.fd()
            }
        }

        #[cfg(unix)]
        impl$(<$g>)? std::os::fd::AsRawFd for $ty {
            /// The fd to watch for readability.
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.engine.raw()
            }
        }

        #[cfg(windows)]
        impl$(<$g>)? std::os::windows::io::AsSocket for $ty {
            /// The socket to watch for readability (see "I/O safety" in
            /// [`Notifier`](crate::Notifier)).
            fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
                self.engine.fd()
            }
        }

        #[cfg(windows)]
        impl$(<$g>)? std::os::windows::io::AsRawSocket for $ty {
            /// The socket to watch for readability.
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                self.engine.raw()
            }
        }

        /// Registers the fd; use [`Interest::READABLE`](mio::Interest::READABLE)
        /// (other interests are refused with `InvalidInput`).
        impl$(<$g>)? mio::event::Source for $ty {
            fn register(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                self.engine.register(registry, token, interests, false)
            }

            fn reregister(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                self.engine.register(registry, token, interests, true)
            }

            fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
                self.engine.deregister(registry)
            }
        }
    };
}
pub(crate) use forward_to_engine;
