//! The daemon: a Machine, one lock and one control socket per user.
//!
//! Hostile clients are expected: a frame over the limit or bytes that are
//! not a request close that connection; a client that stops reading or
//! writing for [`IDLE`] is dropped; each connection is its own task, so
//! none holds up another.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyperverse::{Body, Ctx, Machine, Particle, ParticleError, Point, Wave};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use super::protocol::{self, Answer, Request, Row};
use crate::config::DaemonConfig;

/// How long a connection may sit in one read or write.
pub const IDLE: Duration = Duration::from_secs(10);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon of this user runs.
    #[error("a daemon is already running (lock {lock}, socket {socket})")]
    Running {
        /// Its lock.
        lock: PathBuf,
        /// Its socket.
        socket: PathBuf,
    },
    /// The directory, lock or socket could not be made.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error("metrics at {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The Machine could not be built.
    #[error("the machine: {0}")]
    Machine(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Answers an ask with its body (built in: `echo`).
struct Echo;
impl Particle for Echo {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        Ok(w.body)
    }
}

/// Counts `add`s; `crash` crashes it; any other method answers the count
/// (built in: `counter`).
struct Counter;
impl Particle for Counter {
    type State = u64;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }
    async fn handle(&self, _: &Ctx, n: &mut u64, w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "add" => *n += 1,
            "crash" => return Err("asked to crash".into()),
            _ => {}
        }
        Ok(n.to_string().into())
    }
}

/// Runs the daemon until a client says `stop`.
///
/// # Errors
///
/// [`DaemonError`]: another daemon runs, or the directory, the lock, the
/// socket or the Machine could not be made.
pub async fn run(config: DaemonConfig, dir: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let lock_path = super::paths::lock(dir);
    let socket_path = super::paths::socket(dir);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(DaemonError::Running {
            lock: lock_path,
            socket: socket_path,
        });
    }
    // The lock is ours: a socket left by a daemon that died is stale.
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path).map_err(io(&socket_path))?;
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(&socket_path))?;
    let metrics = super::metrics::Metrics::new();
    let observed = metrics.clone();
    let machine = Machine::standalone()
        .observer(move |e| observed.observe(e))
        .stars(config.stars)
        .request_timeout(config.request_timeout)
        .restart_limit(config.max_restarts, config.restart_period)
        .kind("echo", Echo)
        .kind("counter", Counter)
        .build()
        .await
        .map_err(|e| DaemonError::Machine(e.to_string()))?;
    let metrics_task = match config.metrics {
        Some(addr) => Some(
            super::metrics::serve(addr, machine.clone(), metrics.clone())
                .await
                .map_err(|e| DaemonError::Metrics { addr, source: e })?,
        ),
        None => None,
    };
    println!("hyperverse daemon ready: socket {}", socket_path.display());
    let stop = Arc::new(Notify::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve(stream, machine.clone(), stop.clone()));
                }
            }
            () = stop.notified() => break,
        }
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    machine.shutdown().await;
    let _ = std::fs::remove_file(&socket_path);
    drop(lock);
    Ok(())
}

/// One client: requests in, answers out, until it closes, misbehaves or
/// idles.
async fn serve(mut stream: UnixStream, machine: Machine, stop: Arc<Notify>) {
    loop {
        let request = match tokio::time::timeout(IDLE, protocol::read::<Request>(&mut stream)).await
        {
            Ok(Ok(Some(r))) => r,
            Ok(Err(e)) => {
                // Garbage or an oversized frame: say why, then close.
                let _ = tokio::time::timeout(
                    IDLE,
                    protocol::write_answer(&mut stream, &Answer::Error(e.to_string())),
                )
                .await;
                return;
            }
            Ok(Ok(None)) | Err(_) => return,
        };
        if matches!(request, Request::Events) {
            follow(&mut stream, &machine).await;
            return;
        }
        let stopping = matches!(request, Request::Stop);
        let answer = answer(&machine, request).await;
        if tokio::time::timeout(IDLE, protocol::write_answer(&mut stream, &answer))
            .await
            .map_or(true, |r| r.is_err())
        {
            return;
        }
        if stopping {
            stop.notify_one();
            return;
        }
    }
}

/// Streams events to the client until it goes (or falls behind for
/// [`IDLE`]: a client that does not read is dropped, never waited for).
async fn follow(stream: &mut UnixStream, machine: &Machine) {
    use hyperverse::Event;
    let mut events = machine.events();
    // Subscribed: the client may count on every event from here on.
    if tokio::time::timeout(IDLE, protocol::write_answer(stream, &Answer::Following))
        .await
        .map_or(true, |r| r.is_err())
    {
        return;
    }
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                let lost = Answer::Event {
                    what: "lagged".into(),
                    point: String::new(),
                    detail: format!("{n} events missed"),
                };
                if tokio::time::timeout(IDLE, protocol::write_answer(stream, &lost))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        let (what, point, detail) = match event {
            Event::Spawned { point, kind, star } => {
                ("spawned", point, format!("{kind} on star {star}"))
            }
            Event::Crashed(n) => ("crashed", n.child, n.reason),
            Event::Restarted { point, restarts } => {
                ("restarted", point, format!("restart {restarts}"))
            }
            Event::Stopped { point } => ("stopped", point, String::new()),
            Event::Supervisor { supervisor, event } => {
                ("supervisor", supervisor, format!("{event:?}"))
            }
            _ => continue,
        };
        let answer = Answer::Event {
            what: what.to_string(),
            point: point.to_string(),
            detail,
        };
        if tokio::time::timeout(IDLE, protocol::write_answer(stream, &answer))
            .await
            .map_or(true, |r| r.is_err())
        {
            return;
        }
    }
}

async fn answer(machine: &Machine, request: Request) -> Answer {
    match request {
        Request::Spawn { point, kind, args } => {
            match machine
                .spawn(point, kind.as_str().into(), args.into())
                .await
            {
                Ok(_) => Answer::Done,
                Err(e) => Answer::Error(e.to_string()),
            }
        }
        Request::Send {
            point,
            method,
            body,
        } => match machine.signal(&point, (method, body)) {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::Ask {
            point,
            method,
            body,
            timeout_ms,
        } => match machine
            .ask(&point, (method, body))
            .within(Duration::from_millis(timeout_ms))
            .await
        {
            Ok(b) => Answer::Reply(b.as_bytes().to_vec()),
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::Tree { under } => Answer::Tree(
            machine
                .registry()
                .subtree(&under)
                .into_iter()
                .map(|r| {
                    let load = machine
                        .particle(&r.point)
                        .map(|p| p.load())
                        .unwrap_or_default();
                    Row {
                        point: r.point.to_string(),
                        kind: r.kind.to_string(),
                        machine: "local".to_string(),
                        star: r.star,
                        status: format!("{:?}", r.status),
                        restarts: r.restarts,
                        version: r.code_version,
                        queued: load.queued as u64,
                        taken: load.taken,
                    }
                })
                .collect(),
        ),
        Request::Stats => {
            let mut s = vec![("particles".to_string(), machine.registry().len() as u64)];
            for st in machine.star_stats() {
                s.push((format!("star{}.spawned", st.star), st.spawned));
                s.push((format!("star{}.crashes", st.star), st.crashes));
                s.push((format!("star{}.restarts", st.star), st.restarts));
            }
            Answer::Stats(s)
        }
        Request::Kill { point } => match machine.stop(&point).await {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Error(e.to_string()),
        },
        Request::ModuleList
        | Request::ModuleLoad { .. }
        | Request::ModuleReload { .. }
        | Request::Fault(_) => Answer::Error("not yet".into()),
        Request::Stop | Request::Events => Answer::Done,
    }
}

/// For a Point given on the command line.
pub fn parse_point(text: &str) -> Result<Point, String> {
    Point::parse(text).map_err(|e| format!("bad point `{text}`: {e}"))
}
