//! The echo server out of file descriptors: it sheds the connections it
//! cannot take instead of crashing or spinning, and serves again once fds
//! are free.
//!
//! This lowers `RLIMIT_NOFILE` for the whole process, so it is its own test
//! binary with one test function: nothing else runs beside it.
#![cfg(unix)] // lowers RLIMIT_NOFILE

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use util::NofileLimit;

#[path = "../examples/common/echo/mod.rs"]
mod echo;
mod util;

const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections opened while the process is out of fds.
const EXCESS: usize = 40;
/// Connections served before that.
const HOLDERS: usize = 4;

/// User plus system CPU time of the whole process so far.
fn process_cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    conn
}

/// One line there and back, checked.
fn round_trip(conn: &TcpStream, text: &str) {
    (&*conn)
        .write_all(format!("{text}\n").as_bytes())
        .expect("write a line");
    let mut reply = String::new();
    BufReader::new(conn)
        .read_line(&mut reply)
        .expect("read the reply");
    assert_eq!(reply, format!("{}\n", text.to_uppercase()));
}

#[test]
fn out_of_fds_sheds_connections_without_spinning_and_recovers() {
    let server = echo::Running::start(
        echo::bind("127.0.0.1:0".parse().unwrap()).expect("bind"),
        echo::Config {
            workers: 2,
            ..echo::Config::default()
        },
    )
    .expect("start the server");
    let addr = server.addr();

    // Served connections. Their round trips also show the server has opened
    // everything it needs (poll, mailbox, reserve fd) before fds run out.
    let holders: Vec<TcpStream> = (0..HOLDERS).map(|_| connect(addr)).collect();
    for (i, conn) in holders.iter().enumerate() {
        round_trip(conn, &format!("holder {i}"));
    }

    // The clients' sockets for later, made while fds can still be opened:
    // connect(2) on them takes no new fd.
    let excess: Vec<Socket> = (0..EXCESS)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap())
        .collect();

    // From here on the process cannot open any fd: every number below the
    // limit is in use.
    let limit = NofileLimit::leaving_free(0);
    let err = File::open("/dev/null").expect_err("the process is out of fds");
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");

    // Connect the excess clients, spread over about a second, while the
    // server cannot accept them; measure the CPU the process burns meanwhile.
    let (cpu0, wall0) = (process_cpu_time(), Instant::now());
    for socket in &excess {
        socket
            .connect_timeout(&addr.into(), IO_TIMEOUT)
            .expect("connect completes into the backlog");
        thread::sleep(Duration::from_millis(25));
    }
    // Each is shed: closed by the server, so the client reads EOF (or a reset).
    let deadline = Instant::now() + IO_TIMEOUT;
    for (i, socket) in excess.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut byte = [0u8; 1];
        match (&mut &*socket).read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("client {i} got data from a server out of fds"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("client {i} was neither shed nor served: {e}"),
        }
    }
    thread::sleep(Duration::from_millis(200));
    let (cpu, wall) = (process_cpu_time() - cpu0, wall0.elapsed());
    eprintln!(
        "out of fds: {cpu:?} of CPU in {wall:?}; {:?}",
        server.stats()
    );
    assert!(
        cpu < wall / 2,
        "the process burned {cpu:?} of CPU in {wall:?} while out of fds"
    );
    let stats = server.stats();
    assert_eq!(stats.shed, EXCESS as u64, "{stats:?}");
    assert_eq!(stats.accepted, HOLDERS as u64, "{stats:?}");

    // The connections it had are unaffected.
    for (i, conn) in holders.iter().enumerate() {
        round_trip(conn, &format!("holder {i} again"));
    }

    // One client leaves: its fd and the server's are free again, enough for
    // one new client and its accepted connection, with the limit still low.
    let mut holders = holders;
    drop(holders.pop());
    let deadline = Instant::now() + IO_TIMEOUT;
    while server.stats().closed < 1 {
        assert!(Instant::now() < deadline, "the server did not close");
        thread::sleep(Duration::from_millis(10));
    }
    let newcomer = connect(addr);
    round_trip(&newcomer, "served again");
    assert_eq!(server.stats().accepted, HOLDERS as u64 + 1);

    // With the limit back, everyone is served.
    drop(limit);
    drop(excess);
    let more: Vec<TcpStream> = (0..10).map(|_| connect(addr)).collect();
    for (i, conn) in more.iter().enumerate() {
        round_trip(conn, &format!("after {i}"));
    }
    let stats = server.stop().expect("server result");
    assert_eq!(stats.shed, EXCESS as u64, "{stats:?}");
    assert_eq!(stats.accepted, HOLDERS as u64 + 1 + 10, "{stats:?}");
}
