//! Who a control-socket connection acts as: the uid the kernel reports
//! for its peer (`SO_PEERCRED`), mapped to a CLI user by the config's
//! `[access]` table. Nothing the client sends takes part: a client cannot
//! claim to be someone else.

use std::collections::HashMap;

use crate::access_config::AccessConfig;
use crate::config::ConfigError;

/// A connection's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The CLI user's name (`user=NAME` in grants).
    pub name: String,
    /// The owner or one of `superusers`: may change rules and stop the
    /// daemon.
    pub superuser: bool,
}

/// Why a connection has no user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unknown {
    /// Its peer's uid is not in `[access] users`, and there is no
    /// `default_user`.
    #[error("access denied: uid {uid} is not a user of this daemon (its owner may name it in the config's [access] users)")]
    Uid {
        /// The peer's uid.
        uid: u32,
    },
    /// The kernel did not say who the peer is.
    #[error("access denied: the connection's peer credentials cannot be read: {0}")]
    NoCredentials(String),
    /// The Machine would not make a handle for the user.
    #[error("access denied: user {name} cannot act here: {why}")]
    Refused {
        /// The user.
        name: String,
        /// The Machine's reason.
        why: String,
    },
}

/// The users a daemon serves, by uid.
#[derive(Debug, Clone)]
pub struct Users {
    by_uid: HashMap<u32, String>,
    superusers: Vec<String>,
    default_user: Option<String>,
}

impl Users {
    /// The users of `config`, its owner's uid defaulting to `daemon_uid`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if a user is named as the owner but is not it.
    pub fn new(config: &AccessConfig, daemon_uid: u32) -> Result<Users, ConfigError> {
        let owner = config.owner_uid(daemon_uid);
        config.check_owner(owner)?;
        let mut by_uid: HashMap<u32, String> = config
            .users
            .iter()
            .map(|(name, uid)| (*uid, name.clone()))
            .collect();
        by_uid.insert(owner, config.owner_name(owner).to_string());
        let superusers = config.superuser_names(owner);
        // Unknown uids must never act as a superuser (the owner's name
        // included, which a user named after the owner's uid takes).
        if let Some(d) = config
            .default_user
            .as_ref()
            .filter(|d| superusers.contains(d))
        {
            return Err(crate::config::bad(
                "access.default_user",
                format!("`{d}` is a superuser here: unknown uids may not act as one"),
            ));
        }
        Ok(Users {
            by_uid,
            superusers,
            default_user: config.default_user.clone(),
        })
    }

    /// The superusers' names, for the Machine.
    pub fn superusers(&self) -> &[String] {
        &self.superusers
    }

    /// Who a peer of uid `uid` acts as.
    ///
    /// # Errors
    ///
    /// [`Unknown::Uid`] for a uid no user has, with no default user.
    pub fn identify(&self, uid: u32) -> Result<Identity, Unknown> {
        if let Some(name) = self.by_uid.get(&uid) {
            return Ok(Identity {
                superuser: self.superusers.contains(name),
                name: name.clone(),
            });
        }
        // An unknown uid as the default user: never a superuser.
        let name = self.default_user.as_ref().ok_or(Unknown::Uid { uid })?;
        Ok(Identity {
            superuser: false,
            name: name.clone(),
        })
    }
}

/// The uid this process runs as (its effective uid): the daemon's owner
/// unless the config names another.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DaemonConfig;

    fn users(access: &str, daemon_uid: u32) -> Users {
        let c = DaemonConfig::from_toml(&format!("[access]\n{access}")).unwrap();
        Users::new(&c.access, daemon_uid).unwrap()
    }

    #[test]
    fn the_owner_is_a_superuser_and_others_are_who_the_config_says() {
        let u = users("users = { alice = 1001 }\nsuperusers = [\"alice\"]", 1000);
        assert_eq!(
            u.identify(1000),
            Ok(Identity {
                name: "owner".into(),
                superuser: true
            })
        );
        assert!(u.identify(1001).unwrap().superuser);
        assert_eq!(u.identify(7), Err(Unknown::Uid { uid: 7 }));
        // The owner named explicitly: the daemon's own uid is then nobody.
        let u = users("owner = 5\nusers = { alice = 1000 }", 1000);
        assert_eq!(
            u.identify(1000),
            Ok(Identity {
                name: "alice".into(),
                superuser: false
            })
        );
        assert!(u.identify(5).unwrap().superuser);
        // A default user for the rest, never a superuser.
        let u = users("default_user = \"guest\"", 1000);
        assert_eq!(u.identify(42).unwrap().name, "guest");
        assert!(!u.identify(42).unwrap().superuser);
        // A user whose uid is the owner's takes the owner's name.
        let u = users("users = { root-user = 0 }", 0);
        assert_eq!(u.identify(0).unwrap().name, "root-user");
        assert_eq!(u.superusers(), ["root-user".to_string()]);
    }

    #[test]
    fn unknown_uids_never_act_as_a_superuser() {
        // A default user that is the owner by the owner's uid is refused
        // at start (a named superuser is refused by the config itself).
        let c =
            DaemonConfig::from_toml("[access]\nusers = { alice = 1000 }\ndefault_user = \"alice\"")
                .unwrap();
        let e = Users::new(&c.access, 1000).unwrap_err();
        assert!(e.to_string().contains("access.default_user"), "{e}");
        let named = "[access]\nusers = { bob = 7 }\nsuperusers = [\"bob\"]\ndefault_user = \"bob\"";
        assert!(DaemonConfig::from_toml(named).is_err());
    }
}
