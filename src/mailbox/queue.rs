//! One lane of the Mailbox's queue (`lanes.rs`): a stack of
//! message slots that the consumer takes whole, with slots recycled through
//! a free list, so that steady traffic allocates nothing.
//!
//! # Shape
//!
//! * **Slots** live in chunks that are allocated on demand (chunk `k` holds
//!   `BASE << k` slots) and freed only with the queue, so a slot is named by a
//!   32-bit id (index + 1; 0 is "none") and its memory never goes away while
//!   the queue lives.
//! * **`head`** is the top of a Treiber stack of queued slots. A sender takes
//!   a free slot (below), writes its message into it, and pushes it with one
//!   compare-and-swap; the value that CAS replaced tells it whether the queue
//!   was empty, which is the Mailbox's "only the send that finds the queue
//!   empty wakes the loop" rule, decided atomically with the push. A `CLOSED`
//!   bit above the id makes pushes fail once the Mailbox is gone.
//! * **The push count** fills the bits above `CLOSED`: every push's
//!   compare-and-swap adds one (wrapping at 2^31), and nothing else changes
//!   it (the take and the close clear the id and keep the rest), so it is
//!   the number of pushes ever made, modulo 2^31, at no cost beyond the
//!   push itself (`Mailbox::len`).
//! * **The consumer** clears `head`'s id (taking every queued slot at once),
//!   reverses the chain to get the messages oldest first (FIFO for the
//!   lane, so per `Sender`), moves them out, and appends the whole chain to
//!   the free list with one store.
//! * **The free list** is a queue of empty slots, linked through `next`:
//!   senders pop from its front (`free`), the consumer alone appends at its
//!   back (`tail`). A sender never pops the last free slot, so the
//!   consumer's `tail` is always still on the list, and appending is one
//!   Release store of the link in it.
//! * **One pop at a time.** A pop sets the `POPPING` bit in `free` with a
//!   compare-and-swap that keeps the front as it is, reads the front's
//!   link, and then stores the new front with the bit clear. While the bit
//!   is set no other sender changes `free`, and the consumer does not touch
//!   it (it writes `free` only to start the list, when there is no front to
//!   pop). So the rule: **the link a pop follows is read while its slot is
//!   the front and no other pop can move it**, however long the popping
//!   sender stalls; no pop is ever completed with a link read before
//!   another pop, so there is no ABA case and no tag to wrap. The first
//!   step's compare-and-swap depends on nothing but `free` itself: if
//!   `free` went round to the same value meanwhile, taking the bit is still
//!   right.
//! * **A sender that finds `POPPING` set** takes a fresh slot if one is
//!   left, and otherwise waits for that pop to end (`Backoff`: spins, then
//!   yields the CPU), and never grows the queue for it. The wait is for a
//!   step of a few instructions, so it is long only while the popping
//!   sender is descheduled in it; that delays the other senders on the same
//!   lane only (senders on lanes of their own never wait), and costs no
//!   memory: growing instead would add a chunk for every such stall, since
//!   the slots freed meanwhile could not be popped either.
//! * **Why a queue and not a stack of free slots.** Slots then go round in
//!   one fixed order, like a ring buffer's, so senders write and the
//!   consumer walks memory in address order, which the CPU's prefetcher
//!   follows. With a stack, each chain freed while a sender is half-way
//!   through an earlier one splits that one in two; after enough wakes,
//!   slots are handed out in runs of a few, and every step of a walk is a
//!   cache miss on a line the other core has just written, for as long as
//!   the queue lives.
//! * **Fresh slots.** When the free list has only its last slot (or does
//!   not exist yet: before the consumer's first release), a sender takes a
//!   fresh slot of the newest chunk (`fresh`, a range bumped by CAS), and
//!   when none is left, allocates the next chunk under `grow`. A pop that
//!   reads a link of none has found the last free slot (or the consumer
//!   appending at that moment): the front is its alone, so no other
//!   sender's write of that link can be what it read.
//! * A send that finds the queue closed after taking a slot keeps its
//!   message and drops the slot: only the consumer appends to the free
//!   list, and a closed queue never opens again.
//!
//! # Orderings
//!
//! * A sender owns a slot from its successful pop (or take of a fresh
//!   one) until its successful `head` push (Release: its write of the
//!   message and of `next` happen before the consumer's Acquire swap that
//!   takes it; the pushes are read-modify-writes, so one swap synchronizes
//!   with every sender whose push is in the chain it took).
//! * The consumer owns every slot of the chain it swapped out until it
//!   appends them to the free list. The append's Release store pairs with
//!   the Acquire read of that link by the sender that pops the old last
//!   slot (the first release's Release store to `free`, with the Acquire
//!   compare-and-swap that begins a pop). Each pop ends with a Release
//!   store of `free` that the next pop's Acquire compare-and-swap reads, so
//!   every later pop (by any sender) is ordered after it too: the
//!   consumer's move out of a slot happens before the next write into it.
//! * A fresh slot: the chunk's Release store, then `fresh`'s Release store,
//!   pair with the Acquire of `fresh` by the sender that takes the slot.
//!
//! Loom checks this with 2 senders, a consumer and small chunks (chunk `k`
//! holds `2^k` slots), so that growth, fresh slots and reuse all happen
//! (`queue_loom_tests`). It catches a slot published with a Relaxed
//! compare-and-swap (through the take and through the close), the free
//! list's append and its first release as Relaxed stores, and a pop that
//! does not set `POPPING` (a compare-and-swap with a tag that wrapped):
//! overtaken while its slot goes round, it puts a queued slot on the free
//! list (`an_overtaken_pop_hands_out_no_queued_slot`). A unit test drives
//! the same stall by hand (`a_pop_stalled_for_2_32_pops_...`). The models
//! also fail with the stores that end a pop Relaxed (the next pop's write
//! into a slot then races the consumer's move out of it: the reuse models
//! and the overtaken pop's), with a sender that takes a set `POPPING` for
//! an empty list (it grows the queue: the racing pops' models), and with a
//! slow path that goes on from a pop's outcome without popping again after
//! each wait (it never sees the other pop end:
//! `broken_slow_path_that_never_pops_again_is_caught`).

use std::collections::VecDeque;
use std::mem::{self, MaybeUninit};
use std::ptr;

use super::prefetch;
use crate::loom::{
    AtomicPtr, AtomicU32, AtomicU64, Backoff, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
    UnsafeCell,
};

/// Slots in chunk 0; chunk `k` has `BASE << k`. One under loom, so that the
/// models allocate and reuse slots with few of them.
#[cfg(not(wakefd_loom))]
const BASE: usize = 32;
#[cfg(wakefd_loom)]
const BASE: usize = 1;

/// As many chunks as 32-bit ids can name (the last id of chunk 26 is
/// 32 * (2^27 - 1) < 2^32).
const CHUNKS: usize = 27;
/// `chunks`' length: every 5-bit chunk number, so that a lookup needs no
/// bounds check (the ones from `CHUNKS` on stay null).
const CHUNK_NUMBERS: usize = 32;

/// No slot.
const NIL: u32 = 0;
/// `head`: the Mailbox is gone; pushes fail.
const CLOSED: u64 = 1 << 32;
/// `free`: a sender is popping. Only the sender that set it changes `free`
/// until it clears it, so no two pops overlap.
const POPPING: u64 = 1 << 32;
/// The id part of `head` and `free`.
const ID: u64 = u32::MAX as u64;
/// `head`: one push, in the push count (the bits above `CLOSED`).
const PUSH: u64 = 1 << 33;
/// The push count's modulus: `pushes` counts modulo `PUSHES`.
pub(crate) const PUSHES: usize = 1 << 31;

/// Slots the consumer took, oldest first through `next`: `first ..=
/// last`, `len` of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) len: usize,
}

struct Slot<T> {
    /// The next slot: down the stack of queued messages, along a chain the
    /// consumer took (once reversed), or along the free list.
    next: AtomicU32,
    value: UnsafeCell<MaybeUninit<T>>,
}

pub(crate) struct Queue<T> {
    /// The top of the stack of queued messages, `CLOSED`, and the push
    /// count.
    head: Line<AtomicU64>,
    /// Where senders get slots: the free list and the fresh ones.
    alloc: Line<Alloc>,
    /// The last slot of the free list (`NIL` before the first release):
    /// the consumer's alone, so on a line of its own.
    tail: Line<AtomicU32>,
    /// Chunk `k`'s address less `first_id(k)` slots, so that slot `id` of
    /// it is at `chunks[k] + id` (`slot`); null before the chunk is
    /// allocated. Set once, under `grow`; read on every slot access, so
    /// kept off the lines that are written per message (it may share a line
    /// with `grow`, which is cold).
    chunks: [AtomicPtr<Slot<T>>; CHUNK_NUMBERS],
    /// Serializes allocation: how many chunks exist.
    grow: Mutex<usize>,
}

/// The senders' side of slot allocation, written by senders only (the
/// consumer writes `free` once, to start the list).
struct Alloc {
    /// The first slot of the free list (`NIL` before the consumer's first
    /// release), and `POPPING`.
    free: AtomicU64,
    /// The slots of the newest chunk not handed out yet: ids `low ..
    /// high` (low and high 32 bits).
    fresh: AtomicU64,
}

/// A value on cache lines of its own. `head` and `alloc` are written by
/// every send; sharing a line with each other or with `chunks` (read on
/// every slot access), each write would evict what the other threads are
/// reading. 128 bytes: x86's adjacent-line prefetcher pulls lines in pairs
/// (crossbeam's `CachePadded` pads the same way).
#[repr(align(128))]
pub(super) struct Line<T>(pub(super) T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

// SAFETY: the queue moves `T`s between threads (a sender writes one, the
// consumer reads it) and never shares a `&T`; every slot access is ordered by
// the atomics described in the module doc.
unsafe impl<T: Send> Send for Queue<T> {}
// SAFETY: as above; `&Queue` gives senders and the consumer only the
// operations of the protocol.
unsafe impl<T: Send> Sync for Queue<T> {}

/// The first id of chunk `k` (ids count from 1).
const fn first_id(k: usize) -> usize {
    BASE * ((1 << k) - 1) + 1
}

/// Which chunk holds slot `id` (not `NIL`): `k` such that `first_id(k) <=
/// id < first_id(k + 1)`, that is `2^k <= ceil(id / BASE) < 2^(k + 1)`.
/// The `| 1` changes nothing for an id (the quotient is at least 1) and
/// spares `ilog2` its check for zero.
#[inline]
fn chunk_of(id: u32) -> usize {
    ((id as usize).div_ceil(BASE) | 1).ilog2() as usize % CHUNK_NUMBERS
}

impl<T> Queue<T> {
    pub(crate) fn new() -> Queue<T> {
        Queue {
            head: Line(AtomicU64::new(NIL as u64)),
            alloc: Line(Alloc {
                free: AtomicU64::new(NIL as u64),
                fresh: AtomicU64::new(0),
            }),
            tail: Line(AtomicU32::new(NIL)),
            chunks: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            grow: Mutex::new(0),
        }
    }

    /// How many slots ahead of the one being written `push_into` prefetches.
    const AHEAD: usize = {
        let slots = prefetch::AHEAD_BYTES / mem::size_of::<Slot<T>>();
        if slots == 0 {
            1
        } else {
            slots
        }
    };

    fn slot(&self, id: u32) -> &Slot<T> {
        // Acquire: pairs with the Release store that published the chunk.
        let base = self.chunks[chunk_of(id)].load(Acquire);
        // Loom runs in release: a model that breaks the orderings gets an
        // assertion here, not a wild pointer.
        #[cfg(wakefd_loom)]
        assert!(!base.is_null(), "a slot in a chunk not yet visible");
        debug_assert!(!base.is_null());
        // SAFETY: an id is handed out only after its chunk was published
        // (the store above happened before any id in it could be seen);
        // `base + id` is slot `id - first_id(k)` of chunk `k`, which has
        // `BASE << k` slots, so it is in the chunk (`chunk_of`), and chunks
        // are freed only when the queue is dropped.
        unsafe { &*base.wrapping_add(id as usize) }
    }

    /// Whether nothing is queued (a hint for the loop: a push may land at
    /// any time).
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Acquire) & ID == NIL as u64
    }

    /// Pushes ever made, modulo [`PUSHES`] (a hint while pushes race).
    /// Acquire: a caller that saw a take of some message (through the
    /// consumer's later Release) reads a count that includes its push.
    pub(crate) fn pushes(&self) -> usize {
        (self.head.load(Acquire) >> PUSH.trailing_zeros()) as usize
    }

    /// Queues `value`. `Ok(true)` if the queue was empty before it, `Err`
    /// with the value if the queue is closed.
    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<bool, T> {
        if self.head.load(Relaxed) & CLOSED != 0 {
            return Err(value);
        }
        let (id, slot) = self.alloc();
        self.push_into(id, slot, value)
    }

    /// Writes `value` into slot `id` (`slot`), which the caller took
    /// (`alloc`), and pushes the slot.
    fn push_into(&self, id: u32, slot: &Slot<T>, value: T) -> Result<bool, T> {
        // The line that the sends after this one write: free slots mostly
        // go round in address order (module doc), and a hint at any other
        // address costs nothing but the hint.
        prefetch::for_write((slot as *const Slot<T>).wrapping_add(Self::AHEAD));
        // SAFETY: the slot is ours from `alloc` until the push below.
        slot.value.with_mut(|p| unsafe { (*p).write(value) });
        let mut top = self.head.load(Relaxed);
        loop {
            if top & CLOSED != 0 {
                // SAFETY: still ours (not pushed); we wrote it above.
                let value = slot.value.with_mut(|p| unsafe { (*p).assume_init_read() });
                // The slot is not given back (only the consumer appends to
                // the free list); a closed queue never opens again.
                return Err(value);
            }
            slot.next.store(top as u32, Relaxed);
            // Our slot on top, and the push count one up (`CLOSED` is clear).
            let new = (top & !ID).wrapping_add(PUSH) | id as u64;
            // Release: publishes the message and `next` (module doc).
            match self.head.compare_exchange_weak(top, new, Release, Relaxed) {
                Ok(_) => return Ok(top as u32 == NIL),
                Err(actual) => top = actual,
            }
        }
    }

    /// Takes every queued slot: the consumer owns the chain, oldest first,
    /// until it hands it back with [`release`](Queue::release) after reading
    /// each message once with [`read`](Queue::read). Only the consumer calls
    /// this.
    pub(crate) fn take_chain(&self) -> Option<Chain> {
        if self.is_empty() {
            return None;
        }
        // Acquire: synchronizes with every push in the chain (module doc).
        // Release: for `lanes.rs`, whose sender that finds the lane empty
        // after this take acquires it. Keeps CLOSED as it is (only `close`,
        // by the consumer, sets it) and the push count.
        let taken = self.head.fetch_and(!ID, AcqRel);
        self.reverse(taken as u32)
    }

    /// Moves every queued message to the back of `out`, oldest first; the
    /// number moved. Only the consumer calls this (the tests).
    #[cfg(test)]
    pub(crate) fn take_all(&self, out: &mut VecDeque<T>) -> usize {
        self.take_chain()
            .map_or(0, |chain| self.move_out(chain, out))
    }

    /// How many chunks exist (the models: a pop that gives up on a free
    /// slot makes the queue grow).
    #[cfg(all(test, wakefd_loom))]
    pub(crate) fn chunk_count(&self) -> usize {
        *self.grow.lock().unwrap()
    }

    /// Closes the queue (pushes fail from now on) and moves what was queued
    /// to `out`. Only the consumer calls this.
    pub(crate) fn close(&self, out: &mut VecDeque<T>) -> usize {
        // Pushes fail from the first step on, so the second takes every
        // slot pushed before; both keep the push count. Acquire: as in
        // `take_chain` (the first step's read-modify-write continues every
        // push's release sequence).
        self.head.fetch_or(CLOSED, Relaxed);
        let taken = self.head.fetch_and(!ID, Acquire);
        self.reverse(taken as u32)
            .map_or(0, |chain| self.move_out(chain, out))
    }

    /// Reverses the chain from `top` (newest first) in place, so that it
    /// runs oldest first.
    fn reverse(&self, top: u32) -> Option<Chain> {
        if top == NIL {
            return None;
        }
        // The chain is ours.
        let mut prev = NIL;
        let mut id = top;
        let mut len = 0;
        while id != NIL {
            let slot = self.slot(id);
            let next = slot.next.load(Relaxed);
            slot.next.store(prev, Relaxed);
            prev = id;
            id = next;
            len += 1;
        }
        Some(Chain {
            first: prev,
            last: top,
            len,
        })
    }

    /// The message in slot `id` of a chain the caller took, and the slot
    /// after it (`NIL` after the last).
    ///
    /// # Safety
    ///
    /// `id` is in a chain the caller took (and has not released), and each
    /// slot of it is read at most once.
    pub(crate) unsafe fn read(&self, id: u32) -> (T, u32) {
        let slot = self.slot(id);
        // SAFETY: the slot was pushed, so its sender wrote a message that
        // the take's Acquire made visible; the caller reads it once.
        let value = slot.value.with_mut(|p| unsafe { (*p).assume_init_read() });
        (value, slot.next.load(Relaxed))
    }

    /// Moves a whole taken chain's messages to `out` and frees its slots.
    pub(crate) fn move_out(&self, chain: Chain, out: &mut VecDeque<T>) -> usize {
        let mut id = chain.first;
        while id != NIL {
            // SAFETY: the chain is ours; each slot is read once.
            let (value, next) = unsafe { self.read(id) };
            out.push_back(value);
            id = next;
        }
        self.release(chain.first, chain.last);
        chain.len
    }

    /// Pops a free slot, or takes a fresh one, allocating a chunk when
    /// there is neither. While another sender pops, takes a fresh slot if
    /// one is left, and otherwise waits for that pop (a few instructions)
    /// to end: the queue never grows because two senders popped at once.
    #[inline]
    fn alloc(&self) -> (u32, &Slot<T>) {
        match self.try_pop_free() {
            Ok(popped) => popped,
            Err(why) => self.alloc_slow(why),
        }
    }

    /// `alloc` after a pop that found no slot (`why`): the same steps as
    /// the fast path's, continued, out of line so that the fast path saves
    /// fewer registers.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, mut why: Pop) -> (u32, &Slot<T>) {
        let mut backoff = Backoff::new();
        loop {
            let id = match why {
                Pop::Busy => None,
                Pop::Empty => self.try_take_fresh().or_else(|| self.grow()),
            };
            if let Some(id) = id.or_else(|| self.try_take_fresh()) {
                return (id, self.slot(id));
            }
            backoff.snooze();
            match self.try_pop_free() {
                Ok(popped) => return popped,
                Err(again) => why = again,
            }
        }
    }

    /// Appends the chain `first ..= last` (linked through `next`, `NIL`
    /// after `last`) to the free list. The consumer calls it with a chain it
    /// took, once every message in it was read.
    pub(crate) fn release(&self, first: u32, last: u32) {
        let tail = self.tail.load(Relaxed);
        if tail == NIL {
            // The first release starts the list. Senders do not write
            // `free` while it is NIL. Release: as below.
            self.alloc.free.store(first as u64, Release);
        } else {
            // `tail` is still on the list: a sender pops a slot only when
            // it has a successor. Release: the moves out of the chain's
            // messages and its links happen before a sender's Acquire read
            // of this link, and so before its use of any slot of the chain.
            self.slot(tail).next.store(first, Release);
        }
        self.tail.store(last, Relaxed);
    }

    /// Allocates the next chunk and keeps its first slot; the rest become
    /// the fresh slots. Rare: the queue grows to the most messages ever in
    /// flight at once, plus the free slot kept last. `None` if another
    /// sender is popping (the free list may have more than its last slot).
    #[cold]
    fn grow(&self) -> Option<u32> {
        let mut chunks = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        // Another sender may have grown the queue while we waited, or the
        // consumer freed slots.
        match self.try_pop_free() {
            Ok((id, _)) => return Some(id),
            Err(Pop::Busy) => return None,
            Err(Pop::Empty) => {}
        }
        if let Some(id) = self.try_take_fresh() {
            return Some(id);
        }
        let k = *chunks;
        assert!(k < CHUNKS, "wakefd Mailbox: more than 2^32 messages queued");
        let len = BASE << k;
        let first = first_id(k) as u32;
        let slots: Box<[Slot<T>]> = (0..len)
            .map(|_| Slot {
                next: AtomicU32::new(NIL),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        // Release: the slots' initialization happens before any use of an
        // id in this chunk (see `slot`).
        let chunk: *mut Slot<T> = Box::into_raw(slots).cast();
        self.chunks[k].store(chunk.wrapping_sub(first as usize), Release);
        *chunks = k + 1;
        // The rest, before unlocking, so that a sender waiting for the lock
        // finds them instead of growing again. Release: pairs with the
        // Acquire of `try_take_fresh`, for the chunk store above.
        let end = first as u64 + len as u64;
        self.alloc
            .fresh
            .store((end << 32) | (first as u64 + 1), Release);
        drop(chunks);
        Some(first)
    }

    /// Takes a fresh slot (never used) of the newest chunk, if one is left.
    fn try_take_fresh(&self) -> Option<u32> {
        // Acquire: pairs with the Release store in `grow` (the chunk).
        let mut cur = self.alloc.fresh.load(Acquire);
        loop {
            let (low, high) = (cur & ID, cur >> 32);
            if low >= high {
                return None;
            }
            match self
                .alloc
                .fresh
                .compare_exchange_weak(cur, cur + 1, Acquire, Acquire)
            {
                Ok(_) => return Some(low as u32),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Pops a free slot, if there is one that is not the last (that one
    /// stays, for the consumer to append after). `Empty` may also come from
    /// a consumer appending at the moment the list is down to its last.
    /// The slot's id and the slot.
    fn try_pop_free(&self) -> Result<(u32, &Slot<T>), Pop> {
        self.end_pop(self.begin_pop()?)
    }

    /// A pop's first step: sets `POPPING` over the front `id`, which then
    /// stays the front until `end_pop`. `Err` if there is no front, or
    /// another sender is popping.
    fn begin_pop(&self) -> Result<u32, Pop> {
        let mut cur = self.alloc.free.load(Relaxed);
        loop {
            if cur & ID == NIL as u64 {
                return Err(Pop::Empty);
            }
            if cur & POPPING != 0 {
                return Err(Pop::Busy);
            }
            // Acquire: pairs with the Release store that ended the last pop
            // (or the consumer's first release), so everything the senders
            // before us acquired from the consumer's appends happened before
            // our use of the slot.
            match self
                .alloc
                .free
                .compare_exchange_weak(cur, cur | POPPING, Acquire, Relaxed)
            {
                Ok(_) => return Ok((cur & ID) as u32),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A pop's second step, by the sender whose `begin_pop` returned `id`:
    /// takes `id` off the front if it has a successor, and clears
    /// `POPPING`. No other sender popped meanwhile, however long this one
    /// stalled, so the link read here is the one in the list now.
    fn end_pop(&self, id: u32) -> Result<(u32, &Slot<T>), Pop> {
        let slot = self.slot(id);
        // The front's link: the consumer's (its reversal of the chain that
        // held `id`, or its append after `id` when `id` is the last).
        // Acquire: pairs with the consumer's Release append when `id` is
        // the last.
        let next = slot.next.load(Acquire);
        // Release, both: the next pop's Acquire (`begin_pop`) then sees what
        // this one acquired.
        if next == NIL {
            // The last free slot: it stays.
            self.alloc.free.store(id as u64, Release);
            return Err(Pop::Empty);
        }
        self.alloc.free.store(next as u64, Release);
        Ok((id, slot))
    }
}

/// Why `try_pop_free` found no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pop {
    /// No free slot but the last one (or no free list yet).
    Empty,
    /// Another sender is popping.
    Busy,
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // Messages still queued (the Mailbox closes and empties the queue
        // when it is dropped, so normally none).
        if let Some(chain) = self.take_chain() {
            self.move_out(chain, &mut VecDeque::new());
        }
        // `get_mut`, not `lock`: no lock is taken (in a forked child, a
        // thread of the parent may have held it at the fork).
        let count = *self.grow.get_mut().unwrap_or_else(|e| e.into_inner());
        for (k, chunk) in self.chunks.iter().enumerate().take(count) {
            let ptr = chunk.load(Acquire).wrapping_add(first_id(k));
            // SAFETY: chunk k was made by `Box<[Slot<T>]>::into_raw` with
            // `BASE << k` slots and is freed only here, once. Its values are
            // `MaybeUninit`, so no message is dropped twice.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(ptr, BASE << k)) });
        }
    }
}

#[cfg(all(test, wakefd_loom))]
#[path = "queue_loom_tests.rs"]
mod queue_loom_tests;

/// Test seams: a pop driven step by step, as a stalled sender runs it.
#[cfg(all(test, not(wakefd_loom)))]
impl<T> Queue<T> {
    /// What 2^32 pops by other senders would do to the free list's front
    /// while `stalled` is half-way through its pop: nothing, as no other
    /// sender pops until it ends.
    fn overtake_by_2_32_pops(&self, stalled: &Result<u32, Pop>) {
        assert!(stalled.is_ok(), "the stalled pop has begun");
        assert_eq!(self.begin_pop(), Err(Pop::Busy), "a pop overlapped it");
    }

    /// The stalled pop's end.
    fn finish_pop(&self, stalled: Result<u32, Pop>) -> Option<u32> {
        self.end_pop(stalled.ok()?).ok().map(|(id, _)| id)
    }
}

#[cfg(all(test, not(wakefd_loom)))]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// The slots of queued messages, newest first.
    fn queued<T>(queue: &Queue<T>) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut id = (queue.head.load(Acquire) & ID) as u32;
        while id != NIL {
            assert!(ids.len() < 1000, "the queued stack is a cycle");
            ids.push(id);
            id = queue.slot(id).next.load(Relaxed);
        }
        ids
    }

    #[test]
    fn every_id_is_found_in_its_chunk() {
        // Both ends of every chunk, the last one included: the id of a
        // slot and its chunk's first id give its place in the chunk.
        for k in 0..CHUNKS {
            let (first, last) = (first_id(k), first_id(k + 1) - 1);
            assert_eq!(last - first + 1, BASE << k);
            for id in [first, first + 1, last - 1, last] {
                assert_eq!(chunk_of(u32::try_from(id).unwrap()), k, "id {id}");
            }
        }
        assert!(first_id(CHUNKS) - 1 <= u32::MAX as usize);
        // Every id of the first chunks, one by one.
        let mut k = 0;
        for id in 1..first_id(8) {
            if id == first_id(k + 1) {
                k += 1;
            }
            assert_eq!(chunk_of(id as u32), k, "id {id}");
        }
    }

    #[test]
    fn slots_of_every_chunk_are_distinct_and_in_place() {
        // Enough messages for five chunks; each slot holds its message, and
        // no two ids share a slot.
        let queue = Queue::<usize>::new();
        let n = first_id(5) - 1;
        for i in 0..n {
            queue.push(i).unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        for id in queued(&queue) {
            assert!(seen.insert(queue.slot(id) as *const Slot<usize>), "id {id}");
        }
        assert_eq!(seen.len(), n);
        let mut out = VecDeque::new();
        assert_eq!(queue.take_all(&mut out), n);
        assert!(out.into_iter().eq(0..n));
    }

    /// A sender stalled in the middle of a pop, while the others pop until
    /// the slot it read is at the front again, as it would be after 2^32
    /// pops: its pop, and every pop after it, hands out a slot that no one
    /// else holds.
    #[test]
    fn a_pop_stalled_for_2_32_pops_hands_out_no_slot_twice() {
        let queue = Queue::<u32>::new();
        let mut got = VecDeque::new();
        for msg in 0..5 {
            queue.push(msg).unwrap();
        }
        queue.take_all(&mut got);
        // The free list: five slots.
        let stalled = queue.begin_pop();
        // The others: the front's slot goes round (queued, taken, freed),
        // a sender holds the slot after it, and pushes take the rest, so
        // that the front is the stalled pop's slot again.
        queue.push(5).unwrap();
        queue.take_all(&mut got);
        let (held, _) = queue.alloc();
        for msg in 6..9 {
            queue.push(msg).unwrap();
        }
        queue.overtake_by_2_32_pops(&stalled);

        let mut busy: Vec<u32> = queued(&queue);
        busy.push(held);
        let mine = queue.finish_pop(stalled);
        let mut handed_out: Vec<u32> = mine.into_iter().collect();
        handed_out.push(queue.alloc().0);
        handed_out.push(queue.alloc().0);
        for id in handed_out {
            assert!(
                !busy.contains(&id),
                "slot {id} handed out while in use (in use: {busy:?})"
            );
            busy.push(id);
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    }

    /// The push count counts every push, and takes, a close and the failed
    /// pushes after it leave it as it is.
    #[test]
    fn the_push_count_survives_takes_and_the_close() {
        let queue = Queue::<u32>::new();
        let mut got = VecDeque::new();
        for msg in 0..3 {
            queue.push(msg).unwrap();
        }
        queue.take_all(&mut got);
        queue.push(3).unwrap();
        assert_eq!(queue.pushes(), 4);
        assert_eq!(queue.close(&mut got), 1);
        assert!(queue.push(4).is_err());
        assert_eq!(queue.pushes(), 4);
        assert_eq!(got, [0, 1, 2, 3]);
    }
}
