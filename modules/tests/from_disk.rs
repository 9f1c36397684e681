//! Modules from disk: a search path read on a module's first start, files
//! loaded and reloaded by name, and hostile files refused with typed errors
//! while the Machine keeps serving.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyperverse_modules::{guests, Limits, ModuleError, ModulePath, WasmHost, WasmKind};
use hyperverse_runtime::{Body, Kind, Machine, Point, SpawnError};

fn folder(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hv-from-disk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn machine(dirs: Vec<PathBuf>) -> (WasmHost, Machine) {
    let host = WasmHost::builder()
        .limits(Limits::default())
        .search_path(ModulePath::new(dirs))
        .build();
    let machine = Machine::standalone()
        .stars(2)
        .resolver(host.resolver())
        .build()
        .await
        .unwrap();
    (host, machine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_is_loaded_from_the_search_path_on_its_first_spawn_and_reloaded_from_its_file() {
    let (empty, dir) = (folder("empty"), folder("lazy"));
    std::fs::write(dir.join("counter.wat"), guests::COUNTER_V1).unwrap();
    // The first folder has nothing; the second offers `counter`.
    let (host, m) = machine(vec![empty.clone(), dir.clone()]).await;
    assert!(
        host.current("counter").is_none(),
        "nothing loaded before use"
    );
    let listed = host.modules();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "counter");
    assert!(listed[0].current.is_none());

    let at: Point = "c".parse().unwrap();
    m.spawn(at.clone(), Kind::wasm("counter"), Body::from_u64(41))
        .await
        .unwrap();
    m.signal(&at, ("add", Body::empty())).unwrap();
    let got = m.ask(&at, ("get", Body::empty())).await.unwrap();
    assert_eq!(got.as_u64(), Some(42));
    assert_eq!(host.current("counter").unwrap().version().seq, 1);
    assert_eq!(m.record(&at).unwrap().code_version, 1);

    // A second particle of it starts on the version loaded, not a reload.
    let b: Point = "b".parse().unwrap();
    m.spawn(b.clone(), Kind::wasm("counter"), Body::from_u64(0))
        .await
        .unwrap();
    assert_eq!(host.store().versions("counter").len(), 1);

    // The file changes; `reload_file` reads it again and moves both.
    std::fs::write(dir.join("counter.wat"), guests::COUNTER_V2).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let report = host
        .reload_file(&m, "counter", move |done, total| {
            log.lock().unwrap().push((done, total))
        })
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.reloaded, vec![b.clone(), at.clone()]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(0, 2), (1, 2), (2, 2)],
        "progress from 0 to all"
    );
    // v2 answers `add` with the count: state kept across the reload.
    let add = m.ask(&at, ("add", Body::empty())).await.unwrap();
    assert_eq!(add.as_u64(), Some(43));
    let info = host.modules();
    assert_eq!(info[0].current.as_ref().unwrap().seq, 2);
    assert_eq!(info[0].live, 2);
    assert_eq!(info[0].file.as_ref().unwrap().path, dir.join("counter.wat"));

    // The same bytes again: every particle is already current.
    let again = host.reload_file(&m, "counter", |_, _| {}).await.unwrap();
    assert_eq!(again.current.len(), 2, "{again:?}");
    assert!(again.reloaded.is_empty());

    m.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_hostile_module_files_get_typed_errors_and_the_machine_serves_on() {
    let dir = folder("hostile");
    std::fs::write(dir.join("garbage.wasm"), b"\0asm\x01\0\0\0\xff\xff\xff").unwrap();
    std::fs::write(dir.join("badtext.wat"), "(module (func $f (oops)))").unwrap();
    std::fs::write(dir.join("opens.wat"), guests::BAD_IMPORT).unwrap();
    std::fs::write(dir.join("ok.wat"), guests::COUNTER_V1).unwrap();
    // A name that is no module name is not offered at all.
    std::fs::write(dir.join("..wat"), guests::COUNTER_V1).unwrap();
    let (host, m) = machine(vec![dir.clone()]).await;

    // No file of it: the Kind is unknown.
    let err = m
        .spawn("x".parse().unwrap(), Kind::wasm("missing"), Body::empty())
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::UnknownKind { .. }), "{err}");

    // Files that do not compile, or break the ABI: the spawn fails, saying
    // why; nothing is loaded; the Machine is fine.
    for (name, says) in [
        ("garbage", "compile"),
        ("badtext", "invalid WAT"),
        ("opens", "env.open"),
    ] {
        let err = m
            .spawn(name.parse().unwrap(), Kind::wasm(name), Body::empty())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, SpawnError::StartFailed { .. }),
            "{name}: {text}"
        );
        assert!(
            text.to_lowercase().contains(&says.to_lowercase()),
            "{name}: {text}"
        );
        assert!(host.current(name).is_none(), "{name} must not be loaded");
    }
    let ok: Point = "ok".parse().unwrap();
    m.spawn(ok.clone(), Kind::wasm("ok"), Body::from_u64(1))
        .await
        .unwrap();
    assert_eq!(
        m.ask(&ok, ("get", Body::empty())).await.unwrap().as_u64(),
        Some(1)
    );

    // `load_file` refuses a path that is no module file, by its name.
    for bad in ["notes.txt", "../x.wasm", "a b.wasm"] {
        let err = host.load_file(&dir.join(bad)).await.unwrap_err();
        assert!(matches!(err, ModuleError::File { .. }), "{bad}: {err}");
    }
    // And one that does not exist, with its path.
    let err = host.load_file(&dir.join("gone.wasm")).await.unwrap_err();
    assert!(err.to_string().contains("gone.wasm"), "{err}");
    // Reloading a module with no file: NotFound.
    let err = host
        .reload_file(&m, "nothing", |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ModuleError::NotFound { .. }), "{err}");

    let names: Vec<String> = host.modules().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["badtext", "garbage", "ok", "opens"]);
    m.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn particles_starting_together_on_a_module_not_loaded_load_it_once() {
    let dir = folder("once");
    std::fs::write(dir.join("counter.wat"), guests::COUNTER_V1).unwrap();
    let (host, m) = machine(vec![dir.clone()]).await;
    let spawns = (0..16).map(|i| {
        let m = m.clone();
        async move {
            m.spawn(
                format!("c{i}").parse().unwrap(),
                Kind::wasm("counter"),
                Body::empty(),
            )
            .await
        }
    });
    for spawned in futures::future::join_all(spawns).await {
        spawned.unwrap();
    }
    let stats = host.store().stats();
    // One read and one compile: the others waited for it, and found the
    // module loaded (not even a cache hit of the same bytes).
    assert_eq!((stats.compiles, stats.memory_hits), (1, 0), "{stats:?}");
    assert_eq!(host.live("counter").len(), 16);
    m.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
