#![cfg(unix)] // tokio's AsyncFd, polling's and calloop's fd sources take a raw fd here

//! A Mailbox driven from the reactors users have: tokio's `AsyncFd`,
//! `polling`'s `Poller` and calloop's `Generic` source, on every backend.
//! A worker sends 1 000 messages in bursts; several times it waits until the
//! loop has taken everything sent so far and then pauses, so the loop goes
//! back to its reactor and must be woken by a fresh readiness event. The
//! loop drains on readiness and must receive every message, in order. Every
//! wait is bounded by [`TIMEOUT`]: a lost wake fails the test, it does not
//! hang it.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::TIMEOUT;
use wakefd::{Mailbox, Sender};

const MESSAGES: usize = 1_000;
/// Messages per burst.
const BURST: usize = 50;
/// After every `CATCH_UP`-th burst the worker waits for the loop to take
/// everything, then pauses: the loop sleeps in its reactor before the next
/// burst, and each of these pauses costs it one more wake-up.
const CATCH_UP: usize = 3;
/// The catch-up points: after bursts `CATCH_UP - 1`, `2 * CATCH_UP - 1`, ...
/// (the last burst is not one: nothing follows it).
const CATCH_UPS: usize = (MESSAGES / BURST - 1) / CATCH_UP;
/// The worker's pause after the other bursts but the last: the loop may or
/// may not have gone back to sleep by then.
const PAUSE: Duration = Duration::from_millis(1);

/// Sends `0..MESSAGES` in bursts; `taken` is the loop's count of messages
/// received.
fn spawn_worker(sender: Sender<u64>, taken: Arc<AtomicUsize>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for burst in 0..MESSAGES / BURST {
            for i in burst * BURST..(burst + 1) * BURST {
                sender.send(i as u64).expect("the Mailbox is alive");
            }
            if burst == MESSAGES / BURST - 1 {
                break;
            }
            if burst % CATCH_UP == CATCH_UP - 1 {
                let sent = (burst + 1) * BURST;
                let deadline = Instant::now() + TIMEOUT;
                // Relaxed: a count; nothing else is published through it.
                while taken.load(Ordering::Relaxed) < sent {
                    if Instant::now() > deadline {
                        // The loop side fails on its own deadline.
                        return;
                    }
                    thread::sleep(Duration::from_micros(100));
                }
                // The loop took everything: let it go back to its reactor.
                thread::sleep(Duration::from_millis(2));
            } else {
                thread::sleep(PAUSE);
            }
        }
    })
}

/// The loop's record of what it received.
struct Received {
    messages: Vec<u64>,
    /// Drains that found messages.
    wakeups: usize,
    /// Every drain, spurious ones included.
    drains: usize,
    /// `messages.len()`, for the worker.
    taken: Arc<AtomicUsize>,
    deadline: Instant,
}

impl Received {
    fn new() -> Received {
        Received {
            messages: Vec::with_capacity(MESSAGES),
            wakeups: 0,
            drains: 0,
            taken: Arc::new(AtomicUsize::new(0)),
            deadline: Instant::now() + TIMEOUT,
        }
    }

    /// Records one drain's messages.
    fn take(&mut self, drain: impl Iterator<Item = u64>) {
        let before = self.messages.len();
        self.drains += 1;
        self.messages.extend(drain);
        if self.messages.len() > before {
            self.wakeups += 1;
        }
        self.taken.store(self.messages.len(), Ordering::Relaxed);
    }

    fn complete(&self) -> bool {
        self.messages.len() >= MESSAGES
    }

    /// What is left of [`TIMEOUT`]; panics once it is spent.
    fn time_left(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.timed_out();
        }
        left
    }

    fn timed_out(&self) -> ! {
        panic!(
            "{} of {MESSAGES} messages received within {TIMEOUT:?} ({} wake-ups): the loop was not woken for the rest",
            self.messages.len(),
            self.wakeups,
        );
    }

    /// Joins the worker and checks that everything came, in order, over at
    /// least one wake-up per catch-up point and one for the start.
    fn check(self, worker: thread::JoinHandle<()>) {
        worker.join().expect("the worker panicked");
        eprintln!(
            "{} messages, {} drains, {} of them with messages",
            self.messages.len(),
            self.drains,
            self.wakeups
        );
        let expected: Vec<u64> = (0..MESSAGES as u64).collect();
        assert!(
            self.messages == expected,
            "messages lost, duplicated or out of order: got {} of {MESSAGES}",
            self.messages.len()
        );
        // A drain that finds nothing follows a wake whose message an earlier
        // drain took (sent between that drain's re-arm and its take): at most
        // one per drain with messages. More means the fd stayed readable
        // after a drain (a level-triggered reactor spinning) or readiness was
        // never cleared (tokio spinning).
        let spurious = self.drains - self.wakeups;
        assert!(
            spurious <= self.wakeups,
            "{spurious} drains found nothing, {} found messages: the loop spun",
            self.wakeups
        );
        assert!(
            self.wakeups > CATCH_UPS,
            "{} wake-ups, expected more than {CATCH_UPS}",
            self.wakeups
        );
    }
}

#[test]
fn tokio_async_fd() {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    for_each_backend!(|backend| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
        runtime.block_on(async {
            let mut received = Received::new();
            let mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
            let worker = spawn_worker(mailbox.sender(), received.taken.clone());
            // SAFETY: the Mailbox's fd is the same and open for the
            // Mailbox's whole life (wakefd's I/O-safety promise), and the
            // AsyncFd owns the Mailbox, so the fd outlives the registration.
            let mut mailbox =
                unsafe { AsyncFd::register_with_interest(mailbox, Interest::READABLE) }
                    .expect("register the Mailbox with tokio");
            let deadline = tokio::time::Instant::from_std(received.deadline);
            while !received.complete() {
                let mut ready =
                    match tokio::time::timeout_at(deadline, mailbox.readable_mut()).await {
                        Ok(ready) => ready.expect("readable_mut"),
                        Err(_elapsed) => received.timed_out(),
                    };
                received.take(ready.get_inner_mut().drain());
                // Always clear after a drain: tokio's reactor is
                // edge-triggered (EPOLLET, EV_CLEAR) and keeps the readiness
                // it saw until cleared, so without a clear `readable_mut`
                // returns at once, forever (the loop spins). Clearing loses
                // nothing: the drain took every message queued before its
                // re-arm, a send after the re-arm makes a fresh edge, and a
                // readiness event tokio got after this guard's is not cleared
                // (a guard clears only the tick it was handed).
                ready.clear_ready();
            }
            received.check(worker);
        });
    });
}

#[test]
fn polling_poller() {
    use polling::{Event, Events, Poller};

    const KEY: usize = 7;

    for_each_backend!(|backend| {
        let mut received = Received::new();
        // Declared before the Poller, so that on a panic the Poller (and with
        // it the registration) is dropped first.
        let mut mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        let poller = Poller::new().expect("a Poller");
        let worker = spawn_worker(mailbox.sender(), received.taken.clone());
        // SAFETY: the Mailbox's fd is the same and open for the Mailbox's
        // whole life (wakefd's I/O-safety promise); the Mailbox outlives the
        // registration: it is deleted from the Poller below before either is
        // dropped, and on a panic the Poller is dropped first.
        unsafe { poller.add(&mailbox, Event::readable(KEY)) }.expect("add the Mailbox");
        let mut events = Events::new();
        while !received.complete() {
            events.clear();
            poller
                .wait(&mut events, Some(received.time_left()))
                .expect("wait");
            for event in events.iter() {
                assert_eq!(event.key, KEY);
                received.take(mailbox.drain());
                // `add` registers in oneshot mode: re-arm for the next event.
                // The fd is quiet again unless a send came after the drain,
                // and then this reports it.
                poller
                    .modify(&mailbox, Event::readable(KEY))
                    .expect("re-arm the Mailbox");
            }
        }
        poller.delete(&mailbox).expect("delete the Mailbox");
        received.check(worker);
    });
}

#[test]
fn calloop_generic() {
    use calloop::generic::Generic;
    use calloop::{EventLoop, Interest, Mode, PostAction};

    for_each_backend!(|backend| {
        let mut received = Received::new();
        let mut event_loop = EventLoop::<Received>::try_new().expect("an EventLoop");
        let mailbox = Mailbox::<u64>::with_backend(backend).unwrap();
        let worker = spawn_worker(mailbox.sender(), received.taken.clone());
        event_loop
            .handle()
            .insert_source(
                Generic::new(mailbox, Interest::READ, Mode::Level),
                |_readiness, mailbox, received: &mut Received| {
                    // SAFETY: the Mailbox is only drained here, never
                    // moved out, replaced or dropped, so the fd stays the
                    // one registered, open, until the Generic is dropped.
                    let mailbox = unsafe { mailbox.get_mut() };
                    received.take(mailbox.drain());
                    Ok(PostAction::Continue)
                },
            )
            .map_err(|e| e.error)
            .expect("insert the Mailbox");
        while !received.complete() {
            let left = received.time_left();
            event_loop
                .dispatch(Some(left), &mut received)
                .expect("dispatch");
        }
        received.check(worker);
    });
}
