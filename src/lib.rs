//! Wake an event loop from other threads.
//!
//! A [`Notifier`] is a non-blocking fd that an event loop watches (through
//! [`mio`], or any reactor through its raw fd); any thread holding a [`Waker`]
//! makes it readable with [`Waker::notify`]. Wakes coalesce (while one is
//! pending, `notify` is one atomic operation and no system call) and are never
//! lost. A [`Mailbox`] pairs a queue with a notifier so that worker threads can
//! hand values to the loop.
//!
//! | platform | default backend | also available | handle traits |
//! | --- | --- | --- | --- |
//! | Linux, Android | [`Backend::EventFd`] | `Pipe`, `UnixSocketPair`, `TcpLoopback` | `AsFd`, `AsRawFd` |
//! | other Unix | [`Backend::Pipe`] | `UnixSocketPair`, `TcpLoopback` | `AsFd`, `AsRawFd` |
//! | Windows | [`Backend::TcpLoopback`] | none | `AsSocket`, `AsRawSocket` |
//!
//! # Examples
//!
//! A worker wakes a loop blocked in `mio::Poll::poll`:
//!
//! ```
//! use mio::{Events, Interest, Poll, Token};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use wakefd::Notifier;
//!
//! let mut poll = Poll::new()?;
//! let mut notifier = Notifier::new()?;
//! poll.registry().register(&mut notifier, Token(0), Interest::READABLE)?;
//!
//! let result = Arc::new(AtomicU64::new(0));
//! let (waker, shared) = (notifier.waker(), Arc::clone(&result));
//! std::thread::spawn(move || {
//!     shared.store(42, Ordering::Relaxed); // the work
//!     waker.notify() // then the wake
//! });
//!
//! let mut events = Events::with_capacity(8);
//! loop {
//!     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
//!     if notifier.drain()? {
//!         // Everything the worker did before notify() is visible now.
//!         assert_eq!(result.load(Ordering::Relaxed), 42);
//!         break;
//!     }
//! }
//! # std::io::Result::Ok(())
//! ```
//!
//! # Three ways to wait
//!
//! | way | the loop calls | a wake costs the sender | pick it when |
//! | --- | --- | --- | --- |
//! | plain | `poll.poll(..)` then [`Notifier::drain`] (or [`Notifier::wait`]) | one `write` when no wake is pending | the loop is idle most of the time, or you cannot change how it blocks |
//! | sleep-aware | [`Notifier::poll`] (or [`Notifier::announce_sleep`] / [`Notifier::announce_awake`] around your own blocking call) | one `write` only if the loop is blocked; one atomic operation while it is awake | the loop is busy: wakes arrive while it works |
//! | spinning | [`Notifier::set_spin`], then `poll` or `wait` | one atomic operation while the loop spins | a core can be burnt for sub-microsecond wakes |
//!
//! [`Mailbox`] and [`KeyedNotifier`] offer the same three. [`Notifier::stats`]
//! counts what happened (wakes written and absorbed, drains, sleeps).
//!
//! # Beyond one wake
//!
//! * A [`Mailbox`] hands values to the loop; no message is ever stranded,
//!   whatever the loop does with its events.
//! * A [`KeyedNotifier`] carries any number of wake keys on one fd and yields
//!   just the keys that fired.
//! * On Unix, [`Waker::notify`] is async-signal-safe: wake a loop from a
//!   signal handler. (On Windows a console control handler runs on a thread
//!   of its own, so `notify` there is an ordinary call.)
//! * On Unix, after `fork()`, an inherited notifier fails in the child with
//!   an error saying it belongs to the parent process, instead of stealing or
//!   faking the parent's wakes; make a new one in the child. (Windows has no
//!   `fork`, and its sockets are not inherited by child processes.)
//!
//! # The protocol
//!
//! The notifier and its wakers share one atomic word with a *pending* bit.
//! `notify` sets it; only the call that moved it from 0 to 1 writes to the fd,
//! and not even that one while a sleep-aware loop is awake (an *awake* bit in
//! the same word). `drain` consumes the fd, *then* clears the bit, and the
//! loop looks at its work after that. The argument for each ordering is in the
//! source of the `state` module, which the crate's loom models check.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(any(unix, windows)))]
compile_error!("wakefd supports Unix and Windows");

mod backend;
mod engine;
mod fork;
mod keyed;
mod loom;
mod mailbox;
mod notifier;
mod state;
mod sys;
mod task;

pub use backend::{Backend, ParseBackendError};
pub use engine::{Awake, Stats};
pub use keyed::{KeyOutOfRange, KeyedNotifier, KeyedWaker, Keys};
pub use mailbox::{
    Drain, Mailbox, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError,
    TrySendError,
};
pub use notifier::{Notifier, Waker};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
