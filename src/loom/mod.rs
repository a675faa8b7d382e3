//! The synchronization primitives the crate's protocols use, from `std`
//! normally and from `loom` when the crate is built with
//! `RUSTFLAGS="--cfg wakefd_loom"` for model checking.
//!
//! Everything the coalescing protocol (`state.rs`) and the Mailbox's queue
//! (`mailbox/queue.rs`) touch comes through here, so the loom build checks the
//! same code that ships. The models themselves share one fake fd and one
//! runner (`loom/harness.rs`).

#[cfg(all(test, wakefd_loom))]
pub(crate) mod harness;

#[cfg(wakefd_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(wakefd_loom)]
pub(crate) use loom::sync::{Condvar, Mutex};

#[cfg(not(wakefd_loom))]
#[allow(unused_imports)] // not every build uses every one
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(wakefd_loom))]
pub(crate) use std::sync::{Condvar, Mutex};

/// `loom::cell::UnsafeCell`'s API over `std::cell::UnsafeCell`, so that loom
/// can check every access to a queue slot.
#[cfg(wakefd_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `loom::cell::UnsafeCell`'s API over `std::cell::UnsafeCell`, so that loom
/// can check every access to a queue slot.
#[cfg(not(wakefd_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(wakefd_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer to the value; the caller keeps Rust's
    /// aliasing rules for what `f` does with it.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Waiting for another thread to end a step of a few instructions (a pop of
/// the Mailbox queue's free list): spins, doubling, then yields the CPU, so
/// that a waiter does not hold off a thread preempted in that step.
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spins of `2^step` hints up to this step, yields after.
    #[cfg(not(wakefd_loom))]
    const SPIN_STEPS: u32 = 6;

    pub(crate) fn new() -> Backoff {
        Backoff { step: 0 }
    }

    /// Waits a little longer than last time.
    pub(crate) fn snooze(&mut self) {
        // Loom explores every thread's steps: a spin must yield to it.
        #[cfg(wakefd_loom)]
        loom::thread::yield_now();
        #[cfg(not(wakefd_loom))]
        if self.step <= Self::SPIN_STEPS {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        self.step = self.step.saturating_add(1);
    }
}
