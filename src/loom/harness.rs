//! What every loom model of the crate runs on: one fake fd ([`FakeFd`]) and
//! one runner ([`check`]).
//!
//! Run the models with
//! `RUSTFLAGS="--cfg wakefd_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --lib`
//! (a filter after `--lib` runs some of them).

use std::io;

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::sync::Arc;

use crate::state::Signal;

/// The bits of [`FakeFd`]'s word that count unread wakes.
const UNREAD: u64 = u32::MAX as u64;
/// One successful write in [`FakeFd`]'s word: one more unread wake, and one
/// more write ever made (the bits above [`UNREAD`]).
const WRITE: u64 = (1 << 32) | 1;

/// An eventfd made of loom atomics, and what a model asks of it.
///
/// A write is a `Release` increment and a read an `Acquire` reset to zero,
/// which is the synchronization the kernel's locks give a real fd: a read
/// that sees a wake, or a watcher that sees a write, happens after that
/// write. The fd is readable while a wake is unread. Every successful write
/// is also counted for good, since each one is an edge for an
/// edge-triggered watcher (and the coalescing checks count them).
///
/// A write can be told to fail, as a socket write can with `ENOBUFS`
/// ([`fail_next`](FakeFd::fail_next), [`fail_plan`](FakeFd::fail_plan)), and
/// the fd can report its drop to a flag the model keeps
/// ([`reporting_drop_to`](FakeFd::reporting_drop_to)).
#[derive(Default)]
pub(crate) struct FakeFd {
    /// Unread wakes (the [`UNREAD`] bits) and successful writes ever made
    /// (the bits above): one word, so that a write is one step of the model.
    word: AtomicU64,
    /// Which write attempts fail: bit `k` set, the `k`-th attempt from now.
    /// A plain `std` atomic: it is the model's script, not state that the
    /// protocol shares, and a loom atomic would add a step to every write.
    fails: std::sync::atomic::AtomicU64,
    /// Set when the fd is dropped; a write after that is a bug.
    dropped: Option<Arc<AtomicBool>>,
}

impl FakeFd {
    pub(crate) fn new() -> FakeFd {
        FakeFd::default()
    }

    /// An fd that sets `dropped` when it is dropped (and asserts on a write
    /// after that).
    pub(crate) fn reporting_drop_to(dropped: Arc<AtomicBool>) -> FakeFd {
        FakeFd {
            word: AtomicU64::new(0),
            fails: std::sync::atomic::AtomicU64::new(0),
            dropped: Some(dropped),
        }
    }

    /// The next `n` write attempts fail (on top of those already planned).
    pub(crate) fn fail_next(&self, n: u32) {
        assert!(n < u64::BITS, "a plan covers at most 63 attempts");
        self.fail_plan((1u64 << n) - 1);
    }

    /// The write attempts named by `plan` fail: bit `k` set, the `k`-th
    /// attempt from now (`0b101`: the next one, and the one after the
    /// next).
    pub(crate) fn fail_plan(&self, plan: u64) {
        self.fails
            .fetch_or(plan, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a wake is unread (the fd is readable). Acquire: a loop that
    /// sees it, as after a readiness event, sees what the write published.
    pub(crate) fn readable(&self) -> bool {
        self.word.load(Ordering::Acquire) & UNREAD != 0
    }

    /// Successful writes ever made. Acquire, as [`readable`](FakeFd::readable).
    pub(crate) fn writes(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> 32
    }

    /// Whether this write attempt is one that `fails` plans to fail; moves
    /// the plan on by one attempt.
    fn attempt_fails(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self
            .fails
            .fetch_update(Relaxed, Relaxed, |plan| (plan != 0).then_some(plan >> 1))
        {
            Ok(plan) => plan & 1 != 0,
            Err(_) => false,
        }
    }
}

impl Signal for FakeFd {
    fn write_wake(&self) -> io::Result<()> {
        if let Some(dropped) = &self.dropped {
            assert!(!dropped.load(Ordering::Relaxed), "write to a closed fd");
        }
        if self.attempt_fails() {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        self.word.fetch_add(WRITE, Ordering::Release);
        Ok(())
    }

    fn read_wakes(&self) -> io::Result<()> {
        self.word.fetch_and(!UNREAD, Ordering::Acquire);
        Ok(())
    }
}

impl Drop for FakeFd {
    fn drop(&mut self) {
        if let Some(dropped) = &self.dropped {
            dropped.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `model` under loom, in every interleaving with at most
/// `LOOM_MAX_PREEMPTIONS` preemptions (2 if it is not set), and prints how
/// many interleavings it explored. A model that fails panics, as
/// `loom::model` does (its `#[should_panic]` test then passes).
pub(crate) fn check(name: &str, model: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    // `Builder::new` reads the `LOOM_*` variables.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(2);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    eprintln!(
        "{name}: {} interleavings",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}
