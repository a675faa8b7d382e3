//! [`std::task::Waker`]s that wake the loop, for executors that run futures
//! on a reactor: `From<Waker>` and `From<KeyedWaker>`.
//!
//! Each is a [`RawWakerVTable`] over the wakefd waker's own pointer (the
//! `Arc` of a [`Waker`]'s shared state, or of a [`KeyedWaker`]'s block), so
//! converting moves that reference into the `std::task::Waker`, cloning is
//! a reference-count increment, dropping a decrement, and `wake` /
//! `wake_by_ref` are `notify`: nothing is allocated after the wakefd waker
//! was made.
//!
//! `wake` has nowhere to put the `io::Result` of `notify`, and nothing is
//! lost by dropping it: a failed write (none is expected; `Stats` counts
//! it) leaves the wake marked failed, so the next `notify` through any
//! waker of the loop writes again instead of coalescing into it;
//! `BrokenPipe` means the loop is gone and nobody is left to poll the
//! future; in a forked child the parent's loop must not be woken at all.

use std::mem::ManuallyDrop;
use std::task::{RawWaker, RawWakerVTable};

use crate::engine::Handle;
use crate::{KeyedWaker, Waker};

/// A wakefd waker that a `std::task::Waker` can carry: one pointer that
/// owns a reference.
trait Raw: Clone {
    /// The table for `std::task::Waker`s that carry this type: a `static`,
    /// so that every `std::task::Waker` made from this type has the same
    /// table address (`will_wake` compares it; a `const` table may be
    /// duplicated per codegen unit).
    fn vtable() -> &'static RawWakerVTable;

    /// The pointer, owning this value's reference.
    fn into_raw(self) -> *const ();

    /// The value whose reference `ptr` owns.
    ///
    /// # Safety
    ///
    /// `ptr` comes from `into_raw` of this type and its reference has not
    /// been taken back yet; this takes it back.
    unsafe fn from_raw(ptr: *const ()) -> Self;

    /// `notify`, its result discarded (see the module doc).
    fn wake_loop(&self);
}

impl Raw for Waker {
    fn vtable() -> &'static RawWakerVTable {
        static VTABLE: RawWakerVTable = RawWakerVTable::new(
            clone::<Waker>,
            wake::<Waker>,
            wake_by_ref::<Waker>,
            drop_waker::<Waker>,
        );
        &VTABLE
    }

    fn into_raw(self) -> *const () {
        self.into_handle().into_raw()
    }

    unsafe fn from_raw(ptr: *const ()) -> Waker {
        // SAFETY: `ptr` is `Handle::into_raw` of a Waker's handle (from
        // `into_raw` above), whose reference is still owned: our caller's
        // contract is `Handle::from_raw`'s.
        Waker::from_handle(unsafe { Handle::from_raw(ptr) })
    }

    fn wake_loop(&self) {
        let _ = self.notify();
    }
}

impl Raw for KeyedWaker {
    fn vtable() -> &'static RawWakerVTable {
        static VTABLE: RawWakerVTable = RawWakerVTable::new(
            clone::<KeyedWaker>,
            wake::<KeyedWaker>,
            wake_by_ref::<KeyedWaker>,
            drop_waker::<KeyedWaker>,
        );
        &VTABLE
    }

    fn into_raw(self) -> *const () {
        KeyedWaker::into_raw(self)
    }

    unsafe fn from_raw(ptr: *const ()) -> KeyedWaker {
        // SAFETY: our caller's contract is `KeyedWaker::from_raw`'s.
        unsafe { KeyedWaker::from_raw(ptr) }
    }

    fn wake_loop(&self) {
        let _ = self.notify();
    }
}

/// The `std::task::Waker` that owns `waker`'s reference.
fn into_task_waker<T: Raw>(waker: T) -> std::task::Waker {
    let raw = RawWaker::new(waker.into_raw(), T::vtable());
    // SAFETY: the functions of `T::vtable()` keep `RawWaker`'s contract: the
    // data pointer owns one reference of a `T`, and `T` is `Send + Sync`
    // (a `Waker` or `KeyedWaker`), so the functions may run on any thread;
    // `clone` takes a reference of its own for the new `RawWaker`, `wake`
    // and `drop_waker` release the one they are given, and `wake_by_ref`
    // leaves it alone.
    unsafe { std::task::Waker::from_raw(raw) }
}

/// `RawWakerVTable::clone`: a reference-count increment.
unsafe fn clone<T: Raw>(ptr: *const ()) -> RawWaker {
    // SAFETY: `ptr` owns a reference (the contract of every function in the
    // table); `ManuallyDrop` leaves it owned by the `RawWaker` we were
    // called for.
    let waker = ManuallyDrop::new(unsafe { T::from_raw(ptr) });
    RawWaker::new(T::clone(&waker).into_raw(), T::vtable())
}

/// `RawWakerVTable::wake`: notifies, then releases the reference.
unsafe fn wake<T: Raw>(ptr: *const ()) {
    // SAFETY: `ptr` owns a reference, which `wake` consumes.
    let waker = unsafe { T::from_raw(ptr) };
    waker.wake_loop();
}

/// `RawWakerVTable::wake_by_ref`: notifies.
unsafe fn wake_by_ref<T: Raw>(ptr: *const ()) {
    // SAFETY: `ptr` owns a reference; `ManuallyDrop` leaves it owned by the
    // `RawWaker` we were called for.
    let waker = ManuallyDrop::new(unsafe { T::from_raw(ptr) });
    waker.wake_loop();
}

/// `RawWakerVTable::drop`: releases the reference.
unsafe fn drop_waker<T: Raw>(ptr: *const ()) {
    // SAFETY: `ptr` owns a reference, which `drop` consumes.
    drop(unsafe { T::from_raw(ptr) });
}

/// A future's waker that wakes the loop: `wake` and `wake_by_ref` are
/// [`Waker::notify`] (coalesced like it: while a wake is pending they make
/// no system call), and cloning is a reference-count increment of the
/// Waker's shared state. Converting, cloning, waking and dropping allocate
/// nothing.
///
/// The `io::Result` of `notify` is discarded: a failed write leaves the wake
/// marked failed, so the next notify writes again; `BrokenPipe` means the
/// loop is gone.
///
/// # Examples
///
/// A future that asks to be polled again wakes the loop:
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll};
/// use std::time::Duration;
///
/// let notifier = wakefd::Notifier::new()?;
/// let waker = std::task::Waker::from(notifier.waker());
/// let mut cx = Context::from_waker(&waker);
///
/// let mut yielded = false;
/// let mut future = pin!(std::future::poll_fn(|cx| {
///     if yielded {
///         return Poll::Ready(42);
///     }
///     yielded = true;
///     cx.waker().wake_by_ref(); // poll me again
///     Poll::Pending
/// }));
/// assert!(future.as_mut().poll(&mut cx).is_pending());
/// assert!(notifier.wait(Some(Duration::from_secs(10)))?); // the loop was woken
/// assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(42));
/// # std::io::Result::Ok(())
/// ```
impl From<Waker> for std::task::Waker {
    fn from(waker: Waker) -> std::task::Waker {
        into_task_waker(waker)
    }
}

/// A future's waker that sets its key: `wake` and `wake_by_ref` are
/// [`KeyedWaker::notify`] (no system call while the key or the notifier has
/// a wake pending), so an executor can give each task a key and poll
/// exactly the tasks whose keys [`KeyedNotifier::drain`] yields. Cloning is
/// a reference-count increment of the `KeyedWaker`'s block (allocated by
/// [`KeyedNotifier::waker`]); converting, cloning, waking and dropping
/// allocate nothing.
///
/// The `io::Result` of `notify` is discarded, as for `From<Waker>`: after a
/// failed write the key stays set and the next wake of any key writes again;
/// `BrokenPipe` means the loop is gone.
///
/// [`KeyedNotifier::drain`]: crate::KeyedNotifier::drain
/// [`KeyedNotifier::waker`]: crate::KeyedNotifier::waker
///
/// # Examples
///
/// ```
/// let mut notifier = wakefd::KeyedNotifier::new(100)?;
/// let task_waker = std::task::Waker::from(notifier.waker(17)?);
/// let other = task_waker.clone();
/// std::thread::spawn(move || other.wake()).join().unwrap();
/// task_waker.wake_by_ref(); // key 17 is pending: coalesced
/// assert_eq!(notifier.drain()?.collect::<Vec<_>>(), [17]); // poll task 17
/// assert_eq!(notifier.stats().wakes_written, 1);
/// # std::io::Result::Ok(())
/// ```
impl From<KeyedWaker> for std::task::Waker {
    fn from(waker: KeyedWaker) -> std::task::Waker {
        into_task_waker(waker)
    }
}
