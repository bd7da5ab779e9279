//! Plain-text tables whose columns are as wide as their widest cell, so a
//! long source name widens its column instead of pushing the rest of its row
//! out of line. Written by hand (a few lines; the output is plain columns,
//! no borders, which the table crates do not make simpler). Widths count
//! characters, which is right for the ASCII names and numbers shown here.

/// How a column's cells are padded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

enum Line {
    Cells(Vec<String>),
    /// A line printed as it is, under the row before it (e.g. reasons).
    Note(String),
}

/// A table: a header row, then rows and notes in order.
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    lines: Vec<Line>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            aligns: columns.iter().map(|(_, a)| *a).collect(),
            lines: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.lines.push(Line::Cells(cells));
    }

    /// Adds a line printed as it is.
    pub fn note(&mut self, text: String) {
        self.lines.push(Line::Note(text));
    }

    /// The table, every line ending in `\n`. The last column is not padded
    /// (no trailing spaces).
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for l in &self.lines {
            if let Line::Cells(c) = l {
                for (w, cell) in widths.iter_mut().zip(c) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let fmt_row = |cells: &[String]| -> String {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == n;
                if i > 0 {
                    s.push_str("  ");
                }
                match self.aligns[i] {
                    Align::Right => {
                        s.extend(std::iter::repeat_n(' ', pad));
                        s.push_str(cell);
                    }
                    Align::Left => {
                        s.push_str(cell);
                        if !last {
                            s.extend(std::iter::repeat_n(' ', pad));
                        }
                    }
                }
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
            s
        };
        let mut out = fmt_row(&self.headers);
        for l in &self.lines {
            match l {
                Line::Cells(c) => out += &fmt_row(c),
                Line::Note(t) => {
                    out += t;
                    out.push('\n');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_the_widest_cell() {
        let mut t = Table::new(&[
            ("source", Align::Left),
            ("size", Align::Right),
            ("note", Align::Left),
        ]);
        t.row(vec!["a".into(), "1 B".into(), "x".into()]);
        t.row(vec![
            "a-very-long-source-name-indeed".into(),
            "10.0 KiB".into(),
            "".into(),
        ]);
        t.note("    - a reason".into());
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "source                              size  note");
        assert_eq!(lines[1], "a                                    1 B  x");
        assert_eq!(lines[2], "a-very-long-source-name-indeed  10.0 KiB");
        assert_eq!(lines[3], "    - a reason");
        // Every row's second column ends at the same place.
        assert_eq!(
            lines[0].find("size").unwrap() + 4,
            lines[1].find("1 B").unwrap() + 3
        );
    }
}
