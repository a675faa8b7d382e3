//! A single-threaded executor on a mio loop: each task has a key of one
//! `KeyedNotifier`, its `std::task::Waker` sets that key, and the loop polls
//! exactly the tasks whose keys fired.
//!
//! ```text
//! cargo run --release --example executor
//! ```
//!
//! 10 000 tasks each wait for a value that one of 2 worker threads hands
//! them; one more task reads a TCP connection (mio readiness wakes it) on
//! which the workers report when they are done. The loop holds an `Awake`
//! guard and blocks in `KeyedNotifier::poll`, the sleep-aware call, so a
//! wake that comes while it is busy polling tasks costs no system call. `main` asserts that every
//! task finished, that each worker-woken task was polled at most twice (once
//! to start waiting, once to finish), that no key fired for a finished task,
//! and that wakes coalesced (no more fd writes than task wakes), then prints
//! the numbers.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll as TaskPoll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use wakefd::KeyedNotifier;

const TASKS: usize = 10_000;
const WORKERS: usize = 2;
const NOTIFIER: Token = Token(0);
const SOCKET: Token = Token(1);

/// A value a worker thread hands to a task, and the waker of the task once
/// it waits for it.
#[derive(Default)]
struct Slot(Mutex<(Option<u64>, Option<Waker>)>);

impl Slot {
    fn complete(&self, value: u64) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.0 = Some(value);
            slot.1.take()
        };
        if let Some(waker) = waker {
            waker.wake(); // sets the task's key: no system call if it is pending
        }
    }

    async fn recv(&self) -> u64 {
        poll_fn(|cx| {
            let mut slot = self.0.lock().unwrap();
            match slot.0 {
                Some(value) => TaskPoll::Ready(value),
                None => {
                    slot.1 = Some(cx.waker().clone()); // a count increment
                    TaskPoll::Pending
                }
            }
        })
        .await
    }
}

/// The wakers of tasks waiting for I/O, by mio token.
type Reactor = Rc<RefCell<Vec<(Token, Waker)>>>;

/// Reads `stream` to its end; on `WouldBlock` leaves the task's waker with
/// the reactor for the socket's next readiness event.
async fn read_to_end(mut stream: TcpStream, token: Token, reactor: Reactor) -> io::Result<String> {
    let mut text = Vec::new();
    poll_fn(|cx| loop {
        let mut buf = [0; 256];
        match stream.read(&mut buf) {
            Ok(0) => return TaskPoll::Ready(Ok(())),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                reactor.borrow_mut().push((token, cx.waker().clone()));
                return TaskPoll::Pending;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return TaskPoll::Ready(Err(e)),
        }
    })
    .await?;
    String::from_utf8(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A task: its future and the waker that sets its key.
type Task = (Pin<Box<dyn Future<Output = ()>>>, Waker);

fn main() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut notifier = KeyedNotifier::new(TASKS + 1)?;
    poll.registry()
        .register(&mut notifier, NOTIFIER, Interest::READABLE)?;

    // A TCP pair: the loop's end in mio, the workers' end blocking.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut workers_end = Some(std::net::TcpStream::connect(listener.local_addr()?)?);
    let loops_end = listener.accept()?.0;
    loops_end.set_nonblocking(true)?;
    let mut loops_end = TcpStream::from_std(loops_end);
    poll.registry()
        .register(&mut loops_end, SOCKET, Interest::READABLE)?;

    let slots: Arc<Vec<Slot>> = Arc::new((0..TASKS).map(|_| Slot::default()).collect());
    let (sum, report, reactor) = (
        Rc::new(Cell::new(0)),
        Rc::new(RefCell::new(None)),
        Reactor::default(),
    );
    let mut tasks: Vec<Option<Task>> = Vec::new();
    let mut spawn = |future: Pin<Box<dyn Future<Output = ()>>>| -> io::Result<()> {
        let waker = Waker::from(notifier.waker(tasks.len())?); // the key is the index
        waker.wake_by_ref(); // its first poll
        tasks.push(Some((future, waker)));
        Ok(())
    };
    for i in 0..TASKS {
        let (slots, sum) = (Arc::clone(&slots), Rc::clone(&sum));
        spawn(Box::pin(async move {
            let value = slots[i].recv().await;
            sum.set(sum.get() + value);
        }))?;
    }
    let (io_report, io_reactor) = (Rc::clone(&report), Rc::clone(&reactor));
    spawn(Box::pin(async move {
        *io_report.borrow_mut() = Some(read_to_end(loops_end, SOCKET, io_reactor).await);
    }))?;

    let (mut live, mut stale, mut polls) = (tasks.len(), 0, vec![0u32; tasks.len()]);
    let (mut keys, mut events, mut workers) = (Vec::new(), Events::with_capacity(64), Vec::new());
    // Sleep-aware while the guard lives: wakes that come while the loop
    // polls tasks cost no system call (`poll` announces sleep before it
    // blocks).
    let _awake = notifier.announce_awake();
    let start = Instant::now();
    while live > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{live} tasks hang"
        );
        keys.clear();
        keys.extend(notifier.poll(&mut poll, &mut events, Some(Duration::from_millis(100)))?);
        // I/O readiness wakes the tasks waiting for it (their keys fire).
        reactor.borrow_mut().retain(|(token, waker)| {
            let ready = events.iter().any(|e| e.token() == *token);
            if ready {
                waker.wake_by_ref();
            }
            !ready
        });
        for &key in &keys {
            let Some((future, waker)) = tasks[key].as_mut() else {
                stale += 1; // a key for a finished task
                continue;
            };
            polls[key] += 1;
            let mut cx = Context::from_waker(waker);
            if future.as_mut().poll(&mut cx).is_ready() {
                tasks[key] = None;
                live -= 1;
            }
        }
        if let Some(end) = workers_end.take() {
            // Every task has been polled once: now the workers hand out
            // values, then report on the socket (its end closes with them).
            for w in 0..WORKERS {
                let (slots, mut out) = (Arc::clone(&slots), end.try_clone()?);
                workers.push(thread::spawn(move || -> io::Result<()> {
                    (w..TASKS)
                        .step_by(WORKERS)
                        .for_each(|i| slots[i].complete(i as u64));
                    writeln!(out, "worker {w} done")
                }));
            }
        }
    }
    let elapsed = start.elapsed();
    for worker in workers {
        worker.join().expect("a worker panicked")?;
    }

    let report = report.borrow_mut().take().expect("the I/O task finished")?;
    assert_eq!(
        report.lines().count(),
        WORKERS,
        "the I/O task read {report:?}"
    );
    assert_eq!(
        sum.get(),
        (TASKS * (TASKS - 1) / 2) as u64,
        "a value was lost"
    );

    // Task wakes after the first polls: 1 per worker-woken task, and 1 per
    // readiness event of the socket.
    let woken = polls.iter().sum::<u32>() as usize + stale - polls.len();
    let stats = notifier.stats();
    let (written, absorbed) = (stats.wakes_written, stats.wakes_absorbed);
    let max = polls[..TASKS].iter().max().copied().unwrap_or(0);
    println!(
        "{} tasks, {TASKS} woken from {WORKERS} worker threads and 1 by I/O, in {elapsed:.2?}",
        polls.len()
    );
    println!(
        "polls per worker-woken task: at most {max}; the I/O task: {}",
        polls[TASKS]
    );
    println!(
        "task wakes: {woken}; wakes written to the fd: {written} ({:.4} per task woken), \
         absorbed while the loop was awake: {absorbed}",
        written as f64 / woken as f64
    );
    assert!(max <= 2, "a worker-woken task was polled {max} times");
    assert_eq!(stale, 0, "keys fired for finished tasks");
    assert!(written as usize <= woken, "wakes did not coalesce");
    Ok(())
}
