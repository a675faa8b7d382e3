//! A [`pipe(2)`]: a read end and a write end.
//!
//! A wake is one byte written to the write end. `read_wakes` reads until a
//! short read or `EAGAIN`; since at most one byte is written per drain cycle,
//! that is one `read`. A full pipe (64 KiB on Linux) is already readable, so
//! a write that fails with `EAGAIN` succeeds as a wake. The read end is only
//! closed together with the write end, so a write never meets `EPIPE` (and
//! never raises `SIGPIPE`).
//!
//! Both ends are held as [`File`]s and written and read through `&File`'s
//! safe `Write`/`Read` (one `write(2)`/`read(2)` each, no allocation, no
//! lock: async-signal-safe), as `mio::Waker` does; each `File` closes its fd
//! once, when the `Pipe` is dropped.
//!
//! [`pipe(2)`]: https://man7.org/linux/man-pages/man2/pipe.2.html

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
#[cfg(target_vendor = "apple")]
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{read_stream, write_stream};

pub(crate) struct Pipe {
    read: File,
    write: File,
}

/// The fd numbers only: `File`'s own `Debug` looks the path up.
impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("read", &self.read.as_fd())
            .field("write", &self.write.as_fd())
            .finish()
    }
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Pipe> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        #[cfg(not(target_vendor = "apple"))] // Apple has no pipe2.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        // SAFETY: as above.
        #[cfg(target_vendor = "apple")]
        let ret = unsafe { libc::pipe(fds.as_mut_ptr()) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe(2) succeeded, so both fds are open and ours alone.
        // Owning them at once closes them on every error path below.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        #[cfg(target_vendor = "apple")]
        for fd in [&read, &write] {
            set_cloexec_nonblocking(fd.as_raw_fd())?;
        }
        Ok(Pipe {
            read: File::from(read),
            write: File::from(write),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub(crate) fn write_wake(&self) -> io::Result<()> {
        write_stream(|buf| (&self.write).write(buf))
    }

    pub(crate) fn read_wakes(&self) -> io::Result<()> {
        read_stream(|buf| (&self.read).read(buf))
    }
}

/// Where `pipe2` is missing: the flags one `fcntl` at a time. (Another thread
/// may `fork`+`exec` between `pipe` and here; that window is the platform's.)
#[cfg(target_vendor = "apple")]
fn set_cloexec_nonblocking(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
