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
//!   one, or one of its own), a stack of recycled slots whose push tells the sender
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
use crate::notifier::{Awake, Stats};
use crate::{sys, Backend, Notifier, Waker};

mod capacity;
mod error;
mod lanes;
mod queue;

use capacity::{Capacity, Refused};
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use lanes::{Lane, Lanes, Taken};
use queue::Line;

/// What the Mailbox and its Senders share.
pub(crate) struct Shared<T> {
    queue: Lanes<T>,
    /// Live `Sender`s.
    senders: AtomicUsize,
    /// A `Sender` has existed: "disconnected" means they all went.
    had_senders: AtomicBool,
    /// A wake failed (a send's, the loop's own for leftovers, or the last
    /// Sender's): the next send wakes even though the queue is not empty.
    rewake: AtomicBool,
    /// A bounded Mailbox's capacity; `None` for an unbounded one.
    capacity: Option<Capacity>,
    /// An unbounded Mailbox's count of messages handed to the loop's code
    /// (the lanes' push counts minus this is `len`). Written by the loop only,
    /// once per message: on a line of its own, so that the senders' reads
    /// of the fields above do not miss on it.
    received: Line<AtomicUsize>,
    /// The Mailbox is gone (`Sender::is_closed`).
    closed: AtomicBool,
}

impl<T> Shared<T> {
    pub(crate) fn new() -> Shared<T> {
        Shared::with_capacity(None)
    }

    fn with_capacity(capacity: Option<Capacity>) -> Shared<T> {
        Shared {
            queue: Lanes::new(),
            senders: AtomicUsize::new(0),
            had_senders: AtomicBool::new(false),
            rewake: AtomicBool::new(false),
            capacity,
            received: Line(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
        }
    }

    /// A bounded Mailbox's capacity.
    fn cap(&self) -> Option<usize> {
        self.capacity.as_ref().map(Capacity::cap)
    }

    /// Messages from their send until the loop's code is handed them.
    fn len(&self) -> usize {
        match &self.capacity {
            Some(capacity) => capacity.len(),
            None => {
                // Acquire: the push of every message the loop counted here
                // is in the push counts read after.
                let received = self.received.load(Acquire);
                self.queue.outstanding(received)
            }
        }
    }

    /// The loop's code was handed a message: it no longer counts.
    fn handed_out(&self) {
        match &self.capacity {
            Some(capacity) => capacity.release(),
            // Only the loop writes it: no read-modify-write needed.
            None => self
                .received
                .store(self.received.load(Relaxed).wrapping_add(1), Release),
        }
    }

    /// Every `Sender` that ever existed is gone.
    fn disconnected(&self) -> bool {
        // `had_senders` first: its Release store comes after the first
        // Sender's count, so a look that sees it sees that count too (a
        // Mailbox racing its first `sender()` is not "disconnected").
        // Acquire on `senders`: pairs with the last Sender's drop, so its
        // sends are visible to a take that follows.
        self.had_senders.load(Acquire) && self.senders.load(Acquire) == 0
    }

    /// Counts a new `Sender`.
    fn add_sender(&self) {
        self.senders.fetch_add(1, Relaxed);
        self.had_senders.store(true, Release);
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
    /// Makes a wake pending (and written, unless the loop is awake);
    /// `false` if its write failed.
    fn ring(&self) -> bool;
    /// Whether a wake is pending.
    fn is_pending(&self) -> bool;
}

impl Bell for Notifier {
    fn rearm(&self, force_read: bool) {
        // A failed read (none is expected) costs at most a spurious wake:
        // the queue, not the fd, says what there is to take.
        let _ = Notifier::rearm(self, force_read || !self.skip_read());
    }

    fn ring(&self) -> bool {
        // A failed write sets the FAILED bit: the next wake writes again.
        self.notify_self().is_ok()
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
    // The push counts the message for `len` (`queue.rs`).
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

/// A `Sender`'s drop: the last one wakes the loop so that it learns of the
/// disconnection. A failed write is tried once more (the `FAILED` bit makes
/// it a write), and if that fails too the loop's next call rings
/// (`rewake`); the Mailbox being gone changes nothing for it.
pub(crate) fn disconnect_with<T>(shared: &Shared<T>, wake: impl Fn() -> io::Result<()>) {
    // AcqRel: the loop's Acquire load of 0 sees every send made before.
    if shared.senders.fetch_sub(1, AcqRel) != 1 {
        return;
    }
    if let Err(e) = wake() {
        if e.kind() != io::ErrorKind::BrokenPipe && wake().is_err() {
            shared.rewake.store(true, Release);
        }
    }
}

/// The loop's re-arm and take: every queued message to the back of `local`.
pub(crate) fn refill_with<T>(shared: &Shared<T>, local: &mut Local<T>, bell: &impl Bell) {
    // Re-arm first, then take (state.rs explains the order).
    bell.rearm(std::mem::take(&mut local.rang));
    shared.queue.take_all(&mut local.buf);
}

/// Keeps a readiness event coming for messages left in `local`.
pub(crate) fn leftovers_with<T>(shared: &Shared<T>, local: &mut Local<T>, bell: &impl Bell) {
    if !local.buf.is_empty() {
        ring_with(shared, local, bell);
    }
}

/// The loop's own wake (for leftovers, or for a disconnection it consumed).
/// A failed write is tried once more at once (the `FAILED` bit makes it a
/// write); if that fails too, the next send wakes whatever it finds
/// (`rewake`), and the loop's next call rings again (the wake is still
/// pending, so it re-arms and looks).
fn ring_with<T>(shared: &Shared<T>, local: &mut Local<T>, bell: &impl Bell) {
    local.rang = true;
    ring_twice(shared, bell);
}

/// Rings, once more if the write failed, and makes the next send wake if
/// that failed too.
fn ring_twice<T>(shared: &Shared<T>, bell: &impl Bell) {
    if !bell.ring() && !bell.ring() {
        shared.rewake.store(true, Release);
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
    shared.handed_out();
    if local.buf.is_empty() && shared.disconnected() {
        // The last Sender's wake may be the one this call consumed: keep an
        // event coming, so that a loop taking one message per event learns
        // of the disconnection too.
        ring_with(shared, local, bell);
    } else {
        leftovers_with(shared, local, bell);
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
/// like [`Waker::notify`]: no system call while one is pending). The loop
/// never waits for a sender, sends on different lanes never wait for each
/// other, and senders sharing a lane may only wait for another's pop of a
/// free slot (a few instructions; see [lanes](Sender#lanes)). Slots are
/// recycled, so steady traffic allocates nothing per message. Messages from one sender arrive in the order sent. Messages
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
        Mailbox::with_shared(backend, Shared::new())
    }

    /// A bounded mailbox on the platform's default backend: at most `cap`
    /// messages count against it at once, from their send until the loop's
    /// code is handed them (messages left in the loop's buffer by a dropped
    /// [`Drain`] still count). [`Sender::send`] blocks while it is full,
    /// [`Sender::try_send`] fails with [`TrySendError::Full`], and
    /// [`Sender::send_timeout`] waits at most its timeout.
    ///
    /// A blocked sender sleeps (no spinning) and is woken when the loop
    /// takes a message, or when the Mailbox is dropped; the loop pays a
    /// lock and a wake-up for that only while a sender is blocked. Every
    /// other promise of the unbounded mailbox holds: no message is
    /// stranded, FIFO per sender, disconnection.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` if `cap` is 0 or larger than `usize::MAX / 4`;
    /// otherwise as [`Notifier::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use wakefd::{Mailbox, TrySendError};
    ///
    /// let mut mailbox = Mailbox::bounded(2)?;
    /// let sender = mailbox.sender();
    /// sender.send(1).unwrap();
    /// sender.send(2).unwrap();
    /// assert_eq!(sender.try_send(3), Err(TrySendError::Full(3)));
    ///
    /// // A worker blocks until the loop takes a message.
    /// let worker = std::thread::spawn(move || sender.send(3));
    /// assert_eq!(mailbox.recv_timeout(Duration::from_secs(10)), Ok(1));
    /// worker.join().unwrap().unwrap();
    /// assert_eq!(mailbox.drain().collect::<Vec<_>>(), [2, 3]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn bounded(cap: usize) -> io::Result<Mailbox<T>> {
        Mailbox::bounded_with_backend(cap, Backend::default())
    }

    /// A bounded mailbox ([`Mailbox::bounded`]) on the given backend.
    ///
    /// # Errors
    ///
    /// As [`Mailbox::bounded`] and [`Mailbox::with_backend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Backend, Mailbox};
    ///
    /// let mailbox = Mailbox::<u64>::bounded_with_backend(64, Backend::TcpLoopback)?;
    /// assert_eq!(mailbox.capacity(), Some(64));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn bounded_with_backend(cap: usize, backend: Backend) -> io::Result<Mailbox<T>> {
        if cap == 0 || cap > capacity::MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a bounded mailbox's capacity must be 1 to {}, not {cap}",
                    capacity::MAX
                ),
            ));
        }
        Mailbox::with_shared(backend, Shared::with_capacity(Some(Capacity::new(cap))))
    }

    fn with_shared(backend: Backend, shared: Shared<T>) -> io::Result<Mailbox<T>> {
        Ok(Mailbox {
            notifier: Notifier::with_backend(backend)?,
            shared: Arc::new(shared),
            local: Local::new(),
        })
    }

    /// How many messages count against the mailbox now: sent and not yet
    /// handed to the loop's code (those in the loop's buffer included). A
    /// snapshot: senders may add to it at any time. An unbounded mailbox
    /// counts modulo 2^31: exact while fewer messages than that are
    /// outstanding.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// assert!(mailbox.is_empty());
    /// sender.send("a").unwrap();
    /// sender.send("b").unwrap();
    /// assert_eq!((mailbox.len(), sender.len()), (2, 2));
    /// assert_eq!(mailbox.try_recv(), Ok("a"));
    /// assert_eq!(mailbox.len(), 1);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn len(&self) -> usize {
        if self.forked() {
            return 0;
        }
        self.shared.len()
    }

    /// Whether [`len`](Mailbox::len) is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::<u8>::new()?;
    /// assert!(mailbox.is_empty());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity of a bounded mailbox; `None` for an unbounded one.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::Mailbox;
    ///
    /// assert_eq!(Mailbox::<u8>::new()?.capacity(), None);
    /// assert_eq!(Mailbox::<u8>::bounded(8)?.capacity(), Some(8));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.shared.cap()
    }

    /// Whether every [`Sender`] is gone (after at least one existed), even
    /// with messages still queued: those are still handed out, and then
    /// `try_recv` reports [`TryRecvError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// sender.send(1).unwrap();
    /// assert!(!mailbox.is_disconnected());
    /// drop(sender);
    /// assert!(mailbox.is_disconnected());
    /// assert_eq!(mailbox.try_recv(), Ok(1));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.forked() || self.shared.disconnected()
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

    /// Blocks until a message is queued and takes it, for a thread with no
    /// reactor: `Err(RecvError)` once nothing is queued and every
    /// [`Sender`] is gone (or none exists: none can be made while this call
    /// runs, so it would wait for ever).
    ///
    /// With a spin budget ([`set_spin`](Mailbox::set_spin)) it spins first.
    /// A wait that fails (no error is expected of `poll(2)` on this fd) is
    /// retried after a millisecond rather than returned; in a forked child
    /// it returns `Err(RecvError)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// std::thread::spawn(move || sender.send("work").unwrap());
    /// assert_eq!(mailbox.recv(), Ok("work"));
    /// assert_eq!(mailbox.recv(), Err(wakefd::RecvError)); // the sender is gone
    /// # std::io::Result::Ok(())
    /// ```
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// Like [`recv`](Mailbox::recv), for at most `timeout`:
    /// `Err(RecvTimeoutError::Timeout)` if nothing came. Never returns
    /// `Timeout` early; on Linux and Android the wait is a `ppoll(2)`, so a
    /// timeout is honoured to the microsecond (elsewhere `poll(2)` rounds
    /// it up to a millisecond). `Duration::MAX` means no timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wakefd::RecvTimeoutError;
    ///
    /// let mut mailbox = wakefd::Mailbox::<u32>::new()?;
    /// let sender = mailbox.sender();
    /// let start = Instant::now();
    /// let timeout = Duration::from_micros(200);
    /// assert_eq!(mailbox.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
    /// assert!(start.elapsed() >= timeout);
    /// sender.send(5).unwrap();
    /// assert_eq!(mailbox.recv_timeout(timeout), Ok(5));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(sys::deadline(Some(timeout)))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        loop {
            match self.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                // No Sender, and none can be made while this call holds
                // `&mut self`: nothing can ever come (also when no Sender
                // was ever made), so don't wait for it. Acquire: every send
                // of the Senders that went is in the last look.
                Err(TryRecvError::Empty) if self.shared.senders.load(Acquire) == 0 => {
                    return self.try_recv().map_err(|_| RecvTimeoutError::Disconnected);
                }
                Err(TryRecvError::Empty) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            if self.wait_until(deadline).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            if self.has_messages() {
                return Ok(true);
            }
            if self.shared.disconnected() {
                return Ok(self.has_messages());
            }
            if !self
                .notifier
                .block_once(deadline, || self.has_messages(), true)?
            {
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
                // wake was consumed: make it pending again (the message is
                // seen by our caller in any case).
                ring_twice(&self.shared, &self.notifier);
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
    /// let awake = mailbox.announce_awake(); // sleep-aware from here on
    /// assert!(!mailbox.poll(&mut poll, &mut events, Some(Duration::ZERO))?);
    /// sender.send("hi").unwrap(); // the loop is awake: no system call
    /// assert!(mailbox.poll(&mut poll, &mut events, Some(Duration::from_secs(10)))?);
    /// assert_eq!(mailbox.drain().collect::<Vec<_>>(), ["hi"]);
    /// assert_eq!(mailbox.stats().wakes_written, 0);
    /// drop(awake); // plain again: a plain `Poll::poll` may follow
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
        self.notifier.poll_events(
            poll,
            events,
            timeout,
            || !local.buf.is_empty() || !shared.queue.is_empty(),
            true,
        )?;
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
    /// let awake = mailbox.announce_awake();
    /// sender.send(1).unwrap(); // no system call
    /// assert!(!mailbox.announce_sleep()); // a message is waiting: don't block
    /// # drop(awake);
    /// # std::io::Result::Ok(())
    /// ```
    #[must_use = "`false` means a message or a wake is waiting: the loop must not block"]
    pub fn announce_sleep(&self) -> bool {
        self.notifier.announce_sleep() && !self.has_messages()
    }

    /// Announces that the loop is awake for as long as the returned guard
    /// lives, as [`Notifier::announce_awake`]: until the next
    /// [`announce_sleep`](Mailbox::announce_sleep), a send makes no system
    /// call. **The rule:** while the guard lives, block only through
    /// [`poll`](Mailbox::poll) / [`wait`](Mailbox::wait) or after announcing
    /// sleep; dropping it makes the loop plain again.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// let _awake = mailbox.announce_awake();
    /// sender.send("job done").unwrap(); // no system call
    /// assert_eq!(mailbox.try_recv(), Ok("job done"));
    /// assert_eq!(mailbox.stats().wakes_written, 0);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_awake(&self) -> Awake {
        self.notifier.announce_awake()
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
        // Close first, drop the messages after, so that a message whose
        // `Drop` panics can neither let later sends return `Ok` for a
        // mailbox that is gone nor stop the other messages' drops.
        //
        // Closing the queue: a send either got in before (and its message
        // is dropped here, exactly once) or gets its message back; blocked
        // senders wake and get theirs back. Not in a forked child, whose
        // sends fail anyway: closing takes locks that a thread of the parent
        // may have held at the fork, and what is queued is dropped with the
        // last `Sender` instead.
        self.shared.closed.store(true, Release);
        let mut queued = VecDeque::new();
        if !self.forked() {
            if let Some(capacity) = &self.shared.capacity {
                capacity.close();
            }
            self.shared.queue.close(&mut queued);
        }
        // The loop's buffer first (older), then the queue: if a drop in the
        // first panics, `queued` is still dropped while the panic unwinds,
        // and each drops every message even if one of them panics.
        let local = std::mem::replace(&mut self.local.buf, Taken::new());
        drop(local);
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
        let msg = self.mailbox.local.buf.pop_front()?;
        self.mailbox.shared.handed_out();
        Some(msg)
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
        leftovers_with(&mailbox.shared, &mut mailbox.local, &mailbox.notifier);
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
/// the same lane to finish; and a send may wait for another thread's pop of
/// the lane's free list (one pop at a time, so that a stalled sender can
/// never make another hand out a slot still in use), spinning briefly and
/// then yielding its CPU. A sender stalled in that pop (descheduled, or
/// stopped by a debugger) holds up the other senders of its lane only.
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
        self.send_until(msg, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Queues `msg` if there is room now: on a bounded mailbox that is full,
    /// `Err(TrySendError::Full(msg))` at once; on an unbounded one it is
    /// never `Full`.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] as above, [`TrySendError::Disconnected`] if the
    /// `Mailbox` is gone (or this is a forked child); both give the message
    /// back.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Mailbox, TrySendError};
    ///
    /// let mut mailbox = Mailbox::bounded(1)?;
    /// let sender = mailbox.sender();
    /// assert_eq!(sender.try_send('a'), Ok(()));
    /// assert_eq!(sender.try_send('b'), Err(TrySendError::Full('b')));
    /// assert_eq!(mailbox.try_recv(), Ok('a')); // the loop makes room
    /// assert_eq!(sender.try_send('b'), Ok(()));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        if self.waker.inherited() {
            return Err(TrySendError::Disconnected(msg));
        }
        let Some(capacity) = &self.shared.capacity else {
            return self.push(msg).map_err(Into::into);
        };
        match capacity.try_reserve() {
            Ok(()) => self.push_reserved(capacity, msg).map_err(Into::into),
            Err(Refused::Full) => Err(TrySendError::Full(msg)),
            Err(Refused::Closed) => Err(TrySendError::Disconnected(msg)),
        }
    }

    /// Queues `msg`, waiting at most `timeout` for room in a bounded
    /// mailbox (`Duration::MAX`: no limit, like [`send`](Sender::send)).
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if it stayed full,
    /// [`SendTimeoutError::Disconnected`] if the `Mailbox` is gone (or this
    /// is a forked child); both give the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use wakefd::{Mailbox, SendTimeoutError};
    ///
    /// let mailbox = Mailbox::bounded(1)?;
    /// let sender = mailbox.sender();
    /// sender.send_timeout(1, Duration::MAX).unwrap();
    /// let full = sender.send_timeout(2, Duration::from_millis(5));
    /// assert_eq!(full, Err(SendTimeoutError::Timeout(2)));
    /// drop(mailbox);
    /// let gone = sender.send_timeout(3, Duration::from_millis(5));
    /// assert_eq!(gone, Err(SendTimeoutError::Disconnected(3)));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until(msg, sys::deadline(Some(timeout)))
    }

    /// Whether the [`Mailbox`] is gone (or this is a forked child, to which
    /// it does not belong): a worker can stop without trying a send.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::<u8>::new()?;
    /// let sender = mailbox.sender();
    /// assert!(!sender.is_closed());
    /// drop(mailbox);
    /// assert!(sender.is_closed());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.waker.inherited() || self.shared.closed.load(Acquire)
    }

    /// The same count as [`Mailbox::len`]: messages sent and not yet
    /// handed to the loop's code.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::new()?;
    /// let sender = mailbox.sender();
    /// sender.send(()).unwrap();
    /// assert_eq!(sender.len(), 1);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn len(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        self.shared.len()
    }

    /// Whether [`len`](Sender::len) is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::<u8>::new()?;
    /// assert!(mailbox.sender().is_empty());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity of a bounded mailbox, as [`Mailbox::capacity`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::<u8>::bounded(3)?;
    /// assert_eq!(mailbox.sender().capacity(), Some(3));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.shared.cap()
    }

    /// `send` with a deadline (`None`: none).
    fn send_until(&self, msg: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        if self.waker.inherited() {
            return Err(SendTimeoutError::Disconnected(msg));
        }
        let Some(capacity) = &self.shared.capacity else {
            return self.push(msg).map_err(Into::into);
        };
        loop {
            match capacity.try_reserve() {
                Ok(()) => return self.push_reserved(capacity, msg).map_err(Into::into),
                Err(Refused::Closed) => return Err(SendTimeoutError::Disconnected(msg)),
                Err(Refused::Full) => {
                    if !capacity.wait(deadline) {
                        return Err(SendTimeoutError::Timeout(msg));
                    }
                }
            }
        }
    }

    /// Queues a message that has its place (or needs none) and wakes.
    fn push(&self, msg: T) -> Result<(), SendError<T>> {
        send_with(&self.shared, &self.lane, msg, || self.waker.notify())
    }

    /// `push` in a bounded mailbox, giving the place back if it fails.
    fn push_reserved(&self, capacity: &Capacity, msg: T) -> Result<(), SendError<T>> {
        self.push(msg).map_err(|e| {
            capacity.unreserve();
            e
        })
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
        disconnect_with(&self.shared, || self.waker.notify());
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

#[cfg(all(test, wakefd_loom))]
mod loom_tests;
