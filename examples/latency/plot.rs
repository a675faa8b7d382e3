//! The plot (`--plot`): each mechanism's round-trip latency against its
//! percentile on a log "nines" axis (0 = the minimum, 1 = p90, 2 = p99, 3 =
//! p99.9, 4 = p99.99), as HdrHistogram's percentile-distribution plot
//! draws it, so that the tail gets as much room as the median. Latency is
//! on a log axis too. wakefd's rows are solid lines in the Okabe–Ito
//! colours (safe for the common colour-vision deficiencies; its yellow is
//! left out, being unreadable on white), the baselines black with a dash
//! pattern each, and every curve carries a marker of its own shape at p50,
//! p90, p99, p99.9 and p99.99, so that curves that run together stay
//! apart where they are read. The legend sits beside the chart, never over
//! a curve, and the caption names the machine and the date.

use std::error::Error;
use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::cli::Args;
use crate::context::Context;
use crate::json::percentile_distribution;
use crate::mech::Mech;
use crate::pingpong::LatencyResult;

/// Okabe & Ito's palette without its black (the baselines') and yellow.
const OKABE_ITO: [RGBColor; 6] = [
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
];

/// Dash (length, gap) in pixels; `None` for a solid line.
type Dash = Option<(u32, u32)>;

/// The baselines' dashes, in report order; wakefd rows past the palette's
/// six reuse it with these too.
const DASHES: [(u32, u32); 3] = [(9, 5), (2, 4), (16, 4)];

/// The colour and dash of the `i`-th wakefd row or `j`-th baseline.
fn style(mech: Mech, wakefd_i: usize, baseline_j: usize) -> (RGBColor, Dash) {
    match mech {
        Mech::Baseline(_) => (BLACK, Some(DASHES[baseline_j % DASHES.len()])),
        _ => {
            let lap = wakefd_i / OKABE_ITO.len();
            let dash = lap.checked_sub(1).map(|l| DASHES[l % DASHES.len()]);
            (OKABE_ITO[wakefd_i % OKABE_ITO.len()], dash)
        }
    }
}

/// A curve's marker: circle, triangle or cross, filled or not.
#[derive(Clone, Copy)]
struct Marker {
    shape: usize,
    filled: bool,
}

impl Marker {
    fn of(i: usize) -> Marker {
        Marker {
            shape: i % 3,
            filled: (i / 3) % 2 == 0,
        }
    }

    fn draw<DB: DrawingBackend, CT: CoordTranslate>(
        self,
        area: &DrawingArea<DB, CT>,
        at: CT::From,
        color: RGBColor,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        CT::From: Clone + 'static,
    {
        let style = if self.filled {
            color.filled()
        } else {
            color.stroke_width(2)
        };
        match self.shape {
            0 => area.draw(&Circle::new(at, 4, style)),
            1 => area.draw(&TriangleMarker::new(at, 5, style)),
            _ => area.draw(&Cross::new(at, 4, color.stroke_width(2))),
        }
    }
}

/// Where the markers go: p50, p90, p99, p99.9, p99.99.
const MARKED: [f64; 5] = [std::f64::consts::LOG10_2, 1.0, 2.0, 3.0, 4.0];

fn nines_label(x: f64) -> String {
    match x.round() as i32 {
        0 => "min".into(),
        1 => "p90".into(),
        2 => "p99".into(),
        3 => "p99.9".into(),
        4 => "p99.99".into(),
        n => format!("{n} nines"),
    }
}

pub fn plot(
    path: &Path,
    results: &[LatencyResult],
    args: &Args,
    ctx: &Context,
    warnings: usize,
) -> Result<(), Box<dyn Error>> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let pts = percentile_distribution(&r.all)
                .into_iter()
                .map(|(nines, _, ns)| (nines, ns.max(1) as f64 / 1000.0))
                .collect();
            (r.mech.label(), pts)
        })
        .collect();
    let ys = curves.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let lo = ys.clone().fold(f64::INFINITY, f64::min).max(0.01);
    let hi = ys.fold(0.0, f64::max).max(lo * 2.0);
    let right = curves
        .iter()
        .flat_map(|(_, p)| p.last().map(|&(x, _)| x))
        .fold(1.0, f64::max);

    let root = SVGBackend::new(path, (1100, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(62);
    top.draw(&Text::new(
        format!(
            "wakefd: ping-pong round-trip latency by percentile ({} rounds x {} round trips, \
             all rounds pooled)",
            args.rounds, args.iters
        ),
        (15, 8),
        ("sans-serif", 19).into_font(),
    ))?;
    let pin = match args.pin_cpus() {
        Some((a, b)) => format!("threads pinned to CPUs {a} and {b}"),
        None => "threads not pinned".into(),
    };
    let warned = if warnings > 0 {
        format!(" · {warnings} warning(s): see the table or JSON")
    } else {
        String::new()
    };
    top.draw(&Text::new(
        format!(
            "{} · {} CPUs · {} · {} · {} · wakefd {}{}{}",
            ctx.cpu_model,
            ctx.cpus,
            ctx.os,
            pin,
            ctx.date,
            ctx.wakefd_version,
            ctx.git_commit
                .as_ref()
                .map_or(String::new(), |c| format!(" ({c})")),
            warned
        ),
        (15, 36),
        ("sans-serif", 13)
            .into_font()
            .color(&RGBColor(0x33, 0x33, 0x33)),
    ))?;
    let (chart_area, legend_area) = body.split_horizontally(810);

    let mut chart = ChartBuilder::on(&chart_area)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(62)
        .build_cartesian_2d(0.0f64..right, (lo * 0.8..hi * 1.25).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile (log \"nines\" axis: 1 - percentile in powers of ten)")
        .y_desc("round-trip latency, µs (log scale)")
        .x_labels(right.round() as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .y_label_formatter(&|y| {
            if *y >= 10.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
        .draw()?;
    // p50 sits between the minimum and p90: its own guide line.
    let p50 = 2f64.log10();
    let grey = RGBColor(0x99, 0x99, 0x99);
    chart.draw_series(DashedLineSeries::new(
        [(p50, lo * 0.8), (p50, hi * 1.25)],
        4,
        4,
        grey.stroke_width(1),
    ))?;
    chart.draw_series(std::iter::once(Text::new(
        "p50",
        (p50 + 0.03, hi * 1.1),
        ("sans-serif", 12).into_font().color(&grey),
    )))?;

    let mut legend = Vec::new();
    let (mut wi, mut bj) = (0, 0);
    for (i, (r, (label, pts))) in results.iter().zip(curves).enumerate() {
        let (color, dash) = style(r.mech, wi, bj);
        match r.mech {
            Mech::Baseline(_) => bj += 1,
            _ => wi += 1,
        }
        let marker = Marker::of(i);
        let plotting = chart.plotting_area();
        for x in MARKED {
            let nearest = pts
                .iter()
                .min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs()));
            if let Some(&(px, py)) = nearest.filter(|p| (p.0 - x).abs() < 0.03) {
                marker.draw(plotting, (px, py), color)?;
            }
        }
        let line = color.stroke_width(2);
        match dash {
            None => {
                chart.draw_series(LineSeries::new(pts, line))?;
            }
            Some((len, gap)) => {
                chart.draw_series(DashedLineSeries::new(pts, len, gap, line))?;
            }
        }
        legend.push((label, color, dash, marker));
    }

    legend_area.draw(&Text::new(
        "mechanism",
        (10, 16),
        ("sans-serif", 14).into_font(),
    ))?;
    for (i, (label, color, dash, marker)) in legend.iter().enumerate() {
        let y = 44 + 24 * i as i32;
        let line = color.stroke_width(2);
        let seg = [(10, y), (50, y)];
        match dash {
            None => legend_area.draw(&PathElement::new(seg, line))?,
            Some((len, gap)) => legend_area.draw(&DashedPathElement::new(seg, *len, *gap, line))?,
        }
        marker.draw(&legend_area, (30, y), *color)?;
        legend_area.draw(&Text::new(
            label.clone(),
            (58, y - 7),
            ("sans-serif", 13).into_font(),
        ))?;
    }
    let note_y = 44 + 24 * legend.len() as i32 + 10;
    for (k, line) in [
        "solid: wakefd; black dashed: baselines",
        "lower is faster; right is the tail",
    ]
    .iter()
    .enumerate()
    {
        legend_area.draw(&Text::new(
            *line,
            (10, note_y + 18 * k as i32),
            ("sans-serif", 12)
                .into_font()
                .color(&RGBColor(0x55, 0x55, 0x55)),
        ))?;
    }
    root.present()?;
    Ok(())
}
