//! The Mailbox's queue: lanes, and a stack of the lanes that have
//! messages, so that senders on different lanes write no shared memory per
//! message.
//!
//! # Shape
//!
//! * **A lane** is a [`Queue`] (`queue.rs`: a stack of recycled
//!   slots, free ones going round in a FIFO, whose push says whether it was
//!   empty) plus two links. Every
//!   `Sender` made by `Mailbox::sender` (and its clones) sends on the
//!   mailbox's **common** lane, so their messages keep one order. A `Sender`
//!   made by `Mailbox::sender_with_lane` or `Sender::clone_with_lane` gets
//!   an **own** lane, which its clones share; the last of them gives it back
//!   to an idle pool when dropped, and the next own lane comes from the pool
//!   before a new one is allocated, so own lanes are as many as were ever in
//!   use at once, and a steady stream of them allocates nothing. A lane may
//!   still hold messages when it changes hands: they stay ahead of the new
//!   owner's, and the loop takes them as usual. Every lane is a
//!   multi-producer queue (a `Sender` is `Sync`, and clones share a lane).
//! * **`ready`** is a Treiber stack of *listed* lanes. A lane is listed by
//!   the send whose push found it empty, and unlisted by the consumer, who
//!   swaps the whole stack out and then takes each lane's messages. So a
//!   lane is on the stack (or in the consumer's hands) from its first
//!   message after a take until the next take: at most once, which is why
//!   the link can live in the lane. Only pushes and whole-stack swaps touch
//!   `ready`, so it has no ABA problem.
//! * **"Was the mailbox empty?"** is answered by the listing push: the send
//!   that lists a lane onto an empty `ready` is the one that wakes the loop
//!   (the Mailbox's rule, decided atomically with the listing). A send that
//!   finds its lane non-empty does not list it: the lane is listed, or about
//!   to be by the send that found it empty, or in the hands of a consumer
//!   who has not taken it yet; in each case the consumer's take of the lane
//!   is later in the lane's modification order, and gets the message.
//!
//! The cost of that: while one thread is between its push into a lane and
//! the listing of it, a second thread's message in the same lane waits for
//! the first to finish its send (as in every multi-producer queue whose
//! push takes two steps). Threads on different lanes never wait for each
//! other.
//!
//! Order: FIFO per lane (the order of the pushes' compare-and-swaps, so
//! the order of sends that happen one before the other). Between lanes, a
//! take hands them out in the order they were listed.
//!
//! # Orderings
//!
//! * A lane's messages: `queue.rs` (its push is a Release RMW, its take an
//!   Acquire RMW).
//! * The link: the lister writes `next` (Relaxed) before its Release CAS on
//!   `ready`; the consumer's Acquire swap of `ready` makes every link of the
//!   chain visible. No send writes the link of a lane in a taken chain until
//!   the consumer has taken the lane (it is not empty before), and the send
//!   that finds the lane empty then acquires (a fence after its push) the
//!   consumer's take, which releases: the consumer's read of the link
//!   happens before that send's write of it.
//! * The consumer reverses the chain through a second link, `back`, that
//!   only it touches, and follows it after each lane's take. Through `next`
//!   it would race with the send that lists the emptied lane again and
//!   overwrites `next`: the lanes behind it in the taken chain would be lost
//!   (`broken_reversal_through_the_senders_link`): the consumer's reversal
//!   write and the relisting send's write would be unordered, and the older
//!   one could win.
//!
//! Loom checks the listing and the take in `lanes_loom_tests.rs`. It cannot
//! check the fence: the outcome it rules out (the consumer's read of a link
//! returning a later sender's write) is load buffering, which loom does not
//! explore; removing the fence, or the Release of the take, passes every
//! model.

use std::collections::VecDeque;
use std::ptr;
use std::sync::Arc;

use super::queue::{Chain, Line, Queue, PUSHES};
use crate::loom::{
    fence, AtomicPtr, AtomicUsize, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

/// A queue of `Sender`s' messages, and its link in `ready`.
pub(crate) struct Lane<T> {
    queue: Queue<T>,
    /// A lane of its own (made for `Sender::clone_with_lane` and the like),
    /// given back when its last `Sender` goes; `false` for the common lane
    /// and for orphans.
    own: bool,
    /// The `Sender`s on an own lane.
    users: AtomicUsize,
    /// The next lane down `ready`: written by the send that lists the lane,
    /// read by the consumer after it has swapped the lane out.
    next: AtomicPtr<Lane<T>>,
    /// The lane listed after this one, in a chain the consumer has taken:
    /// the consumer's alone.
    back: AtomicPtr<Lane<T>>,
}

/// Every lane, the idle ones, and whether the Mailbox is gone.
struct Registry<T> {
    all: Vec<Arc<Lane<T>>>,
    idle: Vec<Arc<Lane<T>>>,
    closed: bool,
}

pub(crate) struct Lanes<T> {
    /// The top of the stack of listed lanes.
    ready: Line<AtomicPtr<Lane<T>>>,
    /// The lane of every `Sender` made by `Mailbox::sender` and its clones.
    common: Arc<Lane<T>>,
    /// Taken by `Sender` creation and drop, and by an unbounded Mailbox's
    /// `len`; never by a send or a take.
    registry: Mutex<Registry<T>>,
}

impl<T> Lane<T> {
    fn new(own: bool) -> Arc<Lane<T>> {
        Arc::new(Lane {
            queue: Queue::new(),
            own,
            users: AtomicUsize::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            back: AtomicPtr::new(ptr::null_mut()),
        })
    }
}

// SAFETY: `ready` holds references to lanes (made by `Arc::into_raw`);
// lanes are `Send + Sync` for `T: Send` (their queue is), and only the
// consumer follows the pointers (see the module doc).
unsafe impl<T: Send> Send for Lanes<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Lanes<T> {}

impl<T> Lanes<T> {
    pub(crate) fn new() -> Lanes<T> {
        let common = Lane::new(false);
        Lanes {
            ready: Line(AtomicPtr::new(ptr::null_mut())),
            registry: Mutex::new(Registry {
                all: vec![Arc::clone(&common)],
                idle: Vec::new(),
                closed: false,
            }),
            common,
        }
    }

    /// The common lane, for a `Sender` made by `Mailbox::sender`.
    pub(crate) fn common(&self) -> Arc<Lane<T>> {
        Arc::clone(&self.common)
    }

    fn registry(&self) -> impl std::ops::DerefMut<Target = Registry<T>> + '_ {
        // No code panics while holding it; a poisoned lock changes nothing.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An own lane for a new `Sender`: an idle one, or a new one (closed if
    /// the Mailbox is gone, so that its sends fail).
    pub(crate) fn attach(&self) -> Arc<Lane<T>> {
        let mut registry = self.registry();
        let lane = match registry.idle.pop() {
            Some(lane) => lane,
            None => {
                let lane = Lane::new(true);
                if registry.closed {
                    lane.queue.close(&mut VecDeque::new());
                }
                registry.all.push(Arc::clone(&lane));
                lane
            }
        };
        lane.users.store(1, Relaxed);
        lane
    }

    /// A closed lane outside the registry, for a `Sender` made in a forked
    /// child (whose sends fail anyway): the child takes no lock that a
    /// thread of the parent may have held at the fork.
    pub(crate) fn orphan() -> Arc<Lane<T>> {
        let lane = Lane::new(false);
        lane.queue.close(&mut VecDeque::new());
        lane
    }

    /// One more `Sender` on `lane` (a clone).
    pub(crate) fn join(&self, lane: &Lane<T>) {
        if lane.own {
            lane.users.fetch_add(1, Relaxed);
        }
    }

    /// One `Sender` less on `lane`: the last one on an own lane gives it
    /// back for the next `attach`.
    pub(crate) fn leave(&self, lane: &Arc<Lane<T>>) {
        // AcqRel: every send on the lane happens before its reuse.
        if lane.own && lane.users.fetch_sub(1, AcqRel) == 1 {
            self.registry().idle.push(Arc::clone(lane));
        }
    }

    /// Messages queued ever, over every lane, minus `received` (a number
    /// of them the caller counted out): exact while fewer than
    /// [`PUSHES`] are outstanding, as the lanes count their pushes modulo
    /// that (`queue.rs`); a hint while sends race. The caller reads
    /// `received` first. Takes the registry lock.
    pub(crate) fn outstanding(&self, received: usize) -> usize {
        let pushes = self
            .registry()
            .all
            .iter()
            .fold(0usize, |n, lane| n.wrapping_add(lane.queue.pushes()));
        pushes.wrapping_sub(received) % PUSHES
    }

    /// Whether nothing is queued (a hint for the loop: a send may land at
    /// any time).
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.load(Acquire).is_null()
    }

    /// Whether any lane, listed or not, holds a message (for the models).
    #[cfg(all(test, wakefd_loom))]
    pub(crate) fn holds_messages(&self) -> bool {
        self.registry()
            .all
            .iter()
            .any(|lane| !lane.queue.is_empty())
    }

    /// Queues `value` in `lane`. `Ok(true)` if the mailbox was empty before
    /// it (this send listed its lane onto an empty `ready`), `Err` with the
    /// value if the Mailbox is gone.
    #[inline]
    pub(crate) fn push(&self, lane: &Arc<Lane<T>>, value: T) -> Result<bool, T> {
        if !lane.queue.push(value)? {
            return Ok(false);
        }
        // The lane was empty: list it. Acquire: pairs with the Release of
        // the consumer's take that emptied it, so that the consumer's use of
        // the link (its read of `next`) happens before our write below.
        fence(Acquire);
        // `ready` owns a reference to each lane on it, which the consumer
        // takes over.
        let this = Arc::into_raw(Arc::clone(lane)).cast_mut();
        let mut top = self.ready.load(Relaxed);
        loop {
            lane.next.store(top, Relaxed);
            // Release: publishes the link (module doc).
            match self
                .ready
                .compare_exchange_weak(top, this, Release, Relaxed)
            {
                Ok(_) => return Ok(top.is_null()),
                Err(actual) => top = actual,
            }
        }
    }

    /// Takes every queued message into `out`, behind what it holds: lane
    /// by lane in the order they were listed, each lane oldest first. The
    /// number taken. Only the consumer calls this.
    pub(crate) fn take_all(&self, out: &mut Taken<T>) -> usize {
        if self.is_empty() {
            return 0;
        }
        // Acquire: every link of the chain (module doc).
        let mut cur = self.ready.swap(ptr::null_mut(), Acquire);
        // Reverse the chain, so that the lane listed first is taken first.
        let mut prev = ptr::null_mut();
        while !cur.is_null() {
            // SAFETY: every pointer on `ready` is a reference that
            // `Arc::into_raw` made (in `push`), now ours.
            let lane = unsafe { &*cur };
            lane.back.store(prev, Relaxed);
            prev = cur;
            cur = lane.next.load(Relaxed);
        }
        let mut n = 0;
        let mut cur = prev;
        while !cur.is_null() {
            // SAFETY: as above; each is taken over once, here.
            let lane = unsafe { Arc::from_raw(cur) };
            let chain = lane.queue.take_chain();
            // After the take: a send may have listed the lane again since,
            // which `back` does not care about (`next` would).
            cur = lane.back.load(Relaxed);
            if let Some(chain) = chain {
                n += chain.len;
                out.push(lane, chain);
            }
        }
        n
    }

    /// Closes every lane (sends fail from now on, and lanes made later are
    /// closed) and moves what was queued to `out`. Only the consumer calls
    /// this.
    pub(crate) fn close(&self, out: &mut VecDeque<T>) -> usize {
        let mut registry = self.registry();
        registry.closed = true;
        self.unlist_all();
        registry.all.iter().map(|lane| lane.queue.close(out)).sum()
    }

    /// Drops the references on `ready` (after the close, or with `self`).
    fn unlist_all(&self) {
        let mut cur = self.ready.swap(ptr::null_mut(), Acquire);
        while !cur.is_null() {
            // SAFETY: as in `take_all`.
            let lane = unsafe { Arc::from_raw(cur) };
            cur = lane.next.load(Relaxed);
        }
    }
}

impl<T> Drop for Lanes<T> {
    fn drop(&mut self) {
        // Lanes listed after the close (a send that got in before it).
        self.unlist_all();
    }
}

/// A taken chain at most this long is moved out at once, so that its
/// slots go straight back to the senders; a longer one (a backlog) is read
/// in place, so that the loop does not copy it into a buffer that would
/// have to grow as large (fresh pages of a large buffer cost more than the
/// copy saves; reading short chains in place costs more than moving them).
/// One under loom, so that the models take both paths.
#[cfg(not(wakefd_loom))]
const COPY_MAX: usize = 65536;
#[cfg(wakefd_loom)]
const COPY_MAX: usize = 1;

/// Messages the consumer has taken and not handed out yet, oldest first:
/// short chains moved out into `copied`, then long ones read in place from
/// their slots (`held`), whose slots go back to their lane once read. Every
/// message in `copied` is older than every one in `held`: while `held` is
/// not empty, every new chain is held too.
pub(crate) struct Taken<T> {
    copied: VecDeque<T>,
    held: VecDeque<Held<T>>,
    held_len: usize,
}

/// One lane's taken chain, and the next slot of it to read.
struct Held<T> {
    lane: Arc<Lane<T>>,
    chain: Chain,
    next: u32,
}

impl<T> Taken<T> {
    pub(crate) fn new() -> Taken<T> {
        Taken {
            copied: VecDeque::new(),
            held: VecDeque::new(),
            held_len: 0,
        }
    }

    fn push(&mut self, lane: Arc<Lane<T>>, chain: Chain) {
        if self.held.is_empty() && chain.len <= COPY_MAX {
            lane.queue.move_out(chain, &mut self.copied);
            return;
        }
        self.held_len += chain.len;
        self.held.push_back(Held {
            lane,
            chain,
            next: chain.first,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.copied.len() + self.held_len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest message taken.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if let Some(value) = self.copied.pop_front() {
            return Some(value);
        }
        let held = self.held.front_mut()?;
        let id = held.next;
        // SAFETY: `id` is in a chain this Taken took and has not released,
        // and `next` moves past it, so it is read once.
        let (value, next) = unsafe { held.lane.queue.read(id) };
        self.held_len -= 1;
        held.next = next;
        if id == held.chain.last {
            let held = self.held.pop_front().expect("the front chain");
            held.lane.queue.release(held.chain.first, held.chain.last);
        }
        Some(value)
    }
}

impl<T> Drop for Taken<T> {
    fn drop(&mut self) {
        // Messages not handed out are dropped, and their slots freed. If a
        // message's drop panics, the guard drops the rest while the panic
        // unwinds (a second panic aborts, as in `Vec`'s drop).
        struct Rest<'a, T>(&'a mut Taken<T>);
        impl<T> Drop for Rest<'_, T> {
            fn drop(&mut self) {
                while self.0.pop_front().is_some() {}
            }
        }
        let rest = Rest(self);
        while rest.0.pop_front().is_some() {}
    }
}

#[cfg(all(test, wakefd_loom))]
#[path = "lanes_loom_tests.rs"]
mod lanes_loom_tests;
