//! The reports: the tables on stdout, the JSON file and the CDF plot.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::thread;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::burst::BurstResult;
use crate::cli::Args;
use crate::contenders::Contender;
use crate::mailbox::MailResult;
use crate::mech::{Baseline, Mech};
use crate::pingpong::LatencyResult;

/// The statistics the table shows, from one histogram.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

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

pub fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty());
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

pub fn mailbox_table(results: &[MailResult], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Mailbox throughput: producers -> 1 consumer blocked in mio::Poll that drains \
         everything on every wake; {} messages per run ({} for the per-message-wake \
         baseline); median over {} interleaved rounds, M msg/s; plain/x and aware/x = \
         median over rounds of the wakefd Mailbox's rate (plain mio loop, and sleep-aware \
         `Mailbox::poll` loop) over this one's in the same round",
        args.mailbox,
        (args.mailbox / 10).max(1),
        args.rounds
    );
    let _ = writeln!(out);
    let mut header = format!("| {:<38} |", "mechanism");
    let mut rule = format!("|{:-<40}|", "");
    for p in &args.producers {
        header += &format!(
            " {:>10} | {:>8} | {:>8} |",
            format!("{p}->1 M/s"),
            "plain/x",
            "aware/x"
        );
        rule += &format!("{:->12}|{:->10}|{:->10}|", ":", ":", ":");
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{rule}");
    for contender in Contender::ALL {
        let mut line = format!("| {:<38} |", contender.label());
        for &p in &args.producers {
            let find = |c: Contender| {
                results
                    .iter()
                    .find(|r| r.contender == c && r.producers == p)
            };
            let ratio = |w: Option<&MailResult>, r: &MailResult| {
                w.map_or_else(|| "-".to_owned(), |w| format!("{:.2}", r.wakefd_ratio(w)))
            };
            match find(contender) {
                Some(r) => {
                    line += &format!(
                        " {:>10.1} | {:>8} | {:>8} |",
                        median(r.rates.clone()) / 1e6,
                        ratio(find(Contender::Wakefd), r),
                        ratio(find(Contender::WakefdSleepAware), r)
                    );
                }
                None => line += &format!(" {:>10} | {:>8} | {:>8} |", "-", "-", "-"),
            }
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpus": cpus, "kernel": kernel, "cpu_model": cpu })
}

fn us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

pub fn latency_table(results: &[LatencyResult], args: &Args) -> String {
    let base = results
        .iter()
        .find(|r| r.mech == Mech::Baseline(Baseline::EpollLtRead));
    let mio = results
        .iter()
        .find(|r| r.mech == Mech::Baseline(Baseline::MioWaker));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "round-trip latency, µs: {} interleaved rounds x {} round trips per mechanism \
         ({} warm-up); median over rounds of each round's percentile; max is the \
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
        "ratios: median over rounds of the per-round ratio, vs the raw eventfd+epoll \
         LT+read baseline (/LT) and vs mio::Waker (/mio)"
    );
    let _ = writeln!(
        out,
        "writes/rt: wakes written (system calls) per round trip, both sides together, \
         from the notifiers' stats() (wakefd rows only)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| {:<28} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>6} | {:>6} | {:>7} | {:>7} | {:>9} |",
        "mechanism",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "p50/LT",
        "p99/LT",
        "p50/mio",
        "p99/mio",
        "writes/rt"
    );
    let _ = writeln!(
        out,
        "|{:-<30}|{:->9}|{:->9}|{:->9}|{:->9}|{:->10}|{:->8}|{:->8}|{:->9}|{:->9}|{:->11}|",
        "", ":", ":", ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for r in results {
        let m = r.median();
        let ratio = |b: Option<&LatencyResult>| match b {
            Some(b) => {
                let (p50, p99) = r.ratio(b);
                (format!("{p50:.3}"), format!("{p99:.3}"))
            }
            None => ("-".into(), "-".into()),
        };
        let (l50, l99) = ratio(base);
        let (m50, m99) = ratio(mio);
        let writes = r
            .median_writes_per_rt()
            .map_or("-".to_owned(), |w| format!("{w:.3}"));
        let _ = writeln!(
            out,
            "| {:<28} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>6} | {:>6} | {:>7} | {:>7} | {:>9} |",
            r.mech.label(),
            us(m.p50),
            us(m.p90),
            us(m.p99),
            us(m.p999),
            us(m.max),
            l50,
            l99,
            m50,
            m99,
            writes
        );
    }
    let vs_plain: Vec<String> = results
        .iter()
        .filter_map(|r| {
            let (p50, p99) = r.ratio(plain_of(results, r.mech)?);
            Some(format!("{}: p50 {p50:.3}, p99 {p99:.3}", r.mech.label()))
        })
        .collect();
    if !vs_plain.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "vs the same backend's plain loop (median over rounds of the per-round ratio): {}",
            vs_plain.join("; ")
        );
    }
    out
}

/// For a sleep-aware row, the row of its backend's plain loop, if it ran.
fn plain_of(results: &[LatencyResult], mech: Mech) -> Option<&LatencyResult> {
    match mech {
        Mech::SleepAware { backend, .. } => {
            results.iter().find(|r| r.mech == Mech::Wakefd(backend))
        }
        _ => None,
    }
}

pub fn burst_table(results: &[BurstResult], args: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "burst: {} sender threads each call notify() K times per round as fast as they can, \
         while the loop thread polls and drains on every wake, then does {} ns of busy work; \
         median over {} rounds",
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
    let _ = writeln!(
        out,
        "| {:<28} | {:>9} | {:>10} | {:>9} | {:>9} | {:>9} | {:>13} | {:>12} | {:>13} |",
        "mechanism",
        "K",
        "notifies/s",
        "wakes",
        "drains",
        "writes",
        "notifies/write",
        "writes/drain",
        "written/woken"
    );
    let _ = writeln!(
        out,
        "|{:-<30}|{:->11}|{:->12}|{:->11}|{:->11}|{:->11}|{:->15}|{:->14}|{:->15}|",
        "", ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for r in results {
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.prec$}"));
        let rate = r.median_of(|b| Some(b.rate())).unwrap_or(0.0);
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
        let _ = writeln!(
            out,
            "| {:<28} | {:>9} | {:>8.1} M | {:>9} | {:>9} | {:>9} | {:>13} | {:>12} | {:>13} |",
            r.mech.label(),
            r.k,
            rate / 1e6,
            opt(wakes, 0),
            opt(drains, 0),
            opt(writes, 0),
            opt(per_write, 0),
            opt(per_drain, 4),
            opt(written_per_woken, 4),
        );
    }
    out
}

pub fn to_json(
    args: &Args,
    latency: &[LatencyResult],
    burst: &[BurstResult],
    mail: &[MailResult],
) -> Value {
    let base = latency
        .iter()
        .find(|r| r.mech == Mech::Baseline(Baseline::EpollLtRead));
    let mio = latency
        .iter()
        .find(|r| r.mech == Mech::Baseline(Baseline::MioWaker));
    let plain = |r: &LatencyResult| plain_of(latency, r.mech);
    let ratio_json = |r: &LatencyResult, b: Option<&LatencyResult>| {
        b.map(|b| {
            let (p50, p99) = r.ratio(b);
            json!({ "p50": p50, "p99": p99 })
        })
    };
    let lat: Vec<Value> = latency
        .iter()
        .map(|r| {
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "median_over_rounds": r.median().json(),
                "ratio_vs_epoll_lt_read": ratio_json(r, base),
                "ratio_vs_mio_waker": ratio_json(r, mio),
                "ratio_vs_plain_backend": ratio_json(r, plain(r)),
                "median_wakes_written_per_round_trip": r.median_writes_per_rt(),
                "rounds_wakes_written_per_round_trip": r.writes_per_rt,
                "all_rounds_pooled": Stats::of(&r.all).json(),
                "rounds": r.rounds.iter().map(Stats::json).collect::<Vec<_>>(),
                "cdf": cdf_points(&r.all).iter().map(|&(ns, q)| json!([ns, q])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let bur: Vec<Value> = burst
        .iter()
        .map(|r| {
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "senders": args.senders,
                "notifies_per_sender": r.k,
                "median_notifies_per_sec": r.median_of(|b| Some(b.rate())),
                "median_wakes": r.median_of(|b| Some(b.wakes as f64)),
                "median_drains_true": r.median_of(|b| b.drains_true.map(|d| d as f64)),
                "median_writes": r.median_of(|b| b.writes.map(|w| w as f64)),
                "rounds": r.rounds.iter().map(|b| json!({
                    "notifies": b.notifies,
                    "secs": b.secs,
                    "notifies_per_sec": b.rate(),
                    "wakes": b.wakes,
                    "drains_true": b.drains_true,
                    "writes": b.writes,
                    "stats": b.stats.map(|st| json!({
                        "wakes_written": st.wakes_written,
                        "wakes_absorbed": st.wakes_absorbed,
                        "drains_woken": st.drains_woken,
                        "drains_spurious": st.drains_spurious,
                        "sleeps": st.sleeps,
                    })),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "machine": machine(),
        "config": {
            "rounds": args.rounds,
            "iters": args.iters,
            "warmup": args.warmup,
            "timeout_ms": args.timeout_ms,
            "burst": args.burst,
            "senders": args.senders,
            "loop_work_ns": args.loop_work_ns,
            "mailbox": args.mailbox,
            "producers": args.producers,
            "pinned_cpus": args.pin_cpus().map(|(a, b)| [a, b]),
        },
        "latency": lat,
        "burst": bur,
        "mailbox": mail.iter().map(|r| {
            let find = |c: Contender| {
                mail.iter()
                    .find(|w| w.contender == c && w.producers == r.producers)
            };
            let wakefd = find(Contender::Wakefd);
            let aware = find(Contender::WakefdSleepAware);
            json!({
                "id": r.contender.id(),
                "label": r.contender.label(),
                "producers": r.producers,
                "messages_per_run": r.msgs,
                "median_msgs_per_sec": median(r.rates.clone()),
                "wakefd_ratio": wakefd.map(|w| r.wakefd_ratio(w)),
                "wakefd_sleep_aware_ratio": aware.map(|w| r.wakefd_ratio(w)),
                "rounds_msgs_per_sec": r.rates,
            })
        }).collect::<Vec<_>>(),
    })
}

/// (latency in ns, cumulative fraction) points of a histogram's CDF, dense
/// in the tail.
fn cdf_points(h: &Histogram<u64>) -> Vec<(u64, f64)> {
    let mut qs: Vec<f64> = (0..=98).map(|i| f64::from(i) / 100.0).collect();
    qs.extend((0..10).map(|i| 0.99 + f64::from(i) / 1000.0));
    qs.extend((0..10).map(|i| 0.999 + f64::from(i) / 10_000.0));
    qs.extend([0.9999, 0.99999, 1.0]);
    qs.into_iter()
        .map(|q| (h.value_at_quantile(q), q))
        .collect()
}

pub fn plot(path: &Path, results: &[LatencyResult], args: &Args) -> Result<(), Box<dyn Error>> {
    use plotters::prelude::*;

    let curves: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let pts = cdf_points(&r.all)
                .into_iter()
                .map(|(ns, q)| (ns as f64 / 1000.0, q))
                .collect();
            (r.mech.label(), pts)
        })
        .collect();
    let lo = curves
        .iter()
        .flat_map(|(_, p)| p.first().map(|&(x, _)| x))
        .fold(f64::INFINITY, f64::min)
        .max(0.01);
    let hi = results
        .iter()
        .map(|r| r.all.value_at_quantile(0.999) as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(lo * 2.0);

    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "wakefd: ping-pong round-trip latency CDF ({} rounds x {} round trips)",
        args.rounds, args.iters
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0f64..1.0f64)?;
    chart
        .configure_mesh()
        .x_desc("round-trip latency, µs (log scale; cut at the largest p99.9)")
        .y_desc("fraction of round trips")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (i, (label, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).mix(0.9);
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                pts.into_iter().filter(|&(x, _)| x <= hi * 1.1),
                style,
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
