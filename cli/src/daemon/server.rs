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

use hyperverse::access::Privilege;
use hyperverse::cluster::Cluster;
use hyperverse::modules::{ModulePath, WasmHost};
use hyperverse::Machine;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use super::kinds::{Counter, Echo};
use super::protocol::{self, Answer, Request};
use super::state::Daemon;
use super::users::{Unknown, Users};
use crate::config::DaemonConfig;

/// Connections served at once; one more is told so and closed. (Each may
/// hold a frame of up to `MAX_FRAME` as it arrives: this bounds the
/// memory idle clients can pin.)
pub const MAX_CONNECTIONS: usize = 128;

/// How long a connection may sit in one read or write.
pub const IDLE: Duration = Duration::from_secs(10);

/// How often a client that shut down its writing side is looked at, while
/// it waits for a long answer, to see whether it has gone altogether.
const HALF_CLOSED_POLL: Duration = Duration::from_secs(1);

/// How long the daemon waits after a failed accept (out of file
/// descriptors) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
    /// The cluster could not be joined.
    #[error("the cluster: {0}")]
    Cluster(String),
    /// The Machine could not be built.
    #[error("the machine: {0}")]
    Machine(String),
    /// The `[access]` table cannot work on this host, or its rules were
    /// refused by the Machine.
    #[error("the access rules: {0}")]
    Access(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the daemon until a client says `stop`.
///
/// # Errors
///
/// [`DaemonError`]: another daemon runs, or the directory, the lock, the
/// socket or the Machine could not be made.
pub async fn run(config: DaemonConfig, dir: &Path) -> Result<(), DaemonError> {
    let users = Users::new(&config.access, super::users::own_uid())
        .map_err(|e| DaemonError::Access(e.to_string()))?;
    let shared = config.access.shared_socket;
    if shared {
        super::paths::make_shared(dir).map_err(io(dir))?;
    } else {
        super::paths::make_private(dir).map_err(io(dir))?;
    }
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
    // Shared: any uid may connect, and is then served only as one of the
    // users the config names (see `serve`).
    let mode = if shared { 0o666 } else { 0o600 };
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(mode))
        .map_err(io(&socket_path))?;
    let metrics = super::metrics::Metrics::new();
    let observed = metrics.clone();
    let host = WasmHost::builder()
        .limits(config.wasm)
        .search_path(ModulePath::new(config.module_path.clone()))
        .build();
    let machine = with_access(Machine::standalone(), &config, &users)
        .observer(move |e| observed.observe(e))
        .stars(config.stars)
        .request_timeout(config.request_timeout)
        .restart_limit(config.max_restarts, config.restart_period)
        .kind("echo", Echo)
        .kind("counter", Counter)
        .resolver(host.resolver())
        .build()
        .await
        .map_err(|e| DaemonError::Machine(e.to_string()))?;
    if let Err(e) = join_groups(&machine, &config) {
        machine.shutdown().await;
        return Err(e);
    }
    // A daemon does not start half-configured: a cluster it cannot join,
    // or a metrics address it cannot bind, stops it here.
    let cluster = match config.cluster.clone() {
        Some(c) => match Cluster::join(&machine, c).await {
            Ok(cluster) => Some(Arc::new(cluster)),
            Err(e) => {
                machine.shutdown().await;
                return Err(DaemonError::Cluster(e.to_string()));
            }
        },
        None => None,
    };
    let metrics_task = match config.metrics {
        Some(addr) => match super::metrics::serve(addr, machine.clone(), metrics.clone()).await {
            Ok(task) => Some(task),
            Err(source) => {
                machine.shutdown().await;
                return Err(DaemonError::Metrics { addr, source });
            }
        },
        None => None,
    };
    let daemon = Daemon {
        machine: machine.clone(),
        owner: machine.clone(),
        superuser: true,
        users: Arc::new(users),
        host,
        metrics,
        name: cluster
            .as_ref()
            .map_or_else(|| "local".to_string(), |c| c.name().to_string()),
        cluster,
        notes: tokio::sync::broadcast::channel(1024).0,
        stop: Arc::new(Notify::new()),
    };
    let watcher = config
        .watch_modules
        .then(|| tokio::spawn(super::watch::watch(daemon.clone())));
    println!("hyperverse daemon ready: socket {}", socket_path.display());
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut stream, _)) => match connections.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let daemon = daemon.clone();
                        tokio::spawn(async move {
                            serve(stream, daemon).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        // Full: say so and close, without waiting on the
                        // client (a task with a short deadline).
                        tokio::spawn(async move {
                            let busy = Answer::Error(format!(
                                "the daemon serves {MAX_CONNECTIONS} connections already; try again"
                            ));
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                protocol::write_answer(&mut stream, &busy),
                            )
                            .await;
                        });
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: the failing
                    // accept would return at once, every time; wait for
                    // connections to close rather than spin on it.
                    tracing::debug!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            () = daemon.stop.notified() => break,
        }
    }
    if let Some(task) = watcher {
        task.abort();
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    machine.shutdown().await;
    let _ = std::fs::remove_file(&socket_path);
    drop(lock);
    Ok(())
}

/// The Machine's access policy, superusers and first grants, from the
/// config's `[access]`.
fn with_access(
    builder: hyperverse::MachineBuilder,
    config: &DaemonConfig,
    users: &Users,
) -> hyperverse::MachineBuilder {
    let builder = builder.access(config.access.policy);
    let builder = users
        .superusers()
        .iter()
        .fold(builder, |b, name| b.superuser(name));
    config
        .access
        .grants
        .iter()
        .fold(builder, |b, grant| b.grant(grant.clone()))
}

/// The config's groups, joined by the Machine itself.
fn join_groups(machine: &Machine, config: &DaemonConfig) -> Result<(), DaemonError> {
    for (group, members) in &config.access.groups {
        for member in members {
            machine
                .join_group(group, member.clone())
                .map_err(|e| DaemonError::Access(format!("group {group}: {e}")))?;
        }
    }
    Ok(())
}

/// One client, as the user its peer's uid names (see [`Users`]); a peer
/// that is no user is told so for its first request, then let go.
async fn serve(mut stream: UnixStream, d: Daemon) {
    let user = stream
        .peer_cred()
        .map_err(|e| Unknown::NoCredentials(e.to_string()))
        .and_then(|cred| d.for_uid(cred.uid()));
    match user {
        Ok(d) => serve_user(stream, d).await,
        Err(why) => {
            tracing::warn!(target: hyperverse::targets::ACCESS, %why, "control socket: connection refused");
            let _ = tokio::time::timeout(IDLE, protocol::read_request(&mut stream)).await;
            let _ = send(&mut stream, &Answer::Denied(why.to_string())).await;
        }
    }
}

/// One client's requests in, answers out, until it closes, misbehaves or
/// idles.
async fn serve_user(mut stream: UnixStream, d: Daemon) {
    // Bytes read ahead while an ask waited (see `hung_up`).
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut ahead: &[u8] = &carry;
        let read = {
            let mut from = tokio::io::AsyncReadExt::chain(&mut ahead, &mut stream);
            tokio::time::timeout(IDLE, protocol::read_request(&mut from)).await
        };
        let used = carry.len() - ahead.len();
        carry.drain(..used);
        let request = match read {
            Ok(Ok(Some(r))) => r,
            Ok(Err(e)) => {
                // Garbage or an oversized frame: say why, then close.
                let _ = send(&mut stream, &Answer::Error(e.to_string())).await;
                return;
            }
            Ok(Ok(None)) | Err(_) => return,
        };
        match request {
            Request::Events => return follow(&mut stream, &d).await,
            Request::ModuleReload { name } => {
                if !reload(&mut stream, &d, &name).await {
                    return;
                }
            }
            Request::Stop if !d.superuser => {
                let denied = Answer::Denied(format!(
                    "access denied: {} may not stop the daemon (its owner and superusers may)",
                    d.machine.visitor()
                ));
                if !send(&mut stream, &denied).await {
                    return;
                }
            }
            Request::Stop => {
                let _ = send(&mut stream, &Answer::Done).await;
                d.stop.notify_one();
                return;
            }
            request @ Request::Ask { .. } => {
                // An ask may wait long (its timeout is the client's): a
                // client that goes meanwhile takes its ask with it, rather
                // than leave this task and its socket waiting for nobody.
                let answer = tokio::select! {
                    answer = super::answer::answer(&d, request) => answer,
                    () = hung_up(&stream, &mut carry) => return,
                };
                if !send(&mut stream, &answer).await {
                    return;
                }
            }
            request => {
                let answer = super::answer::answer(&d, request).await;
                if !send(&mut stream, &answer).await {
                    return;
                }
            }
        }
    }
}

/// Resolves once the client has closed its end of the connection, both
/// ways, or has sent more than one frame ahead. Reads ahead meanwhile:
/// what the client sends (a pipelined request) is kept in `carry` for the
/// next read, up to a frame's worth; a client that sends more while its
/// request waits is not speaking the protocol (one request at a time) and
/// is let go like one that left (were it only ignored, it could pin its
/// connection for as long as a request may wait, which can be for ever).
/// A client that only shut down its writing side may still wait for its
/// answer: it is looked at again every [`HALF_CLOSED_POLL`] until it closes
/// the rest.
async fn hung_up(stream: &UnixStream, carry: &mut Vec<u8>) {
    use tokio::io::Interest;
    let mut chunk = [0u8; 4096];
    loop {
        if carry.len() > protocol::MAX_FRAME + 4 || stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => carry.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    // Its writing side is shut; the rest goes with a hang-up (EPOLLHUP),
    // which marks the socket closed for writing too.
    while !stream
        .ready(Interest::WRITABLE)
        .await
        .map_or(true, |r| r.is_write_closed())
    {
        tokio::time::sleep(HALF_CLOSED_POLL).await;
    }
}

/// Writes one answer within [`IDLE`]; false if the client is gone or does
/// not read.
async fn send(stream: &mut UnixStream, answer: &Answer) -> bool {
    tokio::time::timeout(IDLE, protocol::write_answer(stream, answer))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// A reload, its progress streamed (at most one frame per percent), then
/// its outcome. The reload goes on to the end even if the client goes: a
/// half-done reload helps no one.
async fn reload(stream: &mut UnixStream, d: &Daemon, name: &str) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut last = None;
    let progress = move |done: usize, total: usize| {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        if last != Some(percent) || done == total {
            last = Some(percent);
            let _ = tx.send((done as u64, total as u64));
        }
    };
    let work = {
        let (d, name) = (d.clone(), name.to_string());
        tokio::spawn(async move { super::answer::reload(&d, &name, progress).await })
    };
    let mut client = true;
    while let Some((done, total)) = rx.recv().await {
        if client {
            client = send(stream, &Answer::Progress { done, total }).await;
        }
    }
    let answer = work
        .await
        .unwrap_or_else(|e| Answer::Error(format!("the reload failed: {e}")));
    client && send(stream, &answer).await
}

/// Streams events to the client until it goes (or falls behind for
/// [`IDLE`]: a client that does not read is dropped, never waited for).
async fn follow(stream: &mut UnixStream, d: &Daemon) {
    use hyperverse::Event;
    use tokio::sync::broadcast::error::RecvError;
    let mut events = d.machine.events();
    let mut notes = d.notes.subscribe();
    // Subscribed: the client may count on every event from here on.
    if !send(stream, &Answer::Following).await {
        return;
    }
    let lagged = |n: u64| Answer::Event {
        what: "lagged".into(),
        point: String::new(),
        detail: format!("{n} events missed"),
    };
    // A follower has nothing more to say: what it sends is read and dropped.
    let mut ignored = Vec::new();
    loop {
        ignored.clear();
        let answer = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
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
                    if !d.machine.may(Privilege::Read, &point) {
                        continue;
                    }
                    Answer::Event {
                        what: what.to_string(),
                        point: point.to_string(),
                        detail,
                    }
                }
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return,
            },
            note = notes.recv() => match note {
                Ok(n) if !may_read_note(&d.machine, &n) => continue,
                Ok(n) => Answer::Event { what: n.what, point: n.point, detail: n.detail },
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return,
            },
            // A quiet daemon sends nothing that would find a client gone.
            () = hung_up(stream, &mut ignored) => return,
        };
        if !send(stream, &answer).await {
            return;
        }
    }
}

/// Whether a follower acting through `machine` may see the daemon's note
/// `n`: a fault's needs `read` on its particle; the rest (module loads
/// and reloads, rule changes, a killed Star) are about the whole Machine,
/// and need `read` on `ROOT`.
fn may_read_note(machine: &Machine, n: &super::state::Note) -> bool {
    let about = match hyperverse::Point::parse(&n.point) {
        Ok(point) if n.what == "fault" => point,
        _ => hyperverse::Point::root(),
    };
    machine.may(Privilege::Read, &about)
}
