//! The senders' end of a [`Mailbox`]: [`Sender`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::capacity::{Capacity, Refused};
use super::lanes::Lane;
use super::wake::{disconnect_with, send_with, Shared};
use super::{SendError, SendTimeoutError, TrySendError};
use crate::engine::Handle;
use crate::loom::Ordering::Acquire;
use crate::sys;
#[cfg(doc)]
use crate::{Mailbox, Waker};

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
    handle: Handle,
}

impl<T> Sender<T> {
    /// A Sender counted in `shared` already, on `lane`.
    pub(super) fn new(shared: Arc<Shared<T>>, lane: Arc<Lane<T>>, handle: Handle) -> Sender<T> {
        Sender {
            shared,
            lane,
            handle,
        }
    }
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
        if self.handle.inherited() {
            return Err(SendError(msg));
        }
        match &self.shared.capacity {
            None => self.push(msg),
            Some(capacity) => self
                .send_bounded(capacity, msg, None)
                .map_err(|e| SendError(e.into_inner())),
        }
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
        if self.handle.inherited() {
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
        self.handle.inherited() || self.shared.closed.load(Acquire)
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
        if self.handle.inherited() {
            return Err(SendTimeoutError::Disconnected(msg));
        }
        match &self.shared.capacity {
            None => self.push(msg).map_err(Into::into),
            Some(capacity) => self.send_bounded(capacity, msg, deadline),
        }
    }

    /// A bounded mailbox's send: waits for room until `deadline` (`None`:
    /// none). Out of line, so that an unbounded send stays small.
    #[inline(never)]
    fn send_bounded(
        &self,
        capacity: &Capacity,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
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
        send_with(&self.shared, &self.lane, msg, || {
            self.handle.notify("Sender")
        })
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
        Sender::new(
            Arc::clone(&self.shared),
            self.shared.add_sender_with_lane(self.handle.inherited()),
            self.handle.clone(),
        )
    }
}

impl<T> Clone for Sender<T> {
    /// Another handle on the same lane: its messages and this one's are
    /// FIFO together.
    fn clone(&self) -> Sender<T> {
        self.shared.add_sender();
        // Not in a forked child, whose drops do not `leave` either.
        if !self.handle.inherited() {
            self.shared.queue.join(&self.lane);
        }
        Sender {
            lane: Arc::clone(&self.lane),
            shared: Arc::clone(&self.shared),
            handle: self.handle.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // In a forked child, no lock: a thread of the parent may have held
        // it at the fork (the lane is simply not reused).
        if !self.handle.inherited() {
            self.shared.queue.leave(&self.lane);
        }
        disconnect_with(&self.shared, || self.handle.notify("Sender"));
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}
