//! How the command line shows things: tables that fit the terminal (long cells elided with `…`
//! unless `--wide`), times relative to now (`in 5m`, `3m ago`), sizes and durations.

use chrono::{DateTime, Utc};

/// A table: columns, some of which may be narrowed to fit the terminal.
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

/// A column: its header, whether it is right-aligned, and whether it may be elided.
#[derive(Clone, Copy)]
pub struct Column {
    header: &'static str,
    right: bool,
    elide: bool,
}

impl Column {
    /// A left-aligned column that may be narrowed (ids, triggers, messages).
    pub fn text(header: &'static str) -> Self {
        Self {
            header,
            right: false,
            elide: true,
        }
    }

    /// A left-aligned column kept whole (states, short times).
    pub fn fixed(header: &'static str) -> Self {
        Self {
            header,
            right: false,
            elide: false,
        }
    }

    /// A right-aligned column kept whole (counts, durations).
    pub fn number(header: &'static str) -> Self {
        Self {
            header,
            right: true,
            elide: false,
        }
    }
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: impl IntoIterator<Item = Column>) -> Self {
        Self {
            columns: columns.into_iter().collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: `wide` keeps every cell whole; otherwise the elidable columns give
    /// way until the table fits the terminal (when stdout is one).
    pub fn render(&self, wide: bool) -> String {
        let limit = if wide { None } else { terminal_width() };
        let widths = self.widths(limit);
        let mut out = String::new();
        let headers: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        for cells in std::iter::once(&headers).chain(&self.rows) {
            let line: Vec<String> = self
                .columns
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let cell = elide(cells.get(i).map_or("", String::as_str), *w);
                    let pad = w.saturating_sub(cell.chars().count());
                    if c.right {
                        format!("{}{cell}", " ".repeat(pad))
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints it.
    pub fn print(&self, wide: bool) {
        print!("{}", self.render(wide));
    }

    fn widths(&self, limit: Option<usize>) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|cell| cell.chars().count())
                    .chain(std::iter::once(c.header.len()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let Some(limit) = limit else {
            return widths;
        };
        let gaps = 2 * self.columns.len().saturating_sub(1);
        // Narrow the widest elidable column, one character at a time, until it fits or none
        // can give more (each keeps at least its header, and 8 characters).
        while widths.iter().sum::<usize>() + gaps > limit {
            let widest = self
                .columns
                .iter()
                .zip(&widths)
                .enumerate()
                .filter(|(_, (c, w))| c.elide && **w > c.header.len().max(8))
                .max_by_key(|(_, (_, w))| **w)
                .map(|(i, _)| i);
            match widest {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
        widths
    }
}

/// `text` in at most `width` characters, its end replaced by `…` when cut.
pub fn elide(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// The terminal's width when stdout is a terminal (`COLUMNS` first, as shells set it).
fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    let stdout = std::io::stdout();
    if !std::io::IsTerminal::is_terminal(&stdout) {
        return None;
    }
    rustix::termios::tcgetwinsize(&stdout)
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|n| *n > 0)
}

/// `t` relative to `now`: `in 5m`, `3m ago`, `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs.abs() < 1 {
        return "now".into();
    }
    let span = span(secs.unsigned_abs());
    if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A span of seconds in its largest unit or two: `45s`, `5m`, `2h10m`, `3d`.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 if secs % 3600 / 60 > 0 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// An optional time relative to now, or `-`.
pub fn relative_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| relative(t, Utc::now()))
}

/// A unit enum's name as the API writes it (`active`, `latest`, `wasm`).
pub fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// A byte count for people.
pub fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

/// Nanoseconds for people.
pub fn nanos(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

/// What a plugin requests, each with what meets it or `MISSING`, and grants it does not request.
pub fn print_review(review: &crate::capability::Review) {
    println!("\ncapabilities:");
    if review.requested.is_empty() {
        println!("  requests nothing");
    }
    for r in &review.requested {
        let what = match r.access {
            Some(a) => format!("{} {} ({})", r.kind, r.name, a.as_str()),
            None => format!("{} {}", r.kind, r.name),
        };
        let granted = if r.granted.is_empty() {
            "MISSING".to_owned()
        } else {
            r.granted
                .iter()
                .map(|g| grant_text(&g.spec))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  {what:<40} {granted}");
        println!("  {:<40} {}", "", r.purpose);
    }
    for g in &review.unrequested {
        println!(
            "  granted but not requested: {} (gives nothing)",
            grant_text(&g.spec)
        );
    }
}

/// A grant as the operator reads it; a secret by its reference, never its value.
pub fn grant_text(spec: &crate::capability::GrantSpec) -> String {
    use crate::capability::GrantSpec;
    match spec {
        GrantSpec::Http { destination } => format!("granted {destination}"),
        GrantSpec::Directory { .. } => format!("granted {}", spec.shown().unwrap_or_default()),
        GrantSpec::Config { value, .. } => format!("granted = {value:?}"),
        GrantSpec::Secret { reference, .. } => format!("granted from {reference}"),
        GrantSpec::Fleet { call_plugins: true } => "granted, pings may call plugins".into(),
        GrantSpec::Fleet {
            call_plugins: false,
        } => "granted".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_relative_to_now() {
        let now = Utc::now();
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(relative(at(300), now), "in 5m");
        assert_eq!(relative(at(-180), now), "3m ago");
        assert_eq!(relative(at(0), now), "now");
        assert_eq!(relative(at(-7800), now), "2h10m ago");
        assert_eq!(relative(at(3 * 86_400 + 5), now), "in 3d");
    }

    #[test]
    fn a_table_gives_way_in_its_long_columns_only() {
        let mut t = Table::new([Column::text("ID"), Column::fixed("STATE")]);
        t.row(vec![
            "a-very-long-schedule-identifier-indeed".into(),
            "active".into(),
        ]);
        let widths = t.widths(Some(30));
        assert!(widths.iter().sum::<usize>() + 2 <= 30, "{widths:?}");
        assert_eq!(widths[1], 6);
        let text = t.render(true);
        assert!(text.contains("a-very-long-schedule-identifier-indeed"));
        assert_eq!(elide("abcdefghij", 5), "abcd…");
    }
}
