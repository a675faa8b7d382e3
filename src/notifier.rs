//! The loop's end ([`Notifier`]) and the senders' end ([`Waker`]).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::state::State;
use crate::sys::{self, Sys};
use crate::Backend;

/// What a `Notifier` and its `Waker`s share. The fds live here, so they are
/// closed only when the `Notifier` and every `Waker` are gone: no fd is ever
/// closed while another thread may still write to it.
#[derive(Debug)]
struct Inner {
    state: State,
    sys: Sys,
}

/// The event loop's end: a non-blocking fd that becomes readable when a
/// [`Waker`] calls [`notify`](Waker::notify).
///
/// Register it with a [`mio::Poll`] (it implements [`mio::event::Source`];
/// use [`Interest::READABLE`]) or watch its raw fd with any reactor. When it
/// is readable, call [`drain`](Notifier::drain), then look at the work the
/// other threads left. Threads with no reactor can block in
/// [`wait`](Notifier::wait) instead.
///
/// Dropping the `Notifier` makes every later `notify` fail with
/// `BrokenPipe`. Deregister it from a `Poll` that outlives it first: the fd
/// stays open until the last `Waker` is dropped too.
///
/// # Examples
///
/// ```
/// use mio::{Events, Interest, Poll, Token};
/// use std::time::Duration;
/// use wakefd::Notifier;
///
/// let mut poll = Poll::new()?;
/// let mut notifier = Notifier::new()?;
/// poll.registry().register(&mut notifier, Token(0), Interest::READABLE)?;
///
/// let waker = notifier.waker();
/// let worker = std::thread::spawn(move || waker.notify());
///
/// let mut events = Events::with_capacity(8);
/// poll.poll(&mut events, Some(Duration::from_secs(10)))?;
/// assert!(events.iter().any(|e| e.token() == Token(0)));
/// assert!(notifier.drain()?);
/// worker.join().unwrap()?;
/// # std::io::Result::Ok(())
/// ```
pub struct Notifier {
    inner: Arc<Inner>,
    backend: Backend,
    /// Registered edge-triggered through mio with a backend whose watcher
    /// gets an edge per write, so `drain` need not read. Only `register`,
    /// `reregister` and `deregister` change it, and they take `&mut self`.
    skip_read: bool,
}

impl Notifier {
    /// A notifier on the platform's default backend ([`Backend::default`]).
    ///
    /// # Errors
    ///
    /// The OS error of the failed system call, such as `EMFILE` when the
    /// process is out of file descriptors. Nothing opened is leaked.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = wakefd::Notifier::new()?;
    /// assert_eq!(notifier.backend(), wakefd::Backend::default());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn new() -> io::Result<Notifier> {
        Notifier::with_backend(Backend::default())
    }

    /// A notifier on the given backend.
    ///
    /// # Errors
    ///
    /// `ErrorKind::Unsupported` if the platform lacks `backend` (see
    /// [`Backend::available`]); otherwise the OS error of the failed system
    /// call, with nothing leaked.
    ///
    /// # Examples
    ///
    /// ```
    /// use wakefd::{Backend, Notifier};
    ///
    /// let notifier = Notifier::with_backend(Backend::Pipe)?;
    /// notifier.waker().notify()?;
    /// assert!(notifier.drain()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_backend(backend: Backend) -> io::Result<Notifier> {
        let sys = Sys::new(backend)?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                state: State::new(),
                sys,
            }),
            backend,
            skip_read: false,
        })
    }

    /// The backend this notifier was created with.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A new handle for waking this notifier from any thread.
    pub fn waker(&self) -> Waker {
        Waker {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Consumes every pending wake and re-arms; `Ok(true)` if one was pending.
    ///
    /// Call it when the fd is readable, *before* looking at the work the
    /// wakers left: everything a thread did before its `notify()` returned is
    /// visible after this call. Afterwards a level-triggered watcher of the
    /// raw fd sees it quiet until the next `notify`, and an edge-triggered one
    /// gets a fresh event for the next `notify`.
    ///
    /// While the notifier is registered with mio and its backend is
    /// [`Backend::EventFd`], this makes no system call: mio watches it
    /// edge-triggered, and an eventfd raises an edge for every write, so the
    /// counter need not be read (`mio::Waker` never reads it either). Don't
    /// also watch the raw fd level-triggered while it is registered with mio.
    ///
    /// A readiness event may find nothing to drain (`Ok(false)`): a `notify`
    /// whose work an earlier `drain` already covered can still be writing its
    /// wake when that drain ends. Such a spurious event costs one more drain;
    /// a loop must simply not assume that every event carries work.
    ///
    /// # Errors
    ///
    /// The OS error of a failed `read` (none is expected on these fds).
    /// `EINTR` is retried and `EAGAIN` means "empty".
    pub fn drain(&self) -> io::Result<bool> {
        self.inner.state.drain(&self.inner.sys, !self.skip_read)
    }

    /// For a thread with no reactor: blocks in [`poll(2)`] until notified or
    /// until `timeout` passes (`None`: no limit), then drains. `Ok(true)` if
    /// it was notified.
    ///
    /// # Errors
    ///
    /// The OS error of a failed `poll` or `read`; `EINTR` is retried with the
    /// time that is left.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let notifier = wakefd::Notifier::new()?;
    /// assert!(!notifier.wait(Some(Duration::from_millis(1)))?);
    /// notifier.waker().notify()?;
    /// assert!(notifier.wait(Some(Duration::from_secs(10)))?);
    /// # std::io::Result::Ok(())
    /// ```
    ///
    /// [`poll(2)`]: https://man7.org/linux/man-pages/man2/poll.2.html
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = sys::deadline(timeout);
        loop {
            if !sys::poll_readable(self.as_fd(), deadline)? {
                return Ok(false);
            }
            // poll(2) is level-triggered, so the fd must really be read here
            // even where `drain` may skip the read.
            if self.inner.state.drain(&self.inner.sys, true)? {
                return Ok(true);
            }
            // A stray byte from a wake that an earlier drain had already
            // reported (see state.rs), or a counter left unread while the
            // notifier was registered with mio: nothing new, keep waiting.
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.inner.state.close();
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("backend", &self.backend)
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl AsFd for Notifier {
    /// The fd to watch for readability.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.sys.fd()
    }
}

impl AsRawFd for Notifier {
    /// The fd to watch for readability.
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Fails for interests that can never see a wake.
fn check_interest(interests: Interest) -> io::Result<()> {
    if interests.is_readable() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a wakefd source must be registered with Interest::READABLE",
        ))
    }
}

impl mio::event::Source for Notifier {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        check_interest(interests)?;
        SourceFd(&self.as_raw_fd()).register(registry, token, interests)?;
        self.skip_read = self.inner.sys.edge_needs_no_read();
        Ok(())
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        check_interest(interests)?;
        SourceFd(&self.as_raw_fd()).reregister(registry, token, interests)?;
        self.skip_read = self.inner.sys.edge_needs_no_read();
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.as_raw_fd()).deregister(registry)?;
        self.skip_read = false;
        Ok(())
    }
}

/// Wakes a [`Notifier`] from any thread. Cheap to clone, one pointer wide.
///
/// # Examples
///
/// ```
/// let notifier = wakefd::Notifier::new()?;
/// let waker = notifier.waker();
/// std::thread::spawn(move || waker.notify()).join().unwrap()?;
/// assert!(notifier.drain()?);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Waker {
    inner: Arc<Inner>,
}

impl Waker {
    /// Makes the notifier readable, unless a wake is already pending.
    ///
    /// While a wake is pending (notified and not yet drained) this makes no
    /// system call: one atomic operation is its whole cost. Between two
    /// drains at most one wake is written to the fd, whatever the number of
    /// callers. Everything this thread did before `notify` returned `Ok` is
    /// visible to the loop after the `drain` that follows its next readiness
    /// event. It never raises `SIGPIPE`.
    ///
    /// # Errors
    ///
    /// `ErrorKind::BrokenPipe` once the `Notifier` is dropped. Otherwise the
    /// OS error of a failed `write` (none is expected; a full buffer is
    /// success, `EINTR` is retried); the wake is then not pending, and the
    /// next call writes again. A call on another thread that coalesced into
    /// the failed wake meanwhile returned `Ok`; its work is seen after the
    /// next successful wake.
    pub fn notify(&self) -> io::Result<()> {
        self.inner.state.notify(&self.inner.sys)
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("fd", &self.inner.sys.fd().as_raw_fd())
            .finish()
    }
}
