//! Review: a Mailbox inherited across fork(). Its own binary: it forks.
//!
//! The contract: "In a forked child, an inherited Notifier, Waker or Mailbox
//! never touches the parent's wake: its calls fail with an error that says
//! it belongs to the parent process", and `Mailbox::drain`'s doc: "In a
//! forked child the drain yields nothing and leaves the parent's wake alone".
#![cfg(unix)] // forks

#[cfg(wakefd_fault_injection)]
use std::os::fd::AsRawFd;

use wakefd::Mailbox;

#[cfg(wakefd_fault_injection)]
fn readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

/// Forks; the child runs `child` and exits with its return value; the
/// parent gets that value.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` (no allocation in the cases below)
    // and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = child();
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    libc::WEXITSTATUS(status)
}

#[test]
fn review_forked_mailbox_drain_yields_parents_messages() {
    // 1. The child's drain yields the messages the parent had taken into its
    //    loop-side buffer (a partial drain): they are handled twice.
    let mut mailbox = Mailbox::new().unwrap();
    let sender = mailbox.sender();
    for i in 1..=3u32 {
        sender.send(i).unwrap();
    }
    assert_eq!(mailbox.drain().next(), Some(1)); // 2 and 3 stay in the buffer
    let yielded = in_child(|| mailbox.drain().count() as i32);
    assert_eq!(
        yielded, 0,
        "the child's drain yielded the parent's messages"
    );
}

#[cfg(wakefd_fault_injection)]
#[test]
fn review_forked_mailbox_partial_drain_writes_parent_wake() {
    // 2. A partial drain in the child rings the wake for its leftovers with
    //    no fork check (`notify_self`), writing to the parent's fd. Set up so
    //    that the parent's own ring for leftovers failed (PENDING|FAILED,
    //    nothing in the fd), so the child's ring is a write.
    let mut mailbox2 = Mailbox::new().unwrap();
    let sender2 = mailbox2.sender();
    for i in 1..=3u32 {
        sender2.send(i).unwrap();
    }
    assert_eq!(mailbox2.drain().collect::<Vec<_>>(), [1, 2, 3]);
    for i in 4..=6u32 {
        sender2.send(i).unwrap();
    }
    mailbox2.fail_next_writes(1);
    assert_eq!(mailbox2.drain().next(), Some(4)); // its ring fails
    assert!(!readable(mailbox2.as_raw_fd()), "nothing written yet");
    in_child(|| {
        let mut drain = mailbox2.drain();
        let _ = drain.next();
        drop(drain); // leftovers: rings
        0
    });
    let parent_fd_touched = readable(mailbox2.as_raw_fd());
    assert!(
        !parent_fd_touched,
        "the child wrote a wake into the parent's fd"
    );
}
