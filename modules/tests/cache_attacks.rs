//! Issue 10: the disk cache under attack. A cached artifact is native code
//! the Machine runs, so every way of getting other code into it (another
//! key's file, a recomputed checksum, another secret, a symlink, a
//! directory others can write) must end in a refusal or a recompile, and
//! the cache must stay within its caps.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{guest_wat, small_limits};
use hyperverse_modules::{
    guests, CacheRefusal, CacheSecret, DiskCacheConfig, ModuleError, ModuleStore,
};

fn secret() -> CacheSecret {
    CacheSecret::from_bytes([42; 32])
}

fn open(dir: &Path) -> ModuleStore {
    ModuleStore::with_disk_cache(small_limits(), dir, secret()).unwrap()
}

/// The artifact files in `dir`, sorted.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "hvart"))
        .collect();
    files.sort();
    files
}

/// The one artifact file that loading `wat` as `name` adds to `dir`.
fn artifact_of(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let before = artifacts(dir);
    open(dir).load_wat(name, wat).unwrap();
    let mut added: Vec<PathBuf> = artifacts(dir)
        .into_iter()
        .filter(|path| !before.contains(path))
        .collect();
    assert_eq!(added.len(), 1, "one new artifact");
    added.remove(0)
}

/// What `version` replies in a fresh instance of `module` (`[1]` for
/// counter v1, `[2]` for v2).
fn runs_version(module: &hyperverse_modules::CompiledModule) -> Vec<u8> {
    let mut guest = module.instantiate().unwrap();
    guest.init(&[]).unwrap();
    guest.handle("version", &[]).unwrap().reply.unwrap()
}

fn refusal(err: ModuleError) -> CacheRefusal {
    match err {
        ModuleError::CacheRefused { reason, .. } => reason,
        other => panic!("expected CacheRefused, got {other:?}"),
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The attack of the review: v2's artifact copied over v1's file made v1's
/// bytes run v2's code. The MAC covers the key, so it is refused, removed,
/// and v1 compiled again.
#[test]
fn an_artifact_copied_over_another_keys_file_is_refused_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = artifact_of(dir.path(), "counter", guests::COUNTER_V1);
    let v2 = artifact_of(dir.path(), "counter", guests::COUNTER_V2);
    fs::copy(&v2, &v1).unwrap();

    let store = open(dir.path());
    let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let stats = store.stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits, stats.disk_refused),
        (1, 0, 1)
    );
    assert_eq!(runs_version(&counter), [1], "v1's bytes run v1's code");
    assert_eq!(stats.disk_writes, 1, "and v1's file is written again");

    // v2's own file is untouched and still trusted.
    let v2_again = store.load_wat("counter", guests::COUNTER_V2).unwrap();
    assert_eq!(store.stats().disk_hits, 1);
    assert_eq!(runs_version(&v2_again), [2]);
}

/// The checksum of the old format could be recomputed by anyone who can
/// write the file; a file with a plain BLAKE3 where the MAC belongs is
/// refused.
#[test]
fn a_file_with_a_recomputed_plain_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = artifact_of(dir.path(), "counter", guests::COUNTER_V1);
    let v2 = artifact_of(dir.path(), "counter", guests::COUNTER_V2);
    let v2_file = fs::read(&v2).unwrap();
    let (magic, payload) = (&v2_file[..8], &v2_file[40..]);
    for sum in [blake3::hash(payload), blake3::keyed_hash(&[0; 32], payload)] {
        let mut forged = magic.to_vec();
        forged.extend_from_slice(sum.as_bytes());
        forged.extend_from_slice(payload);
        fs::write(&v1, &forged).unwrap();

        let store = open(dir.path());
        let counter = store.load_wat("counter", guests::COUNTER_V1).unwrap();
        assert_eq!((store.stats().compiles, store.stats().disk_refused), (1, 1));
        assert_eq!(runs_version(&counter), [1]);
    }
}

#[test]
fn a_cache_written_with_another_secret_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    first.load_wat("counter", guests::COUNTER_V1).unwrap();

    let other_secret = CacheSecret::from_bytes([7; 32]);
    let other = ModuleStore::with_disk_cache(small_limits(), dir.path(), other_secret).unwrap();
    other.load_wat("counter", guests::COUNTER_V1).unwrap();
    let stats = other.stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits, stats.disk_refused),
        (1, 0, 1)
    );
    // The same secret as the first again: the file is now the other's.
    let again = open(dir.path());
    again.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!((again.stats().compiles, again.stats().disk_refused), (1, 1));
    // And with its own secret a store trusts what it wrote.
    let same = open(dir.path());
    same.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!((same.stats().compiles, same.stats().disk_hits), (0, 1));
}

#[test]
fn a_world_writable_cache_dir_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cache");
    fs::create_dir(&dir).unwrap();
    for bad in [0o777, 0o1777, 0o770, 0o720, 0o702] {
        chmod(&dir, bad);
        let err = ModuleStore::with_disk_cache(small_limits(), &dir, secret()).unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        assert_eq!(
            refusal(err),
            CacheRefusal::WritableByOthers { mode: bad },
            "{bad:o}"
        );
    }
    chmod(&dir, 0o755);
    open(&dir).load_wat("counter", guests::COUNTER_V1).unwrap();
}

#[test]
fn a_symlinked_cache_dir_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let real = parent.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = ModuleStore::with_disk_cache(small_limits(), &link, secret()).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(refusal(err), CacheRefusal::Symlink);
    assert!(artifacts(&real).is_empty());
}

/// Whoever can rename entries of a directory above the cache can swap the
/// cache for a directory of their own; `/tmp`'s sticky bit stops that.
#[test]
fn a_cache_dir_below_a_directory_others_can_change_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let shared = parent.path().join("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let dir = shared.join("cache");
    let err = ModuleStore::with_disk_cache(small_limits(), &dir, secret()).unwrap_err();
    assert!(
        matches!(refusal(err.clone()), CacheRefusal::UnsafeAncestor { ancestor, .. } if Path::new(&ancestor) == fs::canonicalize(&shared).unwrap()),
        "{err}"
    );
    chmod(&shared, 0o1777);
    open(&dir).load_wat("counter", guests::COUNTER_V1).unwrap();
}

#[test]
fn a_cache_dir_owned_by_another_user_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("theirs");
    fs::create_dir(&dir).unwrap();
    let me = fs::metadata(&dir).unwrap().uid();
    let dir = if me == 0 {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        dir
    } else {
        // Not root: no chown, but `/` is root's.
        PathBuf::from("/")
    };
    let err = ModuleStore::with_disk_cache(small_limits(), &dir, secret()).unwrap_err();
    assert!(
        matches!(refusal(err.clone()), CacheRefusal::NotOwned { euid, .. } if euid == me),
        "{err}"
    );
}

#[test]
fn cache_files_are_created_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("new").join("cache");
    let store = open(&dir);
    assert_eq!(mode(&dir), 0o700, "a missing directory is created private");
    store.load_wat("counter", guests::COUNTER_V1).unwrap();
    store.load_wat("counter", guests::COUNTER_V2).unwrap();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files, artifacts(&dir), "no temporary file is left behind");
    assert_eq!(files.len(), 2);
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

/// A symlink planted at an artifact's name is neither read through nor
/// written through: it is removed and replaced by a file. (The temporary
/// name is covered by a unit test in `disk_cache.rs`: it cannot be
/// predicted from outside.)
#[test]
fn a_planted_symlink_at_the_final_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    fs::create_dir(&cache).unwrap();
    let name = artifact_of(&cache, "counter", guests::COUNTER_V1);
    // A genuine artifact for this very key, but outside the cache.
    let target = elsewhere.path().join("artifact");
    fs::rename(&name, &target).unwrap();
    let genuine = fs::read(&target).unwrap();
    std::os::unix::fs::symlink(&target, &name).unwrap();

    let store = open(&cache);
    store.load_wat("counter", guests::COUNTER_V1).unwrap();
    let stats = store.stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits, stats.disk_refused),
        (1, 0, 1),
        "not read through the link"
    );
    let meta = fs::symlink_metadata(&name).unwrap();
    assert!(meta.is_file() && !meta.is_symlink(), "replaced by a file");
    assert_eq!(fs::read(&target).unwrap(), genuine, "not written through");
}

#[test]
fn the_cache_evicts_past_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = || DiskCacheConfig::new(dir.path(), secret()).max_files(2);
    let store = |_: ()| ModuleStore::with_disk_cache_config(small_limits(), config()).unwrap();
    let module = |n: u32| guest_wat("", "", &format!("(i32.const {n})"));

    let first = store(());
    first.load_wat("a", &module(0)).unwrap();
    first.load_wat("b", &module(1)).unwrap();
    let [a, b]: [PathBuf; 2] = artifacts(dir.path()).try_into().unwrap();
    // Which is which, and an order of use that needs no fine timestamps.
    let (a, b) = if artifact_of_key(&a, &module(0)) {
        (a, b)
    } else {
        (b, a)
    };
    let now = SystemTime::now();
    set_mtime(&a, now - Duration::from_secs(200));
    set_mtime(&b, now - Duration::from_secs(100));

    // A hit makes `a` the most recently used, so a third artifact evicts `b`.
    let second = store(());
    second.load_wat("a", &module(0)).unwrap();
    second.load_wat("c", &module(2)).unwrap();
    let stats = second.stats();
    assert_eq!((stats.disk_hits, stats.disk_writes), (1, 1));
    assert_eq!(stats.disk_evictions, 1);
    let left = artifacts(dir.path());
    assert_eq!(left.len(), 2);
    assert!(left.contains(&a) && !left.contains(&b), "{left:?}");

    let third = store(());
    third.load_wat("a", &module(0)).unwrap();
    assert_eq!(third.stats().disk_hits, 1, "a was kept");
    third.load_wat("b", &module(1)).unwrap();
    assert_eq!(third.stats().compiles, 1, "b was evicted");
    assert_eq!(artifacts(dir.path()).len(), 2);
}

/// Whether `file` is the artifact of `wat` (by loading it through a store
/// with the same secret: a hit proves it).
fn artifact_of_key(file: &Path, wat: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(file, dir.path().join(file.file_name().unwrap())).unwrap();
    let store = open(dir.path());
    store.load_wat("probe", wat).unwrap();
    store.stats().disk_hits == 1
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn the_cache_stays_within_its_byte_cap() {
    let dir = tempfile::tempdir().unwrap();
    let module = |n: u32| guest_wat("", "", &format!("(i32.const {n})"));
    open(dir.path()).load_wat("probe", &module(99)).unwrap();
    let size = fs::metadata(&artifacts(dir.path())[0]).unwrap().len();
    fs::remove_file(&artifacts(dir.path())[0]).unwrap();

    // Room for two artifacts of about this size, not three.
    let cap = size * 2 + size / 2;
    let config = DiskCacheConfig::new(dir.path(), secret()).max_bytes(cap);
    let store = ModuleStore::with_disk_cache_config(small_limits(), config).unwrap();
    for n in 0..5 {
        store.load_wat(&format!("m{n}"), &module(n)).unwrap();
        let total: u64 = artifacts(dir.path())
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum();
        assert!(total <= cap, "{total} bytes on disk, cap {cap}");
    }
    assert_eq!(store.stats().disk_evictions, 3);

    // An artifact bigger than the whole cap is not cached at all.
    let tiny = tempfile::tempdir().unwrap();
    let config = DiskCacheConfig::new(tiny.path(), secret()).max_bytes(100);
    let store = ModuleStore::with_disk_cache_config(small_limits(), config).unwrap();
    store.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!(store.stats().disk_writes, 0);
    assert!(artifacts(tiny.path()).is_empty());
}

#[test]
fn a_secret_file_is_created_private_and_reused_across_restarts() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("cache.key");
    let cache = home.path().join("cache");
    let secret = CacheSecret::load_or_create(&key).unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_eq!(fs::metadata(&key).unwrap().len(), 32);
    assert!(!format!("{secret:?}").contains(&format!("{:?}", fs::read(&key).unwrap())));
    let first = ModuleStore::with_disk_cache(small_limits(), &cache, secret).unwrap();
    first.load_wat("counter", guests::COUNTER_V1).unwrap();

    let again = CacheSecret::load_or_create(&key).unwrap();
    let second = ModuleStore::with_disk_cache(small_limits(), &cache, again).unwrap();
    second.load_wat("counter", guests::COUNTER_V1).unwrap();
    assert_eq!((second.stats().compiles, second.stats().disk_hits), (0, 1));
}

#[test]
fn a_secret_file_others_can_read_or_a_symlink_or_the_wrong_size_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("cache.key");
    CacheSecret::load_or_create(&key).unwrap();
    for exposed in [0o640, 0o604, 0o660] {
        chmod(&key, exposed);
        let err = CacheSecret::load_or_create(&key).unwrap_err();
        assert_eq!(
            refusal(err),
            CacheRefusal::SecretExposed { mode: exposed },
            "{exposed:o}"
        );
    }
    chmod(&key, 0o600);

    let link = home.path().join("link.key");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    assert_eq!(
        refusal(CacheSecret::load_or_create(&link).unwrap_err()),
        CacheRefusal::Symlink
    );
    // A dangling link is not followed to create a secret elsewhere either.
    let dangling = home.path().join("dangling.key");
    let aim = home.path().join("created-through-the-link");
    std::os::unix::fs::symlink(&aim, &dangling).unwrap();
    assert_eq!(
        refusal(CacheSecret::load_or_create(&dangling).unwrap_err()),
        CacheRefusal::Symlink
    );
    assert!(!aim.exists());

    let short = home.path().join("short.key");
    fs::write(&short, b"too short").unwrap();
    chmod(&short, 0o600);
    assert_eq!(
        refusal(CacheSecret::load_or_create(&short).unwrap_err()),
        CacheRefusal::SecretLength { len: 9 }
    );
}

/// A secret inside the cache could be read by anyone who can read the
/// cache, who could then forge its artifacts.
#[test]
fn a_secret_inside_the_cache_dir_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    fs::create_dir(&cache).unwrap();
    let secret = CacheSecret::load_or_create(cache.join("cache.key")).unwrap();
    let err = ModuleStore::with_disk_cache(small_limits(), &cache, secret).unwrap_err();
    assert!(
        matches!(refusal(err.clone()), CacheRefusal::SecretInsideCache { .. }),
        "{err}"
    );
}
