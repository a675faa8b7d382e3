//! Its own test binary: it sets `SIGPIPE` back to its default action (kill
//! the process), which Rust's runtime normally ignores, so a wake that raised
//! the signal would end this process and fail the test.
#![cfg(unix)] // SIGPIPE

mod util;

use std::io;
use std::os::fd::AsRawFd;

use wakefd::{Backend, Notifier};

fn restore_default_sigpipe() {
    // SAFETY: sets the disposition of one signal to its default; no handler.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(prev, libc::SIG_ERR);
}

#[test]
fn no_sigpipe_after_the_notifier_is_gone_or_its_socket_is_shut() {
    restore_default_sigpipe();

    // Every backend: notify after the Notifier is dropped is an error, and
    // the process lives.
    for_each_backend!(|backend| {
        let notifier = Notifier::with_backend(backend).unwrap();
        let waker = notifier.waker();
        drop(notifier);
        for _ in 0..3 {
            assert_eq!(
                waker.notify().unwrap_err().kind(),
                io::ErrorKind::BrokenPipe
            );
        }
    });

    // Socket backends: shut the read end down behind the crate's back, so a
    // send really meets EPIPE. MSG_NOSIGNAL (SO_NOSIGPIPE on Apple
    // platforms) turns it into an error, not a signal.
    for backend in [Backend::UnixSocketPair, Backend::TcpLoopback] {
        let notifier = Notifier::with_backend(backend).unwrap();
        // SAFETY: shuts down the notifier's own open socket; it stays open.
        let ret = unsafe { libc::shutdown(notifier.as_raw_fd(), libc::SHUT_RDWR) };
        assert_eq!(ret, 0, "shutdown: {}", io::Error::last_os_error());
        let waker = notifier.waker();
        // A TCP peer may take one send (it answers with a reset), so keep
        // sending (draining between, or the wakes would coalesce) until the
        // send fails. The failures must be errors, never the signal.
        let mut errors = 0;
        for _ in 0..200 {
            match waker.notify() {
                Ok(()) => {
                    let _ = notifier.drain();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(err) => {
                    assert!(
                        matches!(
                            err.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ),
                        "{backend}: {err:?}"
                    );
                    errors += 1;
                    if errors == 3 {
                        break;
                    }
                }
            }
        }
        assert_eq!(errors, 3, "{backend}: the send never failed");
    }
}
