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
//! The wake decisions live in `mailbox/wake.rs`, generic over the loop's
//! side of the fd, so that the loom models (`mailbox/loom_tests.rs`) run
//! them against the protocol in `state.rs` and a fake fd. The fd, waits,
//! polls and sleep-aware calls are the engine's (`engine.rs`); the Mailbox
//! tells it about its queue through [`Work`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::engine::{forward_to_engine, Engine, Work};
use crate::loom::Ordering::{Acquire, Release};
use crate::{sys, Awake, Backend, Stats};
#[cfg(doc)]
use crate::{Notifier, Waker};

mod capacity;
mod error;
mod lanes;
mod prefetch;
mod queue;
mod sender;
mod wake;

use capacity::Capacity;
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use lanes::Taken;
pub use sender::Sender;
use wake::{leftovers_with, refill_with, ring_twice, try_recv_with, Local, Shared};

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
    engine: Engine,
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
            engine: Engine::new(backend, "Mailbox")?,
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
        self.engine.backend()
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
        Sender::new(
            Arc::clone(&self.shared),
            self.shared.queue.common(),
            self.engine.handle(),
        )
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
        let lane = self.shared.add_sender_with_lane(self.forked());
        Sender::new(Arc::clone(&self.shared), lane, self.engine.handle())
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
            refill_with(&self.shared, &mut self.local, &self.engine);
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
        try_recv_with(&self.shared, &mut self.local, &self.engine)
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
        self.engine.wait(sys::deadline(timeout), self)?;
        Ok(self.has_messages())
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
            if self.engine.wait(deadline, &*self).is_err() {
                std::thread::sleep(Duration::from_millis(1));
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
        self.engine.poll(poll, events, timeout, &*self)
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
        self.engine.announce_sleep(self)
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
        self.engine.announce_awake()
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
        self.engine.set_spin(budget);
    }

    /// The spin budget, as [`Notifier::spin`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mailbox = wakefd::Mailbox::<u8>::new()?;
    /// assert_eq!(mailbox.spin(), std::time::Duration::ZERO);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spin(&self) -> Duration {
        self.engine.spin()
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
        self.engine.stats()
    }

    /// Test-only fault injection: the next `n` wake writes fail.
    #[cfg(wakefd_fault_injection)]
    #[doc(hidden)]
    pub fn fail_next_writes(&self, n: usize) {
        self.engine.fail_next_writes(n);
    }

    fn forked(&self) -> bool {
        self.engine.inherited()
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
            .field("backend", &self.engine.backend())
            .field("fd", &self.engine.raw())
            .finish_non_exhaustive()
    }
}

forward_to_engine!(Mailbox<T>, T);

/// The queue is the Mailbox's work: it is seen without the fd, and `drain`
/// and `try_recv` re-arm before they take.
impl<T> Work for Mailbox<T> {
    const TAKES_OWN_WAKE: bool = true;

    fn waiting(&self) -> bool {
        self.has_messages()
    }

    fn finished(&self) -> bool {
        self.shared.disconnected()
    }

    fn rearmed(&self, _woken: bool) -> bool {
        if !self.has_messages() {
            // A stray byte, or the last Sender's wake: consumed.
            return false;
        }
        // A send landed between the look and the re-arm, and its wake was
        // consumed: make it pending again for the take that follows.
        ring_twice(&self.shared, &self.engine);
        true
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
        leftovers_with(&mailbox.shared, &mut mailbox.local, &mailbox.engine);
    }
}

impl<T> fmt::Debug for Drain<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.len())
            .finish()
    }
}

#[cfg(all(test, wakefd_loom))]
mod loom_tests;
