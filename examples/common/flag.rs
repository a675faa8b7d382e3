//! The best coalescing a careful user writes by hand in front of a
//! `mio::Waker`: the baseline that the latency example and
//! `benches/notify.rs` both measure the Mailbox against. One copy, so that
//! both measure the same thing.

use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};

use mio::{Registry, Token};

/// A coalescing flag in front of a `mio::Waker`: a producer wakes the
/// consumer only when no wake is pending (`pending` false).
pub struct Flag {
    pending: AtomicBool,
    waker: mio::Waker,
    /// Look at the flag with a plain load (behind a SeqCst fence) before
    /// the swap, so that producers share its cache line while a wake is
    /// pending instead of taking it exclusively on every message.
    load_first: bool,
}

impl Flag {
    /// A flag whose wakes reach `token` on `registry`.
    pub fn new(registry: &Registry, token: Token, load_first: bool) -> io::Result<Flag> {
        Ok(Flag {
            pending: AtomicBool::new(false),
            waker: mio::Waker::new(registry, token)?,
            load_first,
        })
    }

    /// After publishing a message: wake unless a wake is pending.
    #[inline]
    pub fn after_send(&self) -> io::Result<()> {
        if self.load_first {
            // Pairs with the consumer's fence: either its drain sees our
            // message, or our load sees its clear (and we swap and wake).
            // Without it the load could see a stale `true` while the
            // consumer misses the message (store buffering).
            fence(Ordering::SeqCst);
            if self.pending.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        // The consumer's clear reads this swap or a later one in the flag's
        // RMW chain, so it sees the message.
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.waker.wake()?;
        }
        Ok(())
    }

    /// On the consumer, after a wake and before draining: re-arm.
    #[inline]
    pub fn clear(&self) {
        self.pending.swap(false, Ordering::AcqRel);
        if self.load_first {
            fence(Ordering::SeqCst);
        }
    }
}
