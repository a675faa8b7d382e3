//! Progress on stderr: a bar with the time left on a terminal; when stderr
//! is not a terminal (piped, or in CI), one line per phase of each round,
//! with the time left.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    lines: bool,
    start: Instant,
    phase_start: Instant,
}

impl Progress {
    /// `steps` steps in all (a step being one measurement of one
    /// mechanism).
    pub fn new(steps: u64) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed:>4} [{bar:30}] {pos}/{len} ETA {eta:>4} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_length(steps);
        Progress {
            bar,
            lines: !tty,
            start: Instant::now(),
            phase_start: Instant::now(),
        }
    }

    /// What runs now (on the bar).
    pub fn step(&self, what: String) {
        self.bar.set_message(what);
    }

    /// One step done.
    pub fn done(&self) {
        self.bar.inc(1);
    }

    /// The end of a phase: on a pipe, its line.
    pub fn phase(&mut self, round: u32, rounds: u32, phase: &str) {
        if self.lines {
            let left = self.time_left();
            eprintln!(
                "round {round}/{rounds} {phase}: {:.1} s; elapsed {}, ETA {}",
                self.phase_start.elapsed().as_secs_f64(),
                mm_ss(self.start.elapsed()),
                mm_ss(left)
            );
        }
        self.phase_start = Instant::now();
    }

    /// The time left at the rate so far.
    fn time_left(&self) -> Duration {
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        if pos == 0 {
            return Duration::ZERO;
        }
        self.start
            .elapsed()
            .mul_f64(len.saturating_sub(pos) as f64 / pos as f64)
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
        if self.lines {
            eprintln!("measured in {}", mm_ss(self.start.elapsed()));
        }
    }
}

fn mm_ss(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}
