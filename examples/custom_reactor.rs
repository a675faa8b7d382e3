//! Embedding a `Notifier` (or a `Mailbox`) in a reactor that is not mio.
//!
//! A C reactor watches raw fds with `poll(2)` or `epoll(7)`, level-triggered.
//! This example does the same through `libc`, for every backend: it shows
//! (and asserts) that after `notify` the fd is readable, that it stays
//! readable until `drain`, and that after `drain` it is quiet again. Then it
//! runs a small reactor loop that a worker thread wakes 10 000 times, and one
//! that takes messages from a `Mailbox`: over `poll(2)` on every Unix, and
//! over `epoll(7)` too on Linux and Android.
//!
//! # A sleep-aware reactor loop
//!
//! A reactor of your own can tell the notifier when it sleeps, so that a
//! `notify` made while the loop is awake (running its callbacks, say) makes
//! no system call: it only sets the pending bit, which the loop sees before
//! it next blocks. (With mio, `Notifier::poll` and `Mailbox::poll` do all of
//! this in one call.) Each turn of the loop (`sleep_aware_loop` below):
//!
//! 1. `announce_sleep()` right before the blocking call. If it returns
//!    `false`, a wake is pending already and no write will come for it: use
//!    a zero timeout instead of blocking.
//! 2. The blocking call: `poll(2)`, `epoll_wait(2)`, ...
//! 3. `announce_awake()` right after it returns, whatever it returned (an
//!    error or `EINTR` too), before anything else.
//! 4. `drain()` if the notifier's fd was readable *or* `announce_sleep`
//!    returned `false`, then look at the work.
//!
//! Once the loop has announced that it is awake, it must announce sleep
//! before *every* blocking call; a loop that announces nothing behaves as
//! without these calls (every wake that finds nothing pending is written).
//! A `Mailbox` has the same two calls. The notifier's `stats()` show the
//! difference: `wakes_written` (system calls) against `wakes_absorbed`
//! (wakes that found the loop awake).
//!
//! It is Unix-only: on Windows the raw reactor would be `WSAPoll`, which is
//! what `Notifier::wait` blocks in; the example there says so and exits.
//!
//! ```text
//! cargo run --example custom_reactor
//! ```

#[cfg(unix)]
#[path = "custom_reactor/unix.rs"]
mod unix;

#[cfg(unix)]
fn main() -> std::io::Result<()> {
    unix::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("custom_reactor is Unix-only: its reactors are poll(2) and epoll(7)");
}
