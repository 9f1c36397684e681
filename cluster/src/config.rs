//! A clustered Machine's settings: its name, where it listens, the shared
//! secret, the peers it starts from, and how long a silent peer is waited
//! for before it is declared lost.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How long a Machine whose session dropped is waited for (its waves kept
/// for resending) before it is declared lost, unless configured.
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(3);

/// How a clustered Machine joins the cluster.
///
/// ```
/// use hyperverse_cluster::ClusterConfig;
///
/// let config = ClusterConfig::from_toml(r#"
///     name = "alpha"
///     listen = "127.0.0.1:7101"
///     secret = "s3cret"
///     seeds = ["127.0.0.1:7102"]
///     lost_after_ms = 1500
/// "#).unwrap();
/// assert_eq!(config.name, "alpha");
/// assert_eq!(config.seeds.len(), 1);
/// assert!(ClusterConfig::from_toml("name = 'x y'").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The Machine's name, unique in the cluster: a Point segment
    /// (`[A-Za-z0-9_.-]`, 1 to 64 characters).
    pub name: String,
    /// Host and port to listen on (`127.0.0.1:7101`).
    pub listen: String,
    /// The shared secret (ractor_cluster's cookie): a peer without it is
    /// refused.
    pub secret: String,
    /// Peers to connect to at start (`host:port`); others are learnt as
    /// they connect.
    pub seeds: Vec<String>,
    /// How long a peer whose session dropped is waited for before it is
    /// declared lost.
    pub lost_after: Duration,
    /// TLS, or plain TCP when `None`.
    pub tls: Option<TlsFiles>,
    /// Whether to dial again, when their session drops, Machines that
    /// dialled this one (on by default; off where only one side can reach
    /// the other, behind a NAT or a proxy).
    pub dial_back: bool,
}

/// Certificate files for TLS between Machines (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TlsFiles {
    /// This Machine's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The authority that signs every Machine's certificate: a peer whose
    /// certificate it did not sign is refused.
    pub ca: PathBuf,
}

/// Why a cluster configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML of the expected shape.
    #[error("bad cluster config: {0}")]
    Parse(#[from] toml::de::Error),
    /// A field holds a value that cannot work.
    #[error("bad cluster config field `{field}`: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    listen: String,
    secret: String,
    #[serde(default)]
    seeds: Vec<String>,
    lost_after_ms: Option<u64>,
    tls: Option<TlsFiles>,
    dial_back: Option<bool>,
}

impl ClusterConfig {
    /// A plain-TCP config with no seeds and the default loss timeout.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Field`] for a name that is not a Point segment, a
    /// listen address without a port, or an empty secret.
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let config = ClusterConfig {
            name: name.into(),
            listen: listen.into(),
            secret: secret.into(),
            seeds: Vec::new(),
            lost_after: DEFAULT_LOST_AFTER,
            tls: None,
            dial_back: true,
        };
        config.check()?;
        Ok(config)
    }

    /// Adds a seed peer.
    pub fn seed(mut self, addr: impl Into<String>) -> Self {
        self.seeds.push(addr.into());
        self
    }

    /// Sets how long a dropped peer is waited for.
    pub fn lost_after(mut self, after: Duration) -> Self {
        self.lost_after = after;
        self
    }

    /// Whether to dial back Machines that dialled this one.
    pub fn dial_back(mut self, on: bool) -> Self {
        self.dial_back = on;
        self
    }

    /// Turns TLS on with these files.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Parses a TOML config (the daemon's file format).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for bad TOML or unknown fields,
    /// [`ConfigError::Field`] as for [`ClusterConfig::new`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let f: File = toml::from_str(text)?;
        let config = ClusterConfig {
            name: f.name,
            listen: f.listen,
            secret: f.secret,
            seeds: f.seeds,
            lost_after: f
                .lost_after_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_LOST_AFTER),
            tls: f.tls,
            dial_back: f.dial_back.unwrap_or(true),
        };
        config.check()?;
        Ok(config)
    }

    /// Reads and parses a TOML config file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`], and as [`ClusterConfig::from_toml`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// The port this Machine listens on.
    pub(crate) fn port(&self) -> u16 {
        split_addr(&self.listen).map(|(_, p)| p).unwrap_or(0)
    }

    /// The host this Machine listens on.
    pub(crate) fn host(&self) -> &str {
        split_addr(&self.listen).map(|(h, _)| h).unwrap_or("")
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if hyperverse_runtime::Point::parse(&self.name)
            .map(|p| p.depth() != 1)
            .unwrap_or(true)
        {
            return Err(ConfigError::Field {
                field: "name",
                reason: format!("`{}` is not one Point segment", self.name),
            });
        }
        for (field, addr) in
            std::iter::once(("listen", &self.listen)).chain(self.seeds.iter().map(|s| ("seeds", s)))
        {
            if split_addr(addr).is_none() {
                return Err(ConfigError::Field {
                    field,
                    reason: format!("`{addr}` is not host:port"),
                });
            }
        }
        if self.secret.is_empty() {
            return Err(ConfigError::Field {
                field: "secret",
                reason: "empty".into(),
            });
        }
        if self.lost_after.is_zero() {
            return Err(ConfigError::Field {
                field: "lost_after_ms",
                reason: "zero".into(),
            });
        }
        Ok(())
    }
}

/// `host:port` split, the port parsed.
pub(crate) fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_typed_errors() {
        assert!(matches!(
            ClusterConfig::new("a:b", "127.0.0.1:1", "s"),
            Err(ConfigError::Field { field: "name", .. })
        ));
        assert!(matches!(
            ClusterConfig::new("a", "127.0.0.1", "s"),
            Err(ConfigError::Field {
                field: "listen",
                ..
            })
        ));
        assert!(matches!(
            ClusterConfig::new("a", "127.0.0.1:9", ""),
            Err(ConfigError::Field {
                field: "secret",
                ..
            })
        ));
        assert!(matches!(
            ClusterConfig::from_toml("name='a'\nlisten='h:1'\nsecret='s'\nport=3"),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            ClusterConfig::from_toml("name='a'\nlisten='h:1'\nsecret='s'\nseeds=['nope']"),
            Err(ConfigError::Field { field: "seeds", .. })
        ));
        assert!(matches!(
            ClusterConfig::from_file("/nonexistent/hv.toml"),
            Err(ConfigError::Read { .. })
        ));
        let ok = ClusterConfig::new("a", "127.0.0.1:9", "s").unwrap();
        assert_eq!((ok.host(), ok.port()), ("127.0.0.1", 9));
    }
}
