//! A module's grants manifest: what its particles may do beyond what they
//! own, written beside its file.
//!
//! A WASM guest is a confined visitor: the Machine's open policy gives it
//! nothing, so it may send to and ask only its own subtree, its parent and
//! the Points its spawn granted ([`SpawnOptions::grants`]), plus what the
//! access rules grant it. A module that needs more (every particle of
//! `web` asks `db:**`, say) says so once, in its manifest, instead of
//! every spawn saying it:
//!
//! ```text
//! # web.grants, beside web.wasm: what particles of module `web` may do.
//! send,ask on db:**      # the db subtree
//! send on audit          # that Point only
//! ```
//!
//! One grant a line, `PRIVILEGES on SCOPE`, as the CLI's `hyperverse grant`
//! writes the first half of a rule (privileges: `send`, `ask`, `spawn`,
//! `stop`, `reload`, `link`, `read`, or `all`, joined with commas; a scope:
//! `a:b` or `a:b:**`). Blank lines and `#` comments are skipped. There is
//! no `to`: a manifest grants to its own module's particles only, i.e. to
//! visitors `kind=wasm:NAME`.
//!
//! The file is `NAME.grants` beside `NAME.wasm` or `NAME.wat` (the same
//! file name, label included: `web@2.grants` beside `web@2.wasm`). It is
//! read with the module file, by [`WasmHost::load_file`], by the first
//! start of a module found in the search path and by
//! [`WasmHost::reload_file`]; a module file without one has no grants. A
//! manifest that does not parse refuses the load
//! ([`ModuleError::Manifest`]): nothing changes. A module loaded from
//! bytes gets its grants from [`WasmHost::set_grants`].
//!
//! The grants are rules of the Machine, `PRIVILEGES on SCOPE to
//! kind=wasm:NAME`, so the sending side (the host's check of each guest
//! wave) and the receiving side (the runtime's, under
//! [`AccessPolicy::Enforced`]) judge them with the same code. The host
//! puts them in force itself, as the Machine (a superuser): when a
//! particle of the module starts, and when a reload moves its live
//! particles. A later manifest replaces an earlier one: what the earlier
//! one granted and the later one does not is revoked.
//!
//! [`SpawnOptions::grants`]: hyperverse_runtime::SpawnOptions::grants
//! [`WasmHost::load_file`]: crate::WasmHost::load_file
//! [`WasmHost::reload_file`]: crate::WasmHost::reload_file
//! [`WasmHost::set_grants`]: crate::WasmHost::set_grants
//! [`AccessPolicy::Enforced`]: hyperverse_runtime::access::AccessPolicy::Enforced

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hyperverse_runtime::access::{Grant, Privileges, RuleError, Scope, Visitors};
use hyperverse_runtime::{Kind, Machine};

use crate::error::ModuleError;
use crate::search::ModuleFile;
use crate::WasmKind;

/// The largest manifest read (64 KiB): far more than any module needs, and
/// a bound on what a file in a module folder makes the host read.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// The most grants one manifest may hold.
pub const MAX_MANIFEST_GRANTS: usize = 1_024;

/// The extension of a grants manifest.
const EXTENSION: &str = "grants";

/// A module's grants: privileges on scopes, for its particles (see the
/// module docs of `manifest.rs` for the file format). Lines on one scope
/// add up.
///
/// ```
/// use hyperverse_modules::ModuleGrants;
///
/// let grants = ModuleGrants::parse("web", "send,ask on db:**  # the db\nsend on audit\n")?;
/// let rules: Vec<String> = grants.rules("web").iter().map(|g| g.to_string()).collect();
/// assert_eq!(rules, ["send on audit to kind=wasm:web", "send,ask on db:** to kind=wasm:web"]);
/// assert!(ModuleGrants::parse("web", "send on db to web").is_err());
/// # Ok::<(), hyperverse_modules::ModuleError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleGrants {
    scopes: BTreeMap<Scope, Privileges>,
}

impl ModuleGrants {
    /// No grants.
    pub fn none() -> ModuleGrants {
        ModuleGrants::default()
    }

    /// Parses manifest `text` of module `module`.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Manifest`] naming the first line that is not
    /// `PRIVILEGES on SCOPE`, or the grant past [`MAX_MANIFEST_GRANTS`].
    pub fn parse(module: &str, text: &str) -> Result<ModuleGrants, ModuleError> {
        Self::parse_at(module, "(given)", text)
    }

    fn parse_at(module: &str, path: &str, text: &str) -> Result<ModuleGrants, ModuleError> {
        let mut grants = ModuleGrants::default();
        let mut count = 0;
        for (i, line) in text.lines().enumerate() {
            let bad = |message: String| ModuleError::Manifest {
                module: module.to_string(),
                path: path.to_string(),
                line: i + 1,
                message,
            };
            let content = line.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_MANIFEST_GRANTS {
                return Err(bad(format!(
                    "more than the {MAX_MANIFEST_GRANTS} grants a manifest may hold"
                )));
            }
            let (privileges, scope) = parse_line(content).map_err(bad)?;
            let held = grants.scopes.entry(scope).or_insert(Privileges::NONE);
            *held = held.union(privileges);
        }
        Ok(grants)
    }

    /// Reads the manifest beside module file `file` (`NAME.grants`, see
    /// the module docs); no grants if there is none.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Manifest`] if it is there but cannot be read, is not
    /// a regular file, is larger than [`MAX_MANIFEST_BYTES`], is not UTF-8
    /// or does not parse.
    pub fn beside(file: &ModuleFile) -> Result<ModuleGrants, ModuleError> {
        let path = manifest_path(&file.path);
        match read_limited(&path) {
            Ok(None) => Ok(ModuleGrants::none()),
            Ok(Some(text)) => Self::parse_at(&file.name, &path.display().to_string(), &text),
            Err(message) => Err(ModuleError::Manifest {
                module: file.name.clone(),
                path: path.display().to_string(),
                line: 0,
                message,
            }),
        }
    }

    /// True if it grants nothing.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Its grants as the Machine's rules: each to `kind=wasm:MODULE`, in
    /// scope order.
    pub fn rules(&self, module: &str) -> Vec<Grant> {
        let to = Visitors::Kind(Kind::wasm(module));
        self.scopes
            .iter()
            .map(|(on, privileges)| Grant::new(*privileges, on.clone(), to.clone()))
            .collect()
    }

    /// The rule changes that take the Machine from `old`'s grants to
    /// this one's, for module `module`: first what only `old` granted is
    /// revoked, then this one's are granted (grants only add, so granting
    /// again what is in force changes nothing).
    fn changes_from(&self, old: &ModuleGrants, module: &str) -> Vec<(bool, Grant)> {
        let to = Visitors::Kind(Kind::wasm(module));
        let revoked = old.scopes.iter().filter_map(|(on, was)| {
            let now = self.scopes.get(on).copied().unwrap_or(Privileges::NONE);
            let gone = was.without(now);
            (!gone.is_empty()).then(|| (false, Grant::new(gone, on.clone(), to.clone())))
        });
        let granted = self.rules(module).into_iter().map(|g| (true, g));
        revoked.chain(granted).collect()
    }
}

/// One line, comments stripped: `PRIVILEGES on SCOPE`.
fn parse_line(content: &str) -> Result<(Privileges, Scope), String> {
    let words: Vec<&str> = content.split_whitespace().collect();
    let [privileges, "on", scope] = words.as_slice() else {
        return Err(format!(
            "`{content}` is not PRIVILEGES on SCOPE (a manifest grants to its own module's \
             particles: no `to`)"
        ));
    };
    let privileges: Privileges = privileges.parse().map_err(|e: RuleError| e.to_string())?;
    let scope: Scope = scope.parse().map_err(|e: RuleError| e.to_string())?;
    Ok((privileges, scope))
}

/// `dir/NAME.grants` for module file `dir/NAME.wasm` (or `.wat`).
fn manifest_path(module_file: &Path) -> PathBuf {
    module_file.with_extension(EXTENSION)
}

/// The text of the file at `path`, `None` if there is none; read as a
/// module file is (`search.rs`): a regular file only, opened without
/// waiting on a FIFO, at most [`MAX_MANIFEST_BYTES`] whatever its length
/// says.
fn read_limited(path: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "larger than the {MAX_MANIFEST_BYTES} bytes a manifest may be"
        ));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8".into())
}

/// Brings `machine`'s rules for module `module`'s particles from `old`'s
/// grants to `new`'s, as the Machine itself: in a task of its own, which
/// runs outside every particle's handler (the runtime stamps such code
/// `ROOT`, a superuser; a particle starting may not change rules outside
/// its own subtree, and its guest must not be the one that does). Only a
/// handle of the Machine's own acts as `ROOT`: a user's handle changes
/// rules as that user.
///
/// # Errors
///
/// The first rule change refused (the Machine is shut down, or `machine`
/// is a user's handle who may not change these rules).
pub(crate) async fn put_in_force(
    machine: &Machine,
    module: &str,
    old: &ModuleGrants,
    new: &ModuleGrants,
) -> Result<(), RuleError> {
    let changes = new.changes_from(old, module);
    if changes.is_empty() {
        return Ok(());
    }
    let machine = machine.clone();
    let task = tokio::spawn(async move {
        for (grant, change) in changes {
            if grant {
                machine.grant(change)?;
            } else {
                machine.revoke(change)?;
            }
        }
        Ok(())
    });
    task.await.unwrap_or(Err(RuleError::MachineDown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_add_up_per_scope_and_comments_are_skipped() {
        let text = "# header\n\nsend on db:**\nask on db:** # again\n  stop on jobs:x  \n";
        let g = ModuleGrants::parse("m", text).unwrap();
        let rules: Vec<String> = g.rules("m").iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            [
                "send,ask on db:** to kind=wasm:m",
                "stop on jobs:x to kind=wasm:m"
            ]
        );
        assert!(ModuleGrants::parse("m", "\n# nothing\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, line) in [
            ("send on a\nsned on b", 2),
            ("send a", 1),
            ("send on a to kind=x", 1),
            ("\n\nsend on a::b", 3),
            ("send on", 1),
        ] {
            match ModuleGrants::parse("m", text) {
                Err(ModuleError::Manifest {
                    line: l, module, ..
                }) => {
                    assert_eq!((l, module.as_str()), (line, "m"), "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let many = "send on a\n".repeat(MAX_MANIFEST_GRANTS + 1);
        assert!(ModuleGrants::parse("m", &many).is_err());
    }

    #[test]
    fn a_new_manifest_revokes_only_what_it_no_longer_grants() {
        let old = ModuleGrants::parse("m", "send,ask on a\nstop on b").unwrap();
        let new = ModuleGrants::parse("m", "send on a\nlink on c").unwrap();
        let changes: Vec<String> = new
            .changes_from(&old, "m")
            .iter()
            .map(|(grant, g)| format!("{} {g}", if *grant { "grant" } else { "revoke" }))
            .collect();
        assert_eq!(
            changes,
            [
                "revoke ask on a to kind=wasm:m",
                "revoke stop on b to kind=wasm:m",
                "grant send on a to kind=wasm:m",
                "grant link on c to kind=wasm:m",
            ]
        );
        assert!(new.changes_from(&new, "m").iter().all(|(grant, _)| *grant));
    }
}
