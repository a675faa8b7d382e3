//! Criterion benches: the cost of a notify, of a notify + drain cycle, and
//! Mailbox throughput against hand-written channel + `mio::Waker` pairs.
//!
//! ```text
//! cargo bench --bench notify
//! ```
//!
//! * `notify_pending`: `Waker::notify()` while a wake is pending (the
//!   coalesced fast path: one atomic operation) vs `mio::Waker::wake()`
//!   (one `write(2)` every time).
//! * `notify_drain_cycle/<backend>`: `notify()` then `drain()` on a notifier
//!   that is not registered with mio, so the drain reads: one write and one
//!   read system call per cycle.
//! * `mailbox_1to1`, `mailbox_4to1`: N producer threads send `u64`s to one
//!   consumer thread blocked in `mio::Poll::poll`, which drains everything
//!   on each wake. Throughput is in messages. The baselines are what one
//!   would write by hand: a `crossbeam-channel` plus a `mio::Waker` woken
//!   per message, or woken only when a hand-written `AtomicBool` flag says
//!   no wake is pending (two versions of the flag: always `swap`, or `load`
//!   first behind a `SeqCst` fence), and `std::sync::mpsc` with the faster
//!   flag.
//! * `mailbox_1to1_loop_alone`, `mailbox_4to1_loop_alone`: the same with
//!   the consumer pinned alone to one CPU and the producers to the others
//!   (`contenders::Placement::LoopAlone`), so that every contender's loop
//!   has a whole CPU whatever its producers do; left out with one CPU.

use std::time::Duration;

// The Mailbox comparison, one copy shared with the latency example.
#[path = "../examples/common/affinity.rs"]
mod affinity;
#[path = "../examples/common/contenders.rs"]
mod contenders;
#[path = "../examples/common/event_loop.rs"]
mod event_loop;
#[path = "../examples/common/flag.rs"]
mod flag;

use contenders::{Contender, Placement};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use event_loop::TOKEN;
use mio::Poll;
use wakefd::{Backend, Notifier};

/// Messages per benchmark iteration in the mailbox benches.
const MSGS: u64 = 10_000;

/// The longest a consumer waits for one wake before the bench fails as a
/// lost wake-up instead of hanging.
const WAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn notify_pending(c: &mut Criterion) {
    let mut g = c.benchmark_group("notify_pending");

    // A wake is pending (notified once, never drained): every further
    // notify() is the coalesced fast path.
    let notifier = Notifier::new().expect("notifier");
    let waker = notifier.waker();
    waker.notify().expect("notify");
    g.bench_function("wakefd_notify", |b| {
        b.iter(|| waker.notify().expect("notify"))
    });
    assert!(notifier.drain().expect("drain"));

    // mio::Waker has no pending state: every wake() is a write(2) to its
    // eventfd (the counter cannot fill in any bench's lifetime).
    let poll = Poll::new().expect("poll");
    let mio_waker = mio::Waker::new(poll.registry(), TOKEN).expect("mio waker");
    g.bench_function("mio_waker_wake", |b| {
        b.iter(|| mio_waker.wake().expect("wake"))
    });
    g.finish();
}

fn notify_drain_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("notify_drain_cycle");
    for backend in Backend::available() {
        // Not registered with mio, so drain() reads the fd: one write and
        // one read system call per cycle.
        let notifier = Notifier::with_backend(backend).expect("notifier");
        let waker = notifier.waker();
        g.bench_function(backend.to_string(), |b| {
            b.iter(|| {
                waker.notify().expect("notify");
                assert!(notifier.drain().expect("drain"));
            })
        });
    }
    g.finish();
}

fn mailbox(c: &mut Criterion) {
    for placement in [Placement::Unpinned, Placement::LoopAlone] {
        if !placement.available() {
            continue;
        }
        let suffix = match placement {
            Placement::Unpinned => String::new(),
            p => format!("_{}", p.id().replace('-', "_")),
        };
        for producers in [1, 4] {
            let mut g = c.benchmark_group(format!("mailbox_{producers}to1{suffix}"));
            g.throughput(Throughput::Elements(MSGS));
            for contender in Contender::ALL {
                g.bench_function(contender.id().replace('-', "_"), |b| {
                    b.iter_custom(|iters| {
                        contender
                            .run(producers, iters * MSGS, WAKE_TIMEOUT, placement)
                            .unwrap_or_else(|e| panic!("{}: {e}", contender.id()))
                            .took
                    })
                });
            }
            g.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = notify_pending, notify_drain_cycle, mailbox
}
criterion_main!(benches);
