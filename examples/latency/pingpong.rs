//! Ping-pong: two threads, each blocked in its own event loop; the
//! measuring thread wakes its peer and waits to be woken back. One round
//! trip is two wakes and two event-loop returns.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::affinity;
use crate::event_loop::lost_wake;
use crate::mech::{Loop, Mech, Wake, Woke};
use crate::report::Stats;
use crate::stats::Spread;

/// One thread's end of a ping-pong pair: its own event loop, and a way to
/// wake the other thread's.
pub struct Side {
    poll: Loop,
    peer: Arc<dyn Wake>,
}

impl Side {
    /// Blocks until the peer wakes this side: a drain that finds nothing
    /// pending was a stray edge, so keep waiting for the real wake.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        loop {
            match (self.poll)(timeout)? {
                Woke::TimedOut => return Err(lost_wake(timeout)),
                Woke::Drained(false) => continue,
                Woke::Unread | Woke::Drained(true) => return Ok(()),
            }
        }
    }
}

/// Wakes written to both sides' notifiers so far (None unless both are
/// wakefd notifiers).
fn wakes_written(a: &Side, b: &Side) -> Option<u64> {
    let written = |s: &Side| s.peer.stats().map(|st| st.wakes_written);
    Some(written(a)? + written(b)?)
}

/// Two loops of `mech`, each holding the other's wake.
pub fn pair(mech: Mech) -> io::Result<(Side, Side)> {
    let (poll_a, wake_a) = mech.open()?;
    let (poll_b, wake_b) = mech.open()?;
    Ok((
        Side {
            poll: poll_a,
            peer: wake_b,
        },
        Side {
            poll: poll_b,
            peer: wake_a,
        },
    ))
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 ns to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// What one measured run of [`ping_pong`] saw.
pub struct Run {
    /// The measured round trips, ns.
    pub hist: Histogram<u64>,
    /// Wakes written (system calls) per round trip, warm-up included,
    /// for wakefd mechanisms.
    pub writes_per_rt: Option<f64>,
}

/// One measured run: `warmup + iters` round trips, the last `iters`
/// recorded. Each side runs on its own thread (pinned to its own CPU if
/// `pin`), and the echo side `b` is handed back afterwards.
pub fn ping_pong(
    a: &mut Side,
    b: Side,
    warmup: u64,
    iters: u64,
    timeout: Duration,
    pin: Option<(usize, usize)>,
) -> io::Result<(Run, Side)> {
    let total = warmup + iters;
    let written_before = wakes_written(a, &b);
    let (hist, b) = thread::scope(|s| {
        let echo = s.spawn(move || -> (Side, io::Result<()>) {
            let mut b = b;
            let mut run = || -> io::Result<()> {
                if let Some((_, cpu)) = pin {
                    affinity::pin(cpu)?;
                }
                for _ in 0..total {
                    b.wait(timeout)?;
                    b.peer.wake()?;
                }
                Ok(())
            };
            let result = run();
            (b, result)
        });
        let a = &mut *a;
        let measure = s.spawn(move || -> io::Result<Histogram<u64>> {
            if let Some((cpu, _)) = pin {
                affinity::pin(cpu)?;
            }
            let mut hist = new_histogram();
            for i in 0..total {
                let t0 = Instant::now();
                a.peer.wake()?;
                a.wait(timeout)?;
                let ns = t0.elapsed().as_nanos() as u64;
                if i >= warmup {
                    hist.saturating_record(ns.max(1));
                }
            }
            Ok(hist)
        });
        // If the measuring side fails, the echo side times out in its next
        // wait and comes home too: both errors are bounded.
        let hist = measure.join().expect("measuring thread panicked");
        let (b, echo_result) = echo.join().expect("echo thread panicked");
        let hist = hist?;
        echo_result?;
        io::Result::Ok((hist, b))
    })?;
    let writes_per_rt = written_before
        .zip(wakes_written(a, &b))
        .map(|(w0, w1)| (w1 - w0) as f64 / total as f64);
    Ok((
        Run {
            hist,
            writes_per_rt,
        },
        b,
    ))
}

/// One mechanism's ping-pong results so far.
pub struct LatencyResult {
    pub mech: Mech,
    /// Each round's statistics.
    pub rounds: Vec<Stats>,
    /// Every round's round trips, pooled.
    pub all: Histogram<u64>,
    /// Each round's wakes written per round trip (wakefd mechanisms).
    pub writes_per_rt: Vec<Option<f64>>,
}

impl LatencyResult {
    pub fn new(mech: Mech) -> LatencyResult {
        LatencyResult {
            mech,
            rounds: Vec::new(),
            all: new_histogram(),
            writes_per_rt: Vec::new(),
        }
    }

    /// Adds one run.
    pub fn record(&mut self, run: &Run) {
        self.rounds.push(Stats::of(&run.hist));
        self.all.add(&run.hist).expect("same bounds");
        self.writes_per_rt.push(run.writes_per_rt);
    }

    /// The wakes written per round trip over rounds; None unless every
    /// round counted them.
    pub fn writes_per_rt(&self) -> Option<Spread> {
        let xs: Option<Vec<f64>> = self.writes_per_rt.iter().copied().collect();
        xs.map(|xs| Spread::of(&xs))
    }

    /// One statistic over rounds.
    pub fn spread(&self, f: fn(&Stats) -> f64) -> Spread {
        Spread::of(&self.rounds.iter().map(f).collect::<Vec<_>>())
    }

    /// The largest round trip of any round.
    pub fn max(&self) -> f64 {
        self.rounds.iter().map(|s| s.max).fold(0.0, f64::max)
    }

    /// One statistic of this mechanism divided by `base`'s in the same
    /// round, over rounds.
    pub fn ratio(&self, base: &LatencyResult, f: fn(&Stats) -> f64) -> Spread {
        let xs: Vec<f64> = self
            .rounds
            .iter()
            .zip(&base.rounds)
            .map(|(s, b)| f(s) / f(b))
            .collect();
        Spread::of(&xs)
    }
}
