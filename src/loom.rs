//! The atomics the crate uses, from `std` normally and from `loom` when the
//! crate is built with `RUSTFLAGS="--cfg wakefd_loom"` for model checking.
//!
//! Everything the coalescing protocol touches comes through here, so the loom
//! build checks the same code that ships.

#[cfg(wakefd_loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(wakefd_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

#[cfg(not(wakefd_loom))]
pub(crate) use std::sync::atomic::AtomicBool;
#[cfg(not(wakefd_loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
