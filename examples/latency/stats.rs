//! The spread of a result over the interleaved rounds: the median of the
//! rounds' values and a distribution-free confidence interval for it, from
//! the order statistics (the sign-test interval: with n rounds, the j-th
//! smallest and the j-th largest value bracket the true median with
//! probability 1 - 2 P(Binomial(n, 1/2) < j)). Nothing is assumed of the
//! distribution but that the rounds are independent draws of it, which the
//! interleaving is for.

use serde_json::{json, Value};

/// The coverage an interval aims for.
pub const COVERAGE: f64 = 0.95;

pub fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty());
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The rank j (1-based) of the interval's ends for n rounds: the largest j
/// whose interval [x(j), x(n+1-j)] covers the median with at least
/// [`COVERAGE`], and that coverage. Below 6 rounds no interval reaches 95 %:
/// the min–max range (j = 1) then, with the coverage it has.
pub fn interval_rank(n: usize) -> (usize, f64) {
    let coverage = |j: usize| 1.0 - 2.0 * binomial_half_cdf(n, j - 1);
    let mut j = 1;
    while j < n.div_ceil(2) && coverage(j + 1) >= COVERAGE {
        j += 1;
    }
    (j, coverage(j))
}

/// P(Binomial(n, 1/2) <= k), summed in log space so that a large n does
/// not underflow 2^-n.
fn binomial_half_cdf(n: usize, k: usize) -> f64 {
    let ln2 = std::f64::consts::LN_2;
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut sum = 0.0;
    for i in 0..=k.min(n) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (ln_choose - n as f64 * ln2).exp();
    }
    sum.min(1.0)
}

/// A median over rounds and its interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Spread {
    /// The median of `xs` and its interval (see the module doc).
    pub fn of(xs: &[f64]) -> Spread {
        assert!(!xs.is_empty());
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (j, _) = interval_rank(n);
        Spread {
            median: median(sorted.clone()),
            lo: sorted[j - 1],
            hi: sorted[n - j],
        }
    }

    /// Whether the two intervals share a point: a difference between the
    /// two medians that these rounds do not establish.
    pub fn overlaps(&self, other: &Spread) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// For a ratio: whether its interval holds 1 (no established
    /// difference).
    pub fn holds_one(&self) -> bool {
        self.lo <= 1.0 && 1.0 <= self.hi
    }

    /// `f` applied to all three (a change of unit).
    pub fn map(self, f: impl Fn(f64) -> f64) -> Spread {
        Spread {
            median: f(self.median),
            lo: f(self.lo),
            hi: f(self.hi),
        }
    }

    /// `median (lo–hi)` with `prec` decimals.
    pub fn show(&self, prec: usize) -> String {
        format!(
            "{:.prec$} ({:.prec$}–{:.prec$})",
            self.median, self.lo, self.hi
        )
    }

    /// A ratio: as [`show`](Self::show), marked `≈` when its interval holds
    /// 1.
    pub fn show_ratio(&self, prec: usize) -> String {
        let mark = if self.holds_one() { "≈" } else { "" };
        format!("{mark}{}", self.show(prec))
    }

    pub fn json(&self) -> Value {
        json!({ "median": self.median, "lo": self.lo, "hi": self.hi })
    }

    /// A ratio's JSON: the spread and whether it establishes a difference
    /// (`"≈"` when its interval holds 1, else `"<"` or `">"`).
    pub fn ratio_json(&self) -> Value {
        json!({
            "median": self.median, "lo": self.lo, "hi": self.hi,
            "differs": !self.holds_one(),
            "verdict": self.verdict(),
        })
    }

    /// `"≈"` when the interval holds 1, `"<"` below, `">"` above.
    pub fn verdict(&self) -> &'static str {
        if self.holds_one() {
            "≈"
        } else if self.hi < 1.0 {
            "<"
        } else {
            ">"
        }
    }

    /// Parses [`json`](Self::json) back (for `--compare`).
    pub fn from_json(v: &Value) -> Option<Spread> {
        Some(Spread {
            median: v.get("median")?.as_f64()?,
            lo: v.get("lo")?.as_f64()?,
            hi: v.get("hi")?.as_f64()?,
        })
    }
}

/// What the header says of the intervals, for `rounds` rounds.
pub fn describe(rounds: usize) -> String {
    let (j, coverage) = interval_rank(rounds);
    if j == 1 {
        format!(
            "median over {rounds} rounds, (min–max) over the rounds (with so few rounds \
             that range holds the median with {:.1} % confidence)",
            coverage * 100.0
        )
    } else {
        format!(
            "median over {rounds} rounds, (lo–hi) its {:.1} % confidence interval \
             (distribution-free: the {j}th smallest and largest of the rounds)",
            coverage * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks() {
        assert_eq!(interval_rank(1).0, 1);
        assert_eq!(interval_rank(5).0, 1);
        // n = 6: [x(1), x(6)] covers with 1 - 2/64 = 96.9 %.
        assert_eq!(interval_rank(6).0, 1);
        assert!(interval_rank(6).1 > 0.96);
        // n = 40: the 14th smallest and largest (96.2 %).
        let (j, c) = interval_rank(40);
        assert_eq!(j, 14);
        assert!(c >= COVERAGE && c < 0.97, "{c}");
    }
}
