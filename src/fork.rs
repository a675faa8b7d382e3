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
//! # Installing the handler without ever waiting
//!
//! The handler is registered by the first [`generation`] call of the
//! process, and nothing may ever wait for that registration to finish on
//! another thread: `fork()` copies only the calling thread, so a child
//! forked while another thread registers inherits the registration "in
//! progress" with no thread left to finish it. (A `OnceLock` does exactly
//! that: the child's first notifier waits forever on the futex of the
//! parent's installing thread.) Any claim that other threads wait for has
//! the same flaw, so there is none:
//!
//! * `INSTALLED` is set (Release) only after a `pthread_atfork` call has
//!   returned. A call that sees it set (Acquire) knows a handler is
//!   registered in this process, and that registration happens before
//!   everything the call does next.
//! * A call that sees it clear registers a handler of its own and then sets
//!   it. Threads whose first calls overlap may each register one; each bumps
//!   the generation in a child, so a child's generation moves by the number
//!   registered, at least one, and only inequality is ever compared. The
//!   duplicates come only from that one race at first use and cost a few
//!   bytes of libc's handler list and one atomic add per fork each.
//! * A failed registration (`ENOMEM`) leaves `INSTALLED` clear: the call
//!   fails (so no object is made that could not tell a child from its
//!   parent) and a later call tries again.
//!
//! Why every fork timing is right: the child's memory is the parent's at
//! the instant of the fork, and libc serializes `pthread_atfork` with
//! `fork` (each registration is wholly before or wholly after it). Every
//! object the child inherits was made after a `generation` call returned,
//! so after a registration that had completed, so before the fork: that
//! handler is in the child's list and ran there, and the child's generation
//! differs from the object's. A registration still in progress at the fork
//! had not set `INSTALLED`, so the child sees it clear and registers its
//! own handler before making anything (whether or not the interrupted
//! registration reached the child's list, no inherited object relies on
//! it). Nothing in the child waits for a thread the child does not have.
//!
//! This is a Unix promise: Windows has no `fork`, a child process inherits
//! no socket of ours (they are not inheritable), and there no handler is
//! registered and the generation never changes, so nothing is `inherited`.

use std::io;
#[cfg(unix)]
use std::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Bumped in every forked child, once per registered handler.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

/// A fork handler is registered in this process (see the module doc).
#[cfg(unix)]
static INSTALLED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn in_child() {
    // Async-signal-safe: one atomic add. The child has one thread here, and
    // every thread it starts later sees this store (thread creation
    // synchronizes), so Relaxed is enough.
    GENERATION.fetch_add(1, Relaxed);
}

/// The current process generation, registering the fork handler first if
/// no call of this process has registered one yet.
///
/// # Errors
///
/// The error of `pthread_atfork` (`ENOMEM`), in which case no notifier can
/// be made: one that could not tell a child from its parent would break the
/// promise that a child never touches its parent's wake.
pub(crate) fn generation() -> io::Result<usize> {
    // Acquire: pairs with the Release in `install`, so the registration it
    // reports happens before the object our caller makes.
    #[cfg(unix)]
    if !INSTALLED.load(Acquire) {
        install()?;
    }
    Ok(GENERATION.load(Relaxed))
}

/// Registers a fork handler of this call's own (never waits for another
/// thread's: see the module doc).
#[cfg(unix)]
#[cold]
fn install() -> io::Result<()> {
    // SAFETY: registers a child handler that only does an atomic add; no
    // prepare or parent handler. `pthread_atfork` is thread-safe.
    let ret = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    INSTALLED.store(true, Release);
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
