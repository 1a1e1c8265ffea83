//! Tables for the operator commands (`flagstone status`, `flagstone tasks …`): aligned columns,
//! cells coloured by their meaning on a terminal, plain text when piped (or with `NO_COLOR`).
//! Rendering is pure ([`Table::render`]); only [`colour_stdout`] looks at the environment.

use std::io::IsTerminal;

/// What a cell means, which decides its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
}

impl Tone {
    fn code(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("32"),
            Tone::Warn => Some("33"),
            Tone::Bad => Some("31;1"),
            Tone::Dim => Some("2"),
        }
    }
}

/// A cell: its text and tone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn new(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::new(text, Tone::Plain)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::new(text, Tone::Plain)
    }
}

/// A table with a header row.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// Whether stdout should get colour: a terminal, and `NO_COLOR` unset.
pub fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` cut to `max` characters (with `…`), on one line.
pub fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Columns padded to their widest cell, two spaces apart; the header dimmed and cells
    /// coloured by tone when `colour`. Trailing spaces are trimmed.
    pub fn render(&self, colour: bool) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self
            .header
            .iter()
            .map(|h| Cell::new(h.clone(), Tone::Dim))
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).cloned().unwrap_or_else(|| Cell::from(""));
                let pad = width - cell.text.chars().count().min(*width);
                match (colour, cell.tone.code()) {
                    (true, Some(code)) => {
                        line.push_str(&format!("\u{1b}[{code}m{}\u{1b}[0m", cell.text))
                    }
                    _ => line.push_str(&cell.text),
                }
                if i + 1 < widths.len() {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["TASK", "STATE", "ERROR"]);
        t.row(vec![
            "7".into(),
            Cell::new("parked", Tone::Bad),
            "corrupt".into(),
        ]);
        t.row(vec![
            "12".into(),
            Cell::new("pending", Tone::Warn),
            "".into(),
        ]);
        t
    }

    #[test]
    fn plain_tables_align_without_escape_codes() {
        assert_eq!(
            sample().render(false),
            "TASK  STATE    ERROR\n\
             7     parked   corrupt\n\
             12    pending\n"
        );
    }

    #[test]
    fn coloured_tables_colour_by_tone_and_keep_alignment() {
        let text = sample().render(true);
        assert!(
            text.contains("\u{1b}[31;1mparked\u{1b}[0m   corrupt"),
            "{text:?}"
        );
        assert!(text.contains("\u{1b}[33mpending\u{1b}[0m"), "{text:?}");
        assert!(text.starts_with("\u{1b}[2mTASK\u{1b}[0m  "), "{text:?}");
    }

    #[test]
    fn truncation_keeps_one_line() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("abcdefghijkl", 5), "abcd…");
    }
}
