//! Saving and restoring `errno`, so that a `notify` called from a signal
//! handler leaves the interrupted code's `errno` as it was ([signal-safety(7)]:
//! a handler that calls functions which may change `errno` must save and
//! restore it).
//!
//! [signal-safety(7)]: https://man7.org/linux/man-pages/man7/signal-safety.7.html

use libc::c_int;

/// The calling thread's `errno`.
fn location() -> *mut c_int {
    // SAFETY: each of these returns a pointer to the calling thread's errno,
    // valid for the life of the thread; they have no preconditions.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "emscripten", target_os = "redox"))]
        return libc::__errno_location();
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        return libc::__errno();
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "tvos",
            target_os = "watchos",
            target_os = "visionos",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        return libc::__error();
        #[cfg(any(target_os = "solaris", target_os = "illumos"))]
        return libc::___errno();
    }
}

/// Restores `errno` to its value at creation when dropped.
pub(crate) struct ErrnoGuard(c_int);

impl ErrnoGuard {
    pub(crate) fn save() -> ErrnoGuard {
        // SAFETY: `location` points to this thread's errno, readable.
        ErrnoGuard(unsafe { *location() })
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: `location` points to this thread's errno, writable.
        unsafe { *location() = self.0 }
    }
}
