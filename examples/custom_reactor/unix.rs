//! The example's reactors: `poll(2)` on every Unix, `epoll(7)` on Linux and
//! Android.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wakefd::{Backend, Mailbox, Notifier};

/// Calls `wait` (a blocking `poll(2)` or `epoll_wait(2)`) with the
/// milliseconds left of `timeout`, until it returns something other than
/// `EINTR`; its count of ready entries.
fn retry_eintr(
    timeout: Duration,
    mut wait: impl FnMut(libc::c_int) -> libc::c_int,
) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        let n = wait(ms);
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// What the loops below need from a level-triggered reactor: watch an fd
/// for readability under a token, and wait for the tokens that are ready.
trait Reactor {
    const NAME: &'static str;
    fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()>;
    /// The tokens of the fds that are readable, waiting up to `timeout`;
    /// `EINTR` is retried with the time that is left.
    fn wait(&mut self, timeout: Duration) -> io::Result<Vec<u64>>;
}

/// A `poll(2)` set, as a portable C reactor keeps it: every Unix has it.
#[derive(Default)]
struct PollSet {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u64>,
}

impl Reactor for PollSet {
    const NAME: &'static str = "poll(2)";

    fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        self.fds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<Vec<u64>> {
        retry_eintr(timeout, |ms| {
            // SAFETY: `fds` is a live, initialized array of exactly the
            // number of pollfds we pass, and nothing else touches it
            // during the call.
            unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as _, ms) }
        })?;
        Ok(self
            .fds
            .iter()
            .zip(&self.tokens)
            .filter(|(pfd, _)| pfd.revents & libc::POLLIN != 0)
            .map(|(_, &token)| token)
            .collect())
    }
}

/// A level-triggered epoll instance, as a C reactor would use it.
// epoll is Linux/Android-only (the cfg mio and polling use for it).
#[cfg(any(target_os = "linux", target_os = "android"))]
struct Epoll {
    fd: OwnedFd,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a valid flag.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1, is open, and
        // nothing else owns it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Reactor for Epoll {
    const NAME: &'static str = "epoll";

    /// Watches `fd` for readability, level-triggered (no `EPOLLET`).
    fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open; `event` is valid for the call, which
        // copies it.
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<Vec<u64>> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
        let n = retry_eintr(timeout, |ms| {
            // SAFETY: `events` is a writable array of 8 epoll_events, and 8
            // is the maximum we let the kernel fill in.
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), 8, ms) }
        })?;
        Ok(events[..n].iter().map(|e| e.u64).collect())
    }
}

const QUIET: Duration = Duration::ZERO;
const SOON: Duration = Duration::from_secs(5);

/// The level-triggered contract through a reactor's wait, then a small
/// reactor loop and a mailbox in the same reactor.
fn with_reactor<R: Reactor>(mut reactor: R, backend: Backend) -> io::Result<()> {
    let name = R::NAME;
    let notifier = Notifier::with_backend(backend)?;
    reactor.add(notifier.as_raw_fd(), 1)?;
    assert!(reactor.wait(QUIET)?.is_empty(), "quiet before any notify");

    let waker = notifier.waker();
    for _ in 0..3 {
        waker.notify()?; // coalesced: one wake on the fd
    }
    assert_eq!(reactor.wait(SOON)?, [1], "readable after notify");
    assert_eq!(reactor.wait(QUIET)?, [1], "level-triggered: reported again");
    assert!(notifier.drain()?, "drain reports the wake");
    assert!(reactor.wait(QUIET)?.is_empty(), "quiet after drain");
    assert!(!notifier.drain()?, "nothing left to drain");

    // A wake from another thread while the reactor sleeps.
    let waker = notifier.waker();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        waker.notify()
    });
    assert_eq!(reactor.wait(SOON)?, [1], "woken from another thread");
    t.join().expect("notifying thread")?;
    assert!(notifier.drain()?);
    assert!(reactor.wait(QUIET)?.is_empty());
    println!("  {name}: readable after notify, quiet after drain");

    // The reactor loop: a worker does 10 000 pieces of work, notifying after
    // each; the loop wakes, drains, then looks at the work. Wakes coalesce,
    // and the last one is never lost.
    const WORK: u64 = 10_000;
    let (done, worker) = worker(&notifier, WORK, Duration::ZERO);
    let mut wakeups = 0;
    while done.load(Ordering::Relaxed) < WORK {
        let ready = reactor.wait(SOON)?;
        assert_eq!(ready, [1], "the loop must not stall while work is left");
        notifier.drain()?;
        wakeups += 1;
    }
    worker.join().expect("worker")?;
    // The worker's last notify may have come after the loop's last drain.
    notifier.drain()?;
    assert!(
        reactor.wait(QUIET)?.is_empty(),
        "quiet after the last drain"
    );
    println!("  {name}: {WORK} notifies woke the loop {wakeups} times");

    // A Mailbox has a raw fd too.
    let mut mailbox = Mailbox::with_backend(backend)?;
    reactor.add(mailbox.as_raw_fd(), 2)?;
    let sender = mailbox.sender();
    let producer = thread::spawn(move || {
        for i in 0..1000u32 {
            sender.send(i).expect("the mailbox is alive");
        }
    });
    let mut got = Vec::new();
    while got.len() < 1000 {
        let ready = reactor.wait(SOON)?;
        assert!(
            ready.contains(&2),
            "mailbox readable while messages are due"
        );
        got.extend(mailbox.drain());
    }
    producer.join().expect("producer");
    assert_eq!(got, (0..1000).collect::<Vec<_>>(), "FIFO, nothing lost");
    // As above, a send's wake may trail the drain that took its message.
    assert_eq!(mailbox.drain().count(), 0);
    assert!(reactor.wait(QUIET)?.is_empty(), "quiet once drained");
    println!("  {name}: 1000 messages through a mailbox, in order");
    Ok(())
}

/// Busy work standing for the loop's callbacks (a sleep would block, and a
/// blocking call must be announced).
fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A worker thread that does `work` pieces of work, notifying after each
/// and pausing `pause` between them; the count of pieces done so far.
fn worker(
    notifier: &Notifier,
    work: u64,
    pause: Duration,
) -> (Arc<AtomicU64>, thread::JoinHandle<io::Result<()>>) {
    let done = Arc::new(AtomicU64::new(0));
    let (waker, counter) = (notifier.waker(), Arc::clone(&done));
    let handle = thread::spawn(move || {
        for _ in 0..work {
            counter.fetch_add(1, Ordering::Relaxed); // the work
            waker.notify()?; // then the wake
            busy(pause);
        }
        Ok(())
    });
    (done, handle)
}

/// The sleep-aware reactor loop (see the module doc): announce sleep,
/// block (or not), announce awake, drain, work.
fn sleep_aware_loop<R: Reactor>(mut reactor: R, backend: Backend) -> io::Result<()> {
    let name = R::NAME;
    let notifier = Notifier::with_backend(backend)?;
    reactor.add(notifier.as_raw_fd(), 1)?;

    // First, one turn by hand. The loop is running: notifies make no system
    // call, they only make a wake pending. The loop is awake as long as
    // `awake` lives.
    let awake = notifier.announce_awake();
    let waker = notifier.waker();
    const AWAKE_NOTIFIES: u64 = 3;
    thread::spawn(move || -> io::Result<()> {
        for _ in 0..AWAKE_NOTIFIES {
            waker.notify()?;
        }
        Ok(())
    })
    .join()
    .expect("notifying thread")?;
    let may_block = awake.announce_sleep();
    assert!(!may_block, "a wake is pending: don't block");
    let ready = reactor.wait(QUIET);
    awake.announce_awake();
    assert!(ready?.is_empty(), "nothing was written to the fd");
    assert!(
        notifier.drain()?,
        "the pending wake is drained all the same"
    );
    let stats = notifier.stats();
    assert_eq!(stats.wakes_written, 0);
    assert!(stats.wakes_written < AWAKE_NOTIFIES);
    assert_eq!(stats.wakes_absorbed, 1, "one wake; the others coalesced");

    // Then a running loop: a worker does WORK pieces of work, notifying
    // after each, every few µs; the loop drains, then spends a while on what
    // it found (its callbacks). Notifies made meanwhile find the loop awake
    // and make no system call; the loop finds their wake pending when it
    // announces sleep, and does not block.
    const WORK: u64 = 5_000;
    let (done, worker) = worker(&notifier, WORK, Duration::from_micros(2));
    let (mut turns, mut blocked, mut awake_notifies) = (0u64, 0u64, 0u64);
    loop {
        // 1. Announce sleep; `false`: a wake is pending, don't block.
        let may_block = awake.announce_sleep();
        // 2. The blocking call.
        let ready = reactor.wait(if may_block { SOON } else { QUIET });
        // 3. Awake again, whatever the call returned.
        awake.announce_awake();
        let ready = ready?;
        assert!(
            !may_block || !ready.is_empty(),
            "a loop that may block must not time out while work is left"
        );
        // 4. Drain if the fd was readable or a wake was pending, then work.
        if ready.contains(&1) || !may_block {
            notifier.drain()?;
        }
        turns += 1;
        blocked += u64::from(may_block);
        let before = done.load(Ordering::Relaxed);
        if before == WORK {
            break;
        }
        busy(Duration::from_micros(50)); // the loop's callbacks, awake
        awake_notifies += done.load(Ordering::Relaxed) - before;
    }
    worker.join().expect("worker")?;
    notifier.drain()?; // the last notify may trail the last drain
    let stats = notifier.stats();
    // A wake is written only while the loop may be blocked, at most one per
    // such turn: none of the notifies made while it was awake wrote one.
    // (How many notifies find it awake is up to the scheduler: on a busy
    // machine the worker may run only while the loop sleeps.)
    assert!(
        stats.wakes_written <= blocked,
        "{stats:?}, {blocked} blocked"
    );
    println!(
        "  {name}, sleep-aware: {WORK} notifies ({awake_notifies} while the loop was awake), \
         {turns} turns ({blocked} blocked): {} wakes written, {} absorbed",
        stats.wakes_written, stats.wakes_absorbed
    );
    Ok(())
}

/// Every step on a fresh reactor of kind `R`.
fn on_reactor<R: Reactor>(new: impl Fn() -> io::Result<R>, backend: Backend) -> io::Result<()> {
    with_reactor(new()?, backend)?;
    sleep_aware_loop(new()?, backend)
}

pub fn main() -> io::Result<()> {
    for backend in Backend::available() {
        println!("{backend}:");
        on_reactor(|| Ok(PollSet::default()), backend)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        on_reactor(Epoll::new, backend)?;
    }
    Ok(())
}
