//! Its own test binary, without the libtest harness (`harness = false` in
//! Cargo.toml): `main` runs the cases one after the other on the only
//! thread of the process, so each `fork()` copies a single-threaded process
//! and the child may allocate (the "belongs to the parent process" error
//! message is allocated) without meeting a lock another thread held. (Under
//! libtest every test runs on a thread of a process with several, so a
//! child could inherit a lock held by another test's thread.) Two cases
//! start threads on purpose, and say why: the fork race, whose trials each
//! run in a fresh child, and the last case, which forks while a second
//! thread takes the Mailbox's lock, to show that the child never waits for
//! it.
//!
//! Each case forks; the child checks what it can do with the objects it
//! inherited and `_exit`s with 0, or with the number of the first check that
//! failed (after printing it to stderr); the parent waits for it and then
//! checks that its own wake was neither stolen nor faked.
//!
//! `cargo test --test fork [-- FILTER] [--include-ignored]`: cases marked
//! `known_bug` show a bug in the crate and run only with `--include-ignored`
//! (or `--ignored`), as `#[ignore]`d tests would. The fork race runs
//! `WAKEFD_FORK_RACE_TRIALS` trials (default 2 000).

// Forks: every case is Unix-only; elsewhere the binary runs none.
#[cfg(not(unix))]
fn main() {}

mod util;

#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::fd::AsRawFd;
#[cfg(unix)]
use std::panic::{self, AssertUnwindSafe};
#[cfg(unix)]
use std::process::ExitCode;
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(unix)]
use std::thread;
#[cfg(unix)]
use std::time::{Duration, Instant};

#[cfg(unix)]
use mio::{Events, Poll};
#[cfg(unix)]
use util::{is_readable, wakes_in_fd, TIMEOUT};
#[cfg(unix)]
use wakefd::{Backend, Mailbox, Notifier, TryRecvError};

// ---- forking ----

/// A failed check in the child: its number (the exit status) and what it
/// checked.
#[cfg(unix)]
struct Failed(u8, String);

/// `Ok(())` if `ok`, else the failed check `code`.
#[cfg(unix)]
fn check(ok: bool, code: u8, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(Failed(code, what()))
    }
}

/// Checks that `result` is the error of an object inherited across fork: its
/// message says it belongs to the parent process.
#[cfg(unix)]
fn check_inherited<T: std::fmt::Debug>(
    result: io::Result<T>,
    code: u8,
    call: &str,
) -> Result<(), Failed> {
    match result {
        Err(e) if e.to_string().contains("parent process") => Ok(()),
        other => Err(Failed(
            code,
            format!("{call} in the child: {other:?}, not an error naming the parent process"),
        )),
    }
}

/// Forks; runs `child` in the child and `_exit`s with its outcome (0, the
/// failed check's number, or 101 on a panic); in the parent, waits for the
/// child and panics unless it exited with 0.
#[cfg(unix)]
fn fork_and_check(child: impl FnOnce() -> Result<(), Failed>) {
    // SAFETY: this process has one thread (no libtest harness), so the child
    // is a complete copy and may do anything the parent could. It never
    // returns into the parent's code: it `_exit`s (a panic is caught first).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = match panic::catch_unwind(AssertUnwindSafe(child)) {
            Ok(Ok(())) => 0,
            Ok(Err(Failed(code, what))) => {
                eprintln!("child check {code} failed: {what}");
                code.into()
            }
            Err(_) => 101,
        };
        // SAFETY: ends the child at once, without running the parent's
        // atexit handlers or destructors or flushing its buffers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid int to fill.
    let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(ret, pid, "waitpid: {}", io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit: wait status {status:#x}"
    );
    let code = libc::WEXITSTATUS(status);
    assert_eq!(code, 0, "the child failed check {code} (see its stderr)");
}

/// Waits for the child `pid` for at most `timeout`. `Some(status)` if it
/// ended; `None` if it was still running at the deadline, and then it has
/// been killed (and reaped) and `wchan` says where it was blocked.
#[cfg(unix)]
fn wait_or_kill(pid: libc::pid_t, timeout: Duration) -> Option<libc::c_int> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: polls our own child without blocking; `status` is a
        // valid int to fill.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match ret {
            -1 => {
                let err = io::Error::last_os_error();
                assert_eq!(err.kind(), io::ErrorKind::Interrupted, "waitpid: {err}");
            }
            0 if Instant::now() >= deadline => {
                let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan"));
                eprintln!(
                    "child {pid} still running after {timeout:?}, blocked in {wchan:?}: killed"
                );
                // SAFETY: our own child, not yet reaped, so `pid` is still
                // its pid; SIGKILL ends it, and the blocking waitpid then
                // returns at once.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    while libc::waitpid(pid, &mut status, 0) == -1 {}
                }
                return None;
            }
            0 => thread::sleep(Duration::from_micros(50)),
            _ => return Some(status),
        }
    }
}

// ---- the cases ----

/// A grandchild still running after this is hung (it needs well under a
/// millisecond).
#[cfg(unix)]
const HANG: Duration = Duration::from_secs(2);

/// The fork race stops after this many hangs: the verdict is known.
#[cfg(unix)]
const ENOUGH_HANGS: usize = 5;

/// What a fork-race trial's process reports in its exit status.
#[cfg(unix)]
const RACE_OK: i32 = 0;
#[cfg(unix)]
const RACE_HUNG: i32 = 1;
#[cfg(unix)]
const RACE_GRANDCHILD_FAILED: i32 = 2;
#[cfg(unix)]
const RACE_THREAD_FAILED: i32 = 3;
#[cfg(unix)]
const RACE_FORK_FAILED: i32 = 4;

/// A thread makes the process's first Notifier while the main thread forks:
/// the child's own first Notifier never waits for the parent's install of
/// the fork handler, whatever the timing. Each trial is a fresh process
/// (forked from this single-threaded one, which has made no notifier yet:
/// this case runs first), because the install happens once per process:
/// it starts the thread, waits for it to reach `Notifier::new`, spins a
/// trial-dependent while, and forks a grandchild that makes and uses a
/// Notifier and `_exit`s. A grandchild still running after [`HANG`] is
/// killed and counted; any hang fails the case. Bounded in trials
/// (`WAKEFD_FORK_RACE_TRIALS`), in hangs ([`ENOUGH_HANGS`]) and in time (no
/// new trial after a minute plus 5 ms a trial).
#[cfg(unix)]
fn child_forked_while_a_thread_makes_the_first_notifier_does_not_hang() {
    let trials: usize = std::env::var("WAKEFD_FORK_RACE_TRIALS")
        .map(|t| t.parse().expect("WAKEFD_FORK_RACE_TRIALS: a number"))
        .unwrap_or(2_000);
    let budget = Duration::from_secs(60) + Duration::from_millis(5) * trials as u32;
    let start = Instant::now();
    let (mut ran, mut hung, mut other) = (0, 0, Vec::new());
    while ran < trials && hung < ENOUGH_HANGS && start.elapsed() < budget {
        // SAFETY: this process has one thread (see the file's doc). The
        // child runs `race_trial`, which never returns, only `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            race_trial(ran);
        }
        ran += 1;
        match wait_or_kill(pid, 2 * HANG) {
            Some(status) if libc::WIFEXITED(status) => match libc::WEXITSTATUS(status) {
                RACE_OK => {}
                RACE_HUNG => hung += 1,
                code => other.push(code),
            },
            Some(status) => other.push(status),
            None => other.push(-1),
        }
    }
    println!(
        "fork race: {ran} trials in {:.1?}, {hung} grandchildren hung, {} other failures",
        start.elapsed(),
        other.len()
    );
    assert_eq!(
        hung, 0,
        "{hung} of {ran} children hung in their first Notifier::new"
    );
    assert!(
        other.is_empty(),
        "trials failed otherwise (exit codes, -1: the trial hung): {other:?}"
    );
    assert!(ran >= trials.min(100), "only {ran} trials in {budget:?}");
}

/// One fork-race trial, in a fresh process: see the case above. Never
/// returns.
#[cfg(unix)]
fn race_trial(trial: usize) -> ! {
    let code = panic::catch_unwind(|| race(trial)).unwrap_or(101);
    // SAFETY: ends the trial's process at once, without running the test
    // binary's destructors or flushing its buffers.
    unsafe { libc::_exit(code) }
}

/// The body of [`race_trial`]: its exit status.
#[cfg(unix)]
fn race(trial: usize) -> i32 {
    let started = AtomicBool::new(false);
    thread::scope(|s| {
        let maker = s.spawn(|| {
            started.store(true, Ordering::Release);
            Notifier::new().map(drop)
        });
        while !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // Sweep the fork over the thread's install: 0 to about 10 µs.
        for _ in 0..(trial % 64) * 40 {
            std::hint::spin_loop();
        }
        // SAFETY: the grandchild only makes and uses a Notifier (allocation
        // is fork-safe in glibc and the crate takes no lock there) and
        // `_exit`s; it never returns into this code.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let works = Notifier::new().and_then(|notifier| {
                notifier.waker().notify()?;
                notifier.drain()
            });
            // SAFETY: ends the grandchild at once, running nothing of ours.
            unsafe { libc::_exit(if matches!(works, Ok(true)) { 0 } else { 1 }) };
        }
        let thread_ok = maker.join().is_ok_and(|made| made.is_ok());
        if pid < 0 {
            return RACE_FORK_FAILED;
        }
        match wait_or_kill(pid, HANG) {
            None => RACE_HUNG,
            Some(status) if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 => {
                RACE_GRANDCHILD_FAILED
            }
            Some(_) if !thread_ok => RACE_THREAD_FAILED,
            Some(_) => RACE_OK,
        }
    })
}

/// (a) A wake pending at fork: the child's `drain`, `wait`, `poll` and
/// `notify` fail with the parent-process error and leave the wake in the
/// fd; the parent drains it and is woken again afterwards.
#[cfg(unix)]
fn child_cannot_drain_wait_or_notify_and_does_not_steal_the_wake(backend: Backend) {
    let notifier = Notifier::with_backend(backend).unwrap();
    let waker = notifier.waker();
    waker.notify().unwrap();

    fork_and_check(|| {
        check_inherited(notifier.drain(), 1, "Notifier::drain")?;
        check_inherited(notifier.wait(Some(Duration::ZERO)), 2, "Notifier::wait")?;
        check_inherited(waker.notify(), 3, "Waker::notify")?;
        check_inherited(notifier.waker().notify(), 4, "notify of a new Waker")?;
        let mut poll = Poll::new().map_err(|e| Failed(5, format!("Poll::new: {e}")))?;
        let mut events = Events::with_capacity(4);
        check_inherited(
            notifier.poll(&mut poll, &mut events, Some(Duration::ZERO)),
            6,
            "Notifier::poll",
        )?;
        check(is_readable(&notifier), 7, || {
            "the wake is gone from the fd".into()
        })
    });

    assert!(is_readable(&notifier), "the child took the wake");
    assert_eq!(wakes_in_fd(&notifier, backend), 1);
    assert!(notifier.drain().unwrap(), "the wake is no longer pending");
    assert!(!is_readable(&notifier));
    waker.notify().unwrap();
    assert!(notifier.wait(Some(Duration::from_millis(200))).unwrap());
}

/// (b) The parent has drained: the child's `notify` (through any waker) does
/// not make the parent's fd readable, nor does dropping the inherited
/// notifier and wakers; the parent's wakers work as before.
#[cfg(unix)]
fn child_notify_does_not_wake_the_parent(backend: Backend) {
    // In slots, so that the child can drop its copies (taking them out of
    // the child's memory leaves the parent's alone).
    let mut notifier_slot = Some(Notifier::with_backend(backend).unwrap());
    let mut waker_slot = notifier_slot.as_ref().map(Notifier::waker);
    let (notifier, waker) = (
        notifier_slot.as_ref().unwrap(),
        waker_slot.as_ref().unwrap(),
    );
    waker.notify().unwrap();
    assert!(notifier.drain().unwrap());

    fork_and_check(|| {
        let waker = waker_slot.take().unwrap();
        check_inherited(waker.notify(), 1, "Waker::notify")?;
        check_inherited(waker.clone().notify(), 2, "notify of a cloned Waker")?;
        // Dropping them in the child closes the child's copies only.
        drop(notifier_slot.take());
        check_inherited(waker.notify(), 3, "Waker::notify after the drop")?;
        drop(waker);
        Ok(())
    });

    let (notifier, waker) = (notifier_slot.unwrap(), waker_slot.unwrap());

    assert!(!is_readable(&notifier), "the child's notify reached the fd");
    assert!(!notifier.wait(Some(Duration::from_millis(100))).unwrap());
    waker.notify().unwrap();
    assert!(notifier.wait(Some(TIMEOUT)).unwrap());
}

/// (c) Mailbox: in the child `send` gives the message back, `try_recv` is
/// `Disconnected`, `drain` yields nothing, `wait` and `poll` fail; the
/// parent receives its own messages, and only those.
#[cfg(unix)]
fn child_mailbox_cannot_send_or_receive(backend: Backend) {
    let mut mailbox = Mailbox::<u32>::with_backend(backend).unwrap();
    let sender = mailbox.sender();
    sender.send(1).unwrap();
    sender.send(2).unwrap();

    fork_and_check(|| {
        match sender.send(3) {
            Err(e) => check(e.0 == 3, 1, || format!("SendError gave back {}", e.0))?,
            Ok(()) => return Err(Failed(2, "Sender::send succeeded in the child".into())),
        }
        check(sender.clone().send(4).is_err(), 3, || {
            "send of a cloned Sender succeeded".into()
        })?;
        let got = mailbox.try_recv();
        check(got == Err(TryRecvError::Disconnected), 4, || {
            format!("Mailbox::try_recv in the child: {got:?}")
        })?;
        let drained = mailbox.drain().len();
        check(drained == 0, 5, || {
            format!("Mailbox::drain in the child yielded {drained} messages")
        })?;
        check_inherited(mailbox.wait(Some(Duration::ZERO)), 6, "Mailbox::wait")?;
        let mut poll = Poll::new().map_err(|e| Failed(7, format!("Poll::new: {e}")))?;
        let mut events = Events::with_capacity(4);
        check_inherited(
            mailbox.poll(&mut poll, &mut events, Some(Duration::ZERO)),
            8,
            "Mailbox::poll",
        )?;
        check(is_readable(&mailbox), 9, || {
            "the wake is gone from the fd".into()
        })
    });

    assert!(is_readable(&mailbox), "the child took the wake");
    assert!(mailbox.wait(Some(TIMEOUT)).unwrap());
    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
    assert!(!mailbox.wait(Some(Duration::from_millis(100))).unwrap());
    sender.send(5).unwrap();
    assert_eq!(mailbox.try_recv(), Ok(5));
}

/// (c') The child drops the only Sender (the "last sender" wake) and the
/// Mailbox: the parent is not woken, and is not disconnected.
#[cfg(unix)]
fn child_dropping_the_last_sender_does_not_wake_the_parent(backend: Backend) {
    let mut mailbox_slot = Some(Mailbox::<u32>::with_backend(backend).unwrap());
    let mut sender_slot = mailbox_slot.as_ref().map(Mailbox::sender);

    fork_and_check(|| {
        drop(sender_slot.take());
        drop(mailbox_slot.take());
        Ok(())
    });

    let (mut mailbox, sender) = (mailbox_slot.unwrap(), sender_slot.unwrap());

    assert!(!is_readable(&mailbox), "the child's drop reached the fd");
    assert_eq!(mailbox.try_recv(), Err(TryRecvError::Empty));
    sender.send(1).unwrap();
    assert!(mailbox.wait(Some(TIMEOUT)).unwrap());
    assert_eq!(mailbox.try_recv(), Ok(1));
}

/// (d) A notifier or mailbox made in the child works normally there (and
/// the parent's, made before the fork, still works in the parent).
#[cfg(unix)]
fn fresh_notifier_in_the_child_works(backend: Backend) {
    let parents = Notifier::with_backend(backend).unwrap();

    fork_and_check(|| {
        let err = |code: u8| move |e: io::Error| Failed(code, format!("{e}"));
        let notifier = Notifier::with_backend(backend).map_err(err(1))?;
        let waker = notifier.waker();
        check(!notifier.drain().map_err(err(2))?, 3, || {
            "a new notifier had a wake".into()
        })?;
        waker.notify().map_err(err(4))?;
        check(notifier.drain().map_err(err(5))?, 6, || {
            "the child's own wake was not drained".into()
        })?;
        waker.notify().map_err(err(7))?;
        check(notifier.wait(Some(TIMEOUT)).map_err(err(8))?, 9, || {
            "the child's own wake did not end wait".into()
        })?;
        let mut mailbox = Mailbox::with_backend(backend).map_err(err(10))?;
        let sender = mailbox.sender();
        check(sender.send(7).is_ok(), 11, || "send failed".into())?;
        check(mailbox.wait(Some(TIMEOUT)).map_err(err(12))?, 13, || {
            "no message".into()
        })?;
        let got = mailbox.try_recv();
        check(got == Ok(7), 14, || format!("try_recv: {got:?}"))?;
        // The notifier inherited from the parent is still off limits.
        check_inherited(parents.waker().notify(), 15, "the parent's Waker::notify")
    });

    parents.waker().notify().unwrap();
    assert!(parents.drain().unwrap());
}

/// (e) Known bug: a Mailbox holding leftovers at fork (a `Drain` dropped
/// early, or a `try_recv` that took one of several, leaves messages in the
/// loop's own buffer) yields them again from `drain` in the child, which
/// the docs say yields nothing.
#[cfg(unix)]
fn child_mailbox_drain_yields_nothing_even_with_leftovers(backend: Backend) {
    let mut mailbox = Mailbox::<u32>::with_backend(backend).unwrap();
    let sender = mailbox.sender();
    for i in 1..=3 {
        sender.send(i).unwrap();
    }
    assert_eq!(mailbox.drain().next(), Some(1)); // 2 and 3 stay, a wake pending

    fork_and_check(|| {
        let drained: Vec<u32> = mailbox.drain().collect();
        check(drained.is_empty(), 1, || {
            format!("Mailbox::drain in the child yielded the parent's messages {drained:?}")
        })
    });

    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [2, 3]);
}

/// (e') Known bug: a `Drain` alive across the fork (a loop that forks while
/// handling one of the messages it drained) rings the parent's fd when the
/// child drops it with messages left: the child's `Drain::drop` makes a wake
/// pending through the inherited notifier with no fork check, and the
/// parent's fd becomes readable although the parent has nothing new.
#[cfg(unix)]
fn child_dropping_an_inherited_drain_does_not_wake_the_parent(backend: Backend) {
    let mut mailbox = Mailbox::<u32>::with_backend(backend).unwrap();
    let fd = mailbox.as_raw_fd();
    let sender = mailbox.sender();
    for i in 1..=3 {
        sender.send(i).unwrap();
    }
    let mut drain = Some(mailbox.drain()); // the fd is read, the wake re-armed
    assert_eq!(drain.as_mut().unwrap().next(), Some(1));
    assert!(!is_readable(&fd));

    fork_and_check(|| {
        // The child stops handling messages (drops the rest), as a
        // pre-forked worker would.
        drop(drain.take());
        Ok(())
    });

    let child_woke_us = is_readable(&fd);
    assert_eq!(drain.unwrap().collect::<Vec<_>>(), [2, 3]);
    assert!(
        !child_woke_us,
        "the child's drop of its inherited Drain made the parent's fd readable"
    );
}

/// (f) The parent's ring for its Mailbox's leftovers failed (a wake is
/// pending with nothing in the fd, so the next ring writes): the child's
/// partial drain, whose leftovers ring too, does not write to the parent's
/// fd, and the parent still gets its messages.
#[cfg(wakefd_fault_injection)]
#[cfg(unix)]
fn child_partial_drain_does_not_ring_the_parents_fd(backend: Backend) {
    let mut mailbox = Mailbox::<u32>::with_backend(backend).unwrap();
    let sender = mailbox.sender();
    for i in 1..=3 {
        sender.send(i).unwrap();
    }
    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [1, 2, 3]);
    for i in 4..=6 {
        sender.send(i).unwrap();
    }
    mailbox.fail_next_writes(2);
    // Its ring for 5 and 6 fails, and so does the ring's retry.
    assert_eq!(mailbox.drain().next(), Some(4));
    assert!(!is_readable(&mailbox), "the failed ring wrote something");

    fork_and_check(|| {
        let mut drain = mailbox.drain();
        let _ = drain.next();
        drop(drain); // leftovers: it rings
        Ok(())
    });

    assert!(
        !is_readable(&mailbox),
        "the child wrote a wake into the parent's fd"
    );
    assert_eq!(mailbox.drain().collect::<Vec<_>>(), [5, 6]);
}

// ---- the harness ----

/// (e) A thread of the parent makes and drops Senders with lanes of their
/// own (each takes the lane registry's lock) and sends without a drain (the
/// queue grows, under its lock) while the parent forks again and again: in
/// the child, cloning and dropping inherited Senders and dropping the
/// Mailbox and the last Senders never wait for a lock that thread held at
/// the fork. (The child arms an alarm, so a deadlock kills it instead of
/// hanging the test.) Runs last: the only case with a second thread, which
/// it joins.
#[cfg(unix)]
fn child_sender_and_mailbox_drops_never_block_on_the_parents_lock(backend: Backend) {
    const FORKS: usize = 200;
    const SENDS: u32 = 2_000_000;
    let mut mailbox_slot = Some(Mailbox::<u32>::with_backend(backend).unwrap());
    let sender = mailbox_slot.as_ref().unwrap().sender();
    let lane_sender = mailbox_slot.as_ref().unwrap().sender_with_lane();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                drop(lane_sender.clone_with_lane());
                if sent < SENDS {
                    sender.send(sent).unwrap();
                    sent += 1;
                }
            }
        });
        // Stops the thread also when a check below panics, so that the
        // scope can join it.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for _ in 0..FORKS {
            fork_and_check(|| {
                // SAFETY: alarm(2) only arms a timer; its SIGALRM's default
                // action ends this child.
                unsafe { libc::alarm(10) };
                let clone = lane_sender.clone_with_lane();
                check(clone.send(1).is_err(), 1, || {
                    "a Sender made in the child could send".into()
                })?;
                drop(clone);
                drop(lane_sender.clone());
                drop(mailbox_slot.take());
                // SAFETY: this child's own copies of the two Senders, which
                // it never uses again (it `_exit`s without running
                // destructors): dropping them drops the child's last
                // handles, so the queue itself is dropped here too.
                drop(unsafe { std::ptr::read(&sender) });
                drop(unsafe { std::ptr::read(&lane_sender) });
                Ok(())
            });
        }
    });
    let mut mailbox = mailbox_slot.unwrap();
    sender.send(u32::MAX).unwrap();
    assert_eq!(mailbox.drain().last(), Some(u32::MAX));
}

/// How a case runs.
#[cfg(unix)]
enum Run {
    /// Once per available backend.
    PerBackend(fn(Backend)),
    /// Once, in a process that has made no notifier yet (so it must come
    /// first).
    FirstInTheProcess(fn()),
}

#[cfg(unix)]
struct Case {
    name: &'static str,
    run: Run,
    /// Fails until a bug in the crate is fixed: run only on request.
    known_bug: bool,
}

/// The cases, in the order they run.
#[cfg(unix)]
fn cases() -> Vec<Case> {
    let case = |name, run| Case {
        name,
        run: Run::PerBackend(run),
        known_bug: false,
    };
    let mut cases = vec![
        Case {
            name: "child_forked_while_a_thread_makes_the_first_notifier_does_not_hang",
            run: Run::FirstInTheProcess(
                child_forked_while_a_thread_makes_the_first_notifier_does_not_hang,
            ),
            known_bug: false,
        },
        case(
            "child_cannot_drain_wait_or_notify_and_does_not_steal_the_wake",
            child_cannot_drain_wait_or_notify_and_does_not_steal_the_wake,
        ),
        case(
            "child_notify_does_not_wake_the_parent",
            child_notify_does_not_wake_the_parent,
        ),
        case(
            "child_mailbox_cannot_send_or_receive",
            child_mailbox_cannot_send_or_receive,
        ),
        case(
            "child_dropping_the_last_sender_does_not_wake_the_parent",
            child_dropping_the_last_sender_does_not_wake_the_parent,
        ),
        case(
            "fresh_notifier_in_the_child_works",
            fresh_notifier_in_the_child_works,
        ),
        case(
            "child_mailbox_drain_yields_nothing_even_with_leftovers",
            child_mailbox_drain_yields_nothing_even_with_leftovers,
        ),
        case(
            "child_dropping_an_inherited_drain_does_not_wake_the_parent",
            child_dropping_an_inherited_drain_does_not_wake_the_parent,
        ),
    ];
    #[cfg(wakefd_fault_injection)]
    cases.push(case(
        "child_partial_drain_does_not_ring_the_parents_fd",
        child_partial_drain_does_not_ring_the_parents_fd,
    ));
    // Last: it starts a thread in this process.
    cases.push(case(
        "child_sender_and_mailbox_drops_never_block_on_the_parents_lock",
        child_sender_and_mailbox_drops_never_block_on_the_parents_lock,
    ));
    cases
}

#[cfg(unix)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let include_ignored = args.iter().any(|a| a == "--include-ignored");
    let only_ignored = args.iter().any(|a| a == "--ignored");
    // libtest's other flags (--nocapture, --test-threads, ...) mean nothing
    // here; the rest are name filters.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();

    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    for case in cases() {
        if !filters.is_empty() && !filters.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        let selected = if case.known_bug {
            include_ignored || only_ignored
        } else {
            !only_ignored
        };
        if !selected {
            let why = if case.known_bug { " (known bug)" } else { "" };
            println!("test {} ... ignored{why}", case.name);
            ignored += 1;
            continue;
        }
        let runs: Vec<(String, Box<dyn Fn()>)> = match case.run {
            Run::PerBackend(run) => Backend::available()
                .into_iter()
                .map(|b| (format!(" [{b}]"), Box::new(move || run(b)) as Box<dyn Fn()>))
                .collect(),
            Run::FirstInTheProcess(run) => vec![(String::new(), Box::new(run))],
        };
        for (label, run) in runs {
            let result = panic::catch_unwind(AssertUnwindSafe(run));
            let verdict = if result.is_ok() { "ok" } else { "FAILED" };
            println!("test {}{label} ... {verdict}", case.name);
            if result.is_ok() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!("\nfork: {passed} passed; {failed} failed; {ignored} ignored");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
