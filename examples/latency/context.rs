//! What a reader needs to judge a run: when and with what it was built and
//! run, on which machine, with how much else running, and the warnings that
//! follow from those (more busy threads than CPUs, a spin with no second
//! CPU, other load).
//!
//! The rustc version is `rustc -V` at run time (examples have no build
//! script to capture it at build time), so it is the compiler on the PATH,
//! which is the one that built the tool when run through `cargo run`. The
//! commit is `git rev-parse --short HEAD` in the crate's directory at run
//! time, `-dirty` when tracked files differ from it; absent outside a git
//! checkout.

use std::process::Command;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

/// The run's context, taken at its start ([`Context::start`]) and end
/// ([`Context::finish`]).
pub struct Context {
    /// UTC, RFC 3339, at the start.
    pub date: String,
    pub rustc: Option<String>,
    pub wakefd_version: &'static str,
    pub git_commit: Option<String>,
    /// `uname` system name and release.
    pub os: String,
    pub cpu_model: String,
    /// CPUs online.
    pub cpus_online: usize,
    /// CPUs this process may run on (`available_parallelism`).
    pub cpus: usize,
    /// 1, 5 and 15 minute load averages, before and after the run.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    /// CPUs kept busy on average by everything but this process during the
    /// run (Linux: `/proc/stat` less this process's own CPU time).
    pub others_busy: Option<f64>,
    pub secs: f64,
    started: Instant,
    cpu_before: Option<CpuTimes>,
}

impl Context {
    pub fn start() -> Context {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Context {
            date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            rustc: command("rustc", &["-V"]),
            wakefd_version: env!("CARGO_PKG_VERSION"),
            git_commit: git_commit(),
            os: uname(),
            cpu_model: cpu_model(),
            cpus_online: cpus_online().unwrap_or(cpus),
            cpus,
            load_before: load_average(),
            load_after: None,
            others_busy: None,
            secs: 0.0,
            started: Instant::now(),
            cpu_before: CpuTimes::now(),
        }
    }

    /// Takes the end-of-run readings.
    pub fn finish(&mut self) {
        self.secs = self.started.elapsed().as_secs_f64();
        self.load_after = load_average();
        self.others_busy = self
            .cpu_before
            .zip(CpuTimes::now())
            .map(|(a, b)| b.others_since(&a, self.secs));
    }

    /// The header's lines.
    pub fn header(&self) -> Vec<String> {
        let load = |l: Option<[f64; 3]>| {
            l.map_or("n/a".into(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
        };
        vec![
            format!(
                "date {} · wakefd {}{} · {}",
                self.date,
                self.wakefd_version,
                self.git_commit
                    .as_ref()
                    .map_or(String::new(), |c| format!(" ({c})")),
                self.rustc
                    .as_ref()
                    .map_or("rustc unknown".into(), |r| format!("{r} (rustc -V at run time)")),
            ),
            format!(
                "machine: {} · {} · {} CPUs usable ({} online)",
                self.os, self.cpu_model, self.cpus, self.cpus_online
            ),
            format!(
                "load average (1, 5, 15 min): {} before, {} after (after counts this run's own threads); \
                 other processes kept {} CPUs busy during the run; {:.0} s",
                load(self.load_before),
                load(self.load_after),
                self.others_busy
                    .map_or("n/a".into(), |b| format!("{b:.2}")),
                self.secs
            ),
        ]
    }

    pub fn json(&self) -> Value {
        json!({
            "date": self.date,
            "rustc": self.rustc,
            "rustc_from": "rustc -V at run time",
            "wakefd_version": self.wakefd_version,
            "git_commit": self.git_commit,
            "os": self.os,
            "cpu_model": self.cpu_model,
            "cpus": self.cpus,
            "cpus_online": self.cpus_online,
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "others_busy_cpus": self.others_busy,
            "secs": self.secs,
        })
    }
}

/// Why a run may not mean much, one sentence each.
pub fn warnings(ctx: &Context, max_load: f64, busy: &[(String, usize)], spin: bool) -> Vec<String> {
    let mut w = Vec::new();
    if let Some([l1, ..]) = ctx.load_before {
        if l1 > max_load {
            w.push(format!(
                "load average {l1:.2} before the run (over --max-load {max_load}): other work was \
                 running, or a run had just ended; timings may be slow and spread"
            ));
        }
    }
    if let Some(b) = ctx.others_busy {
        if b > max_load {
            w.push(format!(
                "other processes kept {b:.2} CPUs busy on average during the run (over \
                 --max-load {max_load}): they took CPU time from the measured threads"
            ));
        }
    }
    for (phase, threads) in busy {
        if *threads > ctx.cpus {
            w.push(format!(
                "{phase}: {threads} busy threads on {} CPUs: the scheduler's sharing of the \
                 CPUs is part of what it measures",
                ctx.cpus
            ));
        }
    }
    if spin && ctx.cpus < 2 {
        w.push(
            "spin rows: one CPU, so there is no second CPU to spin on: `set_spin` spins \
             nothing when available_parallelism() is 1, so these rows measure the sleep-aware \
             loop without a spin"
                .into(),
        );
    }
    w
}

/// The first line `program args` prints, if it runs and succeeds.
fn command(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_owned();
    (out.status.success() && !line.is_empty()).then_some(line)
}

fn git_commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = command("git", &["-C", dir, "rev-parse", "--short", "HEAD"])?;
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    Some(if dirty { head + "-dirty" } else { head })
}

#[cfg(unix)]
fn cpus_online() -> Option<usize> {
    // SAFETY: sysconf takes a constant name and touches no memory.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).ok()
}

#[cfg(not(unix))]
fn cpus_online() -> Option<usize> {
    None
}

#[cfg(not(unix))]
fn uname() -> String {
    std::env::consts::OS.into()
}

#[cfg(unix)]
fn uname() -> String {
    // SAFETY: utsname is plain arrays of bytes; all zeroes is valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a live utsname for uname to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "CPU model unknown".into())
}

#[cfg(not(unix))]
fn load_average() -> Option<[f64; 3]> {
    None
}

#[cfg(unix)]
fn load_average() -> Option<[f64; 3]> {
    let mut l = [0.0f64; 3];
    // SAFETY: `l` has room for the 3 samples asked for.
    (unsafe { libc::getloadavg(l.as_mut_ptr(), 3) } == 3).then_some(l)
}

/// Busy CPU time of the whole machine and of this process, in clock ticks.
#[derive(Clone, Copy)]
struct CpuTimes {
    machine_busy: u64,
    own: u64,
}

impl CpuTimes {
    /// Linux: `/proc/stat`'s first line (all but idle and iowait) and
    /// `/proc/self/stat`'s utime + stime (the process's threads, exited ones
    /// included). None elsewhere.
    fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4)?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name, which may hold spaces.
        let rest: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15; `rest` starts at field 3.
        let own = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        Some(CpuTimes {
            machine_busy: total - idle,
            own,
        })
    }

    /// CPUs busy on average over `secs` with anything but this process.
    fn others_since(&self, before: &CpuTimes, secs: f64) -> f64 {
        #[cfg(unix)]
        // SAFETY: sysconf takes a constant name and touches no memory.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // `now` reads /proc, so there is no reading to compare elsewhere.
        #[cfg(not(unix))]
        let hz = 100.0;
        let machine = self.machine_busy.saturating_sub(before.machine_busy) as f64;
        let own = self.own.saturating_sub(before.own) as f64;
        ((machine - own) / hz / secs.max(1e-3)).max(0.0)
    }
}
