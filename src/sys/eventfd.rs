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
//! [`eventfd(2)`]: https://man7.org/linux/man-pages/man2/eventfd.2.html

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
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
        Ok(EventFd { fd })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn write_wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // Two tries: the second follows a reset of a full counter.
        for _ in 0..2 {
            loop {
                // SAFETY: writes 8 bytes from a live, aligned u64 to an fd we
                // own for the duration of the call.
                let ret = unsafe {
                    libc::write(
                        self.fd.as_raw_fd(),
                        (&one as *const u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                match cvt(ret) {
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
        let mut count: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into a live, aligned u64 from an
            // fd we own for the duration of the call.
            let ret = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut count as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            match cvt(ret) {
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
