//! Burst mode: sender threads call `notify()` as fast as they can while
//! the loop drains on every wake; how many wakes the loop saw, and how many
//! `write(2)` calls the senders made (counted by the kernel, per thread, in
//! `/proc/thread-self/io`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::event_loop::lost_wake;
use crate::mech::{Mech, Woke};
use crate::stats::median;

/// What one burst round measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct BurstRound {
    /// notify() calls made in the timed part, all senders together.
    pub notifies: u64,
    /// From the first sender's start to the last sender's end.
    pub secs: f64,
    /// Event-loop returns with an event.
    pub wakes: u64,
    /// Drains that found a wake pending (None where the loop does not
    /// drain, as with mio::Waker).
    pub drains_true: Option<u64>,
    /// write(2) calls the sender threads made, as the kernel counts them
    /// (None where the mechanism writes with send(2), which it does not
    /// count).
    pub writes: Option<u64>,
    /// The notifier's counters at the end of the round (wakefd mechanisms).
    pub stats: Option<wakefd::Stats>,
}

impl BurstRound {
    pub fn rate(&self) -> f64 {
        self.notifies as f64 / self.secs
    }
}

/// One mechanism's burst results so far.
pub struct BurstResult {
    pub mech: Mech,
    /// notify() calls per sender per round.
    pub k: u64,
    pub rounds: Vec<BurstRound>,
}

impl BurstResult {
    /// The burst runs of `mechs` (those that take part), `--burst` given.
    pub fn for_each(mechs: &[Mech], burst: u64) -> Vec<BurstResult> {
        if burst == 0 {
            return Vec::new();
        }
        mechs
            .iter()
            .filter_map(|&mech| {
                let k = mech.burst_notifies(burst)?;
                Some(BurstResult {
                    mech,
                    k,
                    rounds: Vec::new(),
                })
            })
            .collect()
    }

    /// The median over rounds of `f`; None if any round has none.
    pub fn median_of(&self, f: impl Fn(&BurstRound) -> Option<f64>) -> Option<f64> {
        let xs: Option<Vec<f64>> = self.rounds.iter().map(f).collect();
        xs.map(median)
    }
}

/// The kernel's count of write-type system calls made by the calling
/// thread (`syscw` in `/proc/thread-self/io`); None where unavailable.
fn thread_syscw() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
}

struct SenderStats {
    start: Instant,
    end: Instant,
    writes: Option<u64>,
}

/// What the loop saw: event-loop returns with an event, and drains that
/// found a wake pending (None once any event went undrained).
struct Tally {
    wakes: u64,
    drains_true: Option<u64>,
}

impl Tally {
    fn add(&mut self, woke: Woke) {
        self.wakes += 1;
        self.drains_true = match woke {
            Woke::Drained(pending) => self.drains_true.map(|d| d + u64::from(pending)),
            _ => None,
        };
    }
}

/// Spins for `d`: the loop's work, awake (a sleep would block, unannounced).
fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One burst round: `senders` threads each wake the loop `k` times as fast
/// as they can, while this thread runs the loop, drains on every wake and
/// then does `work` of busy work.
pub fn burst_round(
    mech: Mech,
    senders: u32,
    k: u64,
    work: Duration,
    timeout: Duration,
) -> io::Result<BurstRound> {
    // `wake` stays here until the end: for mio::Waker it holds the eventfd.
    let (mut poll, wake) = mech.open()?;
    let done = AtomicUsize::new(0);
    let barrier = Barrier::new(senders as usize);
    let mut tally = Tally {
        wakes: 0,
        drains_true: Some(0),
    };

    let (loop_result, stats) = thread::scope(|s| {
        let handles: Vec<_> = (0..senders)
            .map(|_| {
                let (wake, done, barrier) = (&wake, &done, &barrier);
                s.spawn(move || -> io::Result<SenderStats> {
                    barrier.wait();
                    let w0 = thread_syscw();
                    let start = Instant::now();
                    let result = wake.wake_n(k);
                    let end = Instant::now();
                    // Tell the loop we are done, then wake it once more so
                    // that it sees `done` after a wake (not counted in the
                    // rate; its write, if any, is in `writes`).
                    done.fetch_add(1, Ordering::Release);
                    let last = wake.wake();
                    let w1 = thread_syscw();
                    result?;
                    last?;
                    Ok(SenderStats {
                        start,
                        end,
                        writes: w0.zip(w1).map(|(a, b)| b - a),
                    })
                })
            })
            .collect();

        let mut run = || -> io::Result<()> {
            while done.load(Ordering::Acquire) < senders as usize {
                match poll(timeout)? {
                    Woke::TimedOut => return Err(lost_wake(timeout)),
                    woke => tally.add(woke),
                }
                if !work.is_zero() {
                    busy(work);
                }
            }
            Ok(())
        };
        let loop_result = run();
        let stats: Vec<io::Result<SenderStats>> = handles
            .into_iter()
            .map(|h| h.join().expect("sender panicked"))
            .collect();
        (loop_result, stats)
    });
    loop_result?;
    let stats = stats.into_iter().collect::<io::Result<Vec<_>>>()?;
    // Every sender has returned, so every write it made has landed: pick up
    // the last wake if the loop left before it.
    match poll(Duration::ZERO)? {
        Woke::TimedOut => {}
        woke => tally.add(woke),
    }
    let notifier_stats = wake.stats();
    drop(wake);
    let start = stats.iter().map(|s| s.start).min().expect("one sender");
    let end = stats.iter().map(|s| s.end).max().expect("one sender");
    let writes = if mech.wakes_are_writes() {
        stats.iter().map(|s| s.writes).sum::<Option<u64>>()
    } else {
        None
    };
    Ok(BurstRound {
        notifies: k * u64::from(senders),
        secs: (end - start).as_secs_f64(),
        wakes: tally.wakes,
        drains_true: tally.drains_true,
        writes,
        stats: notifier_stats,
    })
}
