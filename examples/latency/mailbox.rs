//! The Mailbox comparison, interleaved with the rest: every contender of
//! `examples/common/contenders.rs` (shared with the criterion bench), once
//! per producer count per round.

use std::io;
use std::time::Duration;

use crate::contenders::Contender;
use crate::report::median;

/// One contender at one producer count: its rate in every round so far.
pub struct MailResult {
    pub contender: Contender,
    pub producers: u32,
    /// Messages per run.
    pub msgs: u64,
    /// Messages per second, one per round.
    pub rates: Vec<f64>,
}

impl MailResult {
    /// Every contender at every producer count, `msgs` messages per run
    /// (`--mailbox`; 0 for none).
    pub fn for_each(producers: &[u32], msgs: u64) -> Vec<MailResult> {
        if msgs == 0 {
            return Vec::new();
        }
        let mut all = Vec::new();
        for &producers in producers {
            for contender in Contender::ALL {
                let msgs = match contender {
                    // A write per message: a tenth is plenty for its rate.
                    Contender::CrossbeamWakeEach => (msgs / 10).max(1),
                    _ => msgs,
                };
                all.push(MailResult {
                    contender,
                    producers: producers.max(1),
                    msgs,
                    rates: Vec::new(),
                });
            }
        }
        all
    }

    /// One more run; its rate joins `rates`.
    pub fn run(&mut self, timeout: Duration) -> io::Result<()> {
        let took = self.contender.run(self.producers, self.msgs, timeout)?;
        self.rates.push(self.msgs as f64 / took.as_secs_f64());
        Ok(())
    }

    /// The median over rounds of wakefd's rate divided by this one's in the
    /// same round.
    pub fn wakefd_ratio(&self, wakefd: &MailResult) -> f64 {
        median(
            wakefd
                .rates
                .iter()
                .zip(&self.rates)
                .map(|(w, r)| w / r)
                .collect(),
        )
    }
}
