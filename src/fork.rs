//! Telling a forked child from the process that made a notifier.
//!
//! After `fork()` the child holds copies of the parent's fds: the same
//! eventfd, pipe or socket. A child that drained it would steal the parent's
//! wake, and one that notified would wake the parent's loop. So every
//! notifier records the *process generation* it was made in, and its calls
//! compare it with the current one. A `pthread_atfork` child handler, run in
//! the child before `fork()` returns there, bumps the generation; the check
//! is one relaxed load of a global that never changes in a process that does
//! not fork, and no system call.
//!
//! This is a Unix promise: Windows has no `fork`, a child process inherits
//! no socket of ours (they are not inheritable), and there the generation
//! never changes, so nothing is ever `inherited`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
#[cfg(unix)]
use std::sync::OnceLock;

/// Bumped in every forked child.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

/// The result of installing the handler, once per process.
#[cfg(unix)]
static INSTALLED: OnceLock<i32> = OnceLock::new();

#[cfg(unix)]
extern "C" fn in_child() {
    // Async-signal-safe: one atomic add. The child has one thread here, and
    // every thread it starts later sees this store (thread creation
    // synchronizes), so Relaxed is enough.
    GENERATION.fetch_add(1, Relaxed);
}

/// The current process generation, installing the fork handler first if
/// this is the first notifier of the process.
///
/// # Errors
///
/// The error of `pthread_atfork` (`ENOMEM`), in which case no notifier can
/// be made: one that could not tell a child from its parent would break the
/// promise that a child never touches its parent's wake.
pub(crate) fn generation() -> io::Result<usize> {
    #[cfg(unix)]
    install()?;
    Ok(GENERATION.load(Relaxed))
}

/// Installs the fork handler, once per process.
#[cfg(unix)]
fn install() -> io::Result<()> {
    // SAFETY: registers a handler that only does an atomic add; no prepare or
    // parent handler.
    let ret =
        *INSTALLED.get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(in_child)) });
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Whether this process is a forked child of the one that made the object
/// (generation `made_in`).
#[inline]
pub(crate) fn inherited(made_in: usize) -> bool {
    GENERATION.load(Relaxed) != made_in
}

/// Fails if this process is not the one that made the object (generation
/// `made_in`). `what` names the object in the error.
#[inline]
pub(crate) fn check(made_in: usize, what: &'static str) -> io::Result<()> {
    if !inherited(made_in) {
        Ok(())
    } else {
        Err(belongs_to_parent(what))
    }
}

#[cold]
fn belongs_to_parent(what: &'static str) -> io::Error {
    io::Error::other(format!(
        "this wakefd {what} belongs to the parent process: it was inherited across fork(), \
         and using it would steal or fake the parent's wakes; make a new one in the child"
    ))
}
