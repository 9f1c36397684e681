//! Modules on disk: a search path of folders holding `NAME.wasm` and
//! `NAME.wat` files, looked up the first time a particle of
//! `Kind::wasm(NAME)` starts, as Erlang's code server finds a module in its
//! code path the first time a call needs it.
//!
//! A file's name gives the module's name and, optionally, a version label:
//! `counter.wasm` is module `counter`; `counter@2.wasm` is module `counter`
//! labelled `2`. Where one folder holds several files of a module, the
//! highest label wins (labels compare as numbers where both are numbers,
//! else as text; no label is lowest); where several folders hold it, the
//! first folder in the path wins, as in a shell's `PATH`. The version the
//! store gives a file's contents is still its content hash and load
//! sequence: the label only says which file a user meant.
//!
//! Files are untrusted input: a name that is not a plain module name (no
//! separators or dots beyond the extension) is skipped, a file larger than
//! [`MAX_MODULE_FILE`] is refused before it is read whole, and a file that
//! does not compile or breaks the ABI is refused by the store as any other
//! load is.

use std::cmp::Ordering;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::ModuleError;

/// The largest module file read from disk (64 MiB).
pub const MAX_MODULE_FILE: u64 = 64 << 20;

/// What a file looked like: its modification time and length. A module
/// remembers its file's stamp as read, so that a watcher can tell whether
/// the file changed since ([`crate::ModuleInfo::stamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Its modification time, where the file system keeps one.
    pub modified: Option<std::time::SystemTime>,
    /// Its length in bytes.
    pub len: u64,
}

/// A module file found in a search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// The module's name (the file's stem, before any `@`).
    pub name: String,
    /// The version label in the file's name (`NAME@LABEL.wasm`), if any.
    pub label: Option<String>,
    /// The file.
    pub path: PathBuf,
}

impl ModuleFile {
    /// Reads `path` as a module file: its name and label from the file
    /// name, which must end in `.wasm` or `.wat`.
    ///
    /// ```
    /// use hyperverse_modules::ModuleFile;
    ///
    /// let f = ModuleFile::parse("mods/counter@2.wat".as_ref()).unwrap();
    /// assert_eq!((f.name.as_str(), f.label.as_deref()), ("counter", Some("2")));
    /// assert!(ModuleFile::parse("mods/notes.txt".as_ref()).is_none());
    /// assert!(ModuleFile::parse("mods/.wasm".as_ref()).is_none());
    /// ```
    pub fn parse(path: &Path) -> Option<ModuleFile> {
        let file = path.file_name()?.to_str()?;
        let stem = file
            .strip_suffix(".wasm")
            .or_else(|| file.strip_suffix(".wat"))?;
        let (name, label) = match stem.split_once('@') {
            Some((name, label)) => (name, Some(label)),
            None => (stem, None),
        };
        if !plain(name) || label.is_some_and(|l| !plain(l)) {
            return None;
        }
        Some(ModuleFile {
            name: name.to_string(),
            label: label.map(str::to_string),
            path: path.to_path_buf(),
        })
    }

    /// The file's stamp now; `None` if it cannot be read.
    pub fn stamp(&self) -> Option<FileStamp> {
        let meta = std::fs::metadata(&self.path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }

    /// True for WebAssembly text (`.wat`).
    pub fn is_text(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "wat")
    }

    /// The file's contents, as a WebAssembly binary (text is compiled to
    /// one).
    ///
    /// # Errors
    ///
    /// [`ModuleError::File`] if it cannot be read, is larger than
    /// [`MAX_MODULE_FILE`] or is not a regular file;
    /// [`ModuleError::Compile`] if its text does not parse.
    pub fn read(&self) -> Result<Vec<u8>, ModuleError> {
        let bad = |message: String| ModuleError::File {
            module: self.name.clone(),
            path: self.path.display().to_string(),
            message,
        };
        // Checked by its path first (a device is never even opened: some
        // act on open), then opened and checked again through the handle
        // that is read: a file swapped for a FIFO or a device in between
        // is not read (O_NONBLOCK: opening a FIFO does not wait for a
        // writer). The read stops one byte past the limit whatever the
        // length said: files in /proc are regular, of length 0, and some
        // never end (/proc/self/pagemap).
        let regular = std::fs::metadata(&self.path).map_err(|e| bad(e.to_string()))?;
        if !regular.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.path)
            .map_err(|e| bad(e.to_string()))?;
        let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        if meta.len() > MAX_MODULE_FILE {
            return Err(bad(format!(
                "{} bytes, larger than the {MAX_MODULE_FILE} a module file may be",
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        let read = file.take(MAX_MODULE_FILE + 1).read_to_end(&mut bytes);
        // Past the limit, or failing only there (a /proc file may refuse
        // the last, odd-sized read): too large either way.
        if bytes.len() as u64 > MAX_MODULE_FILE
            || (read.is_err() && bytes.len() as u64 == MAX_MODULE_FILE)
        {
            return Err(bad(format!(
                "more bytes than its length said, larger than the {MAX_MODULE_FILE} a module file may be"
            )));
        }
        read.map_err(|e| bad(e.to_string()))?;
        if !self.is_text() {
            return Ok(bytes);
        }
        wasmer::wat2wasm(&bytes)
            .map(|w| w.into_owned())
            .map_err(|e| ModuleError::Compile {
                module: self.name.clone(),
                message: format!("invalid WAT in {}: {e}", self.path.display()),
            })
    }
}

/// A name or label made of letters, digits, `-` and `_` only: nothing that
/// could step out of a folder or hide an extension.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Label order: none lowest, numbers by value, else text.
fn by_label(a: &Option<String>, b: &Option<String>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        // `7` and `07` are the same number: the text decides between them,
        // so that the pick never depends on the folder's listing order.
        (Some(a), Some(b)) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
            _ => a.cmp(b),
        },
    }
}

/// Folders searched in order for module files.
///
/// ```
/// use hyperverse_modules::ModulePath;
///
/// let dir = std::env::temp_dir().join(format!("hv-doc-path-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("counter.wat"), "(module)").unwrap();
/// std::fs::write(dir.join("counter@3.wat"), "(module)").unwrap();
/// let path = ModulePath::new(vec![dir.clone()]);
/// let found = path.find("counter").unwrap();
/// assert_eq!(found.label.as_deref(), Some("3"));
/// assert!(path.find("nothing").is_none());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulePath {
    dirs: Vec<PathBuf>,
}

impl ModulePath {
    /// Searches `dirs`, first to last.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        ModulePath { dirs }
    }

    /// The folders, in order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The file module `name` comes from: in the first folder that has one,
    /// its highest label. A folder that cannot be read is skipped.
    pub fn find(&self, name: &str) -> Option<ModuleFile> {
        self.dirs.iter().find_map(|dir| {
            scan(dir)
                .into_iter()
                .filter(|f| f.name == name)
                .max_by(|a, b| by_label(&a.label, &b.label))
        })
    }

    /// The error that module `name` is in none of these folders.
    pub(crate) fn not_found(&self, name: &str) -> ModuleError {
        ModuleError::NotFound {
            module: name.to_string(),
            searched: self
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Every module the path offers, one file each (as [`ModulePath::find`]
    /// would pick it), sorted by name.
    pub fn list(&self) -> Vec<ModuleFile> {
        let mut found: Vec<ModuleFile> = Vec::new();
        for dir in &self.dirs {
            let mut here = scan(dir);
            here.sort_by(|a, b| a.name.cmp(&b.name).then(by_label(&b.label, &a.label)));
            for file in here {
                if !found.iter().any(|f| f.name == file.name) {
                    found.push(file);
                }
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }
}

/// The module files directly in `dir` (not below it).
fn scan(dir: &Path) -> Vec<ModuleFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| ModuleFile::parse(&e.path()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_hostile_names() {
        let p = |s: &str| ModuleFile::parse(Path::new(s)).map(|f| (f.name, f.label));
        assert_eq!(p("a/kv.wasm"), Some(("kv".into(), None)));
        assert_eq!(p("kv@v2.wat"), Some(("kv".into(), Some("v2".into()))));
        for bad in [
            "kv.wasm.bak",
            "kv",
            ".wasm",
            "k v.wasm",
            "kv@.wasm",
            "@2.wasm",
            "kv@1@2.wasm",
            "k.v.wasm",
            "..wasm",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_first_folder_wins_and_the_highest_label_within_it() {
        let root = std::env::temp_dir().join(format!("hv-search-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for f in ["x@2.wat", "x@10.wat", "x.wat", "y.wasm"] {
            std::fs::write(a.join(f), "").unwrap();
        }
        for f in ["x@99.wat", "z@beta.wat", "z@alpha.wat"] {
            std::fs::write(b.join(f), "").unwrap();
        }
        let path = ModulePath::new(vec![a.clone(), b.clone(), root.join("missing")]);
        assert_eq!(path.find("x").unwrap().path, a.join("x@10.wat"));
        assert_eq!(path.find("z").unwrap().path, b.join("z@beta.wat"));
        let listed: Vec<_> = path.list().into_iter().map(|f| f.path).collect();
        assert_eq!(
            listed,
            vec![a.join("x@10.wat"), a.join("y.wasm"), b.join("z@beta.wat")]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_too_large_or_not_a_file_is_refused_with_its_path() {
        let root = std::env::temp_dir().join(format!("hv-search-big-{}", std::process::id()));
        std::fs::create_dir_all(root.join("d.wasm")).unwrap();
        let big = root.join("big.wasm");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_MODULE_FILE + 1).unwrap();
        let err = ModuleFile::parse(&big).unwrap().read().unwrap_err();
        assert!(matches!(err, ModuleError::File { .. }), "{err}");
        assert!(err.to_string().contains("big.wasm"), "{err}");
        let err = ModuleFile::parse(&root.join("d.wasm"))
            .unwrap()
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
