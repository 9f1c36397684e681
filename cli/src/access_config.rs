//! The daemon configuration's `[access]` table: the Machine's access
//! policy, the CLI users the control socket knows (by the uid the kernel
//! gives for a connection's peer, never by anything the client says), who
//! of them are superusers, and the grants and groups the Machine starts
//! with.
//!
//! ```toml
//! [access]
//! policy = "enforced"                  # or "open" (the default)
//! owner = 1000                         # default: the uid the daemon runs as
//! users = { alice = 1001, bob = 1002 } # user name = uid
//! superusers = ["bob"]                 # besides the owner
//! default_user = "guest"               # unknown uids act as this user (default: refused)
//! shared_socket = true                 # let other uids reach the socket (default: false)
//! grants = ["send,ask on app:** to user=alice", "spawn on ROOT to group=ops"]
//! groups = { ops = ["user=alice", "user=bob"] }
//! ```
//!
//! Users are named by `name = uid` because a grant names users
//! (`to user=alice`): the name is what an admin writes everywhere else.

use std::collections::BTreeMap;

use hyperverse::access::{AccessPolicy, Grant, Visitors};
use serde::Deserialize;

use crate::config::{bad, ConfigError};

/// The name the owner acts as when `users` gives its uid no name.
pub const OWNER: &str = "owner";

/// `[access]`, checked, defaults filled in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessConfig {
    /// What visitors without ownership or a grant may do.
    pub policy: AccessPolicy,
    /// The owner's uid: a superuser. `None`: the uid the daemon runs as.
    pub owner: Option<u32>,
    /// CLI users: name → uid (each uid at most once).
    pub users: BTreeMap<String, u32>,
    /// Users who are superusers besides the owner (each one of `users`).
    pub superusers: Vec<String>,
    /// What a connection from a uid `users` does not name acts as; `None`:
    /// such a connection is refused.
    pub default_user: Option<String>,
    /// Whether uids other than the daemon's may reach the control socket
    /// (directory 0711 and socket 0666 instead of 0700 and 0600). Only
    /// `users` (and `default_user`) are then served.
    pub shared_socket: bool,
    /// Grants in force when the daemon starts.
    pub grants: Vec<Grant>,
    /// Groups when the daemon starts: name → members.
    pub groups: BTreeMap<String, Vec<Visitors>>,
}

/// `[access]` as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    policy: Option<String>,
    owner: Option<i64>,
    users: Option<BTreeMap<String, i64>>,
    superusers: Option<Vec<String>>,
    default_user: Option<String>,
    shared_socket: Option<bool>,
    grants: Option<Vec<String>>,
    groups: Option<BTreeMap<String, Vec<String>>>,
}

/// A user's (or group's) name: what a grant can name, so no spaces (a
/// grant is split on them), no `=` or `,`, 1 to 64 bytes.
///
/// # Errors
///
/// Why not, as text.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-.@".contains(c);
    if name.is_empty() || name.len() > 64 {
        return Err(format!("`{name}`: a name is 1 to 64 bytes"));
    }
    if let Some(c) = name.chars().find(|c| !ok(*c)) {
        return Err(format!(
            "`{name}`: {c:?} is not allowed in a name (letters, digits, _ - . @)"
        ));
    }
    Ok(())
}

/// Whether the users and groups `grant` names are names a config can
/// give (see [`check_name`]): the runtime takes any 1 to 255 bytes, but a
/// grant to a user no config can name (`user=é\u{202e}`) is a mistake or
/// a trick.
///
/// # Errors
///
/// Why not, as text.
pub fn check_grant_names(grant: &Grant) -> Result<(), String> {
    match &grant.to {
        Visitors::User(name) | Visitors::Group(name) => check_name(name),
        _ => Ok(()),
    }
}

fn uid(key: &str, value: i64) -> Result<u32, ConfigError> {
    u32::try_from(value)
        .ok()
        .filter(|u| *u != u32::MAX)
        .ok_or_else(|| bad(key, format!("{value}: a uid is from 0 to {}", u32::MAX - 1)))
}

impl AccessConfig {
    /// Checks `[access]` as read from the file.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the key (`access.grants[1]`,
    /// `access.users.alice`) and why.
    pub(crate) fn from_file(f: File) -> Result<Self, ConfigError> {
        let mut c = AccessConfig {
            policy: policy(f.policy.as_deref())?,
            shared_socket: f.shared_socket.unwrap_or(false),
            ..AccessConfig::default()
        };
        if let Some(owner) = f.owner {
            c.owner = Some(uid("access.owner", owner)?);
        }
        c.users = users(f.users.unwrap_or_default())?;
        for (i, name) in f.superusers.unwrap_or_default().into_iter().enumerate() {
            let key = format!("access.superusers[{i}]");
            if name != OWNER && !c.users.contains_key(&name) {
                return Err(bad(&key, format!("`{name}` is not one of access.users")));
            }
            c.superusers.push(name);
        }
        if let Some(name) = f.default_user {
            check_name(&name).map_err(|e| bad("access.default_user", e))?;
            if name == OWNER || c.superusers.contains(&name) {
                return Err(bad(
                    "access.default_user",
                    format!("`{name}` is a superuser: every unknown uid would be one"),
                ));
            }
            c.default_user = Some(name);
        }
        for (i, text) in f.grants.unwrap_or_default().iter().enumerate() {
            let key = format!("access.grants[{i}]");
            let grant = text
                .parse::<Grant>()
                .map_err(|e| bad(&key, e.to_string()))?;
            check_grant_names(&grant).map_err(|e| bad(&key, e))?;
            c.grants.push(grant);
        }
        for (name, members) in f.groups.unwrap_or_default() {
            let key = format!("access.groups.{name}");
            check_name(&name).map_err(|e| bad(&key, e))?;
            let members = members
                .iter()
                .map(|m| member(m).map_err(|e| bad(&key, e)))
                .collect::<Result<Vec<_>, _>>()?;
            c.groups.insert(name, members);
        }
        Ok(c)
    }

    /// The owner's uid: `owner`, else `daemon_uid` (the uid the daemon
    /// runs as).
    pub fn owner_uid(&self, daemon_uid: u32) -> u32 {
        self.owner.unwrap_or(daemon_uid)
    }

    /// The name the owner acts as: its uid's in `users`, else [`OWNER`].
    pub fn owner_name(&self, owner_uid: u32) -> &str {
        self.users
            .iter()
            .find(|(_, u)| **u == owner_uid)
            .map_or(OWNER, |(n, _)| n.as_str())
    }

    /// The superusers' names: the owner's, then `superusers`.
    pub fn superuser_names(&self, owner_uid: u32) -> Vec<String> {
        let mut names = vec![self.owner_name(owner_uid).to_string()];
        for s in &self.superusers {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        names
    }

    /// Checks what only the owner's uid tells: a user named [`OWNER`]
    /// whose uid is not the owner's would act as the owner.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] on `access.users`.
    pub fn check_owner(&self, owner_uid: u32) -> Result<(), ConfigError> {
        match self.users.get(OWNER) {
            Some(u) if *u != owner_uid => Err(bad(
                &format!("access.users.{OWNER}"),
                format!(
                    "`{OWNER}` is the owner's name (uid {owner_uid}), not uid {u}'s: choose another name"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `[access]` as a file: every key, with the value in force.
    pub fn to_toml(&self) -> String {
        let quoted = |s: &str| format!("{s:?}");
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        let mut out = format!(
            "[access]\npolicy = \"{}\"\n",
            match self.policy {
                AccessPolicy::Enforced => "enforced",
                _ => "open",
            }
        );
        match self.owner {
            Some(u) => out.push_str(&format!("owner = {u}\n")),
            None => out.push_str("# owner: the uid the daemon runs as\n"),
        }
        let users: Vec<String> = self
            .users
            .iter()
            .map(|(n, u)| format!("{} = {u}", quoted(n)))
            .collect();
        out.push_str(&format!("users = {{ {} }}\n", users.join(", ")));
        out.push_str(&format!(
            "superusers = {}\n",
            list(self.superusers.iter().map(|s| quoted(s)).collect())
        ));
        match &self.default_user {
            Some(u) => out.push_str(&format!("default_user = {}\n", quoted(u))),
            None => {
                out.push_str("# default_user: none (connections from other uids are refused)\n")
            }
        }
        out.push_str(&format!("shared_socket = {}\n", self.shared_socket));
        out.push_str(&format!(
            "grants = {}\n",
            list(self.grants.iter().map(|g| quoted(&g.to_string())).collect())
        ));
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|(n, m)| {
                let members = m.iter().map(|v| quoted(&v.to_string())).collect();
                format!("{} = {}", quoted(n), list(members))
            })
            .collect();
        out.push_str(&format!("groups = {{ {} }}\n", groups.join(", ")));
        out
    }
}

fn policy(text: Option<&str>) -> Result<AccessPolicy, ConfigError> {
    match text {
        None | Some("open") => Ok(AccessPolicy::Open),
        Some("enforced") => Ok(AccessPolicy::Enforced),
        Some(other) => Err(bad(
            "access.policy",
            format!("`{other}`: \"open\" or \"enforced\""),
        )),
    }
}

fn users(raw: BTreeMap<String, i64>) -> Result<BTreeMap<String, u32>, ConfigError> {
    let mut users = BTreeMap::new();
    let mut names_of: BTreeMap<u32, String> = BTreeMap::new();
    for (name, value) in raw {
        let key = format!("access.users.{name}");
        check_name(&name).map_err(|e| bad(&key, e))?;
        let u = uid(&key, value)?;
        if let Some(other) = names_of.insert(u, name.clone()) {
            return Err(bad(
                &key,
                format!("uid {u} is `{other}` already: a uid acts as one user"),
            ));
        }
        users.insert(name, u);
    }
    Ok(users)
}

/// A group's member: a visitor pattern, not a group.
fn member(text: &str) -> Result<Visitors, String> {
    match text.parse::<Visitors>() {
        Ok(Visitors::Group(_)) => Err(format!("`{text}`: a group cannot hold a group")),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DaemonConfig;

    const FULL: &str = r#"
[access]
policy = "enforced"
owner = 1000
users = { alice = 1001, bob = 1002 }
superusers = ["bob"]
default_user = "guest"
shared_socket = true
grants = ["send,ask on app:** to user=alice", "spawn on ROOT to group=ops"]
groups = { ops = ["user=alice", "user=bob"] }
"#;

    #[test]
    fn a_full_access_table_parses_and_prints_back_to_itself() {
        let c = DaemonConfig::from_toml(FULL).unwrap();
        let a = &c.access;
        assert_eq!(a.policy, AccessPolicy::Enforced);
        assert_eq!(a.owner, Some(1000));
        assert_eq!(a.users.get("alice"), Some(&1001));
        assert_eq!(a.superuser_names(1000), vec!["owner", "bob"]);
        assert_eq!(a.owner_name(1002), "bob");
        assert_eq!(a.default_user.as_deref(), Some("guest"));
        assert!(a.shared_socket);
        assert_eq!(a.grants[0].to_string(), "send,ask on app:** to user=alice");
        assert_eq!(a.groups["ops"].len(), 2);
        assert_eq!(DaemonConfig::from_toml(&c.to_toml()).unwrap(), c);
        // No table: the open policy, no users, no grants.
        assert_eq!(
            DaemonConfig::from_toml("").unwrap().access,
            AccessConfig::default()
        );
    }

    #[test]
    fn a_bad_access_table_is_refused_with_its_key() {
        let cases = [
            ("policy = \"closed\"", "access.policy"),
            ("owner = -1", "access.owner"),
            ("users = { alice = 99999999999 }", "access.users.alice"),
            ("users = { \"al ice\" = 1 }", "access.users.al ice"),
            ("users = { a = 1, b = 1 }", "access.users.b"),
            ("superusers = [\"carol\"]", "access.superusers[0]"),
            ("default_user = \"owner\"", "access.default_user"),
            ("default_user = \"a=b\"", "access.default_user"),
            ("grants = [\"send on app\"]", "access.grants[0]"),
            (
                "grants = [\"send on app to *\", \"fly on app to *\"]",
                "access.grants[1]",
            ),
            ("groups = { ops = [\"group=x\"] }", "access.groups.ops"),
            ("grants = [\"send on app to user=a b\"]", "access.grants[0]"),
            (
                "grants = [\"send on app to group=a,b\"]",
                "access.grants[0]",
            ),
            ("groups = { ops = [\"kind=\"] }", "access.groups.ops"),
        ];
        for (text, key) in cases {
            let e = DaemonConfig::from_toml(&format!("[access]\n{text}")).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(!e.reason.is_empty());
        }
        let e = DaemonConfig::from_toml("[access]\npolicies = \"open\"").unwrap_err();
        assert!(e.reason.contains("policies"), "{e}");
        // A user named `owner` that is not the owner.
        let c = DaemonConfig::from_toml("[access]\nusers = { owner = 5 }").unwrap();
        assert_eq!(c.access.check_owner(5), Ok(()));
        assert_eq!(
            c.access.check_owner(6).unwrap_err().key,
            "access.users.owner"
        );
    }
}
