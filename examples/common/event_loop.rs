//! A `mio::Poll` with one source, every wait bounded by a timeout so that a
//! lost wake-up fails the run instead of hanging it. Shared by the latency
//! example and `benches/notify.rs` (through `#[path]`), like `flag.rs`.

use std::io;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token};

/// The token of the one source an [`EventLoop`] watches.
pub const TOKEN: Token = Token(0);

/// The error of a wait that saw no wake within `timeout`.
pub fn lost_wake(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no wake within {timeout:?}: lost wake-up"),
    )
}

/// A thread's event loop: a `mio::Poll` and its event buffer.
pub struct EventLoop {
    poll: Poll,
    events: Events,
}

impl EventLoop {
    pub fn new() -> io::Result<EventLoop> {
        Ok(EventLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(16),
        })
    }

    /// Where to register the source (on [`TOKEN`]).
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The `Poll` and its event buffer, for a sleep-aware `poll` call
    /// (`Notifier::poll`, `Mailbox::poll`).
    #[allow(dead_code)] // not every includer runs a sleep-aware loop
    pub fn parts(&mut self) -> (&mut Poll, &mut Events) {
        (&mut self.poll, &mut self.events)
    }

    /// `Poll::poll` until an event or `timeout`, retried on `EINTR`;
    /// `false` if it timed out empty.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<bool> {
        loop {
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => return Ok(!self.events.is_empty()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Blocks until the next event; no event within `timeout` is a lost
    /// wake-up, reported as an error of kind `TimedOut`.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if self.poll(timeout)? {
            Ok(())
        } else {
            Err(lost_wake(timeout))
        }
    }
}
