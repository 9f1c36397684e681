//! The command line: what `hyperverse` accepts, as clap parses it. Its
//! own file so that the modules that carry commands out (`commands.rs`,
//! `demo`, the daemon) can take a `Command` without importing `main.rs`.

use clap::{Parser, Subcommand};

use crate::demo;

/// Hyperverse: an Erlang/OTP-style actor runtime.
///
/// Logging goes to stderr and follows `RUST_LOG` (default: warnings only,
/// with the runtime's per-crash warnings hidden because the demo reports
/// crashes itself; `RUST_LOG=warn` shows them).
#[derive(Debug, Parser)]
#[command(name = "hyperverse", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a tour of the runtime on an embedded Machine.
    ///
    /// Spawns a tree of ~1,000 particles across the Stars, sends waves from
    /// several senders while a few workers crash on purpose, hot-reloads
    /// WASM particles under load, runs a seeded fault storm on a Machine of
    /// its own, then reports what the particles, the Registry and the Stars
    /// saw. Exits with 1 if any invariant fails (a lost wave, a missing
    /// crash notice, ...).
    Demo(demo::DemoArgs),
    /// Check a daemon configuration file and print it as it will be
    /// used, every key with its value (defaults filled in); with no file,
    /// the embedded standalone default. A bad file names the key and why,
    /// and exits with 2.
    Config {
        /// The file (TOML; see examples/hyperverse.toml).
        file: Option<std::path::PathBuf>,
    },
    /// Run a Machine as this user's daemon, steered by the commands below
    /// over a control socket in the user's runtime directory
    /// ($HYPERVERSE_RUNTIME_DIR, $XDG_RUNTIME_DIR/hyperverse or
    /// ~/.hyperverse/run). At most one per user per host.
    Run {
        /// A configuration file (default: the embedded standalone one).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Start in the background: returns once the daemon is ready,
        /// its output going to daemon.log in the runtime directory.
        #[arg(long)]
        detach: bool,
    },
    /// Spawn a particle on the daemon (built-in kinds: echo, counter;
    /// `wasm:NAME` for module NAME, loaded from the module path on first
    /// use).
    Spawn {
        point: String,
        kind: String,
        #[arg(long, default_value = "")]
        args: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a particle.
    Send {
        point: String,
        method: String,
        #[arg(default_value = "")]
        body: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask a particle and print its reply.
    Ask {
        point: String,
        method: String,
        #[arg(default_value = "")]
        body: String,
        /// How long to wait, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// List the particles at or under a Point (default: all).
    Tree {
        point: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the daemon's counters.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Stop a particle and its subtree.
    Kill {
        point: String,
        #[arg(long)]
        json: bool,
    },
    /// Follow what the daemon's runtime does (spawns, crashes, restarts,
    /// stops), a line each, until the daemon stops or you press Ctrl-C.
    Events {
        #[arg(long)]
        json: bool,
    },
    /// WASM modules: list, load a file, reload live particles.
    Module {
        #[command(subcommand)]
        action: ModuleAction,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Inject a fault (the fault-injection API) into a particle or a Star.
    Fault {
        #[command(subcommand)]
        action: FaultAction,
        #[arg(long, global = true)]
        json: bool,
    },
    /// A live view of the daemon's particles (ratatui): waves/s, lane
    /// depth, restarts, status, Star and Machine, refreshed in place.
    Top {
        /// Show only this subtree (default: every particle).
        point: Option<String>,
        /// How often to ask the daemon, in milliseconds (rounded to a step
        /// of 250ms, 500ms, 1s, 2s, 5s, 10s, 30s; `+`/`-` change it live).
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Print one frame as plain text and exit (two samples an interval
        /// apart, for the rates), for scripts and logs.
        #[arg(long)]
        once: bool,
    },
    /// Stop the daemon (its owner and superusers only).
    Stop {
        #[arg(long)]
        json: bool,
    },
    /// Grant privileges on a Point or subtree to a pattern of visitors
    /// (the daemon's owner and superusers only), in force for the next
    /// wave: `hyperverse grant send,ask on 'app:**' to user=alice`.
    ///
    /// PRIVILEGES: send, ask, spawn, stop, reload, link, read or all,
    /// comma-separated. SCOPE: a Point (`app:db`), a subtree (`app:**`),
    /// every Point (`**`) or `ROOT` alone (spawning a top-level particle).
    /// VISITORS: a particle (`app:web`), a subtree (`app:web:**`),
    /// `kind=K`, `group=G`, `machine=M`, `user=U` or `*` (anyone). Quote
    /// `*` and `**` from the shell. The grant may also be one quoted word.
    Grant {
        /// PRIVILEGES on SCOPE to VISITORS.
        #[arg(required = true, num_args = 1.., value_name = "PRIVILEGES on SCOPE to VISITORS")]
        grant: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take privileges away, as `grant` gives them (what other grants
    /// give stays): `hyperverse revoke send on 'app:**' to user=alice`.
    Revoke {
        /// PRIVILEGES on SCOPE to VISITORS.
        #[arg(required = true, num_args = 1.., value_name = "PRIVILEGES on SCOPE to VISITORS")]
        grant: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The access rules in force: the policy, who you are to the daemon,
    /// every grant and every group.
    Rules {
        #[arg(long)]
        json: bool,
    },
}

/// `hyperverse module …`.
#[derive(Debug, Subcommand)]
pub enum ModuleAction {
    /// The modules loaded, and those the module path offers.
    List,
    /// Load a module file (NAME.wasm, NAME.wat or NAME@VERSION.wasm): it
    /// becomes the version new particles of `wasm:NAME` start on.
    Load { file: std::path::PathBuf },
    /// Read module NAME's file again and move its live particles to it,
    /// each keeping its state; prints each particle's outcome.
    Reload { name: String },
}

/// `hyperverse fault …`: Machine::inject and Machine::kill_star.
#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Crash a particle as if its handler failed (its Star restarts it).
    Crash {
        point: String,
        #[arg(default_value = "injected from the CLI")]
        reason: String,
    },
    /// Hold a particle's letters until `resume` (they queue meanwhile).
    Pause { point: String },
    /// Take letters again after `pause`.
    Resume { point: String },
    /// Hold each wave, with a probability, for min..=max milliseconds.
    Delay {
        point: String,
        #[arg(long, default_value_t = 10)]
        min_ms: u64,
        #[arg(long, default_value_t = 100)]
        max_ms: u64,
        #[arg(long, default_value_t = 1.0)]
        probability: f64,
    },
    /// Discard each wave with a probability (a dropped ask times out).
    Drop {
        point: String,
        #[arg(long, default_value_t = 1.0)]
        probability: f64,
    },
    /// Make the particle's next start fail (then crash it to see it).
    FailStart {
        point: String,
        #[arg(default_value = "injected start failure")]
        reason: String,
    },
    /// Remove delays, drops and a pause.
    Heal { point: String },
    /// Kill a Star: its particles crash with it, and it restarts.
    KillStar { star: usize },
}
