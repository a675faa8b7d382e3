//! A prefetch for write: the queue asks the CPU for the cache line of a slot
//! it is about to write, a few slots ahead, so that the line is here and
//! exclusive by the time the write comes.
//!
//! Why it pays: the slots a sender writes were last written by the loop's
//! thread (it read the messages and relinked the slots), so each of their
//! lines has to come over from the other core, and the compare-and-swap that
//! publishes a message waits for the line its write went to. Fetched ahead
//! with write intent (`prefetchw`), the line arrives while the sender does
//! other work; a read prefetch (`prefetcht0`) brings it shared, the write
//! still has to take it over, and it is slower than no prefetch at all.
//!
//! Only x86-64 CPUs that report `prefetchw` (CPUID `PRFCHW`, checked once
//! per process) run it; elsewhere, and under loom, it is nothing.

/// How far ahead of the slot being written the prefetch goes, in bytes:
/// two cache lines.
pub(super) const AHEAD_BYTES: usize = 128;

/// Asks for the cache line holding `p`, for writing. A hint: it reads and
/// writes nothing and never faults, whatever `p` points to, so `p` may be
/// past the end of an allocation (computed with `wrapping_add`).
#[inline(always)]
pub(super) fn for_write<P>(p: *const P) {
    #[cfg(all(target_arch = "x86_64", not(wakefd_loom)))]
    if x86::has_prefetchw() {
        // SAFETY: `prefetchw` reads and writes no memory, changes no
        // register or flag, and does not fault on any address (a hint, and
        // dropped where the address is not mapped); this CPU has it
        // (`has_prefetchw`).
        unsafe {
            std::arch::asm!(
                "prefetchw [{0}]",
                in(reg) p,
                options(nostack, readonly, preserves_flags)
            );
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(wakefd_loom))))]
    let _ = p;
}

#[cfg(all(target_arch = "x86_64", not(wakefd_loom)))]
mod x86 {
    use std::arch::x86_64::__cpuid;
    use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;

    /// Whether this CPU has `prefetchw`. Relaxed: the answer is the same
    /// for every thread, so a thread that finds it unknown just asks again.
    #[inline(always)]
    pub(super) fn has_prefetchw() -> bool {
        static HAS: AtomicU8 = AtomicU8::new(UNKNOWN);
        match HAS.load(Relaxed) {
            YES => true,
            NO => false,
            _ => {
                let yes = detect();
                HAS.store(if yes { YES } else { NO }, Relaxed);
                yes
            }
        }
    }

    #[cold]
    fn detect() -> bool {
        const EXTENDED: u32 = 0x8000_0001;
        /// CPUID 8000_0001h, ECX bit 8: `PRFCHW` (AMD's `3DNowPrefetch`).
        const PRFCHW: u32 = 1 << 8;
        // SAFETY: `cpuid` exists on every x86-64 CPU, and the extended
        // leaf is read only when the highest one reported includes it.
        // `__cpuid` is an unsafe fn on the compilers of the crate's
        // rust-version, a safe one on newer ones.
        #[allow(unused_unsafe)]
        unsafe {
            __cpuid(0x8000_0000).eax >= EXTENDED && __cpuid(EXTENDED).ecx & PRFCHW != 0
        }
    }
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux", not(wakefd_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_detection_agrees_with_the_kernel() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let flags = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .expect("a flags line");
        let kernel = flags.split_whitespace().any(|f| f == "3dnowprefetch");
        assert_eq!(x86::has_prefetchw(), kernel, "{flags}");
        // Asked again: the cached answer.
        assert_eq!(x86::has_prefetchw(), kernel);
    }

    #[test]
    fn a_prefetch_of_any_address_is_harmless() {
        for_write(std::ptr::null::<u64>());
        for_write(usize::MAX as *const u8);
        let one = 1u64;
        for_write((&one as *const u64).wrapping_add(1 << 40));
        assert_eq!(one, 1);
    }
}
