//! Nothing is lost when a message's `Drop` panics: the Mailbox's drop
//! closes the queue first (later sends get their message back) and drops
//! every message exactly once, the panicking one included, also for a
//! backlog the loop reads in place (more than 65 536 messages in a lane).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use wakefd::Mailbox;

/// A message that counts its drops, and panics in its drop if `bomb`.
struct Msg {
    drops: Arc<AtomicUsize>,
    bomb: bool,
}

impl Drop for Msg {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Relaxed);
        if self.bomb {
            panic!("a message's drop panics");
        }
    }
}

/// Sends `n` messages, the one at `bomb` panicking in its drop; lets the
/// loop take `taken` of them into its buffer with a Drain dropped after
/// one message (so `taken - 1` stay in the buffer); drops the Mailbox,
/// whose drop panics; checks that the sender sees the mailbox closed and
/// that every message was dropped exactly once.
fn drop_with_a_panicking_message(n: usize, bomb: usize, taken: bool) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut mailbox = Mailbox::new().unwrap();
    let sender = mailbox.sender();
    for i in 0..n {
        let msg = Msg {
            drops: Arc::clone(&drops),
            bomb: i == bomb,
        };
        assert!(sender.send(msg).is_ok());
    }
    if taken {
        // The first message goes to the loop's code (and is dropped there).
        drop(mailbox.drain().next());
    }
    let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(mailbox)));
    assert!(dropped.is_err(), "the message's panic is not swallowed");
    // The queue was closed before anything was dropped.
    let late = Msg {
        drops: Arc::clone(&drops),
        bomb: false,
    };
    assert!(
        sender.send(late).is_err(),
        "a send after the drop succeeded"
    );
    assert!(sender.is_closed());
    drop(sender);
    assert_eq!(drops.load(Relaxed), n + 1, "made {}, dropped", n + 1);
}

#[test]
fn a_panicking_drop_in_the_queue_loses_nothing() {
    drop_with_a_panicking_message(10, 3, false);
}

#[test]
fn a_panicking_drop_in_the_loops_buffer_loses_nothing() {
    drop_with_a_panicking_message(10, 3, true);
}

#[test]
fn a_panicking_drop_in_a_backlog_read_in_place_loses_nothing() {
    drop_with_a_panicking_message(70_000, 5, true);
}

#[test]
fn a_panicking_drop_first_in_a_backlog_loses_nothing() {
    drop_with_a_panicking_message(70_000, 1, true);
}
