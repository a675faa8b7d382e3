//! Wake an event loop from other threads.
//!
//! A [`Notifier`] is a non-blocking fd that an event loop watches (through
//! [`mio`], or any reactor through its raw fd); any thread holding a [`Waker`]
//! makes it readable with [`Waker::notify`]. Wakes coalesce (while one is
//! pending, `notify` is one atomic operation and no system call) and are never
//! lost. A [`Mailbox`] pairs a queue with a notifier so that worker threads can
//! hand values to the loop.
//!
//! | platform | default backend | also available |
//! | --- | --- | --- |
//! | Linux, Android | [`Backend::EventFd`] | `Pipe`, `UnixSocketPair`, `TcpLoopback` |
//! | other Unix | [`Backend::Pipe`] | `UnixSocketPair`, `TcpLoopback` |
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
//! # The protocol
//!
//! The notifier and its wakers share one atomic word with a *pending* bit.
//! `notify` sets it; only the call that moved it from 0 to 1 writes to the fd.
//! `drain` consumes the fd, *then* clears the bit, and the loop looks at its
//! work after that. The argument for each ordering is in the source of the
//! `state` module, which the crate's loom model checks.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(unix))]
compile_error!("wakefd supports Unix platforms only");

mod backend;
mod fork;
mod keyed;
mod loom;
mod mailbox;
mod notifier;
mod state;
mod sys;

pub use backend::{Backend, ParseBackendError};
pub use keyed::{KeyOutOfRange, KeyedNotifier, KeyedWaker, Keys};
pub use mailbox::{Drain, Mailbox, SendError, Sender, TryRecvError};
pub use notifier::{Notifier, Stats, Waker};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
