//! Drawing `hyperverse top`: a title of two lines (the daemon, the
//! refresh, totals; the sort and filter, or why the daemon is not
//! answering), the particle table, and a footer with the keys. It reads
//! a [`Model`] and draws; it decides nothing, so what it shows can be
//! checked cell by cell against ratatui's `TestBackend`.

use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::model::{Entry, Model, SortKey};

/// Rows above the table (title lines and the column header) and below it
/// (the footer): what PageUp/PageDown leave out of a page.
const CHROME: u16 = 4;

/// How many particle rows fit a terminal `height` rows tall.
pub fn page(height: u16) -> usize {
    usize::from(height.saturating_sub(CHROME))
}

/// Draws the whole view on `frame`. `socket` names the daemon's control
/// socket in the title; `table` keeps the table's scroll offset from one
/// frame to the next (so the list does not jump while the selection
/// moves); `keys` draws the footer (off in a one-shot frame for scripts,
/// where no key can be pressed).
pub fn draw(frame: &mut Frame, model: &Model, socket: &str, table: &mut TableState, keys: bool) {
    let [title, status, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(u16::from(keys)),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(title_line(model, socket)), title);
    frame.render_widget(Paragraph::new(status_line(model)), status);
    draw_table(frame, model, body, table);
    if keys {
        frame.render_widget(Paragraph::new(footer_line(model)), footer);
    }
}

fn title_line(model: &Model, socket: &str) -> Line<'static> {
    let t = model.totals();
    let mut spans = vec![
        Span::styled("hyperverse top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("  {socket}")),
        Span::raw(format!("  every {}", interval(model.interval()))),
        Span::raw(format!("  {}", count(t.particles as u64, "particle"))),
        Span::styled(
            format!("  {:.1} waves/s", t.rate),
            Style::new().fg(Color::Cyan),
        ),
        Span::raw(format!("  {}", count(t.restarts, "restart"))),
    ];
    if let Some(c) = t.crashes {
        spans.push(Span::raw(format!("  {}", count(c, "crash"))));
    }
    if t.unready > 0 {
        spans.push(Span::styled(
            format!("  {} not ready", t.unready),
            Style::new().fg(Color::Yellow),
        ));
    }
    if model.paused() {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            "PAUSED",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    Line::from(spans)
}

fn status_line(model: &Model) -> Line<'static> {
    if let Some(e) = model.error() {
        let stale = if model.sampled() {
            " (rows below: the last sample)"
        } else {
            ""
        };
        return Line::styled(
            format!(
                "daemon unreachable: {e}; retrying every {}{stale}",
                interval(model.interval())
            ),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        );
    }
    if !model.sampled() {
        return Line::raw("waiting for the daemon's first answer");
    }
    let mut text = format!("sort: {}", model.sort().label());
    if model.reversed() {
        text.push_str(" (reversed)");
    }
    if !model.filter().is_empty() {
        let t = model.totals();
        text.push_str(&format!(
            "  filter: {}  ({} of {} shown)",
            model.filter(),
            t.shown,
            t.particles
        ));
    }
    Line::raw(text)
}

fn footer_line(model: &Model) -> Line<'static> {
    let key = Style::new().add_modifier(Modifier::REVERSED);
    if let Some(draft) = model.draft() {
        return Line::from(vec![
            Span::raw(" filter: "),
            Span::styled(format!("{draft}_"), Style::new().fg(Color::Cyan)),
            Span::raw("   "),
            Span::styled("Enter", key),
            Span::raw(" apply  "),
            Span::styled("Esc", key),
            Span::raw(" clear"),
        ]);
    }
    let mut spans = Vec::new();
    for (k, what) in [
        ("q", "quit"),
        ("s", "sort"),
        ("r", "reverse"),
        ("/", "filter"),
        ("p", if model.paused() { "resume" } else { "pause" }),
        ("+/-", "interval"),
        ("Up/Down", "select"),
    ] {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(k, key));
        spans.push(Span::raw(format!(" {what} ")));
    }
    Line::from(spans)
}

/// The column headers, with the sorted one marked by the direction rows
/// run in.
fn header(model: &Model) -> Row<'static> {
    let columns = [
        ("POINT", Some(SortKey::Point), false),
        ("KIND", Some(SortKey::Kind), false),
        ("STATUS", Some(SortKey::Status), false),
        ("WAVES/S", Some(SortKey::Rate), true),
        ("DEPTH", Some(SortKey::Depth), true),
        ("TAKEN", None, true),
        ("RESTARTS", Some(SortKey::Restarts), true),
        ("STAR", None, true),
        ("MACHINE", None, false),
        ("VER", None, true),
    ];
    let cells = columns.map(|(name, key, right)| {
        let mut name = name.to_string();
        if key == Some(model.sort()) {
            let largest_first = matches!(
                model.sort(),
                SortKey::Rate | SortKey::Depth | SortKey::Restarts
            );
            name.push(if largest_first != model.reversed() {
                '▼'
            } else {
                '▲'
            });
        }
        aligned(name, right)
    });
    Row::new(cells).style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

/// POINT takes what is left; KIND fits `wasm:` and a short module name.
const WIDTHS: [Constraint; 10] = [
    Constraint::Min(16),
    Constraint::Length(16),
    Constraint::Length(10),
    Constraint::Length(9),
    Constraint::Length(7),
    Constraint::Length(10),
    Constraint::Length(8),
    Constraint::Length(4),
    Constraint::Length(10),
    Constraint::Length(3),
];

fn draw_table(frame: &mut Frame, model: &Model, area: Rect, state: &mut TableState) {
    let visible = model.visible();
    let rows: Vec<Row> = if visible.is_empty() && model.sampled() {
        let why = if model.filter().is_empty() {
            "(no particles)"
        } else {
            "(no particle matches the filter)"
        };
        vec![Row::new([Cell::from(why)])]
    } else {
        visible
            .iter()
            .map(|e| particle_row(e, model.tree_order()))
            .collect()
    };
    state.select(model.selected_index(&visible));
    let table = Table::new(rows, WIDTHS)
        .header(header(model))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(table, area, state);
}

fn particle_row(e: &Entry, tree: bool) -> Row<'static> {
    let r = &e.row;
    let point = if tree {
        format!("{}{}", "  ".repeat(e.depth()), r.point)
    } else {
        r.point.clone()
    };
    Row::new([
        Cell::from(point),
        Cell::from(r.kind.clone()),
        Cell::from(r.status.clone()).style(status_style(&r.status)),
        aligned(rate(e.rate), true),
        aligned(r.queued.to_string(), true),
        aligned(r.taken.to_string(), true),
        aligned(r.restarts.to_string(), true).style(if r.restarts > 0 {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new()
        }),
        aligned(r.star.to_string(), true),
        Cell::from(r.machine.clone()),
        aligned(r.version.to_string(), true),
    ])
}

fn aligned(text: String, right: bool) -> Cell<'static> {
    let line = Line::raw(text);
    Cell::from(if right { line.right_aligned() } else { line })
}

/// Green when it serves, red while it restarts: the colours a glance
/// looks for.
fn status_style(status: &str) -> Style {
    match status {
        "Ready" => Style::new().fg(Color::Green),
        "Starting" => Style::new().fg(Color::Yellow),
        "Restarting" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        "Stopped" => Style::new().fg(Color::DarkGray),
        _ => Style::new(),
    }
}

/// `1 particle`, `2 particles`, `3 crashes`.
fn count(n: u64, noun: &str) -> String {
    match (n, noun.ends_with('h')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{n} {noun}es"),
        (_, false) => format!("{n} {noun}s"),
    }
}

/// A rate with one decimal (a quiet particle's 0.2/s is worth seeing);
/// `-` while there is none yet.
pub fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.1}"))
}

/// `250ms`, `1s`: the refresh as the title shows it.
pub fn interval(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The buffer as plain text, a line per row with trailing blanks cut:
/// what a one-shot frame prints, and what tests read.
pub fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let line: String = (area.left()..area.right())
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crossterm::event::{KeyCode, KeyEvent};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::daemon::protocol::Row as Particle;

    fn particle(point: &str, kind: &str, taken: u64) -> Particle {
        Particle {
            point: point.into(),
            kind: kind.into(),
            machine: "local".into(),
            star: 1,
            status: "Ready".into(),
            restarts: 0,
            version: 0,
            queued: 0,
            taken,
        }
    }

    /// Four particles sampled twice, two seconds apart: `web` took 300
    /// letters (150.0/s), `db:cache` 50 (25.0/s), `db` crashed twice.
    fn model() -> Model {
        let t0 = Instant::now();
        let mut m = Model::default();
        let mut rows = vec![
            particle("web", "counter", 1000),
            particle("db", "echo", 10),
            particle("db:cache", "counter", 0),
            particle("idle", "echo", 0),
        ];
        m.observe(rows.clone(), t0);
        rows[0].taken = 1300;
        rows[0].queued = 42;
        rows[1].status = "Restarting".into();
        rows[1].restarts = 2;
        rows[2].taken = 50;
        m.observe(rows, t0 + Duration::from_secs(2));
        m.set_crashes(Some(2));
        m
    }

    fn render(m: &Model, width: u16, height: u16) -> Buffer {
        let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
        let mut state = TableState::default();
        t.draw(|f| draw(f, m, "/run/hv/control.sock", &mut state, true))
            .unwrap();
        t.backend().buffer().clone()
    }

    fn lines(b: &Buffer) -> Vec<String> {
        text(b).lines().map(str::to_string).collect()
    }

    /// The words of a line: a table row's cells, in order.
    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn the_title_shows_the_socket_refresh_and_totals() {
        let b = render(&model(), 120, 10);
        let l = lines(&b);
        assert_eq!(
            l[0],
            "hyperverse top  /run/hv/control.sock  every 1s  4 particles  175.0 waves/s  \
             2 restarts  2 crashes  1 not ready"
        );
        assert_eq!(l[1], "sort: point");
        assert_eq!(
            words(&l[2]),
            [
                "POINT▲", "KIND", "STATUS", "WAVES/S", "DEPTH", "TAKEN", "RESTARTS", "STAR",
                "MACHINE", "VER"
            ]
        );
        assert!(l[9].starts_with(" q quit  s sort  r reverse  / filter  p pause"));
    }

    #[test]
    fn rows_in_tree_order_carry_rates_from_two_samples_and_coloured_status() {
        let b = render(&model(), 120, 10);
        let l = lines(&b);
        // Tree order, the child indented under its parent.
        assert_eq!(
            words(&l[3]),
            [
                "db",
                "echo",
                "Restarting",
                "0.0",
                "0",
                "10",
                "2",
                "1",
                "local",
                "0"
            ]
        );
        assert!(l[4].starts_with("  db:cache "), "{}", l[4]);
        assert_eq!(words(&l[4])[3], "25.0");
        assert_eq!(
            words(&l[6]),
            ["web", "counter", "Ready", "150.0", "42", "1300", "0", "1", "local", "0"]
        );
        // Numbers right-aligned: the rate ends where its header does
        // (in columns: the header's sort mark is one column, three bytes).
        let end = |line: &str, s: &str| line[..line.find(s).unwrap() + s.len()].chars().count();
        assert_eq!(end(&l[6], "150.0"), end(&l[2], "WAVES/S"));
        // Status colours.
        let x = l[3].find("Restarting").unwrap() as u16;
        assert_eq!(b[(x, 3)].fg, Color::Red);
        let x = l[6].find("Ready").unwrap() as u16;
        assert_eq!(b[(x, 6)].fg, Color::Green);
        // The first row is selected.
        assert!(b[(0, 3)].modifier.contains(Modifier::REVERSED));
        assert!(!b[(0, 6)].modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn sorting_by_rate_puts_the_busiest_first_and_flat() {
        let mut m = model();
        m.key(KeyEvent::from(KeyCode::Char('s')), 1);
        let l = lines(&render(&m, 120, 10));
        assert_eq!(l[1], "sort: waves/s");
        assert!(l[2].contains("WAVES/S▼"), "{}", l[2]);
        let firsts: Vec<&str> = l[3..7].iter().map(|x| words(x)[0]).collect();
        assert_eq!(firsts, ["web", "db:cache", "db", "idle"]);
        assert!(
            l[4].starts_with("db:cache"),
            "not indented out of tree order"
        );
        m.key(KeyEvent::from(KeyCode::Char('r')), 1);
        let l = lines(&render(&m, 120, 10));
        assert_eq!(l[1], "sort: waves/s (reversed)");
        assert!(l[2].contains("WAVES/S▲"), "{}", l[2]);
        assert_eq!(words(&l[6])[0], "web");
    }

    #[test]
    fn the_filter_shows_while_typed_and_then_in_the_status_line() {
        let mut m = model();
        m.key(KeyEvent::from(KeyCode::Char('/')), 1);
        for c in "db".chars() {
            m.key(KeyEvent::from(KeyCode::Char(c)), 1);
        }
        let l = lines(&render(&m, 120, 10));
        assert!(l[9].starts_with(" filter: db_   Enter apply  Esc clear"));
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        let l = lines(&render(&m, 120, 10));
        assert_eq!(l[1], "sort: point  filter: db  (2 of 4 shown)");
        assert_eq!(words(&l[3])[0], "db");
        assert_eq!(words(&l[4])[0], "db:cache");
        assert_eq!(l[5], "");
        m.key(KeyEvent::from(KeyCode::Char('/')), 1);
        m.key(KeyEvent::from(KeyCode::Char('x')), 1);
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        let l = lines(&render(&m, 120, 10));
        assert_eq!(l[3], "(no particle matches the filter)");
    }

    #[test]
    fn a_lost_daemon_paused_view_and_first_wait_say_so() {
        let mut m = model();
        m.lost("no daemon running (cannot connect)".into());
        m.key(KeyEvent::from(KeyCode::Char('p')), 1);
        let b = render(&m, 120, 10);
        let l = lines(&b);
        assert_eq!(
            l[1],
            "daemon unreachable: no daemon running (cannot connect); retrying every 1s \
             (rows below: the last sample)"
        );
        assert_eq!(b[(0, 1)].fg, Color::Red);
        assert!(l[0].ends_with("PAUSED"), "{}", l[0]);
        assert!(l[9].contains("p resume"), "{}", l[9]);
        assert_eq!(words(&l[3])[0], "db", "the last rows stay");
        let l = lines(&render(&Model::default(), 120, 10));
        assert_eq!(l[1], "waiting for the daemon's first answer");
        assert_eq!(l[3], "");
    }

    #[test]
    fn the_table_scrolls_to_keep_the_selection_on_screen() {
        let t0 = Instant::now();
        let mut m = Model::default();
        let rows: Vec<Particle> = (0..20)
            .map(|i| particle(&format!("p{i:02}"), "echo", 0))
            .collect();
        m.observe(rows, t0);
        let mut t = Terminal::new(TestBackend::new(120, 10)).unwrap();
        let mut state = TableState::default();
        let page = page(10);
        assert_eq!(page, 6);
        m.key(KeyEvent::from(KeyCode::PageDown), page);
        m.key(KeyEvent::from(KeyCode::PageDown), page);
        t.draw(|f| draw(f, &m, "s", &mut state, true)).unwrap();
        let l = lines(t.backend().buffer());
        assert_eq!(m.selected().as_deref(), Some("p12"));
        assert!(l.iter().any(|x| x.starts_with("p12 ")), "{l:#?}");
        assert!(!l.iter().any(|x| x.starts_with("p00 ")), "{l:#?}");
    }

    #[test]
    fn a_frame_without_keys_has_no_footer() {
        let m = model();
        let mut t = Terminal::new(TestBackend::new(100, 7)).unwrap();
        let mut state = TableState::default();
        t.draw(|f| draw(f, &m, "s", &mut state, false)).unwrap();
        let l = lines(t.backend().buffer());
        assert_eq!(l.len(), 7);
        assert_eq!(words(&l[6])[0], "web", "the last line is a particle");
    }

    #[test]
    fn rates_and_intervals_read_plainly() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(0.26)), "0.3");
        assert_eq!(rate(Some(1234.56)), "1234.6");
        assert_eq!(interval(Duration::from_millis(250)), "250ms");
        assert_eq!(interval(Duration::from_secs(10)), "10s");
        assert_eq!(count(1, "crash"), "1 crash");
        assert_eq!(count(0, "crash"), "0 crashes");
        assert_eq!(count(2, "particle"), "2 particles");
    }
}
