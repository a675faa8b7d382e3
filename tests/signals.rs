//! Its own test binary: it installs `SIGUSR1` and `SIGUSR2` handlers and a
//! counting global allocator, to check that `Waker::notify` is
//! async-signal-safe: called from a signal handler it allocates and frees
//! nothing on any path (written, coalesced, failed write, `BrokenPipe`),
//! leaves `errno` as it found it, and the loop sees a wake after every
//! handler call with everything the handler did before `notify` visible.
#![cfg(unix)] // signal handlers

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Mutex, MutexGuard, Once};
use std::thread;
use std::time::Instant;

use libc::c_int;
use util::TIMEOUT;
use wakefd::{Backend, Notifier, Waker};

// ---- a counting allocator: what happens inside a handler ----

struct Counting;

/// Allocations (and reallocations) and frees made inside a handler.
static ALLOCS_IN_HANDLER: AtomicU64 = AtomicU64::new(0);
static FREES_IN_HANDLER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set from a handler's entry to its exit, on the thread it runs on. A
    /// `const` thread-local without a destructor: reading it is a plain
    /// TLS access, which allocates nothing and is safe in a handler.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

fn in_handler() -> bool {
    IN_HANDLER.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator, only counting them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_handler() {
            ALLOCS_IN_HANDLER.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if in_handler() {
            ALLOCS_IN_HANDLER.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_handler() {
            FREES_IN_HANDLER.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if in_handler() {
            ALLOCS_IN_HANDLER.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- errno ----

/// The calling thread's `errno`.
fn errno_location() -> *mut c_int {
    // SAFETY: each returns a pointer to the calling thread's errno, valid for
    // the life of the thread; no preconditions.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "emscripten", target_os = "redox"))]
        return libc::__errno_location();
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        return libc::__errno();
        #[cfg(any(
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        return libc::__error();
        #[cfg(any(target_os = "solaris", target_os = "illumos"))]
        return libc::___errno();
    }
}

fn errno() -> c_int {
    // SAFETY: this thread's errno, readable.
    unsafe { *errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: this thread's errno, writable.
    unsafe { *errno_location() = value }
}

/// What a handler sets `errno` to before it calls `notify`, and expects to
/// find there after.
const HANDLER_ERRNO: c_int = 4242;
/// What the interrupted thread keeps in `errno` while it spins.
const VICTIM_ERRNO: c_int = 1717;

// ---- the handlers ----

/// What a handler records: calls, the outcome of `notify`, and `errno`
/// mismatches. Atomics only: a handler can do nothing else.
struct Record {
    /// The handler's "work", done before `notify`: the loop must see it.
    calls: AtomicU64,
    ok: AtomicU64,
    broken_pipe: AtomicU64,
    other_errors: AtomicU64,
    errno_mismatches: AtomicU64,
}

impl Record {
    const fn new() -> Record {
        Record {
            calls: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            broken_pipe: AtomicU64::new(0),
            other_errors: AtomicU64::new(0),
            errno_mismatches: AtomicU64::new(0),
        }
    }
}

/// The waker each handler notifies: a leaked `Box<Waker>`, swapped only
/// while no signal of its kind is in flight (so a handler never sees a
/// waker being freed). A `OnceLock` cannot be reset between backends.
static USR1_WAKER: AtomicPtr<Waker> = AtomicPtr::new(ptr::null_mut());
static USR2_WAKER: AtomicPtr<Waker> = AtomicPtr::new(ptr::null_mut());
static USR1: Record = Record::new();
static USR2: Record = Record::new();

/// The body of both handlers: count the call, notify with `errno` set to a
/// sentinel, check the sentinel survived, put the interrupted code's
/// `errno` back (as any handler must).
fn handle(waker: &AtomicPtr<Waker>, record: &Record) {
    IN_HANDLER.with(|f| f.set(true));
    let interrupted_errno = errno();
    record.calls.fetch_add(1, Relaxed);
    let waker = waker.load(Relaxed);
    if !waker.is_null() {
        set_errno(HANDLER_ERRNO);
        // SAFETY: a non-null pointer is a leaked `Box<Waker>`, freed only
        // after it is swapped out while no signal is in flight.
        let result = unsafe { &*waker }.notify();
        if errno() != HANDLER_ERRNO {
            record.errno_mismatches.fetch_add(1, Relaxed);
        }
        match &result {
            Ok(()) => &record.ok,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => &record.broken_pipe,
            Err(_) => &record.other_errors,
        }
        .fetch_add(1, Relaxed);
        // Dropped inside the handler on purpose: freeing an error would be
        // counted too.
        drop(result);
    }
    set_errno(interrupted_errno);
    IN_HANDLER.with(|f| f.set(false));
}

extern "C" fn on_usr1(_: c_int) {
    handle(&USR1_WAKER, &USR1);
}

extern "C" fn on_usr2(_: c_int) {
    handle(&USR2_WAKER, &USR2);
}

/// Installs `handler` for `signal` with a raw `sigaction(2)`.
fn install(signal: c_int, handler: extern "C" fn(c_int)) {
    // SAFETY: a zeroed sigaction is a valid starting point (no flags, empty
    // mask after sigemptyset); the handler only touches atomics,
    // thread-locals without destructors, errno and `Waker::notify`.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        let ret = libc::sigaction(signal, &action, ptr::null_mut());
        assert_eq!(ret, 0, "sigaction: {}", io::Error::last_os_error());
    }
}

fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install(libc::SIGUSR1, on_usr1);
        install(libc::SIGUSR2, on_usr2);
    });
}

/// Makes `waker` the one the handler notifies (`None`: none), freeing the
/// previous one. Only while no signal for that handler is in flight.
fn set_waker(slot: &AtomicPtr<Waker>, waker: Option<Waker>) {
    let new = waker.map_or(ptr::null_mut(), |w| Box::into_raw(Box::new(w)));
    let old = slot.swap(new, Relaxed);
    if !old.is_null() {
        // SAFETY: `old` came from Box::into_raw in an earlier call, and no
        // handler can be using it (no signal is in flight).
        drop(unsafe { Box::from_raw(old) });
    }
}

/// The tests count allocations in process-wide counters: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the tests ----

#[test]
fn the_counting_allocator_sees_allocations_made_in_a_handler() {
    let _serial = serial();
    let (allocs, frees) = (
        ALLOCS_IN_HANDLER.load(Relaxed),
        FREES_IN_HANDLER.load(Relaxed),
    );
    IN_HANDLER.with(|f| f.set(true));
    drop(std::hint::black_box(Box::new(7u64)));
    IN_HANDLER.with(|f| f.set(false));
    assert_eq!(ALLOCS_IN_HANDLER.load(Relaxed) - allocs, 1);
    assert_eq!(FREES_IN_HANDLER.load(Relaxed) - frees, 1);
}

/// A thread's id, to send to the thread that signals it.
struct PthreadT(libc::pthread_t);

// SAFETY: a pthread_t is an id, valid in any thread of the process (a
// pointer on some platforms, never dereferenced by us).
unsafe impl Send for PthreadT {}

/// Signals for the default backend; the others get fewer, to keep the test
/// to a few seconds.
const SIGNALS_DEFAULT: u64 = 100_000;
const SIGNALS_OTHERS: u64 = 5_000;

#[test]
fn notify_in_a_signal_handler_allocates_nothing_keeps_errno_and_is_seen() {
    let _serial = serial();
    install_handlers();
    for backend in Backend::available() {
        let signals = if backend == Backend::default() {
            SIGNALS_DEFAULT
        } else {
            SIGNALS_OTHERS
        };
        eprintln!("-- backend {backend}: {signals} signals");
        signals_are_seen(backend, signals);
    }
}

/// One thread spins (and now and then calls `notify` itself, so that some
/// signals land inside a `notify` on the same waker); another sends it
/// `signals` SIGUSR1s, one at a time, each once the previous one has been
/// handled (pending signals coalesce, so this is what makes exactly
/// `signals` handler calls); this thread waits on the notifier until it has
/// seen, after a wake, the count of the last handler call.
fn signals_are_seen(backend: Backend, signals: u64) {
    let notifier = Notifier::with_backend(backend).unwrap();
    set_waker(&USR1_WAKER, Some(notifier.waker()));
    let base = USR1.calls.load(Relaxed);
    let (ok, allocs, frees) = (
        USR1.ok.load(Relaxed),
        ALLOCS_IN_HANDLER.load(Relaxed),
        FREES_IN_HANDLER.load(Relaxed),
    );
    let stop = &AtomicBool::new(false);
    let victim_errno_mismatches = &AtomicU64::new(0);
    let deadline = Instant::now() + TIMEOUT * 3;

    thread::scope(|s| {
        let victim_waker = notifier.waker();
        let (tx, rx) = mpsc::channel();
        let victim = s.spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(PthreadT(unsafe { libc::pthread_self() })).unwrap();
            set_errno(VICTIM_ERRNO);
            let mut spins = 0u64;
            while !stop.load(Relaxed) {
                spins += 1;
                if spins % 4096 == 0 {
                    let _ = victim_waker.notify();
                }
                if errno() != VICTIM_ERRNO {
                    victim_errno_mismatches.fetch_add(1, Relaxed);
                    set_errno(VICTIM_ERRNO);
                }
                std::hint::spin_loop();
            }
        });
        let victim_thread = rx.recv().unwrap();

        let sender = s.spawn(move || {
            for i in 1..=signals {
                // SAFETY: the victim thread is alive: it only exits once
                // `stop` is set, after this thread is done.
                let ret = unsafe { libc::pthread_kill(victim_thread.0, libc::SIGUSR1) };
                assert_eq!(
                    ret,
                    0,
                    "pthread_kill: {}",
                    io::Error::from_raw_os_error(ret)
                );
                while USR1.calls.load(Relaxed) < base + i {
                    assert!(
                        Instant::now() < deadline,
                        "signal {i} of {signals} not handled in time"
                    );
                    thread::yield_now();
                }
            }
        });

        // The loop: wait, drain, look at the work (the handler count).
        let mut wakes = 0u64;
        let mut seen = 0u64;
        let result = loop {
            if seen == signals {
                break Ok(());
            }
            // The victim's own notifies keep `wait` returning: without a
            // deadline here, a sender that gave up (its deadline passed, on
            // a loaded machine) left this loop running forever.
            if Instant::now() >= deadline {
                break Err(format!(
                    "not all handler calls seen by the deadline: {seen} of {signals}, {} made",
                    USR1.calls.load(Relaxed) - base
                ));
            }
            match notifier.wait(Some(TIMEOUT)) {
                Ok(true) => {
                    wakes += 1;
                    seen = USR1.calls.load(Relaxed) - base;
                }
                Ok(false) => {
                    break Err(format!(
                        "no wake for {TIMEOUT:?}: the loop has seen {seen} handler calls \
                         of {signals}, {} made",
                        USR1.calls.load(Relaxed) - base
                    ))
                }
                Err(e) => break Err(format!("wait: {e}")),
            }
        };
        stop.store(true, Relaxed);
        let sender_result = sender.join();
        victim.join().unwrap();
        sender_result.unwrap();
        result.unwrap();
        eprintln!("   {wakes} wakes seen for {signals} handler calls");
        assert!(wakes >= 1);
    });

    // Make sure nothing is in flight before the waker is freed: every
    // signal sent was handled (the sender waited for each).
    assert_eq!(USR1.calls.load(Relaxed) - base, signals);
    set_waker(&USR1_WAKER, None);
    assert_eq!(
        ALLOCS_IN_HANDLER.load(Relaxed) - allocs,
        0,
        "allocations in the handler"
    );
    assert_eq!(
        FREES_IN_HANDLER.load(Relaxed) - frees,
        0,
        "frees in the handler"
    );
    assert_eq!(
        USR1.ok.load(Relaxed) - ok,
        signals,
        "notify failed in the handler"
    );
    assert_eq!(
        USR1.errno_mismatches.load(Relaxed),
        0,
        "errno changed by notify"
    );
    assert_eq!(
        victim_errno_mismatches.load(Relaxed),
        0,
        "the interrupted thread's errno changed"
    );
}

/// Raises SIGUSR2 on this thread `n` times; `raise` returns after the
/// handler ran.
fn raise_usr2(n: u64) {
    for _ in 0..n {
        // SAFETY: the handler is installed and async-signal-safe.
        let ret = unsafe { libc::raise(libc::SIGUSR2) };
        assert_eq!(ret, 0, "raise: {}", io::Error::last_os_error());
    }
}

struct Counts {
    calls: u64,
    ok: u64,
    broken_pipe: u64,
    other_errors: u64,
    allocs: u64,
    frees: u64,
}

fn usr2_counts() -> Counts {
    Counts {
        calls: USR2.calls.load(Relaxed),
        ok: USR2.ok.load(Relaxed),
        broken_pipe: USR2.broken_pipe.load(Relaxed),
        other_errors: USR2.other_errors.load(Relaxed),
        allocs: ALLOCS_IN_HANDLER.load(Relaxed),
        frees: FREES_IN_HANDLER.load(Relaxed),
    }
}

/// Raises SIGUSR2 `n` times and returns what changed.
fn usr2_delta(n: u64) -> Counts {
    let before = usr2_counts();
    raise_usr2(n);
    let after = usr2_counts();
    Counts {
        calls: after.calls - before.calls,
        ok: after.ok - before.ok,
        broken_pipe: after.broken_pipe - before.broken_pipe,
        other_errors: after.other_errors - before.other_errors,
        allocs: after.allocs - before.allocs,
        frees: after.frees - before.frees,
    }
}

#[test]
fn every_notify_path_in_a_handler_allocates_nothing_and_keeps_errno() {
    let _serial = serial();
    install_handlers();
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        set_waker(&USR2_WAKER, Some(notifier.waker()));

        // Written, then coalesced.
        let d = usr2_delta(3);
        assert_eq!((d.calls, d.ok), (3, 3));
        assert_eq!(
            (d.allocs, d.frees),
            (0, 0),
            "allocations on the written path"
        );
        assert!(notifier.drain().unwrap());
        assert_eq!(notifier.stats().wakes_written, 1);

        // A failed write (ENOBUFS from the fault hook), then a retry that
        // writes.
        #[cfg(wakefd_fault_injection)]
        {
            notifier.fail_next_writes(1);
            let d = usr2_delta(2);
            assert_eq!((d.calls, d.ok, d.other_errors), (2, 1, 1));
            assert_eq!(
                (d.allocs, d.frees),
                (0, 0),
                "allocations on the failed-write path"
            );
            assert!(notifier.drain().unwrap());
        }

        // The Notifier is gone: BrokenPipe, and still nothing allocated.
        drop(notifier);
        let d = usr2_delta(1_000);
        assert_eq!((d.calls, d.broken_pipe), (1_000, 1_000));
        assert_eq!(
            (d.allocs, d.frees),
            (0, 0),
            "allocations on the BrokenPipe path"
        );

        set_waker(&USR2_WAKER, None);
    });
    assert_eq!(
        USR2.errno_mismatches.load(Relaxed),
        0,
        "errno changed by notify"
    );
}
