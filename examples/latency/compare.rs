//! `--compare OLD.json`: this run against a saved one, both as `json.rs`
//! writes them. Each row's median now over its median then, with both
//! runs' intervals; the ratio's interval is the widest the two allow (now's
//! low end over then's high end, and the other way round), and it is ≈ when
//! the two runs' intervals overlap. Then the order check: the pairs of rows
//! that differ (intervals apart) in both runs, and whether each kept its
//! order.

use std::fmt::Write as _;

use serde_json::Value;

use crate::stats::Spread;
use crate::table::Table;

/// One comparable row: its key, label and a spread per metric.
struct Row {
    key: String,
    /// Rows are ordered against the rows of their group only (the Mailbox
    /// rows of one placement and producer count).
    group: String,
    label: String,
    metrics: Vec<Option<Spread>>,
}

fn latency_rows(run: &Value, metrics: &[&str]) -> Vec<Row> {
    let rows = run["latency"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|r| Row {
            key: r["id"].as_str().unwrap_or("?").to_owned(),
            group: String::new(),
            label: r["label"].as_str().unwrap_or("?").to_owned(),
            metrics: metrics
                .iter()
                .map(|m| Spread::from_json(&r["over_rounds"][*m]).map(|s| s.map(|ns| ns / 1e3)))
                .collect(),
        })
        .collect()
}

fn mailbox_rows(run: &Value) -> Vec<Row> {
    let rows = run["mailbox"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|r| {
            let (placement, producers) = (
                r["placement"].as_str().unwrap_or("unpinned"),
                r["producers"].as_u64().unwrap_or(0),
            );
            Row {
                key: format!(
                    "{}/{placement}/{producers}",
                    r["id"].as_str().unwrap_or("?")
                ),
                group: format!("{placement}/{producers}"),
                label: format!(
                    "{} {producers}->1 {placement}",
                    r["label"].as_str().unwrap_or("?")
                ),
                metrics: vec![Spread::from_json(&r["msgs_per_sec"]).map(|s| s.map(|x| x / 1e6))],
            }
        })
        .collect()
}

/// "now (lo–hi)", "then (lo–hi)", "ratio (lo–hi)" with ≈ on overlap.
fn cells(now: Option<Spread>, then: Option<Spread>, prec: usize) -> [String; 3] {
    match (now, then) {
        (Some(n), Some(t)) => {
            let ratio = Spread {
                median: n.median / t.median,
                lo: n.lo / t.hi,
                hi: n.hi / t.lo,
            };
            let mark = if n.overlaps(&t) { "≈" } else { "" };
            [
                n.show(prec),
                t.show(prec),
                format!("{mark}{}", ratio.show(3)),
            ]
        }
        (n, t) => [
            n.map_or("-".into(), |n| n.show(prec)),
            t.map_or("-".into(), |t| t.show(prec)),
            "-".into(),
        ],
    }
}

/// The ordered pairs check for one metric over rows present in both runs:
/// (pairs apart in both runs, pairs that kept their order, the flips).
fn order_check(now: &[Row], then: &[Row], m: usize) -> (usize, usize, Vec<String>) {
    let both: Vec<(&Row, &Row)> = now
        .iter()
        .filter_map(|n| then.iter().find(|t| t.key == n.key).map(|t| (n, t)))
        .collect();
    let order = |a: &Spread, b: &Spread| {
        if a.hi < b.lo {
            Some(std::cmp::Ordering::Less)
        } else if b.hi < a.lo {
            Some(std::cmp::Ordering::Greater)
        } else {
            None
        }
    };
    let (mut apart, mut kept, mut flips) = (0, 0, Vec::new());
    for i in 0..both.len() {
        for j in i + 1..both.len() {
            let (a, b) = (both[i], both[j]);
            if a.0.group != b.0.group {
                continue;
            }
            let get = |r: &Row| r.metrics[m];
            let (Some(an), Some(bn), Some(at), Some(bt)) = (get(a.0), get(b.0), get(a.1), get(b.1))
            else {
                continue;
            };
            if let (Some(o_now), Some(o_then)) = (order(&an, &bn), order(&at, &bt)) {
                apart += 1;
                if o_now == o_then {
                    kept += 1;
                } else {
                    flips.push(format!("{} vs {}", a.0.label, b.0.label));
                }
            }
        }
    }
    (apart, kept, flips)
}

fn section(out: &mut String, title: &str, now: &[Row], then: &[Row], names: &[&str], prec: usize) {
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out);
    let mut header = vec!["row".to_owned()];
    for n in names {
        header.extend([format!("{n} now"), format!("{n} then"), "now/then".into()]);
    }
    let mut t = Table::new(header);
    for n in now {
        let then_row = then.iter().find(|t| t.key == n.key);
        let mut row = vec![n.label.clone()];
        for m in 0..names.len() {
            row.extend(cells(
                n.metrics[m],
                then_row.and_then(|t| t.metrics[m]),
                prec,
            ));
        }
        t.row(row);
    }
    *out += &t.render();
    for (m, name) in names.iter().enumerate() {
        let (apart, kept, flips) = order_check(now, then, m);
        let _ = writeln!(
            out,
            "{name}: {apart} pairs of rows differ (intervals apart) in both runs; {kept} kept \
             their order{}",
            if flips.is_empty() {
                String::new()
            } else {
                format!("; flipped: {}", flips.join("; "))
            }
        );
    }
}

/// The comparison of `now` with `then` (both `--json` documents).
pub fn compare(now: &Value, then: &Value, then_name: &str) -> String {
    let mut out = String::new();
    let ctx = &then["context"];
    let _ = writeln!(
        out,
        "compared with {then_name}: {} on {} ({} CPUs), wakefd {} {}, {}",
        ctx["date"].as_str().unwrap_or("date unknown"),
        ctx["cpu_model"].as_str().unwrap_or("?"),
        ctx["cpus"].as_u64().unwrap_or(0),
        ctx["wakefd_version"].as_str().unwrap_or("?"),
        ctx["git_commit"].as_str().unwrap_or("(no commit)"),
        then["intervals"]["what"]
            .as_str()
            .unwrap_or("no intervals in that file: not comparable"),
    );
    let _ = writeln!(
        out,
        "now/then: median over median; its interval from the two runs' intervals; ≈: the two \
         runs' intervals overlap"
    );
    let _ = writeln!(out);
    let names = ["p50", "p99"];
    let keys = ["p50_ns", "p99_ns"];
    section(
        &mut out,
        "round-trip latency, µs",
        &latency_rows(now, &keys),
        &latency_rows(then, &keys),
        &names,
        2,
    );
    let (mn, mt) = (mailbox_rows(now), mailbox_rows(then));
    if !mn.is_empty() {
        let _ = writeln!(out);
        section(
            &mut out,
            "Mailbox throughput, M msg/s",
            &mn,
            &mt,
            &["rate"],
            1,
        );
    }
    out
}
