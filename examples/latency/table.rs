//! A Markdown table whose columns are as wide as their widest cell, so
//! that no value runs past its column: the first column left-aligned, the
//! others right-aligned.

use std::fmt::Write as _;

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; short rows are padded with `-`.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let cell = |row: &[String], c: usize| row.get(c).map_or("-", String::as_str).to_owned();
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                std::iter::once(width(&self.header[c]))
                    .chain(self.rows.iter().map(|r| width(&cell(r, c))))
                    .max()
                    .unwrap_or(1)
                    .max(3)
            })
            .collect();
        let line = |row: &[String]| {
            let mut out = String::from("|");
            for (c, &w) in widths.iter().enumerate() {
                let s = cell(row, c);
                let pad = " ".repeat(w - width(&s));
                if c == 0 {
                    let _ = write!(out, " {s}{pad} |");
                } else {
                    let _ = write!(out, " {pad}{s} |");
                }
            }
            out
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push('|');
        for (c, &w) in widths.iter().enumerate() {
            if c == 0 {
                let _ = write!(out, "{:-<1$}|", "", w + 2);
            } else {
                let _ = write!(out, "{:-<1$}:|", "", w + 1);
            }
        }
        out.push('\n');
        for r in &self.rows {
            out += &line(r);
            out.push('\n');
        }
        out
    }
}
