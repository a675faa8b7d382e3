//! Pinning threads to CPUs: the ping-pong pair to two different CPUs, so
//! that every wake crosses from one core to the other, and the Mailbox
//! comparison's loop to a CPU of its own. Shared by the latency example and
//! `benches/notify.rs` (through `#[path]`), like `contenders.rs`.

#![allow(dead_code)] // each includer uses its own part

use std::io;

/// The CPUs to pin the measuring and the echo thread to: the first two
/// this process may run on. None with fewer than two, or where pinning is
/// not implemented.
pub fn two_cpus() -> Option<(usize, usize)> {
    match allowed_cpus()[..] {
        [a, b, ..] => Some((a, b)),
        _ => None,
    }
}

pub use imp::{allowed_cpus, pin_set};

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    pin_set(&[cpu])
}

/// Pins the calling thread to `cpus` until dropped, then gives it back the
/// CPUs it was allowed before.
pub struct PinnedFor {
    before: Vec<usize>,
}

impl PinnedFor {
    pub fn cpus(cpus: &[usize]) -> io::Result<PinnedFor> {
        let before = allowed_cpus();
        pin_set(cpus)?;
        Ok(PinnedFor { before })
    }
}

impl Drop for PinnedFor {
    fn drop(&mut self) {
        if !self.before.is_empty() {
            // Widening back to a set the thread had cannot fail but for a
            // CPU taken offline meanwhile; the next pin reports that.
            let _ = pin_set(&self.before);
        }
    }
}

/// Thread-to-CPU pinning through `sched_setaffinity(2)`.
// sched_getaffinity/sched_setaffinity and cpu_set_t are Linux (and Android) only.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::io;

    /// The CPUs the calling thread may run on.
    pub fn allowed_cpus() -> Vec<usize> {
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is a valid,
        // empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a live cpu_set_t and we pass its exact size.
        let ret = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if ret != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }

    /// Pins the calling thread to the CPUs in `cpus` (each below
    /// `CPU_SETSIZE`, as `allowed_cpus` gives them).
    pub fn pin_set(cpus: &[usize]) -> io::Result<()> {
        // SAFETY: as above, all zeroes is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        // SAFETY: `set` is a live cpu_set_t and we pass its exact size;
        // pid 0 is the calling thread.
        let ret = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        if ret == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Elsewhere: no CPUs to pin to, so [`two_cpus`] is None and the threads
/// are left to the scheduler.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    pub fn allowed_cpus() -> Vec<usize> {
        Vec::new()
    }

    pub fn pin_set(_cpus: &[usize]) -> std::io::Result<()> {
        Ok(())
    }
}
