//! The Mailbox comparison, interleaved with the rest: every contender of
//! `examples/common/contenders.rs` (shared with the criterion bench), once
//! per placement, producer count and round.

use std::io;
use std::time::Duration;

use crate::contenders::{Contender, Placement};
use crate::stats::Spread;

/// One contender at one producer count in one placement: its rate in every
/// round so far.
pub struct MailResult {
    pub contender: Contender,
    pub placement: Placement,
    pub producers: u32,
    /// Messages per run.
    pub msgs: u64,
    /// Messages per second, one per round.
    pub rates: Vec<f64>,
    /// Minor page faults of the whole process during each run: the first
    /// touches of the run's fresh memory (queue slots, channel blocks,
    /// thread stacks).
    pub faults: Vec<u64>,
    /// The loop's wakes in each run.
    pub wakes: Vec<u64>,
}

impl MailResult {
    /// Every contender at every producer count in every placement that can
    /// run here, `msgs` messages per run (`--mailbox`; 0 for none).
    pub fn for_each(placements: &[Placement], producers: &[u32], msgs: u64) -> Vec<MailResult> {
        if msgs == 0 {
            return Vec::new();
        }
        let mut all = Vec::new();
        for &placement in placements.iter().filter(|p| p.available()) {
            for &producers in producers {
                for contender in Contender::ALL {
                    let msgs = match contender {
                        // A write per message: a tenth is plenty for its rate.
                        Contender::CrossbeamWakeEach => (msgs / 10).max(1),
                        _ => msgs,
                    };
                    all.push(MailResult {
                        contender,
                        placement,
                        producers: producers.max(1),
                        msgs,
                        rates: Vec::new(),
                        faults: Vec::new(),
                        wakes: Vec::new(),
                    });
                }
            }
        }
        all
    }

    /// One more run; its rate joins `rates`.
    pub fn run(&mut self, timeout: Duration) -> io::Result<()> {
        let before = minor_faults();
        let run = self
            .contender
            .run(self.producers, self.msgs, timeout, self.placement)?;
        self.rates.push(self.msgs as f64 / run.took.as_secs_f64());
        self.wakes.push(run.loop_wakes);
        if let Some((a, b)) = before.zip(minor_faults()) {
            self.faults.push(b.saturating_sub(a));
        }
        Ok(())
    }

    /// The rate over rounds, M msg/s.
    pub fn rate(&self) -> Spread {
        Spread::of(&self.rates).map(|r| r / 1e6)
    }

    /// `wakefd`'s rate divided by this one's in the same round, over
    /// rounds.
    pub fn wakefd_ratio(&self, wakefd: &MailResult) -> Spread {
        let xs: Vec<f64> = wakefd
            .rates
            .iter()
            .zip(&self.rates)
            .map(|(w, r)| w / r)
            .collect();
        Spread::of(&xs)
    }

    /// The result of `contender` in the same placement and producer count
    /// as this one.
    pub fn sibling<'a>(
        &self,
        all: &'a [MailResult],
        contender: Contender,
    ) -> Option<&'a MailResult> {
        all.iter().find(|r| {
            r.contender == contender
                && r.producers == self.producers
                && r.placement == self.placement
        })
    }
}

/// The process's minor page faults so far (`getrusage`; None elsewhere).
#[cfg(not(unix))]
fn minor_faults() -> Option<u64> {
    None
}

/// The process's minor page faults so far (`getrusage`).
#[cfg(unix)]
fn minor_faults() -> Option<u64> {
    // SAFETY: rusage is plain integers; all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live rusage for getrusage to fill.
    let ret = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (ret == 0).then(|| u64::try_from(usage.ru_minflt).unwrap_or(0))
}
