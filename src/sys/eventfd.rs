//! An [`eventfd(2)`]: one fd that is both ends.
//!
//! `eventfd` is a 64-bit counter. A wake adds 1 to it with an 8-byte
//! `write`; `read_wakes` reads it back in one 8-byte `read`, which returns the
//! count and resets it to 0 (or fails with `EAGAIN` when it was 0 already).
//! The fd is readable while the counter is non-zero, and every write wakes
//! its epoll watchers, edge-triggered ones included, so a loop that watches
//! it through mio never has to read it (`mio::Waker` never does).
//!
//! A full counter (2^64 - 2, reachable only by never reading) makes `write`
//! fail with `EAGAIN`; the counter is then read back to 0 and written again,
//! so that an edge-triggered watcher still gets its event.
//!
//! The fd is held as a [`File`] and written and read through `&File`'s safe
//! `Write`/`Read` (one `write(2)`/`read(2)` each, no allocation, no lock:
//! async-signal-safe), as `mio::Waker` does; the `File` closes it once.
//!
//! [`eventfd(2)`]: https://man7.org/linux/man-pages/man2/eventfd.2.html

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

pub(crate) struct EventFd {
    fd: File,
}

/// The fd number only: `File`'s own `Debug` looks the path up.
impl fmt::Debug for EventFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFd")
            .field("fd", &self.fd.as_fd())
            .finish()
    }
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: plain system call with constant flags; no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is open, and nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd: File::from(fd) })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn write_wake(&self) -> io::Result<()> {
        // An eventfd takes exactly 8 bytes, a u64 in native byte order.
        let one = 1u64.to_ne_bytes();
        // Two tries: the second follows a reset of a full counter.
        for _ in 0..2 {
            loop {
                match (&self.fd).write(&one) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // The counter is full: reset it and write again, so an
                    // edge-triggered watcher gets an edge.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            self.read_wakes()?;
        }
        // Full twice in a row: it is readable, which is what a wake means.
        Ok(())
    }

    pub(crate) fn read_wakes(&self) -> io::Result<()> {
        let mut count = [0u8; 8];
        loop {
            match (&self.fd).read(&mut count) {
                // The counter is reset to 0; its value is not needed.
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Already 0.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
