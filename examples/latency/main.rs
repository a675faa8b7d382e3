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
//! still spinning when the wake comes. Every wait is bounded by
//! `--timeout-ms`, so a lost wake-up aborts the run instead of hanging it. The two threads are pinned
//! to the first two CPUs the process may use, so that every wake crosses
//! from one core to the other (`--no-pin` leaves them to the scheduler).
//!
//! Mechanisms run interleaved (A B C ... A B C ...) for `--rounds` rounds of
//! `--iters` round trips each, so that drift on the machine hits all of them
//! alike; the table shows the median over rounds of each round's percentile
//! with a distribution-free 95 % confidence interval of that median (from
//! the rounds' order statistics: `stats.rs`), and ratios are the median
//! over rounds of the per-round ratio, with theirs. A ratio whose interval
//! holds 1 is marked `≈`: these rounds do not show a difference.
//!
//! The header (and the JSON) carry what a reader needs to judge the run:
//! date, rustc, wakefd version and commit, kernel, CPU model and count,
//! pinning, the load average before and after and the CPU time other
//! processes took meanwhile, and warnings: load above `--max-load`, a phase
//! with more busy threads than CPUs, spin rows with no second CPU to spin
//! on. `--compare OLD.json` sets each row against a run saved by `--json`.
//! `--plot` draws latency by percentile on a log "nines" axis, p50 to
//! p99.99. Progress goes to stderr: a bar with the time left on a
//! terminal, one line per phase of each round otherwise. `--quick` is a
//! smoke run of a few seconds.
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
//! rest, so its ratios are per-round ratios too, in each `--placement`:
//! unpinned (the default row: every thread left to the scheduler, which
//! with more busy threads than CPUs decides how much CPU the loop gets) and
//! loop-alone (the loop pinned alone to one CPU, the producers to the
//! others, so that every contender's loop gets a whole CPU).
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
//! * `stats.rs`: medians over rounds and their intervals; `table.rs`: the
//!   tables' layout.
//! * `context.rs`: the run's context and warnings; `progress.rs`: the
//!   progress bar or lines.
//! * `pingpong.rs`, `burst.rs`, `mailbox.rs`: the three measurements.
//! * `report.rs`: the tables; `json.rs`: the JSON; `plot.rs`: the plot;
//!   `compare.rs`: `--compare`.
//! * `../common/contenders.rs` (with `affinity.rs`, `event_loop.rs` and
//!   `flag.rs`): the Mailbox comparison's contenders and placements, shared
//!   with `benches/notify.rs`; `affinity.rs` also pins the ping-pong
//!   threads (Linux only; a no-op elsewhere).
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

mod baselines;
mod burst;
mod cli;
mod compare;
mod context;
mod json;
mod mailbox;
mod mech;
mod pingpong;
mod plot;
mod progress;
mod report;
mod stats;
mod table; // Linux only: gated at the top of its file

#[path = "../common/affinity.rs"]
mod affinity;
#[path = "../common/contenders.rs"]
mod contenders;
#[path = "../common/event_loop.rs"]
mod event_loop;
#[path = "../common/flag.rs"]
mod flag;

use burst::{burst_round, BurstResult};
use cli::Args;
use context::Context;
use mailbox::MailResult;
use pingpong::{ping_pong, LatencyResult};
use progress::Progress;

/// The phases' busy threads, for the warnings.
fn busy_threads(args: &Args, burst: bool, mail: bool) -> Vec<(String, usize)> {
    let mut v = vec![("ping-pong".to_owned(), 2)];
    if burst {
        v.push(("burst".into(), args.senders as usize + 1));
    }
    let placements = args.placements();
    if mail && placements.contains(&contenders::Placement::Unpinned) {
        let alone = placements.contains(&contenders::Placement::LoopAlone)
            && contenders::Placement::LoopAlone.available();
        for &p in &args.producers {
            let hint = if alone {
                " (the loop-alone rows give the loop a CPU of its own)"
            } else {
                ""
            };
            v.push((format!("Mailbox {p}->1 unpinned{hint}"), p as usize + 1));
        }
    }
    v
}

/// Runs every measurement, interleaved, `--rounds` times; then reports.
fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    // Read first, so that a bad file fails before the run, not after.
    let old = match &args.compare {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Some((path.display().to_string(), v))
        }
        None => None,
    };
    let mut ctx = Context::start();
    let timeout = args.timeout();
    let pin = args.pin_cpus();
    let mechs = args.mechanisms();
    let mut latency: Vec<LatencyResult> = mechs.iter().map(|&m| LatencyResult::new(m)).collect();
    let mut burst = BurstResult::for_each(&mechs, args.burst);
    let mut mail = MailResult::for_each(&args.placements(), &args.producers, args.mailbox);

    let steps = u64::from(args.rounds) * (latency.len() + burst.len() + mail.len()) as u64;
    let mut progress = Progress::new(steps);

    let mut pairs = Vec::new();
    for &m in &mechs {
        let (a, b) = pingpong::pair(m).map_err(|e| format!("{}: {e}", m.label()))?;
        pairs.push((a, Some(b)));
    }

    for round in 1..=args.rounds {
        for (res, (a, b)) in latency.iter_mut().zip(&mut pairs) {
            progress.step(format!("round {round}: {}", res.mech.label()));
            let peer = b.take().expect("peer side is home between runs");
            let (run, peer) = ping_pong(a, peer, args.warmup, args.iters, timeout, pin)
                .map_err(|e| format!("{}: {e}", res.mech.label()))?;
            *b = Some(peer);
            res.record(&run);
            progress.done();
        }
        progress.phase(round, args.rounds, "ping-pong");
        for res in &mut burst {
            progress.step(format!("round {round}: burst {}", res.mech.label()));
            let work = Duration::from_nanos(args.loop_work_ns);
            let r = burst_round(res.mech, args.senders, res.k, work, timeout)
                .map_err(|e| format!("burst {}: {e}", res.mech.label()))?;
            res.rounds.push(r);
            progress.done();
        }
        if !burst.is_empty() {
            progress.phase(round, args.rounds, "burst");
        }
        for res in &mut mail {
            progress.step(format!("round {round}: mailbox {}", res.contender.label()));
            res.run(timeout)
                .map_err(|e| format!("mailbox {}: {e}", res.contender.label()))?;
            progress.done();
        }
        if !mail.is_empty() {
            progress.phase(round, args.rounds, "mailbox");
        }
    }
    progress.finish();
    drop(pairs);
    ctx.finish();

    let spin = latency.iter().any(|r| report::spins(r.mech));
    let busy = busy_threads(args, !burst.is_empty(), !mail.is_empty());
    let warnings = context::warnings(&ctx, args.max_load, &busy, spin);
    print!("{}", report::header(&ctx, args, &warnings));
    println!();
    print!("{}", report::latency_table(&latency, args, ctx.cpus));
    println!();
    print!("{}", report::ratio_table(&latency, args, ctx.cpus));
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

    let doc = json::to_json(&ctx, &warnings, args, &latency, &burst, &mail);
    if let Some((name, old)) = &old {
        println!();
        print!("{}", compare::compare(&doc, old, name));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::plot(path, &latency, args, &ctx, warnings.len())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::get();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
