//! Control traffic and senders (issue 10): a wave's sender is set by the
//! runtime, never by the caller; control traffic is typed, never a reserved
//! method name; the supervisor API is honoured only from the Machine or an
//! ancestor of the supervisor.
//!
//! Each test proves one rule, and each was a hole before: forged `$sup:*`
//! and `$wasm:reload` waves were trusted by name, a flood of `$sup:exit`
//! waves passed a bounded lane's limit, `Machine::ask` inside a handler
//! claimed ROOT as its sender (and so slipped past the guard that refuses
//! a child's request to its stopping parent), and any particle could drive
//! any supervisor.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, p};
use hyperverse::modules::{WasmHost, WasmKind};
use hyperverse::*;
use parking_lot::Mutex;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

/// What a particle handled: (who handled it, method, sender).
type Log = Arc<Mutex<Vec<(Point, String, Point)>>>;

/// The forged control methods, each with a body shaped as the old control
/// wave's was (so that only the method's name could have told them apart).
fn forged(victim_seq: u64) -> Vec<(&'static str, Body)> {
    // `$sup:exit`'s old body: an exit report (seq, incarnation, exit, in
    // flight), here claiming that the child crashed.
    let exit = Body::encode(&(
        victim_seq,
        1u64,
        ExitReason::Error("forged".into()),
        None::<InFlight>,
    ))
    .unwrap();
    let intruder = ChildSpec::worker("intruder", ChildStart::kind("rec", Body::empty()));
    vec![
        ("$sup:exit", exit),
        ("$sup:terminate_child", Body::encode(&"rec").unwrap()),
        ("$sup:start_child", Body::encode(&intruder).unwrap()),
        ("$sup:delete_child", Body::encode(&"rec").unwrap()),
        ("$wasm:reload", Body::from_u64(2)),
    ]
}

/// Records every wave it handles. On `forge` it sends the forged control
/// methods to the Point named in the body, as signals and as requests, from
/// its own handler.
struct Rec(Log);

impl Particle for Rec {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        self.0
            .lock()
            .push((ctx.me().clone(), w.method.to_string(), w.from.clone()));
        if &*w.method == "forge" {
            let to: Point = w.body.as_str()?.parse()?;
            let seq = ctx
                .machine()
                .particle(&p("sup:rec"))
                .map_or(0, |l| l.spawn_seq());
            for (method, body) in forged(seq) {
                ctx.signal(&to, (method, body.clone()))?;
                ctx.ask(&to, (method, body)).within(T).await?;
            }
        }
        Ok(Body::empty())
    }
}

/// A Machine with a one_for_one supervisor `sup` over one recorder child
/// `sup:rec`, and a recorder `mallory` that is no relative of it.
async fn supervised() -> (Machine, Log, Arc<Mutex<Vec<String>>>) {
    let log = Log::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(10)),
        vec![ChildSpec::worker(
            "rec",
            ChildStart::kind("rec", Body::empty()),
        )],
    );
    let m = Machine::standalone()
        .stars(2)
        .kind("rec", Rec(log.clone()))
        .supervisor("s", spec)
        .request_timeout(T)
        .observer(move |e| match e {
            Event::Supervisor { supervisor, event } if !supervisor.is_root() => {
                seen.lock().push(format!("{supervisor}: {event}"))
            }
            Event::Crashed(n) => seen.lock().push(format!("crashed {}", n.child)),
            _ => {}
        })
        .build()
        .await
        .unwrap();
    m.spawn(p("sup"), Kind::new("s"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("mallory"), Kind::new("rec"), Body::empty())
        .await
        .unwrap();
    eventually("sup:rec started", || {
        events.lock().iter().any(|e| e == "sup: started rec")
    })
    .await;
    events.lock().clear();
    (m, log, events)
}

/// Supervision is exactly as it was: `sup:rec` is the same particle, never
/// restarted, the only child; no supervisor event, no crash.
async fn supervision_untouched(m: &Machine, rec_seq: u64, events: &Mutex<Vec<String>>) {
    // A request to each behind everything sent so far: all of it is handled.
    m.ask(&p("sup"), ("sync", Body::empty())).await.unwrap();
    m.ask(&p("sup:rec"), ("sync", Body::empty())).await.unwrap();
    let kids = m.supervisor(&p("sup")).which_children().await.unwrap();
    let ids: Vec<&str> = kids.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["rec"]);
    assert!(kids[0].handle.is_some(), "rec is not running: {kids:?}");
    let rec = m.particle(&p("sup:rec")).unwrap();
    assert_eq!(rec.spawn_seq(), rec_seq, "rec was replaced");
    assert_eq!(rec.restarts(), 0, "rec was restarted");
    assert!(
        m.record(&p("sup:intruder")).is_none(),
        "a child was started"
    );
    assert_eq!(*events.lock(), Vec::<String>::new(), "supervision acted");
}

/// The forged methods `rec` handled as ordinary waves from `from`.
fn handled_from(log: &Log, at: &Point, from: &Point) -> Vec<String> {
    log.lock()
        .iter()
        .filter(|(me, m, f)| me == at && f == from && m.starts_with('$'))
        .map(|(_, m, _)| m.clone())
        .collect()
}

fn twice_each() -> Vec<String> {
    forged(0)
        .into_iter()
        .flat_map(|(m, _)| [m.to_string(), m.to_string()])
        .collect()
}

/// `$sup:exit`, `$sup:terminate_child`, `$sup:start_child`,
/// `$sup:delete_child` and `$wasm:reload` sent by particles (the
/// supervisor's own child, whose exit report `$sup:exit` used to be, and a
/// stranger) are ordinary waves: the supervisor does nothing, and a
/// particle gets them in `handle` like any wave, from their real sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_control_methods_from_a_particle_are_ordinary_waves() {
    let (m, log, events) = supervised().await;
    let rec = p("sup:rec");
    let seq = m.particle(&rec).unwrap().spawn_seq();
    // The child forges to its own supervisor, a stranger to it and to the child.
    m.ask(&rec, ("forge", "sup")).await.unwrap();
    m.ask(&p("mallory"), ("forge", "sup")).await.unwrap();
    m.ask(&p("mallory"), ("forge", "sup:rec")).await.unwrap();
    supervision_untouched(&m, seq, &events).await;
    assert_eq!(handled_from(&log, &rec, &p("mallory")), twice_each());
    m.shutdown().await;
}

/// The same forged methods sent by the Machine itself (ROOT, which the
/// reload used to trust) are ordinary waves too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_control_methods_from_the_machine_are_ordinary_waves() {
    let (m, log, events) = supervised().await;
    let rec = p("sup:rec");
    let seq = m.particle(&rec).unwrap().spawn_seq();
    for to in [p("sup"), rec.clone()] {
        for (method, body) in forged(seq) {
            m.signal(&to, (method, body.clone())).unwrap();
            // A supervisor answers a wave it does not expect with an empty body.
            let reply = m.ask(&to, (method, body)).await.unwrap();
            assert!(reply.is_empty());
        }
    }
    supervision_untouched(&m, seq, &events).await;
    assert_eq!(handled_from(&log, &rec, &Point::root()), twice_each());
    m.shutdown().await;
}

/// A WASM counter that counts every wave, whatever its method, and answers
/// `[version, count]`; its snapshot is the count, so a reload keeps it.
fn tally(version: u8) -> String {
    format!(
        r#"(module
  (import "hv" "reply" (func $reply (param i32 i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func (export "hv_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32 i32 i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.const {version}))
    (i32.store8 (i32.const 1) (global.get $n))
    (call $reply (i32.const 0) (i32.const 2))
    (i32.const 0))
  (func (export "snapshot") (result i64)
    (i32.store (i32.const 8) (global.get $n))
    (i64.const 0x0000000800000004))
  (func (export "restore") (param $ptr i32) (param $len i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 4)) (then (return (i32.const 1))))
    (global.set $n (i32.load (local.get $ptr)))
    (i32.const 0))
)"#
    )
}

/// A particle that forwards `$wasm:reload` (with a version body) to the
/// Point in the body, from its own handler, through the Machine.
struct Forger;

impl Particle for Forger {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let to: Point = w.body.as_str()?.parse()?;
        ctx.machine()
            .signal(&to, ("$wasm:reload", Body::from_u64(2)))?;
        Ok(ctx
            .machine()
            .ask(&to, ("$wasm:reload", Body::from_u64(2)))
            .await?)
    }
}

/// A `$wasm:reload` wave, from the Machine or from a particle, reaches the
/// guest as an ordinary wave and reloads nothing, although the host has
/// made version 2 current (a real reload, trusted control from the
/// Machine, then moves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_reload_wave_reaches_the_guest_and_reloads_nothing() {
    let host = WasmHost::builder().build();
    host.load_wat("tally", &tally(1)).unwrap();
    let m = host
        .install(Machine::standalone().kind("forger", Forger), "tally")
        .request_timeout(T)
        .build()
        .await
        .unwrap();
    let victim = p("victim");
    m.spawn(victim.clone(), Kind::wasm("tally"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("forger"), Kind::new("forger"), Body::empty())
        .await
        .unwrap();
    // Version 2 is current: new particles start on it, live ones stay.
    host.load_wat("tally", &tally(2)).unwrap();

    // From the Machine: a signal and a request.
    m.signal(&victim, ("$wasm:reload", Body::from_u64(2)))
        .unwrap();
    let reply = m.ask(&victim, ("$wasm:reload", Body::from_u64(2))).await;
    assert_eq!(reply.unwrap().as_bytes(), [1, 2], "v1 counted both");
    // From a particle: the same, through the Machine.
    let reply = m.ask(&p("forger"), ("go", "victim")).await.unwrap();
    assert_eq!(reply.as_bytes(), [1, 4], "v1 counted all four");
    let rec = m.record(&victim).unwrap();
    assert_eq!((rec.code_version, rec.restarts), (1, 0));

    // The real thing: the host's reload (trusted control from the
    // Machine) moves it, count kept.
    let report = host.reload_wat(&m, "tally", &tally(2)).await.unwrap();
    assert!(report.reloaded.contains(&victim), "{report}");
    let reply = m.ask(&victim, ("n", Body::empty())).await.unwrap();
    assert_eq!(reply.as_bytes(), [2, 5]);
    assert_eq!(m.record(&victim).unwrap().code_version, 2);
    m.shutdown().await;
}

/// Blocks in its first wave until the test opens its gate, then handles
/// the rest quickly; counts what it handled.
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    handled: Arc<std::sync::atomic::AtomicU64>,
}

impl Particle for Gated {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if &*w.method == "block" {
            self.gate.acquire().await?.forget();
        }
        self.handled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Body::empty())
    }
}

/// 200,000 waves named `$sup:exit` (a supervised child's exit report used to
/// be such a wave, exempt from the bound) into a capacity-10 `Reject` lane:
/// exactly 10 are taken, every other one is refused with `LaneFull`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_exit_named_waves_is_refused_beyond_the_lane_capacity() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let m = Machine::standalone()
        .kind(
            "gated",
            Gated {
                gate: gate.clone(),
                handled: handled.clone(),
            },
        )
        .build()
        .await
        .unwrap();
    let limit = LaneLimit {
        capacity: 10,
        when_full: WhenFull::Reject,
        max_bytes: None,
    };
    let opts = SpawnOptions {
        lane: Some(limit),
        ..Default::default()
    };
    let lane = m
        .spawn_with(p("g"), "gated".into(), Body::empty(), opts)
        .await
        .unwrap();
    lane.signal(("block", Body::empty())).unwrap();
    eventually("blocked", || lane.queued() == 0).await;
    let (mut taken, mut full) = (0u64, 0u64);
    for _ in 0..200_000 {
        match lane
            .signal(("$sup:exit", Body::empty()))
            .map_err(WaveError::from)
        {
            Ok(()) => taken += 1,
            Err(WaveError::LaneFull { capacity: 10, .. }) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((taken, full), (10, 199_990));
    assert_eq!(lane.queued(), 10);
    // Through the Machine and from a particle's point of view alike.
    assert!(matches!(
        m.signal(&p("g"), ("$sup:exit", Body::empty()))
            .map_err(WaveError::from),
        Err(WaveError::LaneFull { .. })
    ));
    gate.add_permits(1);
    eventually("the 11 handled", || {
        handled.load(std::sync::atomic::Ordering::SeqCst) == 11
    })
    .await;
    m.shutdown().await;
}

/// Records every wave's sender; on `go`, sends one wave to `rec` through
/// every public path from its own handler.
struct Relay;

impl Particle for Relay {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        send_every_way(ctx.machine(), Some(ctx)).await?;
        Ok(Body::empty())
    }
}

/// One wave to `rec` through each public send path; `ctx` adds its own.
async fn send_every_way(m: &Machine, ctx: Option<&Ctx>) -> Result<(), WaveError> {
    let rec = p("rec");
    m.signal(&rec, ("machine.signal", Body::empty()))?;
    m.ask(&rec, ("machine.ask", Body::empty())).await?;
    m.ask(&rec, ("machine.request", Body::empty()))
        .within(T)
        .await?;
    m.signal_waiting(&rec, ("machine.signal_waiting", Body::empty()))
        .await?;
    let lane = m.particle(&rec)?;
    lane.signal(("lane.signal", Body::empty()))?;
    lane.signal_waiting(("lane.signal_waiting", Body::empty()))
        .await?;
    lane.ask(("lane.request", Body::empty())).within(T).await?;
    lane.ask(("lane.call", Body::empty())).within(None).await?;
    if let Some(ctx) = ctx {
        ctx.signal(&rec, ("ctx.signal", Body::empty()))?;
        ctx.ask(&rec, ("ctx.request", Body::empty()))
            .within(T)
            .await?;
        ctx.signal_waiting(&rec, ("ctx.signal_waiting", Body::empty()))
            .await?;
        ctx.particle(&rec)?
            .signal(("ctx.lane.signal", Body::empty()))?;
    }
    // Behind everything above: once answered, all of it was handled.
    m.ask(&rec, ("sync", Body::empty())).await?;
    Ok(())
}

async fn senders_machine() -> (Machine, Log) {
    let log = Log::default();
    let m = Machine::standalone()
        .stars(2)
        .kind("rec", Rec(log.clone()))
        .kind("relay", Relay)
        .request_timeout(T)
        .build()
        .await
        .unwrap();
    m.spawn(p("rec"), "rec".into(), Body::empty())
        .await
        .unwrap();
    m.spawn(p("relay"), "relay".into(), Body::empty())
        .await
        .unwrap();
    (m, log)
}

/// Inside a handler, every send path (`Machine::signal`, `ask` with the
/// default timeout and `within` another, `signal_waiting`, a
/// `ParticleRef`'s `signal`, `signal_waiting`, `ask` `within` a timeout and
/// `within(None)`, and the `Ctx`'s own) carries the running particle as the
/// wave's sender: the receiver sees `relay` on every one, `ROOT` on none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_sent_inside_a_handler_is_from_that_particle() {
    let (m, log) = senders_machine().await;
    m.ask(&p("relay"), ("go", Body::empty())).await.unwrap();
    let got: Vec<(String, Point)> = log
        .lock()
        .iter()
        .filter(|(_, m, _)| m != "sync")
        .map(|(_, m, f)| (m.clone(), f.clone()))
        .collect();
    let methods: Vec<&str> = got.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        [
            "machine.signal",
            "machine.ask",
            "machine.request",
            "machine.signal_waiting",
            "lane.signal",
            "lane.signal_waiting",
            "lane.request",
            "lane.call",
            "ctx.signal",
            "ctx.request",
            "ctx.signal_waiting",
            "ctx.lane.signal",
        ]
    );
    for (method, from) in &got {
        assert_eq!(from, &p("relay"), "{method} was sent as {from}");
    }
    m.shutdown().await;
}

/// Outside every handler (here: the test's own task), the same paths send
/// from the Machine itself, `ROOT`; and a reply goes back to `ROOT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_sent_outside_any_handler_is_from_the_machine() {
    let (m, log) = senders_machine().await;
    send_every_way(&m, None).await.unwrap();
    let got = log.lock().clone();
    assert_eq!(got.len(), 9, "{got:?}");
    for (_, method, from) in &got {
        assert!(from.is_root(), "{method} was sent as {from}");
    }
    // A reply is its body now (it has no `from`/`to` to check): the request
    // it answers was handled by `rec`, and was from ROOT, whom it answers.
    m.ask(&p("rec"), ("x", Body::empty())).await.unwrap();
    assert_eq!(
        log.lock().last(),
        Some(&(p("rec"), "x".to_string(), Point::root()))
    );
    m.shutdown().await;
}

/// Calls the supervisor API of the supervisor named in the wave's body from
/// its own handler: `which_children`, then `terminate_child("rec")` and
/// `restart_child("rec")`; answers how each went.
struct Caller;

impl Particle for Caller {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let sup = ctx.machine().supervisor(&w.body.as_str()?.parse()?);
        let which = sup.which_children().await.map(|_| ());
        let terminate = sup.terminate_child("rec").await;
        let restart = sup.restart_child("rec").await.map(|_| ());
        Ok(Body::encode(&[which, terminate, restart].map(
            |r| match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            },
        ))?)
    }
}

async fn api_machine() -> Machine {
    let spec = SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(10)),
        vec![
            ChildSpec::worker("rec", ChildStart::kind("rec", Body::empty())),
            ChildSpec::worker("kid", ChildStart::kind("caller", Body::empty())),
        ],
    );
    let m = Machine::standalone()
        .stars(2)
        .kind("rec", Rec(Log::default()))
        .kind("caller", Caller)
        .supervisor("s", spec)
        .request_timeout(T)
        .build()
        .await
        .unwrap();
    // top (a caller) > top:sup (the supervisor) > top:sup:rec, top:sup:kid;
    // and a stranger, a caller of its own at the top.
    m.spawn(p("top"), "caller".into(), Body::empty())
        .await
        .unwrap();
    m.spawn(p("top:sup"), Kind::new("s"), Body::empty())
        .await
        .unwrap();
    m.spawn(p("stranger"), "caller".into(), Body::empty())
        .await
        .unwrap();
    m
}

/// A particle that is not an ancestor of the supervisor (a stranger, or the
/// supervisor's own child) is refused every call with the typed
/// `Forbidden`, naming itself and the supervisor; nothing is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_api_is_refused_to_a_particle_that_is_no_ancestor() {
    let m = api_machine().await;
    let rec_seq = m.particle(&p("top:sup:rec")).unwrap().spawn_seq();
    for caller in ["stranger", "top:sup:kid"] {
        let answer = timeout(T, m.ask(&p(caller), ("call", "top:sup")))
            .await
            .unwrap()
            .unwrap();
        let got: [String; 3] = answer.decode().unwrap();
        let forbidden = format!(
            "{:?}",
            SupervisorError::Forbidden {
                caller: p(caller),
                supervisor: p("top:sup"),
            }
        );
        assert_eq!(
            got,
            [forbidden.clone(), forbidden.clone(), forbidden],
            "{caller}"
        );
    }
    let rec = m.particle(&p("top:sup:rec")).unwrap();
    assert_eq!((rec.spawn_seq(), rec.restarts()), (rec_seq, 0));
    m.shutdown().await;
}

/// The supervisor's ancestor (from its handler) and the Machine may use the
/// API: both calls go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_api_works_from_an_ancestor_and_from_the_machine() {
    let m = api_machine().await;
    let answer = timeout(T, m.ask(&p("top"), ("call", "top:sup")))
        .await
        .unwrap()
        .unwrap();
    let got: [String; 3] = answer.decode().unwrap();
    assert_eq!(got, ["ok", "ok", "ok"]);
    let sup = m.supervisor(&p("top:sup"));
    assert_eq!(sup.count_children().await.unwrap().active, 2);
    sup.terminate_child("rec").await.unwrap();
    sup.restart_child("rec").await.unwrap();
    // And a particle that is no supervisor says so, typed.
    assert_eq!(
        m.supervisor(&p("stranger"))
            .which_children()
            .await
            .unwrap_err(),
        SupervisorError::NotASupervisor {
            point: p("stranger")
        }
    );
    m.shutdown().await;
}

/// A parent that crashes on `crash`, and spawns its child `c` at each start.
struct Parent;

impl Particle for Parent {
    type State = ();
    async fn start(&self, ctx: &Ctx, _: &Body) -> Result<(), ParticleError> {
        ctx.spawn_child("c", &Kind::new("child"), Body::empty())?;
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if &*w.method == "crash" {
            return Err("told to crash".into());
        }
        Ok(Body::empty())
    }
}

/// On `go`: makes its parent crash, then asks it, through its Ctx, a
/// ParticleRef and the Machine, while the parent is restarting (and so
/// waiting for this very handler to end before it can stop this child).
struct Child(Arc<Mutex<Vec<Result<(), WaveError>>>>);

impl Particle for Child {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        let parent = ctx.parent().unwrap().clone();
        ctx.signal(&parent, ("crash", Body::empty()))?;
        // Queued behind the crash (same sender): the parent takes the crash
        // first, then refuses its descendants' requests until it restarts.
        let by_machine = ctx.machine().ask(&parent, ("hi", Body::empty())).await;
        let by_ctx = ctx.ask(&parent, ("hi", Body::empty())).within(T).await;
        let by_lane = ctx
            .particle(&parent)?
            .ask(("hi", Body::empty()))
            .within(T)
            .await;
        self.0.lock().extend(
            [by_machine, by_ctx, by_lane]
                .into_iter()
                .map(|r| r.map(|_| ())),
        );
        Ok(Body::empty())
    }
}

/// A handler asking its own parent through the Machine while the parent
/// restarts is refused exactly as through its Ctx (`Stopped`), at once: it
/// used to be sent as ROOT, slipped past the guard, and waited for a parent
/// that was waiting for it (a timeout after the whole request timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_asking_its_parent_through_the_machine_is_refused_as_through_its_ctx() {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let m = Machine::standalone()
        .kind("parent", Parent)
        .kind("child", Child(answers.clone()))
        .request_timeout(T)
        .build()
        .await
        .unwrap();
    m.spawn(p("p"), "parent".into(), Body::empty())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    m.signal(&p("p:c"), ("go", Body::empty())).unwrap();
    eventually("three answers", || answers.lock().len() == 3).await;
    let stopped = Err(WaveError::Stopped { point: p("p") });
    assert_eq!(*answers.lock(), [stopped.clone(), stopped.clone(), stopped]);
    assert!(started.elapsed() < T, "the refusal waited");
    // The parent restarted and serves again.
    eventually("p restarted", || {
        m.record(&p("p")).is_some_and(|r| r.restarts == 1)
    })
    .await;
    timeout(T, m.ask(&p("p"), ("hi", Body::empty())))
        .await
        .unwrap()
        .unwrap();
    m.shutdown().await;
}
