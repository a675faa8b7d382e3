//! [`Awake`]: the guard of a sleep-aware loop's awake state.

use std::fmt;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use super::Inner;

/// The loop's awake state, from [`Notifier::announce_awake`](crate::Notifier::announce_awake) (or the
/// Mailbox's and KeyedNotifier's): while it lives, a `notify` that finds
/// the loop awake makes no system call, and the loop must announce sleep
/// before it blocks (`poll` and `wait` do). Dropping it makes the loop
/// plain again and writes any wake it absorbed, so that a plain blocking
/// call next sees it.
///
/// It holds the notifier's shared state, not a borrow, so a Mailbox loop
/// can hold it across `&mut` calls; several guards count as one.
///
/// # Examples
///
/// A custom reactor's loop (here a `mio::Poll` it blocks in itself) with
/// sleep announcements:
///
/// ```
/// use std::time::Duration;
///
/// let notifier = wakefd::Notifier::new()?;
/// let waker = notifier.waker();
/// let mut reactor = mio::Poll::new()?;
/// let mut events = mio::Events::with_capacity(8);
/// let awake = notifier.announce_awake();
/// for round in 0..3 {
///     waker.notify()?; // the loop is awake: absorbed, no system call
///     let timeout = if awake.announce_sleep() { Duration::from_secs(10) } else { Duration::ZERO };
///     reactor.poll(&mut events, Some(timeout))?;
///     awake.announce_awake();
///     assert!(notifier.drain()?, "round {round}");
/// }
/// assert_eq!(notifier.stats().wakes_written, 0);
/// # std::io::Result::Ok(())
/// ```
///
/// Make it on the loop's thread, for the loop: a guard made by another
/// thread while the loop blocks the plain way would make that loop count as
/// awake. It may move to the loop's thread (`Send`), but not be shared
/// (`!Sync`); dropped on another thread while the loop blocks in `poll` or
/// `wait`, it still ends the awake state (the loop looks again after its
/// blocking call).
///
/// ```compile_fail
/// fn shared(awake: &wakefd::Awake) {
///     std::thread::scope(|s| {
///         s.spawn(|| awake.announce_awake()); // `Awake` is not `Sync`
///     });
/// }
/// ```
#[must_use = "the loop is awake only while the guard lives; dropped at once, it has no effect"]
pub struct Awake {
    inner: Arc<Inner>,
    /// Not `Sync`: one thread at a time announces through it.
    _one_thread: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Awake {
    /// The guard of a loop whose `guards` count includes it.
    pub(super) fn new(inner: Arc<Inner>) -> Awake {
        Awake {
            inner,
            _one_thread: std::marker::PhantomData,
        }
    }

    /// As [`Notifier::announce_sleep`](crate::Notifier::announce_sleep): `false` means a wake is pending,
    /// and the loop must not block.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let awake = notifier.announce_awake();
    /// assert!(awake.announce_sleep()); // nothing pending: may block
    /// awake.announce_awake();
    /// # std::io::Result::Ok(())
    /// ```
    #[must_use = "`false` means a wake is pending: the loop must not block"]
    pub fn announce_sleep(&self) -> bool {
        self.inner.announce_sleep()
    }

    /// Announces that the loop is awake again, after its blocking call
    /// returned (whatever it returned: an error or `EINTR` too).
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// let awake = notifier.announce_awake();
    /// let _ = awake.announce_sleep();
    /// awake.announce_awake();
    /// notifier.waker().notify()?;
    /// assert_eq!(notifier.stats().wakes_absorbed, 1);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn announce_awake(&self) {
        self.inner.announce_awake();
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        // SeqCst: see `Inner::rejoin_awake`.
        if self.inner.guards.fetch_sub(1, SeqCst) == 1 {
            self.inner.leave_awake(true);
        }
    }
}

impl fmt::Debug for Awake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Awake")
            .field("fd", &self.inner.sys.raw())
            .finish()
    }
}
