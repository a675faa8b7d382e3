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

use std::hint::black_box;
use std::io;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

#[path = "../examples/common/flag.rs"]
mod flag;
use flag::Flag;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mio::{Events, Interest, Poll, Token};
use wakefd::{Backend, Mailbox, Notifier};

const TOKEN: Token = Token(0);

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

/// A consumer's event loop: a `mio::Poll` with one source on `TOKEN`.
struct Consumer {
    poll: Poll,
    events: Events,
}

impl Consumer {
    fn new() -> Consumer {
        Consumer {
            poll: Poll::new().expect("poll"),
            events: Events::with_capacity(16),
        }
    }

    /// Blocks until the next readiness event; panics on a lost wake-up.
    fn wait(&mut self) {
        loop {
            match self.poll.poll(&mut self.events, Some(WAKE_TIMEOUT)) {
                Ok(()) if self.events.is_empty() => {
                    panic!("no wake within {WAKE_TIMEOUT:?}: lost wake-up")
                }
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("poll: {e}"),
            }
        }
    }
}

/// Runs `producers` threads that each call `send(i)` for their share of
/// `total` messages, started together, while `consume` (on this thread)
/// receives them all; returns the time from the start to the last message
/// received.
fn run_producers<S>(
    producers: u64,
    total: u64,
    make_sender: impl Fn() -> S,
    consume: impl FnOnce(u64),
) -> Duration
where
    S: FnMut(u64) + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(producers as usize + 1));
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let mut send = make_sender();
            let barrier = Arc::clone(&barrier);
            // Spread the remainder over the first producers.
            let share = total / producers + u64::from(p < total % producers);
            thread::spawn(move || {
                barrier.wait();
                for i in 0..share {
                    send(i);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    consume(total);
    let elapsed = start.elapsed();
    for h in handles {
        h.join().expect("producer panicked");
    }
    elapsed
}

/// wakefd: `Sender::send`; the consumer drains the Mailbox on every wake.
fn wakefd_mailbox(producers: u64, iters: u64) -> Duration {
    let mut consumer = Consumer::new();
    let mut mailbox = Mailbox::<u64>::new().expect("mailbox");
    consumer
        .poll
        .registry()
        .register(&mut mailbox, TOKEN, Interest::READABLE)
        .expect("register");
    let sender = mailbox.sender();
    let make = || {
        let tx = sender.clone();
        move |i| tx.send(i).expect("send")
    };
    run_producers(producers, iters * MSGS, make, |total| {
        let mut got = 0;
        while got < total {
            consumer.wait();
            for m in mailbox.drain() {
                black_box(m);
                got += 1;
            }
        }
    })
}

/// crossbeam-channel + `mio::Waker::wake()` after every message.
fn crossbeam_wake_each(producers: u64, iters: u64) -> Duration {
    let mut consumer = Consumer::new();
    let waker = Arc::new(mio::Waker::new(consumer.poll.registry(), TOKEN).expect("waker"));
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let make = || {
        let (tx, waker) = (tx.clone(), Arc::clone(&waker));
        move |i| {
            tx.send(i).expect("send");
            waker.wake().expect("wake");
        }
    };
    run_producers(producers, iters * MSGS, make, |total| {
        let mut got = 0;
        while got < total {
            consumer.wait();
            while let Ok(m) = rx.try_recv() {
                black_box(m);
                got += 1;
            }
        }
    })
}

fn new_flag(consumer: &Consumer, load_first: bool) -> Arc<Flag> {
    Arc::new(Flag::new(consumer.poll.registry(), TOKEN, load_first).expect("waker"))
}

/// crossbeam-channel + the coalescing flag + `mio::Waker`.
fn crossbeam_flag(producers: u64, iters: u64, load_first: bool) -> Duration {
    let mut consumer = Consumer::new();
    let flag = new_flag(&consumer, load_first);
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let make = || {
        let (tx, flag) = (tx.clone(), Arc::clone(&flag));
        move |i| {
            tx.send(i).expect("send");
            flag.after_send().expect("wake");
        }
    };
    run_producers(producers, iters * MSGS, make, |total| {
        let mut got = 0;
        while got < total {
            consumer.wait();
            flag.clear();
            while let Ok(m) = rx.try_recv() {
                black_box(m);
                got += 1;
            }
        }
    })
}

/// `std::sync::mpsc` + the coalescing flag (load first) + `mio::Waker`.
fn std_mpsc_flag(producers: u64, iters: u64) -> Duration {
    let mut consumer = Consumer::new();
    let flag = new_flag(&consumer, true);
    let (tx, rx) = mpsc::channel::<u64>();
    let make = || {
        let (tx, flag) = (tx.clone(), Arc::clone(&flag));
        move |i| {
            tx.send(i).expect("send");
            flag.after_send().expect("wake");
        }
    };
    run_producers(producers, iters * MSGS, make, |total| {
        let mut got = 0;
        while got < total {
            consumer.wait();
            flag.clear();
            while let Ok(m) = rx.try_recv() {
                black_box(m);
                got += 1;
            }
        }
    })
}

fn mailbox(c: &mut Criterion) {
    for producers in [1, 4] {
        let mut g = c.benchmark_group(format!("mailbox_{producers}to1"));
        g.throughput(Throughput::Elements(MSGS));
        g.bench_function("wakefd_mailbox", |b| {
            b.iter_custom(|iters| wakefd_mailbox(producers, iters))
        });
        g.bench_function("crossbeam_flag_load_first", |b| {
            b.iter_custom(|iters| crossbeam_flag(producers, iters, true))
        });
        g.bench_function("crossbeam_flag_swap", |b| {
            b.iter_custom(|iters| crossbeam_flag(producers, iters, false))
        });
        g.bench_function("std_mpsc_flag", |b| {
            b.iter_custom(|iters| std_mpsc_flag(producers, iters))
        });
        g.bench_function("crossbeam_wake_each", |b| {
            b.iter_custom(|iters| crossbeam_wake_each(producers, iters))
        });
        g.finish();
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
