//! The tables on stdout: the run's context and warnings, latency with its
//! intervals, the ratios, burst mode and the Mailbox comparison. The JSON
//! is `json.rs`, the plot `plot.rs`, `--compare` `compare.rs`.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::burst::BurstResult;
use crate::cli::Args;
use crate::contenders::{Contender, Placement};
use crate::context::Context;
use crate::mailbox::MailResult;
use crate::mech::{Baseline, Mech};
use crate::pingpong::LatencyResult;
use crate::stats::{self, Spread};
use crate::table::Table;

/// The statistics the table shows, from one histogram.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// A percentile: its name in the table, its key in the JSON, and where it
/// is in [`Stats`].
pub type Percentile = (&'static str, &'static str, fn(&Stats) -> f64);

/// The percentiles the latency table shows.
pub const PERCENTILES: [Percentile; 4] = [
    ("p50", "p50_ns", |s| s.p50),
    ("p90", "p90_ns", |s| s.p90),
    ("p99", "p99_ns", |s| s.p99),
    ("p99.9", "p99_9_ns", |s| s.p999),
];

impl Stats {
    pub fn of(h: &Histogram<u64>) -> Stats {
        let q = |q: f64| h.value_at_quantile(q) as f64;
        Stats {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "p50_ns": self.p50, "p90_ns": self.p90, "p99_ns": self.p99,
            "p99_9_ns": self.p999, "max_ns": self.max,
        })
    }
}

/// The raw eventfd + epoll LT + read baseline's and mio::Waker's rows.
pub fn baselines(results: &[LatencyResult]) -> (Option<&LatencyResult>, Option<&LatencyResult>) {
    let find = |b| results.iter().find(|r| r.mech == Mech::Baseline(b));
    (find(Baseline::EpollLtRead), find(Baseline::MioWaker))
}

/// For a sleep-aware row, the row of its backend's plain loop, if it ran.
pub fn plain_of(results: &[LatencyResult], mech: Mech) -> Option<&LatencyResult> {
    match mech {
        Mech::SleepAware { backend, .. } => {
            results.iter().find(|r| r.mech == Mech::Wakefd(backend))
        }
        _ => None,
    }
}

/// Whether a row spins, and so needs a second CPU.
pub fn spins(mech: Mech) -> bool {
    matches!(mech, Mech::SleepAware { spin_us, .. } if spin_us > 0)
}

/// The header: context, pinning, how to read the intervals, warnings.
pub fn header(ctx: &Context, args: &Args, warnings: &[String]) -> String {
    let mut out = String::from("wakefd notify latency\n");
    for line in ctx.header() {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        out,
        "intervals: {}; two rows whose intervals overlap are not shown to differ, and a \
         ratio whose interval holds 1 is marked ≈",
        stats::describe(args.rounds as usize)
    );
    for w in warnings {
        let _ = writeln!(out, "WARNING: {w}");
    }
    out
}

fn us(s: Spread) -> String {
    s.map(|ns| ns / 1000.0).show(2)
}

fn label(r: &LatencyResult, cpus: usize) -> String {
    if spins(r.mech) && cpus < 2 {
        format!("{} [1 CPU: see warning]", r.mech.label())
    } else {
        r.mech.label()
    }
}

pub fn latency_table(results: &[LatencyResult], args: &Args, cpus: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "round-trip latency, µs: {} interleaved rounds x {} round trips per mechanism ({} \
         warm-up); each round's percentile, then median (interval) over rounds; max: the \
         largest of any round",
        args.rounds, args.iters, args.warmup
    );
    let _ = writeln!(
        out,
        "threads: {}",
        match args.pin_cpus() {
            Some((a, b)) => format!("measuring side pinned to CPU {a}, echo side to CPU {b}"),
            None => "placed by the scheduler (not pinned)".into(),
        }
    );
    let _ = writeln!(
        out,
        "writes/rt: wakes written (system calls) per round trip, both sides together, from \
         the notifiers' stats() (wakefd rows only)"
    );
    let _ = writeln!(out);
    let mut t = Table::new(
        std::iter::once("mechanism")
            .chain(PERCENTILES.iter().map(|p| p.0))
            .chain(["max", "writes/rt"]),
    );
    for r in results {
        let mut row = vec![label(r, cpus)];
        row.extend(PERCENTILES.iter().map(|p| us(r.spread(p.2))));
        row.push(format!("{:.2}", r.max() / 1000.0));
        row.push(r.writes_per_rt().map_or("-".into(), |w| w.show(3)));
        t.row(row);
    }
    out += &t.render();
    out
}

pub fn ratio_table(results: &[LatencyResult], args: &Args, cpus: usize) -> String {
    let (lt, mio) = baselines(results);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ratios of round-trip latency: each round's ratio, then median (interval) over the {} \
         rounds; vs the raw eventfd+epoll LT+read baseline (/LT), vs mio::Waker (/mio), and \
         for a sleep-aware row vs its backend's plain loop (/plain); below 1 is faster; ≈: \
         no difference established",
        args.rounds
    );
    let _ = writeln!(out);
    let mut t = Table::new([
        "mechanism",
        "p50/LT",
        "p99/LT",
        "p50/mio",
        "p99/mio",
        "p50/plain",
        "p99/plain",
    ]);
    for r in results {
        let mut row = vec![label(r, cpus)];
        for base in [lt, mio, plain_of(results, r.mech)] {
            for f in [PERCENTILES[0].2, PERCENTILES[2].2] {
                row.push(match base {
                    Some(b) if b.mech != r.mech => r.ratio(b, f).show_ratio(3),
                    _ => "-".into(),
                });
            }
        }
        t.row(row);
    }
    out += &t.render();
    out
}

pub fn burst_table(results: &[BurstResult], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "burst: {} sender threads each call notify() K times per round as fast as they can, \
         while the loop thread polls and drains on every wake, then does {} ns of busy work; \
         notifies/s: median (interval) over {} rounds; the counts: medians",
        args.senders, args.loop_work_ns, args.rounds
    );
    let _ = writeln!(
        out,
        "wakes = event-loop returns; drains = drain() calls that found a wake pending; \
         writes = write(2) calls made by the sender threads, counted by the kernel \
         (/proc/thread-self/io syscw; n/a where wakes are send(2), which it does not count); \
         written/woken = the notifier's stats(): wakes_written / drains_woken (wakefd rows)"
    );
    let _ = writeln!(out);
    let mut t = Table::new([
        "mechanism",
        "K",
        "M notifies/s",
        "wakes",
        "drains",
        "writes",
        "notifies/write",
        "writes/drain",
        "written/woken",
    ]);
    for r in results {
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.prec$}"));
        let rate = Spread::of(&r.rounds.iter().map(|b| b.rate() / 1e6).collect::<Vec<_>>());
        let wakes = r.median_of(|b| Some(b.wakes as f64));
        let drains = r.median_of(|b| b.drains_true.map(|d| d as f64));
        let writes = r.median_of(|b| b.writes.map(|w| w as f64));
        let per_write = r.median_of(|b| b.writes.map(|w| b.notifies as f64 / w.max(1) as f64));
        let per_drain = r.median_of(|b| {
            b.writes
                .zip(b.drains_true)
                .map(|(w, d)| w as f64 / d.max(1) as f64)
        });
        let written_per_woken = r.median_of(|b| {
            b.stats
                .map(|st| st.wakes_written as f64 / st.drains_woken.max(1) as f64)
        });
        t.row(vec![
            r.mech.label(),
            r.k.to_string(),
            rate.show(1),
            opt(wakes, 0),
            opt(drains, 0),
            opt(writes, 0),
            opt(per_write, 0),
            opt(per_drain, 4),
            opt(written_per_woken, 4),
        ]);
    }
    out += &t.render();
    out
}

pub fn mailbox_table(results: &[MailResult], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Mailbox throughput: producers -> 1 consumer blocked in mio::Poll that drains \
         everything on every wake; {} messages per run ({} for the per-message-wake \
         baseline); M msg/s, median (interval) over {} interleaved rounds; plain/x and \
         aware/x = the wakefd Mailbox's rate (plain mio loop, and sleep-aware `Mailbox::poll` \
         loop) over this one's in the same round, median (interval) over rounds, ≈ where \
         no difference is established",
        args.mailbox,
        (args.mailbox / 10).max(1),
        args.rounds
    );
    for placement in args.placements() {
        let here: Vec<&MailResult> = results
            .iter()
            .filter(|r| r.placement == placement)
            .collect();
        let _ = writeln!(out);
        if here.is_empty() {
            let _ = writeln!(
                out,
                "placement {}: {}",
                placement.id(),
                placement.describe()
            );
            continue;
        }
        let _ = writeln!(
            out,
            "placement {}: {}{}",
            placement.id(),
            placement.describe(),
            if placement == Placement::Unpinned {
                " (the default row)"
            } else {
                ""
            }
        );
        let _ = writeln!(out);
        let mut header = vec!["mechanism".to_owned()];
        for p in &args.producers {
            header.extend([format!("{p}->1 M/s"), "plain/x".into(), "aware/x".into()]);
        }
        let mut t = Table::new(header);
        for contender in Contender::ALL {
            let mut row = vec![contender.label().to_owned()];
            for &p in &args.producers {
                let Some(r) = here
                    .iter()
                    .find(|r| r.contender == contender && r.producers == p.max(1))
                else {
                    row.extend(["-".into(), "-".into(), "-".into()]);
                    continue;
                };
                row.push(r.rate().show(1));
                for w in [Contender::Wakefd, Contender::WakefdSleepAware] {
                    row.push(match r.sibling(results, w) {
                        Some(w) if w.contender != r.contender => r.wakefd_ratio(w).show_ratio(2),
                        Some(_) => "1".into(),
                        None => "-".into(),
                    });
                }
            }
            t.row(row);
        }
        out += &t.render();
    }
    out
}
