//! The command line, and what it selects.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use wakefd::Backend;

use crate::affinity;
use crate::contenders::Placement;
use crate::mech::{Baseline, Mech};

/// Ping-pong wake latency and burst throughput of every wakefd backend
/// against mio::Waker and raw eventfd + epoll baselines.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// Interleaved rounds; every mechanism runs once per round.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,

    /// Measured round trips per mechanism per round.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub iters: u64,

    /// Unrecorded round trips before each measured run.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,

    /// wakefd backends to run (repeat the flag or give a comma list);
    /// default: every backend available here.
    #[arg(long = "backend", value_name = "NAME", value_delimiter = ',')]
    pub backends: Vec<Backend>,

    /// Spin budget of the spinning sleep-aware row (`Notifier::set_spin`),
    /// µs; 0 leaves that row out.
    #[arg(long, default_value_t = 50)]
    pub spin_us: u64,

    /// Leave out the sleep-aware rows (the default backend's loop on
    /// `Notifier::poll`, without and with `--spin-us`).
    #[arg(long)]
    pub no_sleep_aware: bool,

    /// Baselines to run (repeat or comma list): mio-waker, epoll-lt-read,
    /// epoll-et, or none; default: all three.
    #[arg(long = "baseline", value_name = "NAME", value_delimiter = ',')]
    pub baselines: Vec<BaselineArg>,

    /// notify() calls per sender per burst round; 0 skips burst mode.
    #[arg(long, default_value_t = 1_000_000)]
    pub burst: u64,

    /// Busy work the burst loop does after each return of its event loop,
    /// ns, standing for handling what the senders left (0: none, an empty
    /// loop). A sleep-aware loop is awake to the senders meanwhile.
    #[arg(long, default_value_t = 0)]
    pub loop_work_ns: u64,

    /// Sender threads in burst mode.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub senders: u32,

    /// Messages per Mailbox-throughput run (one run per mechanism, producer
    /// count and round; the per-message-wake baseline gets a tenth); 0
    /// skips the Mailbox comparison.
    #[arg(long, default_value_t = 300_000)]
    pub mailbox: u64,

    /// Producer counts for the Mailbox comparison (repeat or comma list).
    #[arg(long, value_name = "N", value_delimiter = ',', default_values_t = [1u32, 4])]
    pub producers: Vec<u32>,

    /// Placements for the Mailbox comparison (repeat or comma list):
    /// unpinned (every thread left to the scheduler), loop-alone (the loop
    /// pinned alone to one CPU, the producers to the others; needs two
    /// CPUs).
    #[arg(
        long = "placement",
        value_name = "NAME",
        value_delimiter = ',',
        default_values = ["unpinned", "loop-alone"]
    )]
    pub placements: Vec<PlacementArg>,

    /// Longest wait for any single wake before the run fails as a lost
    /// wake-up.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Write every result (context, per round, medians and intervals,
    /// ratios, percentile distributions) to this file as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Draw every mechanism's latency by percentile (p50 to p99.99, on a
    /// log "nines" axis) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Compare with a run saved by `--json`: each row's ratio to the saved
    /// one, with both runs' intervals.
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,

    /// Warn when the 1-minute load average before the run, or the CPUs
    /// other processes kept busy during it, is above this.
    #[arg(long, default_value_t = 0.5)]
    pub max_load: f64,

    /// A smoke run: 5 rounds of 500 round trips, bursts of 100 000
    /// notifies, 30 000 Mailbox messages (each unless given explicitly).
    #[arg(long)]
    pub quick: bool,

    /// Let the scheduler place the two ping-pong threads instead of pinning
    /// them to two different CPUs.
    #[arg(long)]
    pub no_pin: bool,
}

/// A `--placement` value.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementArg {
    Unpinned,
    LoopAlone,
}

impl From<PlacementArg> for Placement {
    fn from(p: PlacementArg) -> Placement {
        match p {
            PlacementArg::Unpinned => Placement::Unpinned,
            PlacementArg::LoopAlone => Placement::LoopAlone,
        }
    }
}

/// A `--baseline` value: one of [`Baseline`], or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaselineArg {
    Run(Baseline),
    None,
}

impl ValueEnum for BaselineArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: OnceLock<Vec<BaselineArg>> = OnceLock::new();
        ALL.get_or_init(|| {
            let each = Baseline::value_variants().iter().copied();
            each.map(BaselineArg::Run)
                .chain([BaselineArg::None])
                .collect()
        })
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            BaselineArg::Run(b) => b.to_possible_value(),
            BaselineArg::None => Some(PossibleValue::new("none").help("No baselines")),
        }
    }
}

impl Args {
    /// The command line, with `--quick`'s sizes for those not given.
    pub fn get() -> Args {
        let matches = Args::command().get_matches();
        let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if args.quick {
            args.quick_sizes(&matches);
        }
        args
    }

    fn quick_sizes(&mut self, matches: &ArgMatches) {
        let default = |id: &str| matches.value_source(id) == Some(ValueSource::DefaultValue);
        if default("rounds") {
            self.rounds = 5;
        }
        if default("iters") {
            self.iters = 500;
        }
        if default("warmup") {
            self.warmup = 50;
        }
        if default("burst") {
            self.burst = 100_000;
        }
        if default("mailbox") {
            self.mailbox = 30_000;
        }
    }

    /// The Mailbox comparison's placements, in report order, repeats
    /// dropped.
    pub fn placements(&self) -> Vec<Placement> {
        let mut v: Vec<Placement> = Vec::new();
        for &p in &self.placements {
            if !v.contains(&p.into()) {
                v.push(p.into());
            }
        }
        v
    }

    /// The longest wait for one wake.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The CPUs to pin the measuring and echo threads to; None with
    /// `--no-pin`, or where there are not two to pin to.
    pub fn pin_cpus(&self) -> Option<(usize, usize)> {
        if self.no_pin {
            None
        } else {
            affinity::two_cpus()
        }
    }

    /// The mechanisms to run, in report order: the wakefd backends asked
    /// for (all available by default), the default backend's followed by
    /// its sleep-aware loops, then the baselines asked for that run here.
    pub fn mechanisms(&self) -> Vec<Mech> {
        let backends: Vec<Backend> = if self.backends.is_empty() {
            Backend::available()
        } else {
            let mut v = Vec::new();
            for &b in &self.backends {
                if !v.contains(&b) {
                    v.push(b);
                }
            }
            v
        };
        let want = |b: Baseline| {
            self.baselines.is_empty()
                || (self.baselines.contains(&BaselineArg::Run(b))
                    && !self.baselines.contains(&BaselineArg::None))
        };
        let baselines = Baseline::value_variants()
            .iter()
            .copied()
            .filter(|&b| want(b))
            .map(Mech::Baseline)
            .filter(|m| m.available());
        let mut mechs = Vec::new();
        for backend in backends {
            mechs.push(Mech::Wakefd(backend));
            if backend == Backend::default() && !self.no_sleep_aware {
                mechs.push(Mech::SleepAware {
                    backend,
                    spin_us: 0,
                });
                if self.spin_us > 0 {
                    mechs.push(Mech::SleepAware {
                        backend,
                        spin_us: self.spin_us,
                    });
                }
            }
        }
        mechs.extend(baselines);
        mechs
    }
}
