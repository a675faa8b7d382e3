//! Wake keys: one fd, any number of wake sources, and a drain that finds the
//! fired ones without scanning the others.
//!
//! A [`KeyedNotifier`] is a [`Notifier`] plus a two-level bitmap of atomic
//! words with room for a fixed number of keys (`0..capacity`). A
//! [`KeyedWaker`] wakes one key; [`KeyedNotifier::drain`] yields exactly the
//! keys notified since the last drain, each once, in ascending order.
//!
//! | file | what |
//! | --- | --- |
//! | `src/keyed.rs` | `KeyedNotifier`, `KeyedWaker`, `Keys`, `KeyOutOfRange`; the bitmap and its orderings |
//! | `src/keyed/loom_tests.rs` | loom models of the bitmap on top of the `state` protocol, and a broken drain order they catch |
//! | `tests/keyed.rs` | integration tests on every backend (mio, `wait`, 65 536 keys, partial drains) |
//! | `tests/keyed_fds.rs` | its own binary: a keyed notifier holds the backend's fds and no more |
//! | `benches/keyed.rs` | drain cost against a libuv-style flag scan; pending-key notify against `Waker::notify` |
//! | `examples/keyed.rs` | a loop owning 10 000 keyed sources woken from 4 threads |
//!
//! # The bitmap
//!
//! Key `k` is bit `k % W` of key word `k / W` (`W` = `usize::BITS`); key word
//! `w` is bit `w % W` of summary word `w / W`. With 65 536 keys on a 64-bit
//! target that is 1 024 key words under 16 summary words.
//!
//! * **notify(k)**: set `k`'s bit in its key word (one read-modify-write). If
//!   it was set already the key is pending: return, no system call. Otherwise
//!   set the key word's summary bit, then call the ordinary [`Waker::notify`]
//!   (which coalesces on the notifier's own pending bit).
//! * **drain**: first [`Notifier::drain`] (re-arm the fd), then for each
//!   non-zero summary word swap it to 0, and for each bit it had swap that key
//!   word to 0 and yield its bits. Cost: one load per summary word plus one
//!   swap per fired key word: O(keys fired + capacity / W²).
//!
//! The orders matter, and the loom models in `src/keyed/loom_tests.rs` check
//! them:
//!
//! * The drain clears a summary word *before* it reads the key words under
//!   it. Read first and clear after, and a notify that sets a key bit between
//!   the two finds the summary bit still set, so the summary bit it relies on
//!   is then cleared under it: the key sits in its word with nothing pointing
//!   at it, and no drain finds it (`summary_cleared_after_read_loses_keys`).
//! * A notify that sets a key bit after the drain swapped that key word read
//!   (AcqRel) the swap, so the drain's re-arm of the notifier happens before
//!   the notify's `Waker::notify`: that wake is a new one, and the next drain
//!   finds the key through the summary bit the notify set in between.
//! * A notify whose key bit the drain's swap read is yielded by that drain,
//!   and the swap (Acquire) synchronizes with the notify's set (Release):
//!   everything the sender did before `notify` is visible when the key is
//!   yielded.
//! * A summary word that a drain loads as 0 (and skips without a swap) was
//!   either clear when the notifier was re-armed, or was set by a notify
//!   whose `Waker::notify` comes after the re-arm: a wake is due, and the
//!   next drain finds it.

use std::collections::TryReserveError;
use std::fmt;
use std::io;
use std::iter::FusedIterator;
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
use crate::sys;
use crate::{Backend, Notifier, Stats, Waker};

/// Bits per atomic word.
const W: usize = usize::BITS as usize;

/// The two-level bitmap: the part of the keyed notifier that the loom model
/// drives without a real fd.
pub(crate) struct Bitmap {
    /// Bit `k % W` of word `k / W` is key `k`.
    words: Box<[AtomicUsize]>,
    /// Bit `w % W` of summary word `w / W` says key word `w` may be non-zero.
    summary: Box<[AtomicUsize]>,
}

impl Bitmap {
    /// A bitmap for keys `0..capacity`, or the allocator's refusal (a
    /// capacity beyond the machine's memory) instead of an abort.
    pub(crate) fn new(capacity: usize) -> Result<Bitmap, TryReserveError> {
        let words = capacity.div_ceil(W);
        let atomics = |n: usize| -> Result<Box<[AtomicUsize]>, TryReserveError> {
            let mut v = Vec::new();
            v.try_reserve_exact(n)?;
            v.extend((0..n).map(|_| AtomicUsize::new(0)));
            Ok(v.into_boxed_slice())
        };
        Ok(Bitmap {
            words: atomics(words)?,
            summary: atomics(words.div_ceil(W))?,
        })
    }

    /// The sender's half: sets `key`'s bit. `Some(true)` if it was clear, and
    /// then the caller must wake the notifier; `Some(false)` if the key was
    /// pending already; `None` if `key` is beyond the bitmap. Atomics only,
    /// no panic.
    pub(crate) fn set(&self, key: usize) -> Option<bool> {
        let w = key / W;
        let bit = 1 << (key % W);
        // Release: the sender's work before `notify` happens-before the
        // drain's swap that reads this bit (or a later value: the swap is an
        // RMW, so it continues this release sequence even when this call only
        // found the bit set). Acquire: if this reads a drain's swap to 0, the
        // drain's re-arm of the notifier, sequenced before the swap, happens
        // before the `Waker::notify` this call goes on to make.
        let prev = self.words.get(w)?.fetch_or(bit, AcqRel);
        if prev & bit != 0 {
            return Some(false);
        }
        // Point the drain at the word. AcqRel so that a drain that reads this
        // summary bit also sees the key bit set before it.
        self.summary.get(w / W)?.fetch_or(1 << (w % W), AcqRel);
        Some(true)
    }

    /// Whether any key may be set. Relaxed loads of the summary words only.
    pub(crate) fn any(&self) -> bool {
        self.summary.iter().any(|s| s.load(Relaxed) != 0)
    }
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bitmap")
            .field("words", &self.words.len())
            .field("summary_words", &self.summary.len())
            .finish()
    }
}

/// Where a drain is in the bitmap: the summary bits and key bits it has
/// taken out (swapped to 0) and not yet yielded, and the next summary word to
/// look at.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The next summary word to load.
    next: usize,
    /// The summary word `groups` came from.
    group: usize,
    /// Summary bits taken and not yet visited.
    groups: usize,
    /// The key word `keys` came from.
    word: usize,
    /// Key bits taken and not yet yielded.
    keys: usize,
}

impl Cursor {
    /// A cursor at the end: yields nothing, and has nothing to put back.
    fn done(map: &Bitmap) -> Cursor {
        Cursor {
            next: map.summary.len(),
            ..Cursor::default()
        }
    }

    /// The next fired key. Call only after the notifier was re-armed. Once
    /// it has returned `None` it always does: it has passed every summary
    /// word, and a key set after it passed comes with a wake of its own (see
    /// the module doc), for the next drain.
    pub(crate) fn next(&mut self, map: &Bitmap) -> Option<usize> {
        loop {
            if self.keys != 0 {
                let key = self.word * W + self.keys.trailing_zeros() as usize;
                self.keys &= self.keys - 1;
                return Some(key);
            }
            if self.groups != 0 {
                self.word = self.group * W + self.groups.trailing_zeros() as usize;
                self.groups &= self.groups - 1;
                // After the summary swap that gave us this bit (see the
                // module doc). Acquire: pairs with the senders' Release.
                // Release: a sender whose set reads this 0 sees our re-arm.
                self.keys = map.words.get(self.word).map_or(0, |w| w.swap(0, AcqRel));
                continue;
            }
            let summary = map.summary.get(self.next..)?;
            let Some((i, s)) = summary
                .iter()
                .enumerate()
                .find(|(_, s)| s.load(Relaxed) != 0)
            else {
                // The end: stay there (fused), with nothing to put back.
                self.next = map.summary.len();
                return None;
            };
            self.group = self.next + i;
            self.next = self.group + 1;
            // Clear the summary word *before* reading the key words under
            // it (see the module doc). A sender sets its key bit before its
            // summary bit, so a key bit whose summary bit this swap clears
            // is either taken by our key-word swap below, or set after it,
            // by a notify whose summary bit and wake both come after our
            // re-arm. AcqRel: pairs with the senders' AcqRel summary sets.
            self.groups = s.swap(0, AcqRel);
        }
    }

    /// Puts back what was taken and not yielded, as a sender would (key bits
    /// first, then the summary bit). `true` if any key is left in the bitmap
    /// for a later drain, which then needs a wake.
    pub(crate) fn put_back(&mut self, map: &Bitmap) -> bool {
        if self.keys != 0 {
            if let Some(word) = map.words.get(self.word) {
                word.fetch_or(self.keys, AcqRel);
            }
            self.groups |= 1 << (self.word % W);
            self.keys = 0;
        }
        let mut left = false;
        if self.groups != 0 {
            if let Some(s) = map.summary.get(self.group) {
                s.fetch_or(self.groups, AcqRel);
            }
            self.groups = 0;
            left = true;
        }
        let rest = map.summary.get(self.next..).unwrap_or(&[]);
        self.next = map.summary.len();
        left || rest.iter().any(|s| s.load(Relaxed) != 0)
    }
}

/// What a `KeyedNotifier` shares with its `KeyedWaker`s.
#[derive(Debug)]
struct Shared {
    bits: Bitmap,
    capacity: usize,
    /// The `KeyedNotifier` was dropped. Checked by every notify, because a
    /// notify of a pending key never reaches the `Waker`.
    closed: AtomicBool,
    /// Wakes the notifier: a newly set key, and a drain that leaves keys.
    waker: Waker,
}

/// The event loop's end: one fd (a [`Notifier`]) and any number of wake
/// keys, `0..capacity`. A drain yields exactly the keys woken since the last
/// one, without looking at the others.
///
/// Register it with a [`mio::Poll`] ([`Interest::READABLE`]) or watch its raw
/// fd; when it is readable, call [`drain`](KeyedNotifier::drain) and handle
/// each key it yields. Threads with no reactor can block in
/// [`wait`](KeyedNotifier::wait). The fd, mio registration and close
/// behaviour are those of the [`Notifier`] inside.
///
/// Dropping it makes every later [`KeyedWaker::notify`] fail with
/// `BrokenPipe`.
///
/// # Examples
///
/// ```
/// use mio::{Events, Interest, Poll, Token};
/// use std::time::Duration;
/// use wakefd::KeyedNotifier;
///
/// let mut poll = Poll::new()?;
/// let mut notifier = KeyedNotifier::new(65_536)?;
/// poll.registry().register(&mut notifier, Token(0), Interest::READABLE)?;
///
/// let wakers = [notifier.waker(7)?, notifier.waker(40_000)?];
/// std::thread::spawn(move || wakers.iter().try_for_each(|w| w.notify()))
///     .join()
///     .unwrap()?;
///
/// let mut events = Events::with_capacity(8);
/// let mut woken = Vec::new();
/// while woken.len() < 2 {
///     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
///     woken.extend(notifier.drain()?);
/// }
/// assert_eq!(woken, [7, 40_000]);
/// # std::io::Result::Ok(())
/// ```
pub struct KeyedNotifier {
    notifier: Notifier,
    shared: Arc<Shared>,
}

impl KeyedNotifier {
    /// A keyed notifier for keys `0..capacity`, on the platform's default
    /// backend ([`Backend::default`]). The bitmap takes about `capacity / 8`
    /// bytes.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` if the bitmap for `capacity` keys cannot be
    /// allocated (a capacity far beyond the machine's memory, such as
    /// `usize::MAX`); those of [`Notifier::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(1024)?;
    /// assert_eq!(notifier.capacity(), 1024);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn new(capacity: usize) -> io::Result<KeyedNotifier> {
        KeyedNotifier::with_backend(Backend::default(), capacity)
    }

    /// A keyed notifier for keys `0..capacity` on the given backend.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` if the bitmap for `capacity` keys cannot be
    /// allocated (nothing is opened then); those of
    /// [`Notifier::with_backend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Backend, KeyedNotifier};
    ///
    /// let mut notifier = KeyedNotifier::with_backend(Backend::TcpLoopback, 100)?;
    /// notifier.waker(99)?.notify()?;
    /// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [99]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_backend(backend: Backend, capacity: usize) -> io::Result<KeyedNotifier> {
        let bits = Bitmap::new(capacity).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no memory for the bitmap of a KeyedNotifier of {capacity} keys: {err}"),
            )
        })?;
        let notifier = Notifier::with_backend(backend)?;
        let shared = Arc::new(Shared {
            bits,
            capacity,
            closed: AtomicBool::new(false),
            waker: notifier.waker(),
        });
        Ok(KeyedNotifier { notifier, shared })
    }

    /// The number of keys: valid keys are `0..capacity`.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(10)?;
    /// assert_eq!(notifier.capacity(), 10);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The backend of the notifier inside.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(10)?;
    /// assert_eq!(notifier.backend(), wakefd::Backend::default());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn backend(&self) -> Backend {
        self.notifier.backend()
    }

    /// A handle that wakes `key` from any thread. Make as many as you like,
    /// for the same key or others. Each call allocates the waker's small
    /// shared block (it is one pointer wide); its clones share it.
    ///
    /// # Errors
    ///
    /// [`KeyOutOfRange`] if `key >= capacity`.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(10)?;
    /// assert_eq!(notifier.waker(9)?.key(), 9);
    /// let err = notifier.waker(10).unwrap_err();
    /// assert_eq!((err.key(), err.capacity()), (10, 10));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn waker(&self, key: usize) -> Result<KeyedWaker, KeyOutOfRange> {
        if key >= self.shared.capacity {
            return Err(KeyOutOfRange {
                key,
                capacity: self.shared.capacity,
            });
        }
        Ok(KeyedWaker {
            inner: Arc::new(Key {
                shared: Arc::clone(&self.shared),
                key,
            }),
        })
    }

    /// Re-arms the notifier, then returns the keys notified since the last
    /// drain: each once, in ascending order, found in O(keys fired +
    /// capacity / 4 096) on a 64-bit target.
    ///
    /// Call it when the fd is readable. Everything a thread did before its
    /// [`KeyedWaker::notify`] returned is visible when its key is yielded.
    /// Afterwards the fd behaves as after [`Notifier::drain`]: quiet for a
    /// level-triggered watcher, a fresh edge for the next notify. A
    /// readiness event may yield no key (see [`Notifier::drain`]).
    ///
    /// Keys are taken out of the bitmap as the iterator reaches them. If it
    /// is dropped before the end (or a panic unwinds through the loop), the
    /// keys it has not yielded are put back and the notifier is woken, so the
    /// next readiness event yields them: no key is stranded. A key notified
    /// after it was yielded is yielded again by a later drain.
    ///
    /// # Errors
    ///
    /// Those of [`Notifier::drain`]. The keys then stay pending, and if any
    /// is, the notifier is woken again.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut notifier = wakefd::KeyedNotifier::new(200)?;
    /// for key in [150, 3, 150] {
    ///     notifier.waker(key)?.notify()?;
    /// }
    /// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [3, 150]);
    /// assert_eq!(notifier.drain()?.next(), None);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn drain(&mut self) -> io::Result<Keys<'_>> {
        if let Err(err) = self.notifier.drain() {
            // The notifier re-arms even when its read fails.
            return Err(self.rewake_after(err));
        }
        Ok(Keys {
            shared: &self.shared,
            cursor: Cursor::default(),
        })
    }

    /// For a thread with no reactor: blocks until a key is notified or
    /// `timeout` passes (`None`: no limit), then drains like
    /// [`drain`](KeyedNotifier::drain). On time-out the iterator is empty.
    /// The timeout is honoured as [`Notifier::wait`] honours it: to the
    /// microsecond where the platform allows (`ppoll` on Linux), never
    /// early; a wake whose keys an earlier drain already took does not end
    /// it.
    ///
    /// # Errors
    ///
    /// Those of [`Notifier::wait`]. Keys still set then are woken again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut notifier = wakefd::KeyedNotifier::new(10)?;
    /// assert_eq!(notifier.wait(Some(Duration::from_millis(1)))?.next(), None);
    /// let waker = notifier.waker(4)?;
    /// std::thread::spawn(move || waker.notify());
    /// let keys: Vec<usize> = notifier.wait(Some(Duration::from_secs(10)))?.collect();
    /// assert_eq!(keys, [4]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Keys<'_>> {
        self.notifier.check_fork_as("KeyedNotifier")?;
        let woken = self
            .wait_until(sys::deadline(timeout))
            .map_err(|err| self.rewake_after(err))?;
        let cursor = if woken {
            Cursor::default()
        } else {
            Cursor::done(&self.shared.bits)
        };
        Ok(Keys {
            shared: &self.shared,
            cursor,
        })
    }

    /// Blocks until a wake with a key set (then re-armed: `Ok(true)`) or the
    /// deadline (`Ok(false)`), through the notifier's own blocking step, so
    /// that the deadline reaches `ppoll` as it is.
    fn wait_until(&self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            // No flush: the re-arm below takes any wake absorbed meanwhile.
            if !self.notifier.block_once(deadline, || false, false)? {
                return Ok(false);
            }
            // poll(2) is level-triggered: the fd must really be read here,
            // even where `drain` may skip the read.
            if self.notifier.rearm(true)? && self.shared.bits.any() {
                return Ok(true);
            }
            // A stray byte, or a wake whose key an earlier drain already
            // yielded: nothing new, keep waiting.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// After a failed drain or wait: the notifier may have re-armed, so a key
    /// left in the bitmap would wait for a wake that is not coming. Wakes it
    /// again, and returns `err`.
    fn rewake_after(&self, err: io::Error) -> io::Error {
        if self.shared.bits.any() {
            let _ = self.shared.waker.notify();
        }
        err
    }

    /// The sleep-aware mio loop in one call, as [`Notifier::poll`]: announce
    /// sleep, `poll.poll(events, timeout)` (zero timeout if a wake is
    /// pending), announce the loop awake, then drain as
    /// [`drain`](KeyedNotifier::drain) does. While the loop runs between two
    /// calls, a newly set key makes no system call.
    ///
    /// # Errors
    ///
    /// Those of [`Notifier::poll`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mio::{Events, Interest, Poll, Token};
    /// use std::time::Duration;
    ///
    /// let mut poll = Poll::new()?;
    /// let mut notifier = wakefd::KeyedNotifier::new(100)?;
    /// poll.registry().register(&mut notifier, Token(0), Interest::READABLE)?;
    /// let waker = notifier.waker(42)?;
    /// let mut events = Events::with_capacity(8);
    /// let _awake = notifier.announce_awake(); // sleep-aware from here on
    /// assert_eq!(notifier.poll(&mut poll, &mut events, Some(Duration::ZERO))?.count(), 0);
    /// waker.notify()?; // the loop is awake: no system call
    /// let keys: Vec<usize> = notifier.poll(&mut poll, &mut events, None)?.collect();
    /// assert_eq!(keys, [42]);
    /// assert_eq!(notifier.stats().wakes_written, 0);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn poll(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<Keys<'_>> {
        if let Err(err) = self.notifier.poll(poll, events, timeout) {
            return Err(self.rewake_after(err));
        }
        Ok(Keys {
            shared: &self.shared,
            cursor: Cursor::default(),
        })
    }

    /// As [`Notifier::announce_sleep`], for a reactor of your own: `true` if
    /// the loop may block, `false` if a key is already set (block with a zero
    /// timeout, then drain).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut notifier = wakefd::KeyedNotifier::new(8)?;
    /// let waker = notifier.waker(3)?;
    /// let awake = notifier.announce_awake();
    /// waker.notify()?; // the loop is awake: no system call
    /// assert!(!awake.announce_sleep()); // key 3 is set: don't block
    /// // ... the reactor's blocking call, with a zero timeout ...
    /// awake.announce_awake();
    /// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [3]);
    /// assert!(awake.announce_sleep()); // nothing set: may block
    /// awake.announce_awake();
    /// # std::io::Result::Ok(())
    /// ```
    #[must_use = "`false` means a key is set: the loop must not block"]
    pub fn announce_sleep(&self) -> bool {
        self.notifier.announce_sleep()
    }

    /// As [`Notifier::announce_awake`]: while the returned guard lives,
    /// setting a key makes no system call until the next
    /// [`announce_sleep`](KeyedNotifier::announce_sleep); block only through
    /// `poll`/`wait` or after announcing sleep. Dropping it makes the loop
    /// plain again.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(8)?;
    /// let waker = notifier.waker(0)?;
    /// let _awake = notifier.announce_awake();
    /// waker.notify()?;
    /// assert_eq!(notifier.stats().wakes_written, 0);
    /// assert_eq!(notifier.stats().wakes_absorbed, 1);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_awake(&self) -> crate::Awake {
        self.notifier.announce_awake()
    }

    /// As [`Notifier::set_spin`]: how long `poll` and `wait` spin first
    /// (read its notes on the CPU it burns).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut notifier = wakefd::KeyedNotifier::new(8)?;
    /// notifier.set_spin(Duration::from_micros(50));
    /// let waker = notifier.waker(5)?;
    /// std::thread::spawn(move || waker.notify());
    /// let keys: Vec<usize> = notifier.wait(Some(Duration::from_secs(10)))?.collect();
    /// assert_eq!(keys, [5]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_spin(&mut self, budget: Duration) {
        self.notifier.set_spin(budget)
    }

    /// The wake counters of the underlying notifier ([`Notifier::stats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut notifier = wakefd::KeyedNotifier::new(8)?;
    /// let waker = notifier.waker(1)?;
    /// waker.notify()?; // the loop announced nothing: a write
    /// waker.notify()?; // pending already: coalesced, not counted
    /// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [1]);
    /// let stats = notifier.stats();
    /// assert_eq!((stats.wakes_written, stats.drains_woken), (1, 1));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.notifier.stats()
    }
}

impl Drop for KeyedNotifier {
    fn drop(&mut self) {
        // Release: a notify that loads `true` sees the notifier gone. The
        // `Notifier` inside closes its own state when it drops next.
        self.shared.closed.store(true, Release);
    }
}

impl fmt::Debug for KeyedNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedNotifier")
            .field("notifier", &self.notifier)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

#[cfg(unix)]
impl AsFd for KeyedNotifier {
    /// The fd to watch for readability: the inner [`Notifier`]'s.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.notifier.as_fd()
    }
}

#[cfg(unix)]
impl AsRawFd for KeyedNotifier {
    /// The fd to watch for readability: the inner [`Notifier`]'s.
    fn as_raw_fd(&self) -> RawFd {
        self.notifier.as_raw_fd()
    }
}

#[cfg(windows)]
impl AsSocket for KeyedNotifier {
    /// The socket to watch for readability: the inner [`Notifier`]'s.
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.notifier.as_socket()
    }
}

#[cfg(windows)]
impl AsRawSocket for KeyedNotifier {
    /// The socket to watch for readability: the inner [`Notifier`]'s.
    fn as_raw_socket(&self) -> RawSocket {
        self.notifier.as_raw_socket()
    }
}

/// Registers the inner [`Notifier`]; use [`Interest::READABLE`].
impl mio::event::Source for KeyedNotifier {
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

/// The keys a [`KeyedNotifier::drain`] found, in ascending order.
///
/// Dropping it before the end puts the keys it has not yielded back and
/// wakes the notifier, so that they are yielded after the next readiness
/// event. It is fused: once it has returned `None` it always does, and a key
/// that fires after that comes with a wake of its own, for the next drain.
///
/// # Examples
///
/// ```
/// let mut notifier = wakefd::KeyedNotifier::new(10)?;
/// for key in [1, 2, 3] {
///     notifier.waker(key)?.notify()?;
/// }
/// // Take one key per readiness event: the rest are put back and re-woken.
/// assert_eq!(notifier.drain()?.next(), Some(1));
/// assert_eq!(notifier.drain()?.next(), Some(2));
/// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [3]);
/// # std::io::Result::Ok(())
/// ```
#[must_use = "keys not taken from a drain are put back and woken again"]
pub struct Keys<'a> {
    shared: &'a Shared,
    cursor: Cursor,
}

impl Iterator for Keys<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.cursor.next(&self.shared.bits)
    }
}

impl FusedIterator for Keys<'_> {}

impl Drop for Keys<'_> {
    fn drop(&mut self) {
        if self.cursor.put_back(&self.shared.bits) {
            // The notifier was re-armed when this drain began, so the keys
            // left need a wake of their own. A failure leaves them pending
            // for the next successful wake (see `Waker::notify`).
            let _ = self.shared.waker.notify();
        }
    }
}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// Wakes one key of a [`KeyedNotifier`] from any thread. Cheap to clone
/// (a reference-count increment), one pointer wide.
///
/// It converts into a [`std::task::Waker`] that sets its key, without
/// allocating (see `impl From<KeyedWaker> for std::task::Waker`): an
/// executor on a reactor can give each task a key and poll exactly the
/// tasks whose keys a drain yields (`examples/executor.rs`).
///
/// # Examples
///
/// ```
/// let mut notifier = wakefd::KeyedNotifier::new(10)?;
/// let waker = notifier.waker(5)?;
/// let other = waker.clone();
/// std::thread::spawn(move || other.notify()).join().unwrap()?;
/// waker.notify()?; // coalesced: key 5 is pending
/// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [5]);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct KeyedWaker {
    /// One pointer, so that a [`std::task::Waker`] can carry it.
    inner: Arc<Key>,
}

/// What a `KeyedWaker` and its clones share: the notifier's state and the
/// key.
#[derive(Debug)]
struct Key {
    shared: Arc<Shared>,
    key: usize,
}

impl KeyedWaker {
    /// Marks this key woken and wakes the notifier, unless the key is
    /// already pending.
    ///
    /// While the key is pending (notified, not yet yielded by a drain) this
    /// is atomic operations only: a load and one read-modify-write, no
    /// system call. Otherwise it sets the key's summary bit and calls
    /// [`Waker::notify`], which itself makes no system call while the
    /// notifier has a wake pending. Everything this thread did before
    /// `notify` returned `Ok` is visible when the loop's drain yields the
    /// key.
    ///
    /// Async-signal-safe: atomics and [`Waker::notify`] only, no allocation,
    /// no lock, no panic.
    ///
    /// In a forked child it fails, as [`Waker::notify`] does, with an error
    /// saying the waker belongs to the parent process, and touches nothing.
    ///
    /// # Errors
    ///
    /// `ErrorKind::BrokenPipe` once the [`KeyedNotifier`] is dropped; the
    /// errors of [`Waker::notify`]. After a failed write the key stays
    /// pending, and it is yielded after the next successful wake of any key.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut notifier = wakefd::KeyedNotifier::new(10)?;
    /// let waker = notifier.waker(3)?;
    /// waker.notify()?;
    /// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [3]);
    /// drop(notifier);
    /// assert_eq!(waker.notify().unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn notify(&self) -> io::Result<()> {
        let Key { shared, key } = &*self.inner;
        // In a forked child, fail before touching anything: the key bits are
        // the child's copy, but the wake they stand for is the parent's.
        shared.waker.check_fork()?;
        // Acquire: pairs with the drop's Release.
        if shared.closed.load(Acquire) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        match shared.bits.set(*key) {
            Some(false) => Ok(()),
            Some(true) => shared.waker.notify(),
            // Not reached: the key was checked against the capacity.
            None => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    /// The key this waker wakes.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(10)?;
    /// assert_eq!(notifier.waker(2)?.key(), 2);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn key(&self) -> usize {
        self.inner.key
    }

    /// The shared block's pointer, owning this waker's reference (for the
    /// `std::task::Waker` in `task.rs`).
    pub(crate) fn into_raw(self) -> *const () {
        Arc::into_raw(self.inner).cast()
    }

    /// The waker whose reference `ptr` owns.
    ///
    /// # Safety
    ///
    /// `ptr` comes from [`into_raw`](KeyedWaker::into_raw), and its
    /// reference has not been taken back yet; this takes it back.
    pub(crate) unsafe fn from_raw(ptr: *const ()) -> KeyedWaker {
        KeyedWaker {
            // SAFETY: `ptr` is `Arc::into_raw` of an `Arc<Key>` whose
            // reference is still owned (our caller's contract).
            inner: unsafe { Arc::from_raw(ptr.cast::<Key>()) },
        }
    }
}

impl fmt::Debug for KeyedWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedWaker")
            .field("key", &self.inner.key)
            .field("waker", &self.inner.shared.waker)
            .finish()
    }
}

/// A key at or beyond the capacity of the [`KeyedNotifier`].
///
/// Converts into an `io::Error` of kind `InvalidInput`, so `?` works in
/// functions that return `io::Result`.
///
/// # Examples
///
/// ```
/// let notifier = wakefd::KeyedNotifier::new(4)?;
/// let err = notifier.waker(4).unwrap_err();
/// assert_eq!(err.to_string(), "wake key 4 is out of range: the capacity is 4");
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOutOfRange {
    key: usize,
    capacity: usize,
}

impl KeyOutOfRange {
    /// The key that was asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(4)?;
    /// assert_eq!(notifier.waker(9).unwrap_err().key(), 9);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn key(&self) -> usize {
        self.key
    }

    /// The capacity of the notifier: valid keys are `0..capacity`.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(4)?;
    /// assert_eq!(notifier.waker(9).unwrap_err().capacity(), 4);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Display for KeyOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wake key {} is out of range: the capacity is {}",
            self.key, self.capacity
        )
    }
}

impl std::error::Error for KeyOutOfRange {}

impl From<KeyOutOfRange> for io::Error {
    fn from(err: KeyOutOfRange) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

#[cfg(all(test, wakefd_loom))]
mod loom_tests;

#[cfg(all(test, not(wakefd_loom)))]
mod tests {
    use super::*;

    fn drain_all(map: &Bitmap) -> Vec<usize> {
        let mut cursor = Cursor::default();
        std::iter::from_fn(|| cursor.next(map)).collect()
    }

    #[test]
    fn sizes_round_up() {
        for (capacity, words, summary) in [(0, 0, 0), (1, 1, 1), (W, 1, 1), (W + 1, 2, 1)] {
            let map = Bitmap::new(capacity).unwrap();
            assert_eq!((map.words.len(), map.summary.len()), (words, summary));
        }
        let map = Bitmap::new(W * W + 1).unwrap();
        assert_eq!((map.words.len(), map.summary.len()), (W + 1, 2));
    }

    #[test]
    fn set_coalesces_per_key_and_drain_yields_each_once() {
        let map = Bitmap::new(65_536).unwrap();
        let keys = [0, 1, 63, 64, 4095, 4096, 65_535];
        for key in keys {
            assert_eq!(map.set(key), Some(true));
            assert_eq!(map.set(key), Some(false));
        }
        assert_eq!(map.set(65_536 * 2), None);
        assert!(map.any());
        assert_eq!(drain_all(&map), keys);
        assert!(!map.any());
        assert_eq!(drain_all(&map), []);
    }

    #[test]
    fn put_back_keeps_what_was_not_yielded() {
        let map = Bitmap::new(10_000).unwrap();
        let keys = [5, 6, 70, 9_000];
        for key in keys {
            map.set(key);
        }
        let mut cursor = Cursor::default();
        assert_eq!(cursor.next(&map), Some(5));
        assert!(cursor.put_back(&map));
        assert_eq!(cursor.next(&map), None);
        assert_eq!(drain_all(&map), [6, 70, 9_000]);

        let mut cursor = Cursor::default();
        assert_eq!(cursor.next(&map), None);
        assert!(!cursor.put_back(&map));
    }
}
