//! Where a user's daemon keeps its lock and its control socket: one
//! daemon per user per host, in a directory only that user can enter.

use std::path::PathBuf;

/// Overrides the directory (tests, or several daemons side by side).
pub const DIR_ENV: &str = "HYPERVERSE_RUNTIME_DIR";

/// The daemon's directory: `$HYPERVERSE_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/hyperverse`, else `~/.hyperverse/run`.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os(DIR_ENV) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(d).join("hyperverse");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".hyperverse").join("run")
}

/// The lock a running daemon holds.
pub fn lock(dir: &std::path::Path) -> PathBuf {
    dir.join("daemon.lock")
}

/// The control socket.
pub fn socket(dir: &std::path::Path) -> PathBuf {
    dir.join("control.sock")
}

/// Makes `dir` (and its parents) if missing, and makes it this user's
/// only: mode 0700.
///
/// # Errors
///
/// The file system's.
pub fn make_private(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Makes `dir` (and its parents) if missing, for a daemon whose socket
/// other users reach (`[access] shared_socket`): mode 0711, so they may
/// pass through to the socket by its name but not list or write the
/// directory.
///
/// # Errors
///
/// The file system's.
pub fn make_shared(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}
