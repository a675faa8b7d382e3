//! The Mailbox comparison's wakefd contenders built against two wakefd
//! libraries (`old` and `new`, see `.ci/ab/run`) and run interleaved in one
//! process: each round runs both, in alternating order, so that the
//! machine's drift and the order fall on both alike. The per-round ratio
//! new/old is what to read; the absolute rates move between processes (the
//! plain loop's rate is bistable, see the README).

use std::time::Duration;

use side_new::contenders as n;
use side_old::contenders as o;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(20, |s| s.parse().expect("rounds"));
    let msgs: u64 = args
        .next()
        .map_or(300_000, |s| s.parse().expect("messages"));
    let placements = [
        (n::Placement::Unpinned, o::Placement::Unpinned, "unpinned"),
        (
            n::Placement::LoopAlone,
            o::Placement::LoopAlone,
            "loop-alone",
        ),
    ];
    for producers in [1, 4] {
        for (pn, po, name) in placements {
            // `AB_ONLY=4->1/loop-alone` (any part of it) picks cases.
            if let Ok(only) = std::env::var("AB_ONLY") {
                if !format!("{producers}->1/{name}").contains(&only) {
                    continue;
                }
            }
            if !pn.available() {
                println!("{producers}->1 {name}: not available here");
                continue;
            }
            let t = Duration::from_secs(5);
            let rate = |took: Duration| msgs as f64 / took.as_secs_f64() / 1e6;
            // One contender of one side: its rate and the loop's wakes.
            macro_rules! runner {
                ($label:literal, $side:ident, $contender:ident, $placement:expr) => {
                    (
                        $label,
                        Box::new(move || {
                            let r = $side::Contender::$contender
                                .run(producers, msgs, t, $placement)
                                .expect($label);
                            (rate(r.took), r.loop_wakes)
                        }) as Box<dyn Fn() -> (f64, u64)>,
                    )
                };
            }
            let runners = [
                runner!("old, own lanes", o, Wakefd, po),
                runner!("new, own lanes", n, Wakefd, pn),
                runner!("old, common lane", o, WakefdCommonLane, po),
                runner!("new, common lane", n, WakefdCommonLane, pn),
                runner!("old, sleep-aware", o, WakefdSleepAware, po),
                runner!("new, sleep-aware", n, WakefdSleepAware, pn),
            ];
            let mut got = vec![Vec::new(); runners.len()];
            for round in 0..rounds {
                // Old first in even rounds, new first in odd ones.
                let order: [usize; 6] = if round % 2 == 0 {
                    [0, 1, 2, 3, 4, 5]
                } else {
                    [1, 0, 3, 2, 5, 4]
                };
                for k in order {
                    got[k].push(runners[k].1());
                }
            }
            println!("{producers}->1 {name}: {rounds} rounds of {msgs} messages; M msg/s and loop wakes, median [quartiles]");
            for ((label, _), runs) in runners.iter().zip(&got) {
                let rates: Vec<f64> = runs.iter().map(|r| r.0).collect();
                let wakes: Vec<f64> = runs.iter().map(|r| r.1 as f64).collect();
                let (m, lo, hi) = quartiles(&rates);
                println!(
                    "  {label:17} {m:6.1} [{lo:5.1} {hi:5.1}]   wakes {:.0}",
                    quartiles(&wakes).0
                );
            }
            for (new, old, label) in [
                (1, 0, "own lanes"),
                (3, 2, "common lane"),
                (5, 4, "sleep-aware"),
            ] {
                let ratios: Vec<f64> = got[new]
                    .iter()
                    .zip(&got[old])
                    .map(|(a, b)| a.0 / b.0)
                    .collect();
                let higher = ratios.iter().filter(|r| **r > 1.0).count();
                let (m, lo, hi) = quartiles(&ratios);
                println!("  new/old, {label}: {m:.3} [{lo:.3} {hi:.3}], new higher in {higher}/{rounds} rounds");
            }
        }
    }
}

/// Median, first and third quartile (nearest rank).
fn quartiles(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.25), at(0.75))
}
