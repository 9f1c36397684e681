//! The control protocol: each request and each answer is a wave in the
//! project's own encoding (`Wave::to_bytes`: a version byte, then bincode
//! 2), behind a u32 length; the wave's method is the protocol's version
//! ([`PROTOCOL`]) and the command's name, and its body carries the
//! command's fields. Bounded: a frame over [`MAX_FRAME`] closes the
//! connection.
//!
//! Versioned: a wave whose method does not start with this side's
//! [`PROTOCOL`] is refused before its body is decoded, so a client and a
//! daemon of different releases say so instead of misreading each other's
//! fields. (The refusal itself is an [`Answer::Error`] of the daemon's
//! version, which the other side refuses in turn, by its method: either
//! way, the user reads which versions met.)

use hyperverse::{Point, Wave};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A Point given on the command line, parsed before anything is sent.
///
/// # Errors
///
/// Readable text naming the text and what is wrong with it.
pub fn parse_point(text: &str) -> Result<Point, String> {
    Point::parse(text).map_err(|e| format!("bad point `{text}`: {e}"))
}

/// The protocol's name and version, first in every wave's method. Bump the
/// number whenever `Request` or `Answer` changes shape.
pub const PROTOCOL: &str = "hv-control/2";

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// The longest grant text either side takes: a grant is three short
/// words and a privilege list; more is not a grant (and echoing it back in
/// an error would only cost the frame).
pub const MAX_GRANT: usize = 4096;

/// What a client asks of the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Spawn a particle.
    Spawn {
        point: Point,
        kind: String,
        args: Vec<u8>,
    },
    /// Signal a particle.
    Send {
        point: Point,
        method: String,
        body: Vec<u8>,
    },
    /// Ask a particle and wait for its answer.
    Ask {
        point: Point,
        method: String,
        body: Vec<u8>,
        timeout_ms: u64,
    },
    /// The particles at or under a Point (root: all).
    Tree { under: Point },
    /// Counters.
    Stats,
    /// Stop the particle and its subtree.
    Kill { point: Point },
    /// Follow what the runtime does (spawns, crashes, restarts, stops):
    /// answered by one [`Answer::Event`] per event until the client goes.
    Events,
    /// The modules the daemon knows: loaded, or found in its search path.
    ModuleList,
    /// Load a module file (`.wasm` or `.wat`; name from the file's stem):
    /// it becomes the version new particles start on.
    ModuleLoad { path: std::path::PathBuf },
    /// Read a module's file again and move its live particles to it:
    /// answered by [`Answer::Progress`] while particles answer, then
    /// [`Answer::Reloaded`].
    ModuleReload { name: String },
    /// Inject a fault (see [`FaultSpec`]).
    Fault(FaultSpec),
    /// Stop the daemon.
    Stop,
    /// Add a grant, given as its text (`PRIVILEGES on SCOPE to VISITORS`):
    /// text, not the runtime's `Grant`, so the daemon parses (and so
    /// checks) what a client sends like any other field it is given.
    Grant { grant: String },
    /// Take a grant's privileges away, as [`Request::Grant`] gives them.
    Revoke { grant: String },
    /// The access rules in force: answered by [`Answer::Rules`].
    Rules,
}

/// A fault to inject, as the CLI's `fault` command gives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum FaultSpec {
    /// Crash the particle as if its handler failed with this reason.
    Crash { point: Point, reason: String },
    /// Hold its letters until `Resume`.
    Pause { point: Point },
    /// Take letters again.
    Resume { point: Point },
    /// Hold each wave with `probability` for `min_ms..=max_ms`.
    Delay {
        point: Point,
        min_ms: u64,
        max_ms: u64,
        probability: f64,
    },
    /// Discard each wave with `probability`.
    Drop { point: Point, probability: f64 },
    /// Its next start fails with this reason.
    FailStart { point: Point, reason: String },
    /// Remove delays, drops and a pause.
    Heal { point: Point },
    /// Kill a Star: its particles crash with it.
    KillStar { star: usize },
}

impl Request {
    /// The command's name, as the wave's method carries it after [`PROTOCOL`].
    pub fn method(&self) -> &'static str {
        match self {
            Request::Spawn { .. } => "spawn",
            Request::Send { .. } => "send",
            Request::Ask { .. } => "ask",
            Request::Tree { .. } => "tree",
            Request::Stats => "stats",
            Request::Kill { .. } => "kill",
            Request::Events => "events",
            Request::ModuleList => "module.list",
            Request::ModuleLoad { .. } => "module.load",
            Request::ModuleReload { .. } => "module.reload",
            Request::Fault(_) => "fault",
            Request::Stop => "stop",
            Request::Grant { .. } => "grant",
            Request::Revoke { .. } => "revoke",
            Request::Rules => "rules",
        }
    }
}

/// One particle in a `tree` answer (what `hyperverse top` samples).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub point: String,
    pub kind: String,
    /// The Machine it lives on (the daemon's cluster name, or `local`).
    pub machine: String,
    pub star: usize,
    pub status: String,
    pub restarts: u32,
    /// The version of the code it runs (a WASM module's load sequence; 0
    /// for Rust particles).
    pub version: u64,
    /// Letters waiting in its lane.
    pub queued: u64,
    /// Letters its task has taken off its lane, in all (sample twice for
    /// a rate).
    pub taken: u64,
}

/// One module in a `module` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModuleRow {
    pub name: String,
    /// The current version's load sequence (0: found on disk, not loaded).
    pub seq: u64,
    /// The current version's content hash, short (empty if not loaded).
    pub hash: String,
    /// The version its file name gives (`NAME@LABEL.wasm`), if any.
    pub label: String,
    /// The file it comes from.
    pub file: String,
    /// Live particles running it.
    pub live: u64,
}

/// One particle's outcome in a reload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReloadRow {
    pub point: String,
    /// `reloaded`, `current`, `failed` or `gone`.
    pub outcome: String,
    /// Why it failed (empty otherwise).
    pub reason: String,
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    /// Refused, with why.
    Error(String),
    /// Done, nothing to say.
    Done,
    /// An ask's reply.
    Reply(Vec<u8>),
    /// A tree.
    Tree(Vec<Row>),
    /// Counters: (name, value).
    Stats(Vec<(String, u64)>),
    /// The daemon follows its events for this client from now on.
    Following,
    /// One event, followed: what happened, to which Point, and a detail.
    Event {
        what: String,
        point: String,
        detail: String,
    },
    /// Modules.
    Modules(Vec<ModuleRow>),
    /// A module was loaded (this version is current).
    Loaded(ModuleRow),
    /// A reload under way: particles dealt with so far, of all.
    Progress { done: u64, total: u64 },
    /// A reload done: the version before and after, whether it rolled
    /// back, and each particle's outcome.
    Reloaded {
        module: ModuleRow,
        previous: u64,
        /// The version reloaded to (current unless rolled back).
        to: u64,
        rolled_back: bool,
        particles: Vec<ReloadRow>,
    },
    /// Refused by the access rules (or the connection's user is unknown),
    /// with why: `access denied: user=alice may not stop app:db`. Its own
    /// variant so the client can exit with its own code.
    Denied(String),
    /// The access rules: the Machine's policy, who the asking connection
    /// acts as, every grant and every group (name, members), as text.
    Rules {
        policy: String,
        you: String,
        grants: Vec<String>,
        groups: Vec<(String, Vec<String>)>,
    },
}

fn cli() -> Point {
    Point::parse("cli").unwrap_or_else(|_| Point::root())
}

fn daemon() -> Point {
    Point::parse("daemon").unwrap_or_else(|_| Point::root())
}

fn encode<T: Serialize>(kind_request: bool, method: &str, v: &T) -> std::io::Result<Vec<u8>> {
    let body = hyperverse::Body::encode(v).map_err(std::io::Error::other)?;
    let method = format!("{PROTOCOL} {method}");
    let wave = if kind_request {
        Wave::request(cli(), daemon(), method, body)
    } else {
        Wave::signal(daemon(), cli(), method, body)
    };
    wave.to_bytes()
        .map(|b| b.to_vec())
        .map_err(std::io::Error::other)
}

/// Writes one frame.
///
/// # Errors
///
/// The connection's, or an encoding that fails.
pub async fn write_request(w: &mut (impl AsyncWrite + Unpin), r: &Request) -> std::io::Result<()> {
    write_frame(w, &encode(true, r.method(), r)?).await
}

/// Writes one answer; one over [`MAX_FRAME`] becomes an
/// [`Answer::Error`] that says so.
///
/// # Errors
///
/// As [`write_request`].
pub async fn write_answer(w: &mut (impl AsyncWrite + Unpin), a: &Answer) -> std::io::Result<()> {
    let mut bytes = encode(false, "answer", a)?;
    if bytes.len() > MAX_FRAME {
        // The client would refuse the frame unread: say why instead.
        let what = match a {
            Answer::Tree(_) => ": ask for a subtree (`hyperverse tree POINT`)",
            Answer::Reloaded { .. } => {
                ": the reload itself is done (`hyperverse module list` shows the version)"
            }
            _ => "",
        };
        let why = format!(
            "the answer is {} bytes, over the protocol's limit of {MAX_FRAME}{what}",
            bytes.len()
        );
        bytes = encode(false, "answer", &Answer::Error(why))?;
    }
    write_frame(w, &bytes).await
}

async fn write_frame(w: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    if bytes.len() > MAX_FRAME {
        return Err(invalid(format!(
            "a frame of {} bytes, over the {MAX_FRAME} the other side accepts",
            bytes.len()
        )));
    }
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    w.write_all(&len.to_le_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await
}

/// Reads one frame's wave body as `T`; `Ok(None)` at a clean end.
///
/// # Errors
///
/// `InvalidData` for a frame over [`MAX_FRAME`], bytes that are not a
/// wave of this protocol's version, or a body that is not a `T`; the
/// connection's own errors.
pub async fn read<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<T>> {
    match read_wave(r).await? {
        Some(wave) => decode(&wave).map(Some),
        None => Ok(None),
    }
}

/// Reads one request: as [`read`], and the wave must be a request whose
/// method names the command its body carries (a wave that says `stop` and
/// carries another command is refused, not obeyed either way).
///
/// # Errors
///
/// As [`read`], and `InvalidData` for a signal or a method that is not
/// its body's command.
pub async fn read_request(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Request>> {
    let Some(wave) = read_wave(r).await? else {
        return Ok(None);
    };
    let request: Request = decode(&wave)?;
    let said = wave.method.split_once(' ').map_or("", |(_, m)| m);
    if wave.kind != hyperverse::WaveKind::Request || said != request.method() {
        return Err(invalid(format!(
            "a {:?} wave whose method `{}` is not its body's command `{}`",
            wave.kind,
            said.chars().take(40).collect::<String>(),
            request.method()
        )));
    }
    Ok(Some(request))
}

fn invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

fn decode<T: for<'de> Deserialize<'de>>(wave: &Wave) -> std::io::Result<T> {
    wave.body.decode().map_err(|e| invalid(e.to_string()))
}

/// One frame's wave, of this protocol's version; `Ok(None)` at a clean end
/// (between frames: a connection cut inside a length prefix is an error).
async fn read_wave(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Wave>> {
    let mut len = [0u8; 4];
    let first = r.read(&mut len[..1]).await?;
    if first == 0 {
        return Ok(None);
    }
    r.read_exact(&mut len[1..]).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(invalid(format!(
            "a frame of {len} bytes (the most is {MAX_FRAME})"
        )));
    }
    // Grown as bytes arrive, not reserved for the length a client claims:
    // a client that claims 1 MiB and sends nothing pins nothing.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    (&mut *r).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the connection ended {} bytes into a frame of {len}",
                buf.len()
            ),
        ));
    }
    let wave = Wave::from_bytes(&buf).map_err(|e| invalid(e.to_string()))?;
    let speaks = wave.method.split(' ').next().unwrap_or_default();
    if speaks != PROTOCOL {
        return Err(invalid(format!(
            "the other side speaks `{}`, this one `{PROTOCOL}`: use a client and daemon of the same release",
            speaks.chars().take(40).collect::<String>()
        )));
    }
    Ok(Some(wave))
}
