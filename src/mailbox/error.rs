//! The Mailbox's errors: std's and crossbeam-channel's names, each
//! `Debug + Display + Error` without bounds on the message type, giving the
//! message back where there is one.

use std::error::Error;
use std::fmt;

/// The error of [`Sender::send`](crate::Sender::send) once the [`Mailbox`](crate::Mailbox) is gone: it gives the
/// message back in its public field.
///
/// # Examples
///
/// ```
/// let mailbox = wakefd::Mailbox::new()?;
/// let sender = mailbox.sender();
/// drop(mailbox);
/// let err = sender.send(String::from("late")).unwrap_err();
/// assert_eq!(err.into_inner(), "late");
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed mailbox")
    }
}

impl<T> Error for SendError<T> {}

/// The error of [`Mailbox::try_recv`](crate::Mailbox::try_recv) when there is no message.
///
/// # Examples
///
/// ```
/// use wakefd::{Mailbox, TryRecvError};
///
/// let mut mailbox = Mailbox::<u32>::new()?;
/// let sender = mailbox.sender();
/// assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
/// drop(sender);
/// assert_eq!(mailbox.try_recv(), Err(TryRecvError::Disconnected));
/// assert_eq!(TryRecvError::Empty.to_string(), "receiving on an empty mailbox");
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued and every [`Sender`](crate::Sender) is gone.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "receiving on an empty mailbox",
            TryRecvError::Disconnected => "receiving on an empty and disconnected mailbox",
        })
    }
}

impl Error for TryRecvError {}

/// The error of [`Sender::try_send`](crate::Sender::try_send): the message
/// is given back.
///
/// # Examples
///
/// ```
/// use wakefd::{Mailbox, TrySendError};
///
/// let mailbox = Mailbox::bounded(1)?;
/// let sender = mailbox.sender();
/// sender.try_send(1).unwrap();
/// let err = sender.try_send(2).unwrap_err();
/// assert!(err.is_full());
/// assert_eq!(err.into_inner(), 2);
/// drop(mailbox);
/// assert_eq!(sender.try_send(3), Err(TrySendError::Disconnected(3)));
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The mailbox is bounded and full.
    Full(T),
    /// The [`Mailbox`](crate::Mailbox) is gone.
    Disconnected(T),
}

impl<T> TrySendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(msg) | TrySendError::Disconnected(msg) => msg,
        }
    }

    /// Whether the mailbox was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the Mailbox is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(err: SendError<T>) -> TrySendError<T> {
        TrySendError::Disconnected(err.0)
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Disconnected(_) => "Disconnected(..)",
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "sending on a full mailbox",
            TrySendError::Disconnected(_) => "sending on a closed mailbox",
        })
    }
}

impl<T> Error for TrySendError<T> {}

/// The error of [`Sender::send_timeout`](crate::Sender::send_timeout): the
/// message is given back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wakefd::{Mailbox, SendTimeoutError};
///
/// let mailbox = Mailbox::bounded(1)?;
/// let sender = mailbox.sender();
/// sender.send_timeout(1, Duration::from_millis(1)).unwrap();
/// let err = sender.send_timeout(2, Duration::from_millis(1)).unwrap_err();
/// assert_eq!(err, SendTimeoutError::Timeout(2));
/// assert_eq!(err.to_string(), "timed out waiting on a full mailbox");
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// The mailbox stayed full until the timeout.
    Timeout(T),
    /// The [`Mailbox`](crate::Mailbox) is gone.
    Disconnected(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(msg) | SendTimeoutError::Disconnected(msg) => msg,
        }
    }

    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether the Mailbox is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(err: SendError<T>) -> SendTimeoutError<T> {
        SendTimeoutError::Disconnected(err.0)
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendTimeoutError::Timeout(_) => "Timeout(..)",
            SendTimeoutError::Disconnected(_) => "Disconnected(..)",
        })
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendTimeoutError::Timeout(_) => "timed out waiting on a full mailbox",
            SendTimeoutError::Disconnected(_) => "sending on a closed mailbox",
        })
    }
}

impl<T> Error for SendTimeoutError<T> {}

/// The error of [`Mailbox::recv`](crate::Mailbox::recv): nothing is queued
/// and every [`Sender`](crate::Sender) is gone.
///
/// # Examples
///
/// ```
/// let mut mailbox = wakefd::Mailbox::<u8>::new()?;
/// drop(mailbox.sender());
/// assert_eq!(mailbox.recv(), Err(wakefd::RecvError));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected mailbox")
    }
}

impl Error for RecvError {}

/// The error of [`Mailbox::recv_timeout`](crate::Mailbox::recv_timeout).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wakefd::RecvTimeoutError;
///
/// let mut mailbox = wakefd::Mailbox::<u8>::new()?;
/// let sender = mailbox.sender();
/// assert_eq!(mailbox.recv_timeout(Duration::from_micros(100)), Err(RecvTimeoutError::Timeout));
/// drop(sender);
/// assert_eq!(mailbox.recv_timeout(Duration::MAX), Err(RecvTimeoutError::Disconnected));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// Nothing was queued before the timeout passed.
    Timeout,
    /// Nothing is queued and every [`Sender`](crate::Sender) is gone.
    Disconnected,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvTimeoutError::Timeout => "timed out waiting on an empty mailbox",
            RecvTimeoutError::Disconnected => "receiving on an empty and disconnected mailbox",
        })
    }
}

impl Error for RecvTimeoutError {}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> RecvTimeoutError {
        RecvTimeoutError::Disconnected
    }
}
