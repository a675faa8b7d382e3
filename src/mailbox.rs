//! A queue whose consumer is an event loop: [`Mailbox`] and [`Sender`].
//!
//! # The rule
//!
//! Whenever a message is in the mailbox once a call of the loop's has
//! returned (or a [`Drain`] has been dropped), a readiness event is coming: a
//! level-triggered watcher sees the fd readable, an edge-triggered one gets a
//! fresh edge. (A sleep-aware loop, see [`Mailbox::poll`], may instead be
//! told by its next `poll`, which then does not block.) How each path keeps
//! it:
//!
//! * **send**: a `Sender` sends on a lane (`mailbox/lanes.rs`: the common
//!   one, or one of its own), a lock-free stack whose push tells the sender
//!   whether it was empty (`mailbox/queue.rs`); the send that finds its lane
//!   empty lists the lane on a stack of lanes with messages, and that
//!   listing tells it whether the whole mailbox was empty. Only the send
//!   that finds the mailbox empty wakes the loop; the messages behind it
//!   are taken by the same take as its own. A send whose wake write failed
//!   makes the next send wake too, and the notifier's `FAILED` bit makes
//!   that wake a write.
//! * **the loop's side re-arms before it takes**: every call that looks at
//!   the queue first re-arms the notifier (read the fd if needed, clear the
//!   pending bit), then takes the whole queue: the chain of slots of every
//!   listed lane, moved out into its own buffer when short, read in place
//!   from the slots when long (a backlog, which it need not copy into a
//!   buffer grown as large). A send that lands after the take finds the
//!   queue empty and wakes; one that landed before the re-arm is in the
//!   take.
//! * **leftovers wake the loop again**: messages left in the loop's buffer
//!   (a `Drain` dropped early, a `try_recv` that took one of several) would
//!   have no event coming, since the re-arm consumed it; so the loop makes a
//!   wake pending itself, as tokio does when a task's budget runs out.
//!   Coalesced with the senders' wakes, and no system call for a
//!   sleep-aware loop that is awake.
//! * **disconnection**: the drop of the last `Sender` wakes the loop.
//!
//! The wake decisions live in the `*_with` functions below, generic over the
//! notifier ([`Bell`]), so that the loom models (`mailbox/loom_tests.rs`) run
//! them against the protocol in `state.rs` and a fake fd.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};

use crate::loom::{
    AtomicBool, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use crate::notifier::Stats;
use crate::{sys, Backend, Notifier, Waker};

mod lanes;
mod queue;

use lanes::{Lane, Lanes, Taken};

/// What the Mailbox and its Senders share.
pub(crate) struct Shared<T> {
    queue: Lanes<T>,
    /// Live `Sender`s.
    senders: AtomicUsize,
    /// A `Sender` has existed: "disconnected" means they all went.
    had_senders: AtomicBool,
    /// A send's wake failed: the next send wakes even though the queue is
    /// not empty.
    rewake: AtomicBool,
}

impl<T> Shared<T> {
    pub(crate) fn new() -> Shared<T> {
        Shared {
            queue: Lanes::new(),
            senders: AtomicUsize::new(0),
            had_senders: AtomicBool::new(false),
            rewake: AtomicBool::new(false),
        }
    }

    /// Every `Sender` that ever existed is gone.
    fn disconnected(&self) -> bool {
        // Acquire: pairs with the last Sender's drop, so its sends are
        // visible to a take that follows.
        self.senders.load(Acquire) == 0 && self.had_senders.load(Relaxed)
    }

    /// Counts a new `Sender`.
    fn add_sender(&self) {
        self.had_senders.store(true, Relaxed);
        self.senders.fetch_add(1, Relaxed);
    }

    /// Counts a new `Sender` and gives it an own lane (in a forked child, a
    /// closed one outside the registry: see `Lanes::orphan`).
    fn add_sender_with_lane(&self, inherited: bool) -> Arc<Lane<T>> {
        self.add_sender();
        if inherited {
            Lanes::orphan()
        } else {
            self.queue.attach()
        }
    }
}

/// The notifier as the Mailbox's loop side uses it.
pub(crate) trait Bell {
    /// Re-arms: consumes the fd if needed (always, if `force_read`) and
    /// clears the pending bit.
    fn rearm(&self, force_read: bool);
    /// Makes a wake pending (and written, unless the loop is awake).
    fn ring(&self);
    /// Whether a wake is pending.
    fn is_pending(&self) -> bool;
}

impl Bell for Notifier {
    fn rearm(&self, force_read: bool) {
        // A failed read (none is expected) costs at most a spurious wake:
        // the queue, not the fd, says what there is to take.
        let _ = Notifier::rearm(self, force_read || !self.skip_read());
    }

    fn ring(&self) {
        // A failed write sets the FAILED bit: the next wake writes again.
        let _ = self.notify_self();
    }

    fn is_pending(&self) -> bool {
        Notifier::is_pending(self)
    }
}

/// The loop's own side: messages taken from the queue and not handed out
/// yet, and whether the loop rang its own wake since its last re-arm.
pub(crate) struct Local<T> {
    /// What the loop took (`lanes::Taken`: short chains copied out, long
    /// ones read in place).
    buf: Taken<T>,
    /// Set when the loop made a wake pending for leftovers: the next re-arm
    /// reads the fd even where `drain` may skip the read, so that if the
    /// leftovers are taken without that wake, it does not linger as a
    /// spurious event (an eventfd watched edge-triggered with a non-zero
    /// counter is reported; one read back to zero is not).
    rang: bool,
}

impl<T> Local<T> {
    pub(crate) fn new() -> Local<T> {
        Local {
            buf: Taken::new(),
            rang: false,
        }
    }
}

/// A sender's half: push, and wake the loop if the queue was empty (or a
/// wake failed before). `wake` is `Waker::notify`.
pub(crate) fn send_with<T>(
    shared: &Shared<T>,
    lane: &Arc<Lane<T>>,
    msg: T,
    wake: impl Fn() -> io::Result<()>,
) -> Result<(), SendError<T>> {
    let retry_wake = &wake;
    let was_empty = shared.queue.push(lane, msg).map_err(SendError)?;
    // The load first: the swap is a write to a shared line, done only in
    // the rare case that a wake failed.
    let retry = !was_empty && shared.rewake.load(Relaxed) && shared.rewake.swap(false, AcqRel);
    if was_empty || retry {
        match wake() {
            Ok(()) => {}
            // The Mailbox was dropped after our push, and dropped our message
            // with its queue.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            // The wake did not reach the fd (no such error is expected). The
            // message is queued: make the next send wake too, and try once
            // more now (the notifier's FAILED bit makes it a write). If the
            // kernel refuses that as well, the message waits for the next
            // send or the loop's next look at the queue.
            Err(_) => {
                shared.rewake.store(true, Release);
                let _ = retry_wake();
            }
        }
    }
    Ok(())
}

/// The loop's re-arm and take: every queued message to the back of `local`.
pub(crate) fn refill_with<T>(shared: &Shared<T>, local: &mut Local<T>, bell: &impl Bell) {
    // Re-arm first, then take (state.rs explains the order).
    bell.rearm(std::mem::take(&mut local.rang));
    shared.queue.take_all(&mut local.buf);
}

/// Keeps a readiness event coming for messages left in `local`.
pub(crate) fn leftovers_with<T>(local: &mut Local<T>, bell: &impl Bell) {
    if !local.buf.is_empty() {
        bell.ring();
        local.rang = true;
    }
}

/// `try_recv`: one message, re-arming when it goes to the queue and making a
/// wake pending when it leaves messages behind.
pub(crate) fn try_recv_with<T>(
    shared: &Shared<T>,
    local: &mut Local<T>,
    bell: &impl Bell,
) -> Result<T, TryRecvError> {
    // With messages in hand and no wake pending, nothing can be stranded by
    // skipping the queue: the next send finds it empty or rings a wake that
    // is still to come. Otherwise re-arm and take, so that the wake this
    // call consumes is made up for below.
    if local.buf.is_empty() || bell.is_pending() {
        refill_with(shared, local, bell);
    }
    let msg = match local.buf.pop_front() {
        Some(msg) => msg,
        None if shared.disconnected() => {
            // A message sent before the last Sender's drop is visible now.
            shared.queue.take_all(&mut local.buf);
            local.buf.pop_front().ok_or(TryRecvError::Disconnected)?
        }
        None => return Err(TryRecvError::Empty),
    };
    if local.buf.is_empty() && shared.disconnected() {
        // The last Sender's wake may be the one this call consumed: keep an
        // event coming, so that a loop taking one message per event learns
        // of the disconnection too.
        bell.ring();
        local.rang = true;
    } else {
        leftovers_with(local, bell);
    }
    Ok(msg)
}

/// The loop's end of a multi-producer queue: a [`Notifier`] that becomes
/// readable when a [`Sender`] queues a message.
///
/// This is the mailbox of ZeroMQ and the per-thread notify pipe plus queue of
/// memcached and MySQL Proxy. Register it with a [`mio::Poll`] (it implements
/// [`mio::event::Source`]) or watch its raw fd; when it is readable, take the
/// messages with [`drain`](Mailbox::drain) or [`try_recv`](Mailbox::try_recv).
///
/// **No message is ever stranded**: whenever a message is in the mailbox
/// once a call of the loop's has returned (or a [`Drain`] has been dropped),
/// a readiness event is coming, whatever the loop did: stopped a drain early,
/// called `try_recv` once per event, or had a wake write fail. A loop that
/// takes one message per event gets one event per message.
///
/// Only a send into an empty queue wakes the loop (and that wake coalesces
/// like [`Waker::notify`]: no system call while one is pending). The queue is
/// lock-free, and its slots are recycled, so steady traffic allocates nothing
/// per message. Messages from one sender arrive in the order sent. Messages
/// still queued when the `Mailbox` is dropped are dropped with it; later
/// sends return [`SendError`] with the message. When every [`Sender`] is gone
/// the loop is woken, and [`try_recv`](Mailbox::try_recv) reports
/// [`TryRecvError::Disconnected`] once the queue is empty.
///
/// The sleep-aware calls of [`Notifier`] are here too:
/// [`poll`](Mailbox::poll), [`set_spin`](Mailbox::set_spin),
/// [`announce_sleep`](Mailbox::announce_sleep) /
/// [`announce_awake`](Mailbox::announce_awake) and [`stats`](Mailbox::stats).
///
/// # Examples
///
/// ```
/// use mio::{Events, Interest, Poll, Token};
/// use std::time::Duration;
/// use wakefd::Mailbox;
///
/// let mut poll = Poll::new()?;
/// let mut mailbox = Mailbox::new()?;
/// poll.registry().register(&mut mailbox, Token(0), Interest::READABLE)?;
///
/// let sender = mailbox.sender();
/// std::thread::spawn(move || {
///     for i in 0..3 {
///         sender.send(i).unwrap();
///     }
/// });
///
/// let mut got = Vec::new();
/// let mut events = Events::with_capacity(8);
/// while got.len() < 3 {
///     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
///     got.extend(mailbox.drain());
/// }
/// assert_eq!(got, [0, 1, 2]);
/// # std::io::Result::Ok(())
/// ```
pub struct Mailbox<T> {
    notifier: Notifier,
    shared: Arc<Shared<T>>,
    /// Messages taken from the queue and not handed out yet. The loop's
    /// own: `drain` and `try_recv` take `&mut self`, so no lock.
    local: Local<T>,
}

impl<T> Mailbox<T> {
    /// A mailbox on the platform's default backend.
    ///
    /// # Errors
    ///
    /// As [`Notifier::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::<u32>::new()?;
    /// assert_eq!(mailbox.try_recv(), Err(wakefd::TryRecvError::Empty));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn new() -> io::Result<Mailbox<T>> {
        Mailbox::with_backend(Backend::default())
    }

    /// A mailbox on the given backend.
    ///
    /// # Errors
    ///
    /// As [`Notifier::with_backend`]: `ErrorKind::Unsupported` for a backend
    /// the platform lacks, or the OS error.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Backend, Mailbox};
    ///
    /// let mailbox = Mailbox::<String>::with_backend(Backend::TcpLoopback)?;
    /// assert_eq!(mailbox.backend(), Backend::TcpLoopback);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_backend(backend: Backend) -> io::Result<Mailbox<T>> {
        Ok(Mailbox {
            notifier: Notifier::with_backend(backend)?,
            shared: Arc::new(Shared::new()),
            local: Local::new(),
        })
    }

    /// The backend of the underlying notifier.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::<u8>::new()?;
    /// assert_eq!(mailbox.backend(), wakefd::Backend::default());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn backend(&self) -> Backend {
        self.notifier.backend()
    }

    /// A new handle for sending to this mailbox from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// std::thread::spawn(move || sender.send(7).unwrap());
    /// assert!(mailbox.wait(Some(Duration::from_secs(10)))?);
    /// assert_eq!(mailbox.try_recv(), Ok(7));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn sender(&self) -> Sender<T> {
        self.shared.add_sender();
        Sender {
            lane: self.shared.queue.common(),
            shared: Arc::clone(&self.shared),
            waker: self.notifier.waker(),
        }
    }

    /// A new handle for sending to this mailbox, with a lane of its own:
    /// for a producer thread that sends a lot, alongside others (see
    /// [lanes](Sender#lanes)).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let workers: Vec<_> = (0..4)
    ///     .map(|id| {
    ///         let sender = mailbox.sender_with_lane();
    ///         std::thread::spawn(move || (0..100).for_each(|i| sender.send((id, i)).unwrap()))
    ///     })
    ///     .collect();
    /// workers.into_iter().for_each(|w| w.join().unwrap());
    /// let got: Vec<(i32, i32)> = mailbox.drain().collect();
    /// assert_eq!(got.len(), 400);
    /// for id in 0..4 {
    ///     // FIFO per lane.
    ///     let mine: Vec<i32> = got.iter().filter(|m| m.0 == id).map(|m| m.1).collect();
    ///     assert_eq!(mine, (0..100).collect::<Vec<_>>());
    /// }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn sender_with_lane(&self) -> Sender<T> {
        Sender {
            lane: self.shared.add_sender_with_lane(self.forked()),
            shared: Arc::clone(&self.shared),
            waker: self.notifier.waker(),
        }
    }

    /// Re-arms the wake and takes every message queued now: FIFO per sender,
    /// after any left by an earlier `Drain` or `try_recv`.
    ///
    /// Messages of Senders on the common lane ([`Mailbox::sender`] and its
    /// clones) come in the order they were sent. Senders with a lane of
    /// their own ([`Mailbox::sender_with_lane`]) are FIFO each; a drain
    /// hands out the lanes one after another, in the order they were listed
    /// (a lane is listed by the send that found it empty, when that send
    /// finishes), so messages of different lanes are not ordered with each
    /// other (see [lanes](Sender#lanes)).
    ///
    /// Call it when the mailbox is readable. If the `Drain` is dropped before
    /// it is exhausted, the rest stay in the mailbox, first in line, and a
    /// wake is made pending for them, so the loop gets another readiness
    /// event: a `break` or a per-event budget inside the loop strands
    /// nothing.
    ///
    /// A readiness event may find the mailbox empty: a send wakes the loop
    /// after it queued its message, so an earlier drain may already have
    /// taken the message when the wake arrives.
    ///
    /// In a forked child the drain yields nothing and leaves the parent's
    /// wake alone (see [`wait`](Mailbox::wait)).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// for msg in ["a", "b", "c"] {
    ///     sender.send(msg).unwrap();
    /// }
    /// assert_eq!(mailbox.drain().next(), Some("a")); // then drop the Drain
    /// assert_eq!(mailbox.drain().collect::<Vec<_>>(), ["b", "c"]);
    /// assert_eq!(mailbox.drain().len(), 0);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn drain(&mut self) -> Drain<'_, T> {
        if !self.forked() {
            refill_with(&self.shared, &mut self.local, &self.notifier);
        }
        Drain { mailbox: self }
    }

    /// Takes one message: `Err(TryRecvError::Empty)` if there is none, and
    /// `Err(TryRecvError::Disconnected)` if there is none and every
    /// [`Sender`] is gone.
    ///
    /// It may be called once per readiness event: when it leaves messages
    /// behind, it makes a wake pending for them, so the next event comes
    /// (and so it does when it hands out the last message of a mailbox whose
    /// senders are all gone, so that the next event reports
    /// `Disconnected`).
    /// That wake is a `write` (none for a sleep-aware loop that is awake),
    /// so a loop that takes everything at once does better with
    /// [`drain`](Mailbox::drain), which re-arms once per batch. In a forked
    /// child it returns `Disconnected`.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::TryRecvError;
    ///
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// sender.send(7).unwrap();
    /// assert_eq!(mailbox.try_recv(), Ok(7));
    /// assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
    /// drop(sender);
    /// assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if self.forked() {
            return Err(TryRecvError::Disconnected);
        }
        try_recv_with(&self.shared, &mut self.local, &self.notifier)
    }

    /// Blocks until a message is queued, every [`Sender`] is gone, or
    /// `timeout` passes (`None`: no limit). `Ok(true)` if a message is
    /// queued; take it with `drain` or `try_recv`.
    ///
    /// With a spin budget ([`set_spin`](Mailbox::set_spin)) it spins first.
    ///
    /// # Errors
    ///
    /// As [`Notifier::wait`]: the OS error of `poll` or `read`, or in a
    /// forked child an error saying the mailbox belongs to the parent
    /// process.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// assert!(!mailbox.wait(Some(Duration::from_millis(1)))?);
    /// sender.send(()).unwrap();
    /// assert!(mailbox.wait(Some(Duration::from_secs(10)))?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.check_fork()?;
        self.wait_until(sys::deadline(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            if self.has_messages() {
                return Ok(true);
            }
            if self.shared.disconnected() {
                return Ok(self.has_messages());
            }
            if !self.notifier.block_once(deadline, || self.has_messages())? {
                return Ok(self.has_messages());
            }
            if self.has_messages() {
                // Keep the wake: the messages' readiness event is still due
                // to a reactor that watches the fd too.
                return Ok(true);
            }
            // Readable with nothing queued: a stray byte, or the last
            // Sender's wake. Consume it so as not to spin on it.
            Notifier::rearm(&self.notifier, true)?;
            if self.has_messages() {
                // A send landed between the look and the re-arm, and its
                // wake was consumed: make it pending again.
                self.notifier.ring();
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Messages in the loop's buffer or in the queue.
    fn has_messages(&self) -> bool {
        !self.local.buf.is_empty() || !self.shared.queue.is_empty()
    }

    /// The sleep-aware mio loop in one call, like [`Notifier::poll`]:
    /// announces sleep, calls `poll.poll(events, timeout)` (with a zero
    /// timeout if a message or a wake is waiting already; after the spin
    /// budget, if one is set), and announces that the loop is awake.
    /// `Ok(true)` if messages may be queued (or every sender is gone): take
    /// them with [`drain`](Mailbox::drain) or [`try_recv`](Mailbox::try_recv).
    /// `Ok(false)` when it returns with nothing for the loop: the timeout
    /// passed, a signal interrupted it, another source had an event, or the
    /// wake it found was for messages an earlier `drain` already took (a
    /// send that decided to write while the loop slept, whose write landed
    /// after the loop woke). So `false` before the timeout is not a lost
    /// wake: a loop waiting for messages calls `poll` again.
    ///
    /// While the loop runs between two calls of `poll`, a send makes no
    /// system call. Messages the loop leaves in the mailbox make the next
    /// `poll` return at once.
    ///
    /// # Errors
    ///
    /// As [`Notifier::poll`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mio::{Events, Interest, Poll, Token};
    /// use std::time::Duration;
    /// use wakefd::Mailbox;
    ///
    /// let mut poll = Poll::new()?;
    /// let mut mailbox = Mailbox::new()?;
    /// poll.registry().register(&mut mailbox, Token(0), Interest::READABLE)?;
    /// let sender = mailbox.sender();
    ///
    /// let mut events = Events::with_capacity(64);
    /// assert!(!mailbox.poll(&mut poll, &mut events, Some(Duration::ZERO))?);
    /// sender.send("hi").unwrap(); // the loop is awake: no system call
    /// assert!(mailbox.poll(&mut poll, &mut events, Some(Duration::from_secs(10)))?);
    /// assert_eq!(mailbox.drain().collect::<Vec<_>>(), ["hi"]);
    /// assert_eq!(mailbox.stats().wakes_written, 0);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn poll(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        self.check_fork()?;
        let (local, shared) = (&self.local, &self.shared);
        self.notifier.poll_events(poll, events, timeout, || {
            !local.buf.is_empty() || !shared.queue.is_empty()
        })?;
        Ok(self.has_messages() || self.notifier.is_pending())
    }

    /// Announces that the loop is about to block, as
    /// [`Notifier::announce_sleep`]; `false` (don't block) also when messages
    /// are waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// mailbox.announce_awake();
    /// sender.send(1).unwrap(); // no system call
    /// assert!(!mailbox.announce_sleep()); // a message is waiting: don't block
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_sleep(&self) -> bool {
        self.notifier.announce_sleep() && !self.has_messages()
    }

    /// Announces that the loop is awake, as [`Notifier::announce_awake`]:
    /// until the next [`announce_sleep`](Mailbox::announce_sleep), a send
    /// makes no system call.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// mailbox.announce_awake();
    /// sender.send("job done").unwrap(); // no system call
    /// assert_eq!(mailbox.try_recv(), Ok("job done"));
    /// assert_eq!(mailbox.stats().wakes_written, 0);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_awake(&self) {
        self.notifier.announce_awake();
    }

    /// Sets how long [`poll`](Mailbox::poll) and [`wait`](Mailbox::wait) spin
    /// before they block, as [`Notifier::set_spin`] (read its notes on the CPU
    /// it burns).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// mailbox.set_spin(Duration::from_micros(50));
    /// let sender = mailbox.sender();
    /// std::thread::spawn(move || sender.send(1).unwrap());
    /// assert!(mailbox.wait(Some(Duration::from_secs(10)))?);
    /// assert_eq!(mailbox.try_recv(), Ok(1));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_spin(&mut self, budget: Duration) {
        self.notifier.set_spin(budget);
    }

    /// A snapshot of the wake counters, as [`Notifier::stats`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// for i in 0..100 {
    ///     sender.send(i).unwrap(); // only the first finds the queue empty
    /// }
    /// assert_eq!(mailbox.drain().count(), 100);
    /// assert_eq!(mailbox.stats().wakes_written, 1);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.notifier.stats()
    }

    /// Test-only fault injection: the next `n` wake writes fail.
    #[cfg(wakefd_fault_injection)]
    #[doc(hidden)]
    pub fn fail_next_writes(&self, n: usize) {
        self.notifier.fail_next_writes(n);
    }

    fn forked(&self) -> bool {
        self.notifier.inherited()
    }

    fn check_fork(&self) -> io::Result<()> {
        self.notifier.check_fork_as("Mailbox")
    }
}

// SAFETY: `&Mailbox` gives other threads no access to the `T`s in `local`
// (only its length), and the queue is `Sync` for `T: Send`; so a `Mailbox`
// can be shared as soon as its messages can be sent.
unsafe impl<T: Send> Sync for Mailbox<T> {}

impl<T> Drop for Mailbox<T> {
    fn drop(&mut self) {
        // Close the queue: a send either got in before (and its message is
        // dropped here, exactly once) or gets its message back. Not in a
        // forked child, whose sends fail anyway: closing takes a lock that a
        // thread of the parent may have held at the fork, and what is
        // queued is dropped with the last `Sender` instead.
        drop(std::mem::replace(&mut self.local.buf, Taken::new()));
        let mut queued = VecDeque::new();
        if !self.forked() {
            self.shared.queue.close(&mut queued);
        }
        drop(queued);
    }
}

impl<T> fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
impl<T> AsFd for Mailbox<T> {
    /// The fd to watch for readability.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.notifier.as_fd()
    }
}

#[cfg(unix)]
impl<T> AsRawFd for Mailbox<T> {
    /// The fd to watch for readability.
    fn as_raw_fd(&self) -> RawFd {
        self.notifier.as_raw_fd()
    }
}

#[cfg(windows)]
impl<T> AsSocket for Mailbox<T> {
    /// The socket to watch for readability.
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.notifier.as_socket()
    }
}

#[cfg(windows)]
impl<T> AsRawSocket for Mailbox<T> {
    /// The socket to watch for readability.
    fn as_raw_socket(&self) -> RawSocket {
        self.notifier.as_raw_socket()
    }
}

impl<T> mio::event::Source for Mailbox<T> {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.notifier.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.notifier.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.notifier.deregister(registry)
    }
}

/// The messages [`Mailbox::drain`] took, in order. Those not yielded before
/// it is dropped stay in the mailbox, first in line, with a wake pending.
///
/// # Examples
///
/// ```
/// let mut mailbox = wakefd::Mailbox::new()?;
/// let sender = mailbox.sender();
/// for i in 0..5 {
///     sender.send(i).unwrap();
/// }
/// let mut drain = mailbox.drain();
/// assert_eq!(drain.len(), 5);
/// assert_eq!(drain.next(), Some(0));
/// drop(drain); // the other four stay, and a wake is pending for them
/// assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1, 2, 3, 4]);
/// # std::io::Result::Ok(())
/// ```
pub struct Drain<'a, T> {
    mailbox: &'a mut Mailbox<T>,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // In a forked child (also one forked while this Drain was alive)
        // the messages are the parent's: yield nothing.
        if self.mailbox.forked() {
            return None;
        }
        self.mailbox.local.buf.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = if self.mailbox.forked() {
            0
        } else {
            self.mailbox.local.buf.len()
        };
        (len, Some(len))
    }
}

impl<T> ExactSizeIterator for Drain<'_, T> {}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        if self.mailbox.forked() {
            return;
        }
        let mailbox = &mut *self.mailbox;
        leftovers_with(&mut mailbox.local, &mailbox.notifier);
    }
}

impl<T> fmt::Debug for Drain<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.len())
            .finish()
    }
}

/// Sends messages to a [`Mailbox`] from any thread.
///
/// # Lanes
///
/// A Sender queues into a *lane*. Every Sender made by
/// [`Mailbox::sender`], and every [`clone`](Clone::clone) of one, shares the
/// mailbox's common lane: their messages arrive in one order, the order in
/// which the sends happened (a send that happens before another, on one
/// thread or through any synchronization, is received first), as with
/// `std::sync::mpsc` or crossbeam-channel.
///
/// [`Mailbox::sender_with_lane`] and [`Sender::clone_with_lane`] make a
/// Sender with a lane of its own (its clones share it). Senders on
/// different lanes write no memory in common per message, so several
/// threads sending a lot, each through its own lane, do not slow each other
/// down (see the README's Mailbox numbers). The price is order: messages
/// are FIFO within a lane, but **not ordered between lanes**. A drain
/// hands them out lane by lane, so a message sent on one lane after a
/// message on another may come first.
///
/// A lane is given back when its last Sender is dropped and reused by the
/// next `*_with_lane` call, so making one per job allocates nothing once as
/// many exist as were ever in use at once; making or dropping one takes a
/// short lock. Several threads may send on one lane, through clones or
/// through one Sender shared by reference (it is `Sync`): this is the
/// common lane's case whenever `sender()` is used from several threads. A
/// message may then wait, unseen by the loop, for another thread's send on
/// the same lane to finish.
///
/// # Examples
///
/// ```
/// let mut mailbox = wakefd::Mailbox::new()?;
/// let sender = mailbox.sender();
/// let workers: Vec<_> = (0..4)
///     .map(|id| {
///         let sender = sender.clone();
///         std::thread::spawn(move || sender.send(id).unwrap())
///     })
///     .collect();
/// drop(sender);
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// let mut got: Vec<i32> = mailbox.drain().collect();
/// got.sort();
/// assert_eq!(got, [0, 1, 2, 3]);
/// # std::io::Result::Ok(())
/// ```
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    /// The lane this Sender queues into (`mailbox/lanes.rs`).
    lane: Arc<Lane<T>>,
    waker: Waker,
}

impl<T> Sender<T> {
    /// Queues `msg` and wakes the loop if the queue was empty (coalesced: no
    /// system call while a wake is pending, nor while a sleep-aware loop is
    /// awake).
    ///
    /// Not async-signal-safe (unlike [`Waker::notify`]): the queue may
    /// allocate room and take a lock when it grows.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the `Mailbox` is gone (or this is a
    /// forked child, to which the mailbox does not belong). A send that
    /// races the drop either returns `SendError` or queues the message, which
    /// the `Mailbox` then drops with its queue: it is never stranded.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// sender.send(1).unwrap();
    /// drop(mailbox);
    /// assert_eq!(sender.send(2).unwrap_err().0, 2);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        if self.waker.inherited() {
            return Err(SendError(msg));
        }
        send_with(&self.shared, &self.lane, msg, || self.waker.notify())
    }
}

impl<T> Sender<T> {
    /// Another handle to the same mailbox, with a lane of its own (see
    /// [lanes](Sender#lanes)); [`clone`](Clone::clone) shares this one's.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// let worker = {
    ///     let sender = sender.clone_with_lane();
    ///     std::thread::spawn(move || sender.send("from the worker").unwrap())
    /// };
    /// worker.join().unwrap();
    /// assert_eq!(mailbox.try_recv(), Ok("from the worker"));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn clone_with_lane(&self) -> Sender<T> {
        Sender {
            lane: self.shared.add_sender_with_lane(self.waker.inherited()),
            shared: Arc::clone(&self.shared),
            waker: self.waker.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    /// Another handle on the same lane: its messages and this one's are
    /// FIFO together.
    fn clone(&self) -> Sender<T> {
        self.shared.add_sender();
        // Not in a forked child, whose drops do not `leave` either.
        if !self.waker.inherited() {
            self.shared.queue.join(&self.lane);
        }
        Sender {
            lane: Arc::clone(&self.lane),
            shared: Arc::clone(&self.shared),
            waker: self.waker.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // In a forked child, no lock: a thread of the parent may have held
        // it at the fork (the lane is simply not reused).
        if !self.waker.inherited() {
            self.shared.queue.leave(&self.lane);
        }
        // AcqRel: the loop's Acquire load of 0 sees every send made before.
        if self.shared.senders.fetch_sub(1, AcqRel) == 1 {
            // The last one: wake the loop so that it learns of it. Errors
            // (the Mailbox is gone, a failed write) change nothing for it.
            let _ = self.waker.notify();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The error of [`Sender::send`] once the [`Mailbox`] is gone: it gives the
/// message back in its public field.
///
/// # Examples
///
/// ```
/// let mailbox = wakefd::Mailbox::new()?;
/// let sender = mailbox.sender();
/// drop(mailbox);
/// let err = sender.send(String::from("late")).unwrap_err();
/// assert_eq!(err.into_inner(), "late");
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed mailbox")
    }
}

impl<T> Error for SendError<T> {}

/// The error of [`Mailbox::try_recv`] when there is no message.
///
/// # Examples
///
/// ```
/// use wakefd::{Mailbox, TryRecvError};
///
/// let mut mailbox = Mailbox::<u32>::new()?;
/// let sender = mailbox.sender();
/// assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
/// drop(sender);
/// assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
/// assert_eq!(TryRecvError::Empty.to_string(), "receiving on an empty mailbox");
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued and every [`Sender`] is gone.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "receiving on an empty mailbox",
            TryRecvError::Disconnected => "receiving on an empty and disconnected mailbox",
        })
    }
}

impl Error for TryRecvError {}

#[cfg(all(test, wakefd_loom))]
mod loom_tests;
