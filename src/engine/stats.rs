//! [`Stats`]: what the engine counted.

/// Counts of what a [`Notifier`](crate::Notifier) (or [`Mailbox`](crate::Mailbox)) did, from
/// [`Notifier::stats`](crate::Notifier::stats). They are kept on the slow paths only (a wake that
/// writes or is absorbed, a drain, an announcement), so a coalesced `notify`
/// stays one atomic operation. Counts are since creation and wrap at 2^64.
///
/// # Examples
///
/// Wakes written per drain, the figure to watch in a busy loop (near 0 for a
/// sleep-aware loop that is seldom asleep; 1 for a plain loop):
///
/// ```
/// let notifier = wakefd::Notifier::new()?;
/// let waker = notifier.waker();
/// waker.notify()?;
/// notifier.drain()?;
/// let _awake = notifier.announce_awake(); // from here on, wakes are absorbed
/// waker.notify()?;
/// notifier.drain()?;
/// let wakefd::Stats { wakes_written, wakes_absorbed, drains_woken, .. } = notifier.stats();
/// assert_eq!((wakes_written, wakes_absorbed, drains_woken), (1, 1, 2));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Wakes written to the fd (a system call each).
    pub wakes_written: u64,
    /// Wakes that found the loop awake (or spinning) and needed no system
    /// call.
    pub wakes_absorbed: u64,
    /// Wake writes that failed (the next `notify` writes again).
    pub write_errors: u64,
    /// Drains that found a wake pending.
    pub drains_woken: u64,
    /// Drains that found none (a spurious readiness event, or a sleep-aware
    /// loop that woke for other I/O).
    pub drains_spurious: u64,
    /// Announcements of sleep after which the loop could block (no wake was
    /// pending).
    pub sleeps: u64,
}
