//! The daemon's configuration file (`hyperverse.toml`): what `hyperverse
//! run --config FILE` reads, and `hyperverse config FILE` checks.
//!
//! Every key has a default; a file sets only what it changes. A bad file
//! is refused whole, with the file, the key and why: a daemon never starts
//! half-configured. `examples/hyperverse.toml` lists every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyperverse::cluster::ClusterConfig;
use hyperverse::modules::Limits;
use serde::Deserialize;

pub use crate::access_config::AccessConfig;

/// A daemon's settings, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Stars (default: one per core).
    pub stars: usize,
    /// How long an `ask` waits unless told otherwise.
    pub request_timeout: Duration,
    /// Restarts allowed within `restart_period` before a Star gives up.
    pub max_restarts: u32,
    /// The restart window.
    pub restart_period: Duration,
    /// Folders searched for `NAME.wasm` and `NAME.wat` modules, in order
    /// (relative ones are relative to the config file).
    pub module_path: Vec<PathBuf>,
    /// Reload a module when its file changes.
    pub watch_modules: bool,
    /// What one guest call may consume.
    pub wasm: Limits,
    /// Where Prometheus metrics are served (none: not served).
    pub metrics: Option<SocketAddr>,
    /// The cluster to join (none: standalone).
    pub cluster: Option<ClusterConfig>,
    /// Who may use the control socket, as whom, and the access rules
    /// (`[access]`).
    pub access: AccessConfig,
}

/// Why a configuration was refused: where, which key, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {reason}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default(), if key.is_empty() { String::new() } else { format!("key `{key}`") })]
pub struct ConfigError {
    /// The file, when read from one.
    pub file: Option<PathBuf>,
    /// The key (`wasm.fuel_per_call`), or empty for the whole file.
    pub key: String,
    /// Why.
    pub reason: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    stars: Option<i64>,
    request_timeout_ms: Option<u64>,
    restart: Option<Restart>,
    modules: Option<Modules>,
    wasm: Option<Wasm>,
    metrics: Option<Metrics>,
    cluster: Option<toml::Table>,
    access: Option<crate::access_config::File>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restart {
    max_restarts: Option<u32>,
    period_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Modules {
    path: Option<Vec<PathBuf>>,
    watch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wasm {
    fuel_per_call: Option<u64>,
    max_memory_pages: Option<u32>,
    max_table_elements: Option<u32>,
    stack_bytes: Option<usize>,
    max_output_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metrics {
    listen: String,
}

impl Default for DaemonConfig {
    /// The embedded standalone default: what `hyperverse run` uses with no
    /// file.
    fn default() -> Self {
        let limit = hyperverse::RestartLimit::default();
        DaemonConfig {
            stars: std::thread::available_parallelism().map_or(1, |n| n.get()),
            request_timeout: hyperverse::DEFAULT_REQUEST_TIMEOUT,
            max_restarts: limit.max_restarts,
            restart_period: limit.period,
            module_path: vec![PathBuf::from("modules")],
            watch_modules: false,
            wasm: Limits::default(),
            metrics: None,
            cluster: None,
            access: AccessConfig::default(),
        }
    }
}

pub(crate) fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        file: None,
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl DaemonConfig {
    /// Reads and checks a configuration file.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, and the key where there is one.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            key: String::new(),
            reason: format!("cannot read it: {e}"),
        })?;
        let mut c = Self::from_toml(&text).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            ..e
        })?;
        // A relative module folder is relative to the file that names it,
        // not to wherever the daemon happens to be started from.
        if let Some(base) = path.parent() {
            for dir in &mut c.module_path {
                if dir.is_relative() {
                    *dir = base.join(&*dir);
                }
            }
        }
        Ok(c)
    }

    /// Parses and checks a configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`]: bad TOML, an unknown key, or a value that cannot
    /// work (its key named).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let f: File = toml::from_str(text).map_err(|e| bad("", e.message().to_string()))?;
        let mut c = DaemonConfig::default();
        if let Some(stars) = f.stars {
            c.stars = usize::try_from(stars)
                .ok()
                .filter(|s| (1..=1024).contains(s))
                .ok_or_else(|| bad("stars", format!("{stars}: from 1 to 1024")))?;
        }
        if let Some(ms) = f.request_timeout_ms {
            if ms == 0 {
                return Err(bad(
                    "request_timeout_ms",
                    "0: a request could never be answered",
                ));
            }
            c.request_timeout = Duration::from_millis(ms);
        }
        if let Some(r) = f.restart {
            c.max_restarts = r.max_restarts.unwrap_or(c.max_restarts);
            if let Some(ms) = r.period_ms {
                if ms == 0 {
                    return Err(bad(
                        "restart.period_ms",
                        "0: OTP requires a period of at least one unit",
                    ));
                }
                c.restart_period = Duration::from_millis(ms);
            }
        }
        if let Some(m) = f.modules {
            if let Some(path) = m.path {
                if path.is_empty() {
                    return Err(bad("modules.path", "empty: no folder to load modules from"));
                }
                c.module_path = path;
            }
            c.watch_modules = m.watch.unwrap_or(false);
        }
        if let Some(w) = f.wasm {
            let l = &mut c.wasm;
            if let Some(fuel) = w.fuel_per_call {
                if fuel == 0 || fuel > i64::MAX as u64 {
                    return Err(bad(
                        "wasm.fuel_per_call",
                        format!("{fuel}: from 1 to {}", i64::MAX),
                    ));
                }
                l.fuel_per_call = fuel;
            }
            if let Some(p) = w.max_memory_pages {
                if p == 0 || p > hyperverse::modules::MAX_PAGES {
                    return Err(bad(
                        "wasm.max_memory_pages",
                        format!("{p}: from 1 to {}", hyperverse::modules::MAX_PAGES),
                    ));
                }
                l.max_memory_pages = p;
            }
            if let Some(t) = w.max_table_elements {
                if t > hyperverse::modules::MAX_TABLE_ELEMENTS {
                    return Err(bad(
                        "wasm.max_table_elements",
                        format!("{t}: at most {}", hyperverse::modules::MAX_TABLE_ELEMENTS),
                    ));
                }
                l.max_table_elements = t;
            }
            if let Some(s) = w.stack_bytes {
                let (lo, hi) = (
                    hyperverse::modules::MIN_STACK_BYTES,
                    hyperverse::modules::MAX_STACK_BYTES,
                );
                if !(lo..=hi).contains(&s) {
                    return Err(bad("wasm.stack_bytes", format!("{s}: from {lo} to {hi}")));
                }
                l.stack_bytes = s;
            }
            if let Some(o) = w.max_output_bytes {
                if o == 0 {
                    return Err(bad(
                        "wasm.max_output_bytes",
                        "0: a guest could not answer at all",
                    ));
                }
                l.max_output_bytes = o;
            }
        }
        if let Some(m) = f.metrics {
            c.metrics = Some(
                m.listen
                    .parse()
                    .map_err(|e| bad("metrics.listen", format!("`{}`: {e}", m.listen)))?,
            );
        }
        if let Some(table) = f.cluster {
            let text = toml::to_string(&table).map_err(|e| bad("cluster", e.to_string()))?;
            c.cluster =
                Some(ClusterConfig::from_toml(&text).map_err(|e| bad("cluster", e.to_string()))?);
        }
        if let Some(a) = f.access {
            c.access = AccessConfig::from_file(a)?;
        }
        Ok(c)
    }

    /// The configuration as a file: every key, with the value in force.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "stars = {}\nrequest_timeout_ms = {}\n\n[restart]\nmax_restarts = {}\nperiod_ms = {}\n\n[modules]\npath = [{}]\nwatch = {}\n\n[wasm]\nfuel_per_call = {}\nmax_memory_pages = {}\nmax_table_elements = {}\nstack_bytes = {}\nmax_output_bytes = {}\n",
            self.stars,
            self.request_timeout.as_millis(),
            self.max_restarts,
            self.restart_period.as_millis(),
            self.module_path
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            self.watch_modules,
            self.wasm.fuel_per_call,
            self.wasm.max_memory_pages,
            self.wasm.max_table_elements,
            self.wasm.stack_bytes,
            self.wasm.max_output_bytes,
        );
        if let Some(m) = self.metrics {
            out.push_str(&format!("\n[metrics]\nlisten = \"{m}\"\n"));
        }
        if let Some(c) = &self.cluster {
            out.push_str(&format!(
                "\n[cluster]\nname = {:?}\nlisten = {:?}\nsecret = \"(set)\"\nseeds = {:?}\nlost_after_ms = {}\ndial_back = {}\n",
                c.name,
                c.listen,
                c.seeds,
                c.lost_after.as_millis(),
                c.dial_back
            ));
            if let Some(t) = &c.tls {
                out.push_str(&format!(
                    "\n[cluster.tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
                    t.cert.display().to_string(),
                    t.key.display().to_string(),
                    t.ca.display().to_string()
                ));
            }
        }
        out.push('\n');
        out.push_str(&self.access.to_toml());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_prints_back_to_itself() {
        let c = DaemonConfig::from_toml(include_str!("../../examples/hyperverse.toml")).unwrap();
        assert_eq!(c.stars, 4);
        assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.cluster.as_ref().map(|c| c.name.as_str()), Some("alpha"));
        // What it prints is a file that reads back the same (the secret
        // aside: it is not printed).
        let mut again = DaemonConfig::from_toml(&c.to_toml().replace("(set)", "x")).unwrap();
        if let (Some(a), Some(b)) = (again.cluster.as_mut(), c.cluster.as_ref()) {
            a.secret = b.secret.clone();
        }
        assert_eq!(again, c);
        // No file at all: the defaults.
        assert_eq!(
            DaemonConfig::from_toml("").unwrap(),
            DaemonConfig::default()
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_its_key_and_why() {
        let cases = [
            ("stars = 0", "stars"),
            ("stars = -3", "stars"),
            ("request_timeout_ms = 0", "request_timeout_ms"),
            ("[restart]\nperiod_ms = 0", "restart.period_ms"),
            ("[modules]\npath = []", "modules.path"),
            ("[wasm]\nfuel_per_call = 0", "wasm.fuel_per_call"),
            ("[wasm]\nmax_memory_pages = 70000", "wasm.max_memory_pages"),
            ("[wasm]\nstack_bytes = 1", "wasm.stack_bytes"),
            ("[metrics]\nlisten = \"nowhere\"", "metrics.listen"),
            (
                "[cluster]\nname = \"a b\"\nlisten = \"h:1\"\nsecret = \"s\"",
                "cluster",
            ),
        ];
        for (text, key) in cases {
            let e = DaemonConfig::from_toml(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(!e.reason.is_empty());
        }
        // Unknown keys and bad TOML: the whole file, with the name of what
        // was wrong.
        let e = DaemonConfig::from_toml("starz = 2").unwrap_err();
        assert!(e.reason.contains("starz"), "{e}");
        assert!(DaemonConfig::from_toml("stars = ").is_err());
        let e = DaemonConfig::from_file(Path::new("/nonexistent/hyperverse.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/hyperverse.toml: "),
            "{e}"
        );
    }
}
