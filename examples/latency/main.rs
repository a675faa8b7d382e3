//! The notify-latency benchmark.
//!
//! Two threads play ping-pong, each blocked in its own event loop: the
//! measuring thread wakes its peer and waits to be woken back; one round trip
//! is two wakes and two event-loop returns. Every mechanism runs the same
//! loop: each wakefd [`Backend`](wakefd::Backend) through `mio::Poll` +
//! [`Notifier`](wakefd::Notifier) (drain on every wake), `mio::Waker`, and
//! two hand-written baselines (Linux only), an eventfd watched
//! level-triggered by epoll with a `read` per wake, and an eventfd watched
//! edge-triggered with no read (the floor: one `write` and one
//! `epoll_wait` per wake). The default backend also runs in two
//! sleep-aware loops, on `Notifier::poll` instead of `Poll::poll` + `drain`:
//! one that only announces its sleeps, and one that spins `--spin-us`
//! first (0 leaves it out; `--no-sleep-aware` leaves out both). The
//! `writes/rt` column counts the wakes written per round trip, from the
//! notifiers' `stats()`: 2 for a loop that sleeps, near 0 for one that is
//! still spinning when the wake comes. Every wait is bounded by `--timeout-ms`, so a lost
//! wake-up aborts the run instead of hanging it. The two threads are pinned
//! to the first two CPUs the process may use, so that every wake crosses
//! from one core to the other (`--no-pin` leaves them to the scheduler).
//!
//! Mechanisms run interleaved (A B C ... A B C ...) for `--rounds` rounds of
//! `--iters` round trips each, so that drift on the machine hits all of them
//! alike; the table shows the median over rounds of each round's percentile,
//! and ratios are the median over rounds of the per-round ratio.
//!
//! Burst mode (`--burst K`, 0 to skip) has `--senders` threads call
//! `notify()` K times each per round while the loop drains on every wake
//! (and does `--loop-work-ns` of busy work after each, 0 by default), and
//! reports how many wakes the loop saw and how many `write(2)` calls the
//! senders made (counted by the kernel, per thread, in
//! `/proc/thread-self/io`), and for wakefd the notifier's own count of wakes
//! written per drain that found one (`stats()`): 1 for a loop that sleeps
//! in every poll, far below for a sleep-aware one, which is awake to the
//! senders while it drains.
//!
//! The Mailbox comparison (`--mailbox N`, 0 to skip) sends N `u64`s from
//! each `--producers` count of threads to one consumer blocked in
//! `mio::Poll`, which drains everything on every wake: wakefd's `Mailbox`
//! against `crossbeam-channel` + `mio::Waker` with a hand-written coalescing
//! flag (two versions), `std::sync::mpsc` with the flag, and
//! `crossbeam-channel` waking per message. It runs interleaved with the
//! rest, so its ratios are per-round ratios too.
//!
//! ```text
//! cargo run --release --example latency -- --json docs/latency.json --plot docs/latency.svg
//! ```
//!
//! # One file per job
//!
//! * `main.rs`: this overview, and the interleaved rounds (`run`).
//! * `cli.rs`: the flags, and the mechanisms they select.
//! * `mech.rs`: the mechanisms (`mech::Mech`) and the one shape each
//!   takes: a loop that blocks until woken, and a wake any thread calls.
//! * `baselines.rs`: the raw eventfd + epoll baselines (Linux only).
//! * `affinity.rs`: pinning the ping-pong threads (Linux only; a no-op
//!   elsewhere).
//! * `pingpong.rs`, `burst.rs`, `mailbox.rs`: the three measurements.
//! * `report.rs`: the tables, the JSON and the plot.
//! * `../common/contenders.rs` (with `event_loop.rs` and `flag.rs`): the
//!   Mailbox comparison's contenders, shared with `benches/notify.rs`.
//!
//! # Adding a mechanism
//!
//! Everything happens in `mech.rs`. A wakefd backend needs nothing: every
//! `Backend` is a `Mech::Wakefd` (and the default one a `Mech::SleepAware`
//! too). A wakefd loop of another shape is a `Mech` variant of its own, as
//! `SleepAware` is: its `Wake` is a `NotifierWake`, so that its `stats()`
//! show up in the tables. Anything else is a baseline: add a
//! variant to the `Baseline` enum (its doc comment is its `--baseline`
//! help, its kebab-case name its id in the flag and the JSON), then its arm
//! in each `match` of `impl Mech`, which the compiler will point out:
//! `label`, `available`, `open` (a function returning its `Loop` and
//! `Wake` closures, like `mio_waker` there), `burst_notifies` and
//! `wakes_are_writes`. Ping-pong, burst, the tables, the JSON and the plot
//! pick it up from there. Platform-only code goes in a module of its own
//! with a `#![cfg]` at its top, as `baselines.rs` does; `available` then
//! says where it runs, and `open` gets a `#[cfg]`'d arm. (A Mailbox
//! contender is a queue + wake pair, not a wake: that is the `Contender`
//! enum of `../common/contenders.rs`, whose doc says how.)

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

mod affinity;
mod baselines; // Linux only: gated at the top of its file
mod burst;
mod cli;
mod mailbox;
mod mech;
mod pingpong;
mod report;

#[path = "../common/contenders.rs"]
mod contenders;
#[path = "../common/event_loop.rs"]
mod event_loop;
#[path = "../common/flag.rs"]
mod flag;

use burst::{burst_round, BurstResult};
use cli::Args;
use mailbox::MailResult;
use pingpong::{ping_pong, LatencyResult};

/// Runs every measurement, interleaved, `--rounds` times; then reports.
fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let timeout = args.timeout();
    let pin = args.pin_cpus();
    let mechs = args.mechanisms();
    let mut latency: Vec<LatencyResult> = mechs.iter().map(|&m| LatencyResult::new(m)).collect();
    let mut burst = BurstResult::for_each(&mechs, args.burst);
    let mut mail = MailResult::for_each(&args.producers, args.mailbox);

    let steps = u64::from(args.rounds)
        * (latency.len() + burst.len() + usize::from(!mail.is_empty())) as u64;
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );

    let mut pairs = Vec::new();
    for &m in &mechs {
        let (a, b) = pingpong::pair(m).map_err(|e| format!("{}: {e}", m.label()))?;
        pairs.push((a, Some(b)));
    }

    for round in 1..=args.rounds {
        for (res, (a, b)) in latency.iter_mut().zip(&mut pairs) {
            bar.set_message(format!("round {round}: {}", res.mech.label()));
            let peer = b.take().expect("peer side is home between runs");
            let (run, peer) = ping_pong(a, peer, args.warmup, args.iters, timeout, pin)
                .map_err(|e| format!("{}: {e}", res.mech.label()))?;
            *b = Some(peer);
            res.record(&run);
            bar.inc(1);
        }
        for res in &mut burst {
            bar.set_message(format!("round {round}: burst {}", res.mech.label()));
            let work = Duration::from_nanos(args.loop_work_ns);
            let r = burst_round(res.mech, args.senders, res.k, work, timeout)
                .map_err(|e| format!("burst {}: {e}", res.mech.label()))?;
            res.rounds.push(r);
            bar.inc(1);
        }
        if !mail.is_empty() {
            bar.set_message(format!("round {round}: mailbox"));
            for res in &mut mail {
                res.run(timeout)
                    .map_err(|e| format!("mailbox {}: {e}", res.contender.label()))?;
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    drop(pairs);

    let m = report::machine();
    println!(
        "wakefd notify latency — {} CPUs, Linux {}, {}",
        m["cpus"],
        m["kernel"].as_str().unwrap_or("?"),
        m["cpu_model"].as_str().unwrap_or("?")
    );
    println!();
    print!("{}", report::latency_table(&latency, args));
    if !burst.is_empty() {
        println!();
        print!("{}", report::burst_table(&burst, args));
    }
    if !mail.is_empty() {
        println!();
        print!("{}", report::mailbox_table(&mail, args));
    }
    println!();
    println!("no lost wake-ups: every wait returned within {timeout:?}");

    if let Some(path) = &args.json {
        let v = report::to_json(args, &latency, &burst, &mail);
        std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        report::plot(path, &latency, args).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
