//! Every mixture of the loop's calls (wait / poll / drain / try_recv / raw
//! announcements) against racing senders, on every backend, loses no wake:
//! a lost one shows up as a wait or poll that makes no progress for
//! `STALL`.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use wakefd::{Backend, Mailbox, Notifier, TryRecvError};

const STALL: Duration = Duration::from_secs(5);
const TOKEN: Token = Token(7);

fn senders(mailbox: &Mailbox<u64>, threads: usize, per: u64) -> Vec<thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let sender = mailbox.sender();
            thread::spawn(move || {
                for i in 0..per {
                    sender.send((t as u64) << 32 | i).unwrap();
                    if i % 97 == 0 {
                        thread::sleep(Duration::from_micros(50));
                    } else if i % 7 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect()
}

fn check_fifo(got: &[u64], threads: usize, per: u64) {
    let mut next = vec![0u64; threads];
    for &m in got {
        let (t, i) = ((m >> 32) as usize, m & 0xffff_ffff);
        assert_eq!(i, next[t], "FIFO per sender broken");
        next[t] += 1;
    }
    assert!(next.iter().all(|&n| n == per), "missing messages: {next:?}");
}

/// Mailbox with a spin budget, `wait` + one `try_recv` per wake-up.
#[test]
fn a_spinning_mailbox_wait_with_one_try_recv_per_wake_loses_nothing() {
    for_each_backend!(|backend| {
        let (threads, per) = (3, 20_000);
        let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        mailbox.set_spin(Duration::from_micros(20));
        let handles = senders(&mailbox, threads, per);
        let mut got = Vec::new();
        loop {
            match mailbox.try_recv() {
                Ok(m) => got.push(m),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let start = Instant::now();
                    let ok = mailbox.wait(Some(STALL)).unwrap();
                    assert!(
                        ok || start.elapsed() < STALL,
                        "{backend}: wait stalled with {} of {} received",
                        got.len(),
                        threads as u64 * per
                    );
                }
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        check_fifo(&got, threads, per);
    });
}

/// Mailbox registered with mio: `Mailbox::poll` (spinning or not), then
/// either one `try_recv` or a partial `drain` per call.
#[test]
fn mailbox_poll_with_partial_takes_loses_nothing() {
    for backend in Backend::available() {
        for spin in [Duration::ZERO, Duration::from_micros(30)] {
            eprintln!("-- {backend} spin {spin:?}");
            let (threads, per) = (3, 20_000);
            let mut poll = Poll::new().unwrap();
            let mut events = Events::with_capacity(4);
            let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
            mailbox.set_spin(spin);
            poll.registry()
                .register(&mut mailbox, TOKEN, Interest::READABLE)
                .unwrap();
            let handles = senders(&mailbox, threads, per);
            let mut got = Vec::new();
            let mut round = 0u64;
            let mut last_progress = Instant::now();
            let mut disconnected = false;
            while !disconnected {
                mailbox
                    .poll(&mut poll, &mut events, Some(Duration::from_millis(500)))
                    .unwrap();
                round += 1;
                let before = got.len();
                if round % 2 == 0 {
                    match mailbox.try_recv() {
                        Ok(m) => got.push(m),
                        Err(TryRecvError::Disconnected) => disconnected = true,
                        Err(TryRecvError::Empty) => {}
                    }
                } else {
                    got.extend(mailbox.drain().take(3));
                }
                if got.len() > before {
                    last_progress = Instant::now();
                }
                assert!(
                    last_progress.elapsed() < STALL,
                    "{backend}: no progress for {STALL:?}, {} received",
                    got.len()
                );
            }
            for h in handles {
                h.join().unwrap();
            }
            check_fifo(&got, threads, per);
        }
    }
}

/// Mailbox registered with mio, *plain* `Poll::poll` (no announcements),
/// one `try_recv` per event: one event per message must keep coming.
#[test]
fn plain_mio_with_one_try_recv_per_event_loses_nothing() {
    for_each_backend!(|backend| {
        let (threads, per) = (3, 10_000);
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(4);
        let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        poll.registry()
            .register(&mut mailbox, TOKEN, Interest::READABLE)
            .unwrap();
        let handles = senders(&mailbox, threads, per);
        let mut got = Vec::new();
        loop {
            util::poll_retrying(&mut poll, &mut events, Some(STALL));
            if !events.iter().any(|e| e.token() == TOKEN) {
                panic!("{backend}: no event for {STALL:?}, {} received", got.len());
            }
            match mailbox.try_recv() {
                Ok(m) => got.push(m),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        check_fifo(&got, threads, per);
    });
}

/// A Notifier whose loop mixes every way to wait: `poll` (sleep-aware, with
/// and without spin), `wait`, raw announcements around a raw `Poll::poll`,
/// and plain `drain`s. Work counters must always be seen.
#[test]
fn a_notifier_mixing_every_way_to_wait_loses_nothing() {
    for_each_backend!(|backend| {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(4);
        let mut notifier = Notifier::with_backend(backend).unwrap();
        poll.registry()
            .register(&mut notifier, TOKEN, Interest::READABLE)
            .unwrap();
        let work = Arc::new(AtomicUsize::new(0));
        let total = 3 * 20_000;
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let (waker, work) = (notifier.waker(), Arc::clone(&work));
                thread::spawn(move || {
                    for i in 0..20_000u32 {
                        work.fetch_add(1, Release);
                        waker.notify().unwrap();
                        if (i + t) % 101 == 0 {
                            thread::sleep(Duration::from_micros(30));
                        }
                    }
                })
            })
            .collect();
        // Sleep-aware throughout: every blocking call below announces sleep.
        let awake = notifier.announce_awake();
        let mut seen = 0;
        let mut round = 0u32;
        let mut last_progress = Instant::now();
        while seen < total {
            round = round.wrapping_add(1);
            match round % 4 {
                0 => {
                    notifier
                        .poll(&mut poll, &mut events, Some(Duration::from_millis(200)))
                        .unwrap();
                }
                1 => {
                    notifier.wait(Some(Duration::from_millis(200))).unwrap();
                }
                2 => {
                    let block = awake.announce_sleep();
                    let t = if block {
                        Some(Duration::from_millis(200))
                    } else {
                        Some(Duration::ZERO)
                    };
                    let r = poll.poll(&mut events, t);
                    awake.announce_awake();
                    r.unwrap();
                    notifier.drain().unwrap();
                }
                _ => {
                    notifier.drain().unwrap();
                }
            }
            let now = work.load(Acquire);
            if now > seen {
                seen = now;
                last_progress = Instant::now();
            }
            assert!(
                last_progress.elapsed() < STALL,
                "{backend}: stalled at {seen} of {total}"
            );
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}
