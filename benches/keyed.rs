//! Criterion benches of the keyed notifier, each beside its baseline.
//!
//! ```text
//! cargo bench --bench keyed -- --measurement-time 2
//! ```
//!
//! * `drain_1_of_65536`: 65 536 keys, one of them fired (a different one
//!   each time, spread over the key words), then one drain that finds it.
//!   - `keyed_mio_eventfd`: a `KeyedNotifier` registered with mio on an
//!     eventfd, so its drain makes no system call (see `Notifier::drain`);
//!   - `keyed_read`: not registered, so its drain also reads the fd (one
//!     `read(2)`);
//!   - `scan_65536_flags`: the libuv way (`uv__async_io`), without the fd:
//!     one `AtomicBool` per source, every flag loaded on every wake and the
//!     set ones swapped back. (libuv walks a linked list of handles; a flat
//!     array is the kinder baseline.)
//!
//!   Only the drain is timed (an `Instant` on either side of each one, on
//!   every side alike); the notify before it is not.
//! * `notify_pending`: `KeyedWaker::notify` of a key already pending vs
//!   `Waker::notify` with a wake pending (the coalesced fast path).
//!
//! Criterion runs each function as A B A B (two rounds). After it, with
//! `--bench`, the same routines run interleaved five times more outside
//! criterion and the median ratios are printed.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use mio::{Interest, Poll, Token};
use wakefd::{Backend, KeyedNotifier, KeyedWaker, Notifier};

const KEYS: usize = 65_536;

/// The key fired in iteration `i`: a stride that walks all key words.
fn key(i: u64) -> usize {
    (i as usize).wrapping_mul(7_919) % KEYS
}

/// A routine in `iter_custom` form: run `iters` times, return the time the
/// measured part took.
type Routine = Box<dyn FnMut(u64) -> Duration>;

fn keyed_drain(registered: bool) -> Routine {
    let backend = if Backend::available().contains(&Backend::EventFd) {
        Backend::EventFd
    } else {
        Backend::default()
    };
    let mut notifier = KeyedNotifier::with_backend(backend, KEYS).expect("notifier");
    let poll = Poll::new().expect("poll");
    if registered {
        poll.registry()
            .register(&mut notifier, Token(0), Interest::READABLE)
            .expect("register");
    }
    let wakers: Vec<KeyedWaker> = (0..KEYS).map(|k| notifier.waker(k).unwrap()).collect();
    let mut i = 0;
    Box::new(move |iters| {
        let _keep = &poll;
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            wakers[key(i)].notify().expect("notify");
            let start = Instant::now();
            let found = notifier.drain().expect("drain").fold(0, |n, k| n + k + 1);
            total += start.elapsed();
            assert_eq!(black_box(found), key(i) + 1);
            i += 1;
        }
        total
    })
}

fn flag_scan() -> Routine {
    let flags: Vec<AtomicBool> = (0..KEYS).map(|_| AtomicBool::new(false)).collect();
    let mut i = 0;
    Box::new(move |iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            flags[key(i)].store(true, Ordering::Release);
            let start = Instant::now();
            let mut found = 0;
            for (k, flag) in flags.iter().enumerate() {
                if flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::Acquire) {
                    found += k + 1;
                }
            }
            total += start.elapsed();
            assert_eq!(black_box(found), key(i) + 1);
            i += 1;
        }
        total
    })
}

fn timed(mut f: impl FnMut() + 'static) -> Routine {
    Box::new(move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed()
    })
}

fn waker_notify_pending() -> Routine {
    let notifier = Notifier::new().expect("notifier");
    let waker = notifier.waker();
    waker.notify().expect("notify");
    timed(move || {
        let _keep = &notifier;
        waker.notify().expect("notify")
    })
}

fn keyed_notify_pending() -> Routine {
    let notifier = KeyedNotifier::new(KEYS).expect("notifier");
    let waker = notifier.waker(12_345).expect("key");
    waker.notify().expect("notify");
    timed(move || {
        let _keep = &notifier;
        waker.notify().expect("notify")
    })
}

/// The contenders of each group, baseline first.
fn groups() -> Vec<(&'static str, Vec<(&'static str, Routine)>)> {
    vec![
        (
            "drain_1_of_65536",
            vec![
                ("scan_65536_flags", flag_scan()),
                ("keyed_mio_eventfd", keyed_drain(true)),
                ("keyed_read", keyed_drain(false)),
            ],
        ),
        (
            "notify_pending",
            vec![
                ("waker_notify", waker_notify_pending()),
                ("keyed_notify", keyed_notify_pending()),
            ],
        ),
    ]
}

fn criterion_benches(
    c: &mut Criterion,
    groups: &mut [(&'static str, Vec<(&'static str, Routine)>)],
) {
    for (name, contenders) in groups.iter_mut() {
        let mut g = c.benchmark_group(*name);
        g.warm_up_time(Duration::from_millis(500));
        for round in 1..=2 {
            for (id, routine) in contenders.iter_mut() {
                g.bench_function(format!("{id}/{round}"), |b| b.iter_custom(&mut *routine));
            }
        }
        g.finish();
    }
}

/// Runs every contender of each group interleaved (A B C A B C ...) and
/// prints each one's median time per iteration and its ratio to the first.
fn interleaved(groups: &mut [(&'static str, Vec<(&'static str, Routine)>)]) {
    const ROUNDS: usize = 5;
    println!("\ninterleaved, {ROUNDS} rounds, median ns/iter (ratio to the first):");
    for (name, contenders) in groups.iter_mut() {
        let mut times = vec![Vec::new(); contenders.len()];
        for _ in 0..ROUNDS {
            for (i, (_, routine)) in contenders.iter_mut().enumerate() {
                // About 50 ms per contender and round.
                let probe = routine(100).as_nanos().max(1) as u64;
                let iters = (50_000_000 / (probe / 100).max(1)).clamp(100, 20_000_000);
                times[i].push(routine(iters).as_nanos() as f64 / iters as f64);
            }
        }
        let medians: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                t[ROUNDS / 2]
            })
            .collect();
        for ((id, _), &median) in contenders.iter().zip(&medians) {
            println!(
                "  {name}/{id}: {median:.2} ns  ({:.3}x of {}, first is {:.1}x this)",
                median / medians[0],
                contenders[0].0,
                medians[0] / median
            );
        }
    }
}

fn main() {
    let mut groups = groups();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &mut groups);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        interleaved(&mut groups);
    }
}
