//! `hyperverse top`: a live terminal view of the daemon's particles, what
//! Erlang's observer and kameo-console give their users: every particle
//! with its waves per second, lane depth, restarts, status, Star and
//! Machine, refreshed in place, with keys to sort, filter, pause and
//! change the refresh.
//!
//! [`model`] holds the state and its rules, [`view`] draws it; this file
//! is the loop between them, the terminal and the daemon. A daemon that
//! does not answer (not started yet, stopped, restarted) does not end the
//! view: the view says so and keeps asking every interval, so `top` can be
//! left open across a daemon's restart, as `top` is across processes'.

pub mod model;
pub mod view;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use crossterm::{cursor, execute, terminal};
use futures::StreamExt;
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::widgets::TableState;
use ratatui::Terminal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::daemon::client;
use crate::daemon::protocol::{Answer, Request, Row};
use model::{Flow, Model};

/// How `top` runs; [`Options::default`] is the interactive view at 1 s.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often to ask the daemon (rounded to a step of
    /// [`model::INTERVALS`]; `+`/`-` change it while running).
    pub interval: Duration,
    /// Print one frame as plain text and exit, for scripts and logs: two
    /// samples `interval` apart (a rate needs two), drawn at the terminal's
    /// width (120 columns when stdout is not a terminal) and as tall as the
    /// rows need, without the key footer.
    pub once: bool,
    /// The subtree shown (root: every particle). A daemon with more
    /// particles than one answer holds (about 1 MiB of rows) is watched a
    /// subtree at a time.
    pub under: hyperverse::Point,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_secs(1),
            once: false,
            under: hyperverse::Point::root(),
        }
    }
}

/// Runs the live view against the daemon in `dir` until the user quits.
///
/// # Errors
///
/// Readable text: the terminal could not be set up. The live view shows a
/// daemon that is not there (and keeps asking); with `once`, no daemon or
/// one that does not answer is an error (a script wants a non-zero exit,
/// not a frame saying so).
pub async fn run_with(dir: &Path, options: Options) -> Result<(), String> {
    if options.once {
        let width = if std::io::stdout().is_terminal() {
            terminal::size().map_or(120, |(w, _)| w)
        } else {
            120
        };
        let frame = once(dir, &options.under, options.interval, width).await?;
        let mut out = std::io::stdout().lock();
        out.write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing the frame: {e}"))?;
        return Ok(());
    }
    interactive(dir, &options.under, options.interval).await
}

/// One sample: the whole tree and, when the daemon gives it, its crash
/// count (summed over its Stars).
async fn sample(dir: &Path, under: &hyperverse::Point) -> Result<(Vec<Row>, Option<u64>), String> {
    let rows = match client::call(
        dir,
        &Request::Tree {
            under: under.clone(),
        },
    )
    .await?
    {
        Answer::Tree(rows) => rows,
        Answer::Error(e) => return Err(format!("the daemon refused the tree: {e}")),
        other => return Err(format!("the daemon answered the tree with {other:?}")),
    };
    let crashes = match client::call(dir, &Request::Stats).await {
        Ok(Answer::Stats(stats)) => Some(
            stats
                .iter()
                .filter(|(k, _)| k.ends_with(".crashes"))
                .map(|(_, v)| v)
                .sum(),
        ),
        _ => None,
    };
    Ok((rows, crashes))
}

/// The daemon's socket as the title names it.
fn socket(dir: &Path) -> String {
    crate::daemon::paths::socket(dir).display().to_string()
}

/// Two samples `interval` apart, drawn `width` columns wide as text.
async fn once(
    dir: &Path,
    under: &hyperverse::Point,
    interval: Duration,
    width: u16,
) -> Result<String, String> {
    let mut model = Model::with_interval(interval);
    let (rows, _) = sample(dir, under).await?;
    model.observe(rows, std::time::Instant::now());
    tokio::time::sleep(model.interval()).await;
    let (rows, crashes) = sample(dir, under).await?;
    model.observe(rows, std::time::Instant::now());
    model.set_crashes(crashes);
    Ok(frame(&model, &socket(dir), width))
}

/// The model drawn on an off-screen buffer, as text: title, status line,
/// header and every row shown.
fn frame(model: &Model, socket: &str, width: u16) -> String {
    let rows = model.visible().len().max(1);
    let height = u16::try_from(rows + 3).unwrap_or(u16::MAX);
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    let mut state = TableState::default();
    if let Err(never) = terminal.draw(|f| view::draw(f, model, socket, &mut state, false)) {
        match never {}
    }
    view::text(terminal.backend().buffer())
}

/// Set while the terminal is raw and on the alternate screen: whoever
/// restores it first (the guard's drop, or the panic hook) clears it, so
/// it is restored exactly once.
static RAW: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back: cooked mode, main screen, cursor shown.
fn restore() {
    if RAW.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(
            std::io::stdout(),
            terminal::LeaveAlternateScreen,
            cursor::Show
        );
    }
}

/// Holds the terminal raw and on the alternate screen; dropping it (a
/// quit, an error's `?`, an unwinding panic) puts the terminal back. A
/// panic hook does so too, before the panic's message is printed, so the
/// message lands on the user's own screen in cooked mode instead of being
/// wiped with the alternate screen or smeared by raw mode.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, String> {
        if !std::io::stdout().is_terminal() {
            return Err("`hyperverse top` needs a terminal (stdout is not one)".into());
        }
        terminal::enable_raw_mode().map_err(|e| format!("raw mode: {e}"))?;
        RAW.store(true, Ordering::SeqCst);
        let guard = TerminalGuard;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .map_err(|e| format!("the alternate screen: {e}"))?;
        static HOOKED: AtomicBool = AtomicBool::new(false);
        if !HOOKED.swap(true, Ordering::SeqCst) {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// A sample's outcome.
type Sampled = Result<(Vec<Row>, Option<u64>), String>;

async fn interactive(
    dir: &Path,
    under: &hyperverse::Point,
    interval: Duration,
) -> Result<(), String> {
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .map_err(|e| format!("the terminal: {e}"))?;
    let socket = socket(dir);
    let mut model = Model::with_interval(interval);
    let mut table = TableState::default();
    let mut events = EventStream::new();
    // Samples are taken on a task of their own, so that keys are answered
    // while the daemon is slow to (a call may wait for it for 30 s).
    let (sampled_tx, mut sampled_rx) = mpsc::channel::<Sampled>(1);
    let mut asking = false;
    let mut last_ask: Option<Instant> = None;
    loop {
        let mut page = 1;
        terminal
            .draw(|f| {
                page = view::page(f.area().height);
                view::draw(f, &model, &socket, &mut table, true);
            })
            .map_err(|e| format!("drawing: {e}"))?;
        // Paced from when the last ask began, so a changed interval (or a
        // resume) applies at once.
        let due = last_ask.map_or_else(Instant::now, |t| t + model.interval());
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    if model.key(key, page) == Flow::Quit {
                        return Ok(());
                    }
                }
                // A resize (or anything else): the loop redraws.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("reading the terminal: {e}")),
                None => return Ok(()),
            },
            () = tokio::time::sleep_until(due), if !asking && !model.paused() => {
                asking = true;
                let began = Instant::now();
                last_ask = Some(began);
                let dir: PathBuf = dir.to_path_buf();
                let under = under.clone();
                let tx = sampled_tx.clone();
                tokio::spawn(async move {
                    let outcome = sample(&dir, &under).await;
                    let _ = tx.send(outcome).await;
                });
            }
            Some(outcome) = sampled_rx.recv() => {
                asking = false;
                match outcome {
                    Ok((rows, crashes)) => {
                        model.observe(rows, std::time::Instant::now());
                        model.set_crashes(crashes);
                    }
                    Err(e) => model.lost(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's own server on a directory of the test's, its built-in
    /// kinds included: `once` samples it through the real socket.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_samples_the_real_daemon_twice_and_prints_a_rate() {
        let dir = std::env::temp_dir().join(format!("hv-top-once-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = tokio::spawn({
            let dir = dir.clone();
            async move { crate::daemon::server::run(crate::config::DaemonConfig::default(), &dir).await }
        });
        let call = |r: Request| {
            let dir = dir.clone();
            async move { client::call(&dir, &r).await }
        };
        // Wait for the socket.
        let mut up = false;
        for _ in 0..200 {
            if call(Request::Stats).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(up, "the daemon did not come up");
        let point = |p: &str| crate::daemon::protocol::parse_point(p).unwrap();
        for (p, k) in [("busy", "counter"), ("busy:echo", "echo")] {
            let a = call(Request::Spawn {
                point: point(p),
                kind: k.into(),
                args: vec![],
            })
            .await
            .unwrap();
            assert!(matches!(a, Answer::Done), "{a:?}");
        }
        // Letters flow to `busy` all through both samples.
        let feeding = tokio::spawn({
            let dir = dir.clone();
            async move {
                loop {
                    let add = Request::Send {
                        point: point("busy"),
                        method: "add".into(),
                        body: vec![],
                    };
                    if client::call(&dir, &add).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let text = once(
            &dir,
            &hyperverse::Point::root(),
            Duration::from_millis(500),
            100,
        )
        .await
        .unwrap();
        feeding.abort();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("2 particles"), "{text}");
        assert!(lines[0].contains("every 500ms"), "{text}");
        assert_eq!(lines.len(), 5, "title, status, header, 2 rows: {text}");
        let busy: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(busy[..3], ["busy", "counter", "Ready"], "{text}");
        let rate: f64 = busy[3].parse().unwrap();
        assert!(rate > 0.0, "{text}");
        assert!(lines[4].starts_with("  busy:echo"), "{text}");
        assert!(!text.contains("q quit"), "no key footer: {text}");
        let _ = call(Request::Stop).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn once_without_a_daemon_is_an_error_not_a_frame() {
        let dir = std::env::temp_dir().join(format!("hv-top-none-{}", std::process::id()));
        let e = once(
            &dir,
            &hyperverse::Point::root(),
            Duration::from_millis(250),
            80,
        )
        .await
        .unwrap_err();
        assert!(e.contains("no daemon running"), "{e}");
    }
}
