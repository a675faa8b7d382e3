//! The JSON file (`--json`): the context and warnings, every row's
//! medians with their intervals and ratios with their verdicts, every
//! round's values, and each mechanism's pooled percentile distribution
//! (what the plot draws). `--compare` reads it back.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::burst::BurstResult;
use crate::cli::Args;
use crate::contenders::Contender;
use crate::context::Context;
use crate::mailbox::MailResult;
use crate::pingpong::LatencyResult;
use crate::report::{baselines, plain_of, Stats, PERCENTILES};
use crate::stats::{self, Spread};

/// The percentile distribution of `h` on the "nines" axis: points
/// (nines, quantile, ns) with nines = -log10(1 - quantile), from 0 (the
/// minimum) to 4 (p99.99) in steps of 0.05, stopping at the last quantile
/// the sample count resolves (1 - 1/count).
pub fn percentile_distribution(h: &Histogram<u64>) -> Vec<(f64, f64, u64)> {
    let top = (h.len().max(1) as f64).log10().min(4.0);
    (0..=80)
        .map(|i| f64::from(i) * 0.05)
        .take_while(|&nines| nines <= top + 1e-9)
        .map(|nines| {
            let q = 1.0 - 10f64.powf(-nines);
            (nines, q, h.value_at_quantile(q))
        })
        .collect()
}

pub fn to_json(
    ctx: &Context,
    warnings: &[String],
    args: &Args,
    latency: &[LatencyResult],
    burst: &[BurstResult],
    mail: &[MailResult],
) -> Value {
    let (lt, mio) = baselines(latency);
    let ratios = |r: &LatencyResult, b: Option<&LatencyResult>| {
        b.filter(|b| b.mech != r.mech).map(|b| {
            json!({
                "p50": r.ratio(b, PERCENTILES[0].2).ratio_json(),
                "p99": r.ratio(b, PERCENTILES[2].2).ratio_json(),
            })
        })
    };
    let lat: Vec<Value> = latency
        .iter()
        .map(|r| {
            let spreads: serde_json::Map<String, Value> = PERCENTILES
                .iter()
                .map(|(_, key, f)| (key.to_string(), r.spread(*f).json()))
                .collect();
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "over_rounds": spreads,
                "max_ns": r.max(),
                "ratio_vs_epoll_lt_read": ratios(r, lt),
                "ratio_vs_mio_waker": ratios(r, mio),
                "ratio_vs_plain_backend": ratios(r, plain_of(latency, r.mech)),
                "wakes_written_per_round_trip": r.writes_per_rt().map(|w| w.json()),
                "rounds_wakes_written_per_round_trip": r.writes_per_rt,
                "all_rounds_pooled": Stats::of(&r.all).json(),
                "rounds": r.rounds.iter().map(Stats::json).collect::<Vec<_>>(),
                "percentile_distribution": percentile_distribution(&r.all)
                    .into_iter()
                    .map(|(nines, q, ns)| json!({ "nines": nines, "quantile": q, "ns": ns }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let bur: Vec<Value> = burst
        .iter()
        .map(|r| {
            let rates: Vec<f64> = r.rounds.iter().map(|b| b.rate()).collect();
            json!({
                "id": r.mech.id(),
                "label": r.mech.label(),
                "senders": args.senders,
                "notifies_per_sender": r.k,
                "notifies_per_sec": Spread::of(&rates).json(),
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
    let mailbox: Vec<Value> = mail
        .iter()
        .map(|r| {
            let ratio = |c: Contender| {
                r.sibling(mail, c)
                    .filter(|w| w.contender != r.contender)
                    .map(|w| r.wakefd_ratio(w).ratio_json())
            };
            json!({
                "id": r.contender.id(),
                "label": r.contender.label(),
                "placement": r.placement.id(),
                "placement_cpus": r.placement.cpus(),
                "producers": r.producers,
                "messages_per_run": r.msgs,
                "msgs_per_sec": Spread::of(&r.rates).json(),
                "wakefd_ratio": ratio(Contender::Wakefd),
                "wakefd_sleep_aware_ratio": ratio(Contender::WakefdSleepAware),
                "rounds_msgs_per_sec": r.rates,
                "rounds_minor_faults": r.faults,
                "rounds_loop_wakes": r.wakes,
            })
        })
        .collect();
    let (rank, coverage) = stats::interval_rank(args.rounds as usize);
    json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "context": ctx.json(),
        "warnings": warnings,
        "intervals": {
            "what": stats::describe(args.rounds as usize),
            "kind": "distribution-free confidence interval of the median over rounds (order statistics)",
            "rank": rank,
            "coverage": coverage,
        },
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
            "placements": args.placements().iter().map(|p| p.id()).collect::<Vec<_>>(),
            "pinned_cpus": args.pin_cpus().map(|(a, b)| [a, b]),
        },
        "latency": lat,
        "burst": bur,
        "mailbox": mailbox,
    })
}
