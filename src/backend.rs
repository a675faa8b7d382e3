//! Which kernel mechanism carries the wakes.

use std::error::Error;
use std::fmt;
use std::str::FromStr;

/// The kernel mechanism behind a [`Notifier`](crate::Notifier).
///
/// | variant | mechanism | fds | one wake | one drain |
/// | --- | --- | --- | --- | --- |
/// | [`EventFd`](Backend::EventFd) | [`eventfd(2)`] counter | 1 | 8-byte `write` | one `read`, or none while registered with mio |
/// | [`Pipe`](Backend::Pipe) | [`pipe(2)`] | 2 | 1-byte `write` | one `read` |
/// | [`UnixSocketPair`](Backend::UnixSocketPair) | AF_UNIX [`socketpair(2)`] | 2 | 1-byte `send` | one `recv` |
/// | [`TcpLoopback`](Backend::TcpLoopback) | TCP over loopback | 2 | 1-byte `send` | one `recv` |
///
/// The names used by [`Display`](fmt::Display) and [`FromStr`] are `eventfd`,
/// `pipe`, `socketpair` and `tcp`. Windows has `TcpLoopback` only (its fds
/// are sockets); asking it for another is `ErrorKind::Unsupported`.
///
/// # Examples
///
/// ```
/// use wakefd::Backend;
///
/// let backend: Backend = "tcp".parse().unwrap();
/// assert_eq!(backend, Backend::TcpLoopback);
/// assert_eq!(backend.to_string(), "tcp");
/// assert!(Backend::available().contains(&Backend::default()));
/// ```
///
/// [`eventfd(2)`]: https://man7.org/linux/man-pages/man2/eventfd.2.html
/// [`pipe(2)`]: https://man7.org/linux/man-pages/man2/pipe.2.html
/// [`socketpair(2)`]: https://man7.org/linux/man-pages/man2/socketpair.2.html
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: one fd (Linux, Android).
    EventFd,
    /// `pipe2(O_NONBLOCK | O_CLOEXEC)` (`pipe` + `fcntl` where `pipe2` is
    /// missing): two fds.
    Pipe,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`, non-blocking, close-on-exec: two fds.
    UnixSocketPair,
    /// A TCP connection over loopback whose accepted end is checked to be our
    /// own connector, with `TCP_NODELAY`: two fds (the listener is closed
    /// before creation returns).
    TcpLoopback,
}

/// Every backend, best first, whether or not this platform has it.
const ALL: [Backend; 4] = [
    Backend::EventFd,
    Backend::Pipe,
    Backend::UnixSocketPair,
    Backend::TcpLoopback,
];

impl Backend {
    /// The backends this platform supports, best first.
    ///
    /// # Examples
    ///
    /// ```
    /// for backend in wakefd::Backend::available() {
    ///     let notifier = wakefd::Notifier::with_backend(backend)?;
    ///     assert_eq!(notifier.backend(), backend);
    /// }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn available() -> Vec<Backend> {
        ALL.into_iter().filter(|b| b.is_supported()).collect()
    }

    /// The name used by `Display` and `FromStr`.
    fn name(self) -> &'static str {
        match self {
            Backend::EventFd => "eventfd",
            Backend::Pipe => "pipe",
            Backend::UnixSocketPair => "socketpair",
            Backend::TcpLoopback => "tcp",
        }
    }

    /// Whether this platform has the mechanism at all.
    fn is_supported(self) -> bool {
        match self {
            Backend::EventFd => cfg!(any(target_os = "linux", target_os = "android")),
            Backend::Pipe | Backend::UnixSocketPair => cfg!(unix),
            Backend::TcpLoopback => true,
        }
    }
}

impl Default for Backend {
    /// The best backend the platform has: [`EventFd`](Backend::EventFd) on
    /// Linux and Android, [`Pipe`](Backend::Pipe) on other Unix,
    /// [`TcpLoopback`](Backend::TcpLoopback) on Windows.
    fn default() -> Backend {
        // The first of `ALL` this platform has; every platform has TCP.
        ALL.into_iter()
            .find(|b| b.is_supported())
            .unwrap_or(Backend::TcpLoopback)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Backend {
    type Err = ParseBackendError;

    /// Parses `eventfd`, `pipe`, `socketpair` or `tcp`.
    fn from_str(s: &str) -> Result<Backend, ParseBackendError> {
        ALL.into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| ParseBackendError {
                input: s.to_owned(),
            })
    }
}

/// The error of `"...".parse::<Backend>()` for an unknown name; its message
/// lists the valid names.
///
/// # Examples
///
/// ```
/// let err = "bogus".parse::<wakefd::Backend>().unwrap_err();
/// assert!(err.to_string().contains("eventfd, pipe, socketpair, tcp"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBackendError {
    input: String,
}

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown backend {:?}; valid names are: ", self.input)?;
        for (i, b) in ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{b}")?;
        }
        Ok(())
    }
}

impl Error for ParseBackendError {}
