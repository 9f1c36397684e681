//! What `hyperverse top` knows and how its keys change it, with no
//! terminal and no daemon in sight: samples of the daemon's tree go in
//! (with the instant each was taken), keys go in, and the view reads out
//! the rows to show, in order, with their rates. Kept pure so that every
//! rule here (rates, sorting, filtering, selection) is unit-tested
//! without a terminal.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::daemon::protocol::Row;

/// The refresh intervals `+` and `-` step through: a fixed ladder rather
/// than free arithmetic, so that a few presses reach any useful speed and
/// the title always shows a round figure.
pub const INTERVALS: [Duration; 7] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Where on [`INTERVALS`] a new view starts: 1 s, `top`'s habit, often
/// enough to follow a burst, rare enough that the daemon does not notice.
const DEFAULT_INTERVAL: usize = 2;

/// What the rows are ordered by; `s` steps to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Tree order: a parent, then its children (shown indented).
    Point,
    /// Waves taken per second, busiest first.
    Rate,
    /// Letters waiting in the lane, deepest first.
    Depth,
    /// Restarts, most first.
    Restarts,
    /// Trouble first: restarting, stopped, starting, then ready.
    Status,
    /// Kind name.
    Kind,
}

impl SortKey {
    /// The next key in the `s` cycle (wrapping).
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Point => SortKey::Rate,
            SortKey::Rate => SortKey::Depth,
            SortKey::Depth => SortKey::Restarts,
            SortKey::Restarts => SortKey::Status,
            SortKey::Status => SortKey::Kind,
            SortKey::Kind => SortKey::Point,
        }
    }

    /// Its name in the title line.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Point => "point",
            SortKey::Rate => "waves/s",
            SortKey::Depth => "depth",
            SortKey::Restarts => "restarts",
            SortKey::Status => "status",
            SortKey::Kind => "kind",
        }
    }

    /// Numbers sort largest first unreversed: the particle one looks for
    /// in a top-like view is the busiest, deepest or most restarted.
    fn largest_first(self) -> bool {
        matches!(self, SortKey::Rate | SortKey::Depth | SortKey::Restarts)
    }
}

/// One particle as the view shows it: its last row and its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub row: Row,
    /// Waves per second over the last two samples; `None` until this
    /// particle has been seen twice (new, or its counter went backwards).
    pub rate: Option<f64>,
}

impl Entry {
    /// How deep its Point is: 0 for a top-level particle (`a`), 1 for
    /// `a:b`; the view indents by it in tree order.
    pub fn depth(&self) -> usize {
        self.row.point.matches(':').count()
    }
}

/// What a key asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The last sample of one particle, kept to compute its next rate.
#[derive(Debug, Clone)]
struct Seen {
    kind: String,
    taken: u64,
    restarts: u32,
    at: Instant,
}

/// Totals over every particle of the last sample (not only those the
/// filter shows: the title line speaks for the whole daemon).
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub particles: usize,
    pub shown: usize,
    /// The sum of the known rates.
    pub rate: f64,
    pub restarts: u64,
    /// Particles not `Ready`.
    pub unready: usize,
    /// The daemon's crash count, when it gave one.
    pub crashes: Option<u64>,
}

/// The whole state of the view.
#[derive(Debug, Clone)]
pub struct Model {
    entries: Vec<Entry>,
    seen: HashMap<String, Seen>,
    sampled: bool,
    crashes: Option<u64>,
    error: Option<String>,
    sort: SortKey,
    reverse: bool,
    filter: String,
    /// The filter being typed (after `/`, until Enter or Esc).
    draft: Option<String>,
    /// The selected particle, by Point: it stays on the same particle when
    /// a refresh or a new sort moves it.
    selected: Option<String>,
    paused: bool,
    interval: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            entries: Vec::new(),
            seen: HashMap::new(),
            sampled: false,
            crashes: None,
            error: None,
            sort: SortKey::Point,
            reverse: false,
            filter: String::new(),
            draft: None,
            selected: None,
            paused: false,
            interval: DEFAULT_INTERVAL,
        }
    }
}

impl Model {
    /// A view refreshing every `interval` (rounded to the nearest step of
    /// [`INTERVALS`]).
    pub fn with_interval(interval: Duration) -> Model {
        let nearest = INTERVALS
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| d.abs_diff(interval))
            .map_or(DEFAULT_INTERVAL, |(i, _)| i);
        Model {
            interval: nearest,
            ..Model::default()
        }
    }

    /// Takes a sample of the daemon's tree, taken at `at`.
    ///
    /// A particle's rate is the growth of its `taken` counter since its
    /// previous sample over the time between them. `taken` counts over
    /// every incarnation of a particle (its lane outlives a crash), so a
    /// supervisor's restart does not spoil the figure and it is kept. A
    /// counter that went backwards, fewer restarts than before or another
    /// kind mean another particle now lives at that Point (killed and
    /// spawned again, or a new daemon): that one starts over with no rate,
    /// as a new one does, instead of showing a negative or absurd figure.
    pub fn observe(&mut self, rows: Vec<Row>, at: Instant) {
        let mut seen = HashMap::with_capacity(rows.len());
        self.entries = rows
            .into_iter()
            .map(|row| {
                let rate = self.seen.get(&row.point).and_then(|before| {
                    let same = before.kind == row.kind
                        && row.taken >= before.taken
                        && row.restarts >= before.restarts;
                    let secs = at.checked_duration_since(before.at)?.as_secs_f64();
                    (same && secs > 0.0).then(|| (row.taken - before.taken) as f64 / secs)
                });
                seen.insert(
                    row.point.clone(),
                    Seen {
                        kind: row.kind.clone(),
                        taken: row.taken,
                        restarts: row.restarts,
                        at,
                    },
                );
                Entry { row, rate }
            })
            .collect();
        self.seen = seen;
        self.sampled = true;
        self.error = None;
    }

    /// The daemon's crash count (summed over its Stars), if it gave one.
    pub fn set_crashes(&mut self, crashes: Option<u64>) {
        self.crashes = crashes;
    }

    /// The daemon could not be sampled: the view says why and keeps its
    /// last rows (marked stale) while the loop tries again.
    pub fn lost(&mut self, why: String) {
        self.error = Some(why);
    }

    /// Why the last sample failed, while it has not succeeded since.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// True once a sample has arrived.
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    pub fn sort(&self) -> SortKey {
        self.sort
    }

    pub fn reversed(&self) -> bool {
        self.reverse
    }

    /// The filter in force (empty: none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The filter being typed, while it is.
    pub fn draft(&self) -> Option<&str> {
        self.draft.as_deref()
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn interval(&self) -> Duration {
        INTERVALS[self.interval]
    }

    /// True when rows are shown as a tree (indented by Point depth): only
    /// in Point order, where a child follows its parent.
    pub fn tree_order(&self) -> bool {
        self.sort == SortKey::Point
    }

    /// The rows to show: those the filter lets through, in sort order.
    pub fn visible(&self) -> Vec<&Entry> {
        let needle = self.filter.to_lowercase();
        let mut shown: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| {
                needle.is_empty()
                    || e.row.point.to_lowercase().contains(&needle)
                    || e.row.kind.to_lowercase().contains(&needle)
            })
            .collect();
        shown.sort_by(|a, b| self.compare(a, b));
        shown
    }

    fn compare(&self, a: &Entry, b: &Entry) -> Ordering {
        let primary = match self.sort {
            SortKey::Point => Ordering::Equal,
            // A particle with no rate yet sorts as idle.
            SortKey::Rate => a.rate.unwrap_or(0.0).total_cmp(&b.rate.unwrap_or(0.0)),
            SortKey::Depth => a.row.queued.cmp(&b.row.queued),
            SortKey::Restarts => a.row.restarts.cmp(&b.row.restarts),
            SortKey::Status => status_rank(&a.row.status).cmp(&status_rank(&b.row.status)),
            SortKey::Kind => a.row.kind.cmp(&b.row.kind),
        };
        let primary = if self.sort.largest_first() {
            primary.reverse()
        } else {
            primary
        };
        let primary = if self.reverse {
            primary.reverse()
        } else {
            primary
        };
        // Ties in tree order, so equal rows do not jump between refreshes;
        // in Point order itself, `r` reverses this too.
        let tie = tree_cmp(&a.row.point, &b.row.point);
        match (self.sort, self.reverse) {
            (SortKey::Point, true) => tie.reverse(),
            (SortKey::Point, false) => tie,
            _ => primary.then(tie),
        }
    }

    /// Totals over the last sample.
    pub fn totals(&self) -> Totals {
        Totals {
            particles: self.entries.len(),
            shown: self.visible().len(),
            rate: self.entries.iter().filter_map(|e| e.rate).sum(),
            restarts: self.entries.iter().map(|e| u64::from(e.row.restarts)).sum(),
            unready: self
                .entries
                .iter()
                .filter(|e| e.row.status != "Ready")
                .count(),
            crashes: self.crashes,
        }
    }

    /// Where the selection is among `visible` (the first row when the
    /// selected particle is gone or filtered out; `None` with no rows).
    pub fn selected_index(&self, visible: &[&Entry]) -> Option<usize> {
        if visible.is_empty() {
            return None;
        }
        let at = self
            .selected
            .as_ref()
            .and_then(|p| visible.iter().position(|e| &e.row.point == p));
        Some(at.unwrap_or(0))
    }

    /// The selected particle's Point, as [`Model::selected_index`] finds it
    /// (the view needs only the index; tests ask which particle it is).
    #[cfg(test)]
    pub fn selected(&self) -> Option<String> {
        let visible = self.visible();
        self.selected_index(&visible)
            .map(|i| visible[i].row.point.clone())
    }

    fn move_selection(&mut self, by: isize) {
        let visible = self.visible();
        let Some(at) = self.selected_index(&visible) else {
            return;
        };
        let last = visible.len() - 1;
        let to = at.saturating_add_signed(by).min(last);
        self.selected = Some(visible[to].row.point.clone());
    }

    /// Handles a key; `page` is how many rows a PageUp/PageDown moves.
    pub fn key(&mut self, key: KeyEvent, page: usize) -> Flow {
        if key.kind == KeyEventKind::Release {
            return Flow::Continue;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Flow::Quit;
        }
        if let Some(draft) = self.draft.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    self.filter = self.draft.take().unwrap_or_default();
                }
                KeyCode::Esc => {
                    self.draft = None;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    draft.pop();
                }
                KeyCode::Char(c) => draft.push(c),
                _ => {}
            }
            return Flow::Continue;
        }
        let page = isize::try_from(page.max(1)).unwrap_or(isize::MAX);
        match key.code {
            KeyCode::Char('q') => return Flow::Quit,
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Char('/') => self.draft = Some(self.filter.clone()),
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('+') | KeyCode::Char('=') => {
                self.interval = (self.interval + 1).min(INTERVALS.len() - 1);
            }
            KeyCode::Char('-') => self.interval = self.interval.saturating_sub(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-page),
            KeyCode::PageDown => self.move_selection(page),
            KeyCode::Home => self.move_selection(isize::MIN),
            KeyCode::End => self.move_selection(isize::MAX),
            _ => {}
        }
        Flow::Continue
    }
}

/// Status order for [`SortKey::Status`]: the states that need a look
/// first.
fn status_rank(status: &str) -> u8 {
    match status {
        "Restarting" => 0,
        "Stopped" => 1,
        "Starting" => 2,
        "Ready" => 3,
        _ => 4,
    }
}

/// Tree order of Points: segment by segment, so that `a:b` follows `a`
/// and comes before `a-x` (plain text order puts `-` before `:`, which
/// would tear a parent from its children).
fn tree_cmp(a: &str, b: &str) -> Ordering {
    a.split(':').cmp(b.split(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(point: &str, kind: &str, taken: u64) -> Row {
        Row {
            point: point.into(),
            kind: kind.into(),
            machine: "local".into(),
            star: 0,
            status: "Ready".into(),
            restarts: 0,
            version: 0,
            queued: 0,
            taken,
        }
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::from(KeyCode::Char(c))
    }

    fn points(m: &Model) -> Vec<&str> {
        m.visible().iter().map(|e| e.row.point.as_str()).collect()
    }

    fn rate(m: &Model, point: &str) -> Option<f64> {
        m.visible()
            .iter()
            .find(|e| e.row.point == point)
            .and_then(|e| e.rate)
    }

    #[test]
    fn a_rate_needs_two_samples_and_is_growth_over_time() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.observe(vec![row("a", "counter", 100)], t0);
        assert_eq!(rate(&m, "a"), None, "one sample: no rate yet");
        m.observe(
            vec![row("a", "counter", 250), row("b", "echo", 7)],
            t0 + Duration::from_millis(1500),
        );
        assert_eq!(rate(&m, "a"), Some(100.0));
        assert_eq!(rate(&m, "b"), None, "new particle: no rate yet");
        m.observe(
            vec![row("a", "counter", 250), row("b", "echo", 9)],
            t0 + Duration::from_millis(2500),
        );
        assert_eq!(rate(&m, "a"), Some(0.0));
        assert_eq!(rate(&m, "b"), Some(2.0));
        assert_eq!(m.totals().rate, 2.0);
    }

    #[test]
    fn a_counter_that_goes_backwards_starts_over_instead_of_going_negative() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.observe(vec![row("a", "counter", 500)], t0);
        // Killed and spawned again (or a new daemon): taken restarts low.
        m.observe(vec![row("a", "counter", 3)], t0 + Duration::from_secs(1));
        assert_eq!(rate(&m, "a"), None);
        m.observe(vec![row("a", "counter", 13)], t0 + Duration::from_secs(2));
        assert_eq!(rate(&m, "a"), Some(10.0));
        // Another kind at the same Point is another particle too.
        m.observe(vec![row("a", "echo", 20)], t0 + Duration::from_secs(3));
        assert_eq!(rate(&m, "a"), None);
        // As are fewer restarts than before.
        let mut r = row("a", "echo", 30);
        r.restarts = 2;
        m.observe(vec![r], t0 + Duration::from_secs(4));
        let mut r = row("a", "echo", 40);
        r.restarts = 0;
        m.observe(vec![r], t0 + Duration::from_secs(5));
        assert_eq!(rate(&m, "a"), None);
    }

    #[test]
    fn a_supervisor_restart_keeps_the_rate_since_the_lane_outlives_it() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.observe(vec![row("a", "counter", 10)], t0);
        let mut r = row("a", "counter", 30);
        r.restarts = 1;
        m.observe(vec![r], t0 + Duration::from_secs(2));
        assert_eq!(rate(&m, "a"), Some(10.0));
    }

    #[test]
    fn a_particle_that_vanishes_and_returns_has_no_stale_rate() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.observe(vec![row("a", "counter", 10)], t0);
        m.observe(vec![], t0 + Duration::from_secs(1));
        m.observe(vec![row("a", "counter", 50)], t0 + Duration::from_secs(2));
        assert_eq!(rate(&m, "a"), None);
    }

    #[test]
    fn a_sample_at_the_same_instant_gives_no_rate_rather_than_infinity() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.observe(vec![row("a", "counter", 10)], t0);
        m.observe(vec![row("a", "counter", 20)], t0);
        assert_eq!(rate(&m, "a"), None);
    }

    fn sample() -> Model {
        let t0 = Instant::now();
        let mut m = Model::default();
        let mut rows = vec![
            row("web", "counter", 0),
            row("a-x", "echo", 0),
            row("a", "echo", 0),
            row("a:b", "counter", 0),
        ];
        m.observe(rows.clone(), t0);
        rows[0].taken = 50; // web: 50/s
        rows[1].taken = 5; // a-x: 5/s
        rows[2].restarts = 3;
        rows[2].status = "Restarting".into();
        rows[3].queued = 9;
        rows[3].taken = 20; // a:b: 20/s
        m.observe(rows, t0 + Duration::from_secs(1));
        m
    }

    #[test]
    fn sort_keys_cycle_and_reverse() {
        let mut m = sample();
        assert_eq!(m.sort(), SortKey::Point);
        // Tree order: a child right after its parent, before `a-x`.
        assert_eq!(points(&m), ["a", "a:b", "a-x", "web"]);
        m.key(key('r'), 1);
        assert_eq!(points(&m), ["web", "a-x", "a:b", "a"]);
        m.key(key('r'), 1);
        m.key(key('s'), 1);
        assert_eq!(m.sort(), SortKey::Rate);
        assert_eq!(points(&m), ["web", "a:b", "a-x", "a"]);
        m.key(key('r'), 1);
        assert_eq!(points(&m), ["a", "a-x", "a:b", "web"]);
        m.key(key('r'), 1);
        m.key(key('s'), 1);
        assert_eq!(m.sort(), SortKey::Depth);
        assert_eq!(points(&m)[0], "a:b");
        m.key(key('s'), 1);
        assert_eq!(m.sort(), SortKey::Restarts);
        assert_eq!(points(&m)[0], "a");
        m.key(key('s'), 1);
        assert_eq!(m.sort(), SortKey::Status);
        assert_eq!(points(&m), ["a", "a:b", "a-x", "web"]);
        m.key(key('s'), 1);
        assert_eq!(m.sort(), SortKey::Kind);
        assert_eq!(points(&m), ["a:b", "web", "a", "a-x"]);
        m.key(key('s'), 1);
        assert_eq!(m.sort(), SortKey::Point);
    }

    #[test]
    fn the_filter_is_typed_after_a_slash_applied_on_enter_and_cleared_by_esc() {
        let mut m = sample();
        m.key(key('/'), 1);
        for c in "COUN".chars() {
            m.key(key(c), 1);
        }
        assert_eq!(m.draft(), Some("COUN"));
        // Typing does not quit or sort: `q` and `s` are text here.
        assert_eq!(m.key(key('q'), 1), Flow::Continue);
        m.key(KeyEvent::from(KeyCode::Backspace), 1);
        assert_eq!(m.sort(), SortKey::Point);
        assert_eq!(points(&m).len(), 4, "not applied before Enter");
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        assert_eq!(m.draft(), None);
        // By kind, case-insensitive.
        assert_eq!(points(&m), ["a:b", "web"]);
        assert_eq!(m.totals().shown, 2);
        assert_eq!(m.totals().particles, 4);
        // By point; `/` starts from the filter in force.
        m.key(key('/'), 1);
        assert_eq!(m.draft(), Some("COUN"));
        for _ in 0..4 {
            m.key(KeyEvent::from(KeyCode::Backspace), 1);
        }
        m.key(key('a'), 1);
        m.key(key('-'), 1);
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        assert_eq!(points(&m), ["a-x"]);
        // Esc while typing clears it.
        m.key(key('/'), 1);
        m.key(KeyEvent::from(KeyCode::Esc), 1);
        assert_eq!(m.filter(), "");
        assert_eq!(points(&m).len(), 4);
        // Esc outside typing clears an applied one.
        m.key(key('/'), 1);
        m.key(key('w'), 1);
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        assert_eq!(points(&m), ["web"]);
        m.key(KeyEvent::from(KeyCode::Esc), 1);
        assert_eq!(points(&m).len(), 4);
    }

    #[test]
    fn the_selection_follows_its_particle_and_stays_in_bounds() {
        let mut m = sample();
        assert_eq!(m.selected().as_deref(), Some("a"));
        m.key(KeyEvent::from(KeyCode::Up), 1);
        assert_eq!(m.selected().as_deref(), Some("a"));
        m.key(KeyEvent::from(KeyCode::Down), 1);
        m.key(key('j'), 1);
        assert_eq!(m.selected().as_deref(), Some("a-x"));
        // Re-sorted: still a-x, wherever it went.
        m.key(key('s'), 1);
        assert_eq!(m.selected().as_deref(), Some("a-x"));
        assert_eq!(m.selected_index(&m.visible()), Some(2));
        m.key(KeyEvent::from(KeyCode::End), 1);
        assert_eq!(m.selected().as_deref(), Some("a"));
        m.key(KeyEvent::from(KeyCode::PageUp), 2);
        assert_eq!(m.selected().as_deref(), Some("a:b"));
        m.key(KeyEvent::from(KeyCode::Home), 1);
        assert_eq!(m.selected().as_deref(), Some("web"));
        m.key(KeyEvent::from(KeyCode::Down), 1);
        // Filtered out: the first row shown is selected.
        m.key(key('/'), 1);
        m.key(key('a'), 1);
        m.key(key('-'), 1);
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        assert_eq!(m.selected().as_deref(), Some("a-x"));
        m.key(key('/'), 1);
        m.key(key('z'), 1);
        m.key(KeyEvent::from(KeyCode::Enter), 1);
        assert_eq!(m.selected(), None);
        m.key(KeyEvent::from(KeyCode::Down), 1);
        assert_eq!(m.selected(), None);
    }

    #[test]
    fn totals_count_every_particle_restarts_and_trouble() {
        let mut m = sample();
        m.set_crashes(Some(3));
        let t = m.totals();
        assert_eq!(t.particles, 4);
        assert_eq!(t.rate, 75.0);
        assert_eq!(t.restarts, 3);
        assert_eq!(t.unready, 1);
        assert_eq!(t.crashes, Some(3));
    }

    #[test]
    fn keys_quit_pause_and_step_the_interval_within_its_ladder() {
        let mut m = Model::default();
        assert_eq!(m.interval(), Duration::from_secs(1));
        m.key(key('p'), 1);
        assert!(m.paused());
        m.key(key('p'), 1);
        assert!(!m.paused());
        m.key(key('-'), 1);
        assert_eq!(m.interval(), Duration::from_millis(500));
        for _ in 0..5 {
            m.key(key('-'), 1);
        }
        assert_eq!(m.interval(), INTERVALS[0]);
        for _ in 0..10 {
            m.key(key('+'), 1);
        }
        assert_eq!(m.interval(), INTERVALS[INTERVALS.len() - 1]);
        assert_eq!(m.key(key('x'), 1), Flow::Continue);
        assert_eq!(m.key(key('q'), 1), Flow::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(m.key(ctrl_c, 1), Flow::Quit);
        // Ctrl-C quits even while a filter is typed.
        m.key(key('/'), 1);
        assert_eq!(m.key(ctrl_c, 1), Flow::Quit);
        assert_eq!(
            Model::with_interval(Duration::from_millis(1900)).interval(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_lost_daemon_is_remembered_until_the_next_sample() {
        let mut m = sample();
        m.lost("no daemon running".into());
        assert_eq!(m.error(), Some("no daemon running"));
        assert_eq!(points(&m).len(), 4, "the last rows stay");
        m.observe(vec![], Instant::now() + Duration::from_secs(5));
        assert_eq!(m.error(), None);
    }

    #[test]
    fn depth_counts_point_segments() {
        let e = |p: &str| Entry {
            row: row(p, "echo", 0),
            rate: None,
        };
        assert_eq!(e("a").depth(), 0);
        assert_eq!(e("a:b:c").depth(), 2);
    }
}
