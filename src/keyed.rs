//! Wake keys: one fd, any number of wake sources, and a drain that finds the
//! fired ones without scanning the others.
//!
//! A [`KeyedNotifier`] is a [`Notifier`] plus a two-level bitmap of atomic
//! words with room for a fixed number of keys (`0..capacity`). A
//! [`KeyedWaker`] wakes one key; [`KeyedNotifier::drain`] yields exactly the
//! keys notified since the last drain, each once, in ascending order.
//!
//! The bitmap and the orders that make it lose no key are in
//! `keyed/bitmap.rs`; the fd, waits, polls and sleep-aware calls are the
//! engine's (`engine.rs`), as for a [`Notifier`].

mod bitmap;

use std::fmt;
use std::io;
use std::iter::FusedIterator;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll};

use crate::engine::{forward_to_engine, Engine, Handle, Work};
use crate::loom::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use crate::{sys, Awake, Backend, Stats};
use bitmap::{Bitmap, Cursor};
#[cfg(doc)]
use {
    crate::{Notifier, Waker},
    mio::Interest,
};

/// What a `KeyedNotifier` shares with its `KeyedWaker`s.
#[derive(Debug)]
struct Shared {
    bits: Bitmap,
    capacity: usize,
    /// The `KeyedNotifier` was dropped. Checked by every notify, because a
    /// notify of a pending key never reaches the `Waker`.
    closed: AtomicBool,
    /// Wakes the engine: a newly set key, and a drain that leaves keys.
    handle: Handle,
}

/// A wake counts for a wait only if it left a key set (a wake whose keys an
/// earlier drain yielded is waited past).
impl Work for Shared {
    fn rearmed(&self, woken: bool) -> bool {
        woken && self.bits.any()
    }
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
    engine: Engine,
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
        let engine = Engine::new(backend, "KeyedNotifier")?;
        let shared = Arc::new(Shared {
            bits,
            capacity,
            closed: AtomicBool::new(false),
            handle: engine.handle(),
        });
        Ok(KeyedNotifier { engine, shared })
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
        self.engine.backend()
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
        if let Err(err) = self.engine.drain() {
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
        let woken = self
            .engine
            .wait(sys::deadline(timeout), &*self.shared)
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

    fn rewake_after(&self, err: io::Error) -> io::Error {
        if self.shared.bits.any() {
            let _ = self.shared.handle.notify("KeyedNotifier");
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
        if let Err(err) = self.engine.poll(poll, events, timeout, &*self.shared) {
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
        self.engine.announce_sleep(&*self.shared)
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
    pub fn announce_awake(&self) -> Awake {
        self.engine.announce_awake()
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
        self.engine.set_spin(budget);
    }

    /// The spin budget, as [`Notifier::spin`].
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::KeyedNotifier::new(8)?;
    /// assert_eq!(notifier.spin(), std::time::Duration::ZERO);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spin(&self) -> Duration {
        self.engine.spin()
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
        self.engine.stats()
    }

    /// Test-only fault injection: the next `n` wake writes fail.
    #[cfg(wakefd_fault_injection)]
    #[doc(hidden)]
    pub fn fail_next_writes(&self, n: usize) {
        self.engine.fail_next_writes(n);
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
            .field("backend", &self.engine.backend())
            .field("fd", &self.engine.raw())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

forward_to_engine!(KeyedNotifier);

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
            let _ = self.shared.handle.notify("KeyedNotifier");
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
        shared.handle.check_fork("KeyedWaker")?;
        // Acquire: pairs with the drop's Release.
        if shared.closed.load(Acquire) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        match shared.bits.set(*key) {
            Some(false) => Ok(()),
            Some(true) => shared.handle.notify("KeyedWaker"),
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
            .field("fd", &self.inner.shared.handle.raw())
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
