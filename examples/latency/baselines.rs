//! The hand-written baselines: an eventfd and an epoll instance per loop,
//! straight system calls, nothing else. Watched level-triggered with a
//! `read` per wake, or edge-triggered and never read (the floor: one
//! `write` and one `epoll_wait` per wake).

// eventfd(2) and epoll(7) are Linux (and Android) system calls.
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::mech::{Loop, Wake, Woke};

/// A loop on a raw eventfd + epoll: level-triggered with a read per wake
/// (`lt_read`), or edge-triggered with no read.
pub fn epoll(lt_read: bool) -> io::Result<(Loop, Arc<dyn Wake>)> {
    let eventfd = Arc::new(EventFd::new()?);
    let epoll = Epoll::new(&eventfd, !lt_read)?;
    let own = Arc::clone(&eventfd);
    let poll = move |timeout| {
        Ok(if !epoll.wait(timeout)? {
            Woke::TimedOut
        } else if lt_read {
            Woke::Drained(own.read()?)
        } else {
            Woke::Unread
        })
    };
    Ok((Box::new(poll), Arc::new(move || eventfd.write())))
}

/// A non-blocking eventfd, read and written through a `File`.
struct EventFd(File);

impl EventFd {
    fn new() -> io::Result<EventFd> {
        // SAFETY: plain system call with constant flags; no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and nothing else owns it.
        Ok(EventFd(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Adds 1 to the counter. `EINTR` is retried; `EAGAIN` (a counter at
    /// 2^64 - 2, never reached here) means it is readable already.
    fn write(&self) -> io::Result<()> {
        loop {
            match (&self.0).write(&1u64.to_ne_bytes()) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and resets the counter; `false` if it was 0 (`EAGAIN`).
    /// `EINTR` is retried.
    fn read(&self) -> io::Result<bool> {
        let mut count = [0u8; 8];
        loop {
            match (&self.0).read(&mut count) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

/// An epoll instance watching one eventfd.
struct Epoll(OwnedFd);

impl Epoll {
    fn new(watch: &EventFd, edge: bool) -> io::Result<Epoll> {
        // SAFETY: plain system call with a constant flag; no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else
        // owns it.
        let epoll = Epoll(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut flags = libc::EPOLLIN as u32;
        if edge {
            flags |= libc::EPOLLET as u32;
        }
        let mut event = libc::epoll_event {
            events: flags,
            u64: 0,
        };
        // SAFETY: both fds are open, and `event` is a valid epoll_event that
        // lives across the call.
        let ret = unsafe {
            libc::epoll_ctl(
                epoll.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                watch.0.as_raw_fd(),
                &mut event,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(epoll)
    }

    /// `epoll_wait` for one event; `false` on timeout. `EINTR` is retried.
    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let ms = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        loop {
            // SAFETY: `event` is a valid buffer for exactly one event and
            // lives across the call; the epoll fd is open.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut event, 1, ms) };
            match n {
                0 => return Ok(false),
                n if n > 0 => return Ok(true),
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
            }
        }
    }
}
