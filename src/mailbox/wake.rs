//! The Mailbox's wake decisions: what its loop and its Senders share, and
//! the steps (send, disconnect, refill, leftovers, `try_recv`) that keep the
//! rule of `mailbox.rs`. They are generic over the loop's side of the fd
//! ([`Bell`]), so that the loom models (`mailbox/loom_tests.rs`) run them
//! against the protocol in `state.rs` and a fake fd.

use std::io;
use std::sync::Arc;

use super::capacity::Capacity;
use super::lanes::{Lane, Lanes, Taken};
use super::queue::Line;
use super::{SendError, TryRecvError};
use crate::engine::Engine;
use crate::loom::{
    AtomicBool, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

/// What the Mailbox and its Senders share.
pub(crate) struct Shared<T> {
    pub(super) queue: Lanes<T>,
    /// Live `Sender`s.
    pub(super) senders: AtomicUsize,
    /// A `Sender` has existed: "disconnected" means they all went.
    pub(super) had_senders: AtomicBool,
    /// A wake failed (a send's, the loop's own for leftovers, or the last
    /// Sender's): the next send wakes even though the queue is not empty.
    pub(super) rewake: AtomicBool,
    /// A bounded Mailbox's capacity; `None` for an unbounded one.
    pub(super) capacity: Option<Capacity>,
    /// An unbounded Mailbox's count of messages handed to the loop's code
    /// (the lanes' push counts minus this is `len`). Written by the loop only,
    /// once per message: on a line of its own, so that the senders' reads
    /// of the fields above do not miss on it.
    pub(super) received: Line<AtomicUsize>,
    /// The Mailbox is gone (`Sender::is_closed`).
    pub(super) closed: AtomicBool,
}

impl<T> Shared<T> {
    pub(crate) fn new() -> Shared<T> {
        Shared::with_capacity(None)
    }

    pub(super) fn with_capacity(capacity: Option<Capacity>) -> Shared<T> {
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
    pub(super) fn cap(&self) -> Option<usize> {
        self.capacity.as_ref().map(Capacity::cap)
    }

    /// Messages from their send until the loop's code is handed them.
    pub(super) fn len(&self) -> usize {
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
    pub(super) fn handed_out(&self) {
        match &self.capacity {
            Some(capacity) => capacity.release(),
            // Only the loop writes it: no read-modify-write needed.
            None => self
                .received
                .store(self.received.load(Relaxed).wrapping_add(1), Release),
        }
    }

    /// Every `Sender` that ever existed is gone.
    pub(super) fn disconnected(&self) -> bool {
        // `had_senders` first: its Release store comes after the first
        // Sender's count, so a look that sees it sees that count too (a
        // Mailbox racing its first `sender()` is not "disconnected").
        // Acquire on `senders`: pairs with the last Sender's drop, so its
        // sends are visible to a take that follows.
        self.had_senders.load(Acquire) && self.senders.load(Acquire) == 0
    }

    /// Counts a new `Sender`.
    pub(super) fn add_sender(&self) {
        self.senders.fetch_add(1, Relaxed);
        self.had_senders.store(true, Release);
    }

    /// Counts a new `Sender` and gives it an own lane (in a forked child, a
    /// closed one outside the registry: see `Lanes::orphan`).
    pub(super) fn add_sender_with_lane(&self, inherited: bool) -> Arc<Lane<T>> {
        self.add_sender();
        if inherited {
            Lanes::orphan()
        } else {
            self.queue.attach()
        }
    }
}

/// The engine as the Mailbox's loop side uses it.
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

impl Bell for Engine {
    fn rearm(&self, force_read: bool) {
        // A failed read (none is expected) costs at most a spurious wake:
        // the queue, not the fd, says what there is to take.
        let _ = self.rearm_for_take(force_read);
    }

    fn ring(&self) -> bool {
        // A failed write sets the FAILED bit: the next wake writes again.
        self.notify_self().is_ok()
    }

    fn is_pending(&self) -> bool {
        Engine::is_pending(self)
    }
}

/// The loop's own side: messages taken from the queue and not handed out
/// yet, and whether the loop rang its own wake since its last re-arm.
pub(crate) struct Local<T> {
    /// What the loop took (`lanes::Taken`: short chains copied out, long
    /// ones read in place).
    pub(super) buf: Taken<T>,
    /// Set when the loop made a wake pending for leftovers: the next re-arm
    /// reads the fd even where `drain` may skip the read, so that if the
    /// leftovers are taken without that wake, it does not linger as a
    /// spurious event (an eventfd watched edge-triggered with a non-zero
    /// counter is reported; one read back to zero is not).
    pub(super) rang: bool,
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
/// wake failed before). `wake` is `Waker::notify`. Inlined, with the
/// pushes below it, into `Sender::push`, its one caller (every send, try or
/// timed, goes through it): a send then makes no call on its path but the
/// wake.
#[inline(always)]
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
pub(super) fn ring_twice<T>(shared: &Shared<T>, bell: &impl Bell) {
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
