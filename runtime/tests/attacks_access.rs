//! Attacks on the access rules (issue 15): a particle acting on others
//! through its Ctx and Machine handle, a CLI user's handle and everything
//! derived from it, a peer Machine through `Inbound`, hostile rule text and
//! rule sets, and the Open / Enforced policy semantics. Each test asserts
//! the secure behaviour. Each began as a finding of the attack review,
//! ignored until fixed; all hold now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse_runtime::access::{
    AccessPolicy, Change, Grant, Privilege, RuleError, Rules, Visit, Visitor, Visitors, Who,
};
use hyperverse_runtime::remote::{Answerer, Remote};
use hyperverse_runtime::*;
use parking_lot::Mutex;

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

fn g(s: &str) -> Grant {
    s.parse().unwrap()
}

/// Waves each particle saw: (at, from, method).
type Seen = Arc<Mutex<Vec<(Point, Point, String)>>>;

/// A particle that does what it is asked (method: the action; body: the
/// target) as itself and answers "ok" or "err:<error>"; any other wave is
/// recorded and answered "pong".
#[derive(Clone, Default)]
struct Agent {
    seen: Seen,
}

fn res<E: std::fmt::Display>(r: Result<(), E>) -> Body {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("err:{e}").into(),
    }
}

impl Particle for Agent {
    type State = ();

    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }

    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let text = std::str::from_utf8(w.body.as_bytes())
            .unwrap_or("")
            .to_string();
        let target = || Point::parse(&text).unwrap();
        let m = ctx.machine();
        Ok(match w.method.as_str() {
            "do:ask" => res(ctx.ask(&target(), ("hello", "x")).await.map(drop)),
            "do:send" => res(ctx
                .signal(&target(), ("hello", "x"))
                .map_err(WaveError::from)),
            "do:stop" => res(m.stop(&target()).await),
            "do:pause" => res(m.inject(&target(), Fault::Pause)),
            "do:shutdown" => {
                m.shutdown().await;
                "ok".into()
            }
            // Spawns `me:k` granted the target (SpawnOptions::grants).
            "do:spawn-granted" => {
                let opts = SpawnOptions {
                    grants: vec![target()],
                    ..SpawnOptions::default()
                };
                res(ctx
                    .spawn_child_with("k", &"agent".into(), Body::empty(), opts)
                    .map(drop))
            }
            "do:grant" => res(m.grant(text.parse().unwrap())),
            // Links to the target, then crashes: the exit signal crosses.
            "do:link-crash" => match ctx.link(&target()) {
                Ok(()) => return Err("boom".to_string().into()),
                Err(e) => format!("err:{e}").into(),
            },
            // Body "ID TARGET": a MonitorRef forged from its serde form.
            "do:demonitor" => {
                let (id, at) = text.split_once(' ').unwrap();
                let forged = forge_monitor(id.parse().unwrap(), &p(at));
                if ctx.demonitor(&forged) {
                    "removed".into()
                } else {
                    "kept".into()
                }
            }
            "do:policy" => res(m.set_access_policy(AccessPolicy::Open)),
            "do:superusers" => res(m.set_superusers(&["mallory"])),
            "do:join" => res(m.join_group("g", text.parse().unwrap())),
            "do:as-user" => res(m.as_user("owner").map(drop)),
            "do:confined-send" => {
                if ctx.confined_may(Privilege::Send, &target()) {
                    "yes".into()
                } else {
                    "no".into()
                }
            }
            "do:confined-read" => {
                if ctx.confined_may(Privilege::Read, &target()) {
                    "yes".into()
                } else {
                    "no".into()
                }
            }
            _ => {
                self.seen
                    .lock()
                    .push((ctx.me().clone(), w.from.clone(), w.method.to_string()));
                "pong".into()
            }
        })
    }
}

/// A Machine with `a`, `a:x` and `b`, `b:y` under `policy`, and a
/// superuser "owner".
async fn world(policy: AccessPolicy) -> (Machine, Agent) {
    let agent = Agent::default();
    let machine = Machine::standalone()
        .stars(2)
        .access(policy)
        .superuser("owner")
        .kind("agent", agent.clone())
        .build()
        .await
        .unwrap();
    for at in ["a", "a:x", "b", "b:y"] {
        machine
            .spawn(p(at), "agent".into(), Body::empty())
            .await
            .unwrap();
    }
    (machine, agent)
}

/// Has the agent at `by` do `action` with `arg`; its answer as text.
async fn act(machine: &Machine, by: &str, action: &str, arg: &str) -> String {
    let body = machine
        .ask(&p(by), (format!("do:{action}"), arg.to_string()))
        .within(Some(Duration::from_secs(10)))
        .await
        .unwrap();
    String::from_utf8(body.as_bytes().to_vec()).unwrap()
}

fn denied<T: std::fmt::Debug>(r: Result<T, WaveError>) -> bool {
    matches!(r, Err(WaveError::Denied { .. }))
}

// ---------------------------------------------------------------------
// A particle acting on others.

/// Was a finding: `SpawnOptions::grants` are not bounded by the spawner's own
/// rights. Under Enforced, `a` may not ask `b`; it spawns its child `a:k`
/// granted `b` (its own subtree, so the spawn is allowed), and `a:k` asks
/// `b`.
#[tokio::test]
async fn spawn_grants_cannot_exceed_the_spawners_rights() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    assert!(act(&machine, "a", "ask", "b").await.starts_with("err:"));
    let spawned = act(&machine, "a", "spawn-granted", "b").await;
    if spawned == "ok" {
        let asked = act(&machine, "a:k", "ask", "b").await;
        assert!(
            asked.starts_with("err:"),
            "a:k asked b through a grant its parent did not hold: {asked}"
        );
    }
    // Granting ROOT: every Point.
    let spawned = act(&machine, "b:y", "spawn-granted", "ROOT").await;
    if spawned == "ok" {
        assert!(act(&machine, "b:y:k", "ask", "a:x")
            .await
            .starts_with("err:"));
    }
    assert!(
        !agent
            .seen
            .lock()
            .iter()
            .any(|(at, _, _)| at == &p("b") || at == &p("a:x")),
        "no wave reached the strangers"
    );
    machine.shutdown().await;
}

/// The same through a CLI user who may only spawn under `app`.
#[tokio::test]
async fn a_user_cannot_launder_rights_through_spawn_grants() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    machine.grant(g("spawn on ROOT to user=alice")).unwrap();
    let alice = machine.as_user("alice").unwrap();
    let opts = SpawnOptions {
        grants: vec![Point::root()],
        ..SpawnOptions::default()
    };
    let spawned = alice
        .spawn_with(p("evil"), "agent".into(), Body::empty(), opts)
        .await;
    if spawned.is_ok() {
        assert!(act(&machine, "evil", "ask", "a:x")
            .await
            .starts_with("err:"));
        assert!(agent.seen.lock().is_empty());
    }
    machine.shutdown().await;
}

/// Was a finding: the own-line rule (a particle may stop its ancestors) reaches
/// `ROOT`, and stopping `ROOT` stops every particle of every line.
#[tokio::test]
async fn a_particle_may_not_stop_root() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    let out = act(&machine, "b:y", "stop", "ROOT").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        machine.record(&p("a:x")).is_some(),
        "b:y ended another line by stopping ROOT ({out})"
    );
    assert!(out.starts_with("err:"));
    machine.shutdown().await;
}

/// The own-line rule is exactly that: a child may stop its parent, not
/// its parent's sibling, not a Point that merely shares a prefix.
#[tokio::test]
async fn the_own_line_rule_is_only_the_own_line() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    machine
        .spawn(p("ab"), "agent".into(), Body::empty())
        .await
        .unwrap();
    machine
        .spawn(p("a:xy"), "agent".into(), Body::empty())
        .await
        .unwrap();
    assert!(act(&machine, "a:x", "stop", "b").await.starts_with("err:"));
    assert!(act(&machine, "a:x", "stop", "ab").await.starts_with("err:"));
    assert!(act(&machine, "a:x", "stop", "a:xy")
        .await
        .starts_with("err:"));
    assert!(act(&machine, "a:x", "stop", "b:y")
        .await
        .starts_with("err:"));
    for at in ["b", "b:y", "ab", "a:xy"] {
        assert!(machine.record(&p(at)).is_some(), "{at} survived");
    }
    // Documented: a child may stop its own parent.
    assert_eq!(act(&machine, "b:y", "stop", "b").await, "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(machine.record(&p("b")).is_none());
    assert!(machine.record(&p("a")).is_some());
    machine.shutdown().await;
}

/// Was a finding: `Machine::shutdown` from a particle's handler is not judged;
/// under Enforced any particle ends every other.
#[tokio::test]
async fn a_particle_may_not_shut_the_machine_down() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    let _ = act(&machine, "b:y", "shutdown", "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(machine.record(&p("a")).is_some(), "a stranger's line ended");
    machine.shutdown().await;
}

/// Was a finding: `Machine::inject` documents that only `point` and its
/// ancestors may inject a fault; the own-line stop rule now lets a child
/// pause (or crash) its parent.
#[tokio::test]
async fn a_child_may_not_inject_faults_into_its_parent() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    let out = act(&machine, "a:x", "pause", "a").await;
    let _ = machine.inject(&p("a"), Fault::Resume);
    assert!(out.starts_with("err:"), "a:x paused its parent: {out}");
    machine.shutdown().await;
}

#[tokio::test]
async fn a_stranger_may_not_inject_faults() {
    let (machine, _) = world(AccessPolicy::Open).await;
    assert!(act(&machine, "b:y", "pause", "a").await.starts_with("err:"));
    assert!(act(&machine, "b:y", "pause", "a:x")
        .await
        .starts_with("err:"));
    // a is not paused: it still answers.
    assert_eq!(
        machine
            .ask(&p("a"), ("hello", ""))
            .within(Some(Duration::from_secs(2)))
            .await
            .unwrap()
            .as_bytes(),
        b"pong"
    );
    machine.shutdown().await;
}

#[tokio::test]
async fn a_particle_grants_only_inside_its_subtree_and_never_administers() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    machine
        .spawn(p("ab"), "agent".into(), Body::empty())
        .await
        .unwrap();
    for rule in [
        "all on b to a",
        "all on b:** to a",
        "all on ** to a",
        "all on ROOT to a",
        "all on ab to a",
        "all on ab:** to a",
    ] {
        let out = act(&machine, "a", "grant", rule).await;
        assert!(out.starts_with("err:"), "a granted `{rule}`: {out}");
    }
    // A child may not grant on its parent.
    assert!(act(&machine, "a:x", "grant", "all on a to a:x")
        .await
        .starts_with("err:"));
    // Administration is the superusers'.
    assert!(act(&machine, "a", "policy", "").await.starts_with("err:"));
    assert!(act(&machine, "a", "superusers", "")
        .await
        .starts_with("err:"));
    assert!(act(&machine, "a", "join", "a").await.starts_with("err:"));
    assert!(act(&machine, "a", "as-user", "").await.starts_with("err:"));
    assert_eq!(machine.access_policy(), AccessPolicy::Enforced);
    assert_eq!(machine.rules().len(), 0);
    assert_eq!(machine.rules().groups().count(), 0);
    // On its own subtree it may.
    assert_eq!(act(&machine, "a", "grant", "send on a:x to b").await, "ok");
    assert_eq!(machine.rules().len(), 1);
    assert!(act(&machine, "a", "ask", "b").await.starts_with("err:"));
    assert!(act(&machine, "a", "ask", "ab").await.starts_with("err:"));
    machine.shutdown().await;
}

/// A MonitorRef made from its wire form, as anyone may.
fn forge_monitor(id: u64, target: &Point) -> MonitorRef {
    Body::encode(&(id, target.clone()))
        .unwrap()
        .decode::<MonitorRef>()
        .unwrap()
}

/// Was a finding: `Machine::demonitor` / `Ctx::demonitor` remove any monitor
/// named by a `MonitorRef`, which is `Deserialize` and whose ids are
/// sequential: a stranger (a particle or a CLI user) silences another
/// particle's monitor, and the watcher never hears of the target's end.
#[tokio::test]
async fn a_stranger_cannot_remove_anothers_monitor() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    let r = machine.monitor(&p("a"), &p("b:y")).unwrap();
    let r2 = machine.monitor(&p("a:x"), &p("b:y")).unwrap();
    let forged = forge_monitor(r.id(), r.target());
    assert_eq!(forged, r, "the wire form is the MonitorRef");
    // A CLI user with no rights.
    let alice = machine.as_user("alice").unwrap();
    let by_user = alice.demonitor(&forged);
    // A particle of another line, on the other monitor.
    let by_particle = act(&machine, "b", "demonitor", &format!("{} b:y", r2.id())).await;
    let still_there = (machine.demonitor(&r), machine.demonitor(&r2));
    assert!(
        !by_user && by_particle == "kept" && still_there == (true, true),
        "user removed one: {by_user}; particle: {by_particle}; still there: {still_there:?}"
    );
    machine.shutdown().await;
}

// ---------------------------------------------------------------------
// A CLI user's handle and everything derived from it.

#[tokio::test]
async fn a_user_handle_escalates_nowhere() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    machine
        .spawn(p("a:x:sup"), "agent".into(), Body::empty())
        .await
        .unwrap();
    let alice = machine.as_user("alice").unwrap();
    let derived = alice.clone();
    assert_eq!(derived.visitor(), Visitor::User("alice".into()));
    for h in [&alice, &derived] {
        assert!(matches!(
            h.as_user("owner"),
            Err(RuleError::NotOwner { .. })
        ));
        assert!(matches!(
            h.as_user("alice"),
            Err(RuleError::NotOwner { .. })
        ));
        assert!(h.set_access_policy(AccessPolicy::Open).is_err());
        assert!(h.set_superusers(&["alice"]).is_err());
        assert!(h.join_group("g", Visitors::User("alice".into())).is_err());
        assert!(h.grant(g("all on ** to user=alice")).is_err());
        assert!(h.grant(g("all on a to user=alice")).is_err());
        assert!(h.revoke(g("all on ** to *")).is_err());
        assert!(h.attach_remote(Arc::new(Nowhere)).is_err());
        assert!(h.crash_star(0, "x").is_err());
        assert!(h.kill_star(1, "x").await.is_err());
        assert!(h.inject(&p("a"), Fault::Pause).is_err());
        assert!(denied(h.stop(&p("a")).await));
        assert!(denied(h.stop(&Point::root()).await));
        assert!(h.record(&p("a")).is_none());
        let reg = h.registry();
        assert!(reg.record(&p("a")).is_none());
        assert!(!reg.contains(&p("a")));
        assert!(reg.subtree(&Point::root()).is_empty());
        assert!(reg.by_kind(&"agent".into()).is_empty());
        assert!(reg.by_status(Status::Ready).is_empty());
        assert!(!reg.has_children(&p("a")));
        assert!(h.particles_on(0).is_empty() && h.particles_on(1).is_empty());
        assert!(!h.may(Privilege::Read, &p("a")));
        assert!(h.supervisor(&p("a:x:sup")).which_children().await.is_err());
        assert!(denied(h.monitor(&p("a"), &p("b"))));
        assert!(h
            .control(&p("a"), "x", Duration::from_secs(1))
            .await
            .is_err());
        let tree = TreeSpec::new("t", "agent").child(TreeSpec::new("u", "agent"));
        assert!(h.spawn_tree(&Point::root(), &tree).await.is_err());
        assert!(h.spawn_tree(&p("a"), &tree).await.is_err());
        assert!(machine.record(&p("t")).is_none() && machine.record(&p("a:t")).is_none());
        assert!(h
            .spawn(p("a:z"), "agent".into(), Body::empty())
            .await
            .is_err());
        h.shutdown().await;
        assert!(machine.record(&p("a")).is_some(), "still up");
        // A ParticleRef resolved through the handle is the user's.
        let r = h.particle(&p("a")).unwrap();
        assert!(denied(r.ask(("hello", "")).await));
        r.signal(("hello", "")).unwrap();
        r.signal_waiting(("hello", "")).await.unwrap();
        assert!(denied(h.ask(&p("a"), ("hello", "")).await));
        h.signal(&p("a"), ("hello", "")).unwrap();
    }
    // Let any wave that slipped through arrive.
    machine.ask(&p("a"), ("sync", "")).await.unwrap();
    assert!(
        !agent.seen.lock().iter().any(|(_, _, m)| m == "hello"),
        "a denied wave was delivered"
    );
    let stats = machine.access_stats();
    assert!(stats.denied_signals >= 6, "{stats:?}");
    assert!(stats.denied_requests >= 4, "{stats:?}");
    assert_eq!(machine.access_policy(), AccessPolicy::Enforced);
    assert_eq!(machine.rules().len(), 0);
    machine.shutdown().await;
}

/// A user named like the Machine or a Point is only a user.
#[tokio::test]
async fn users_named_root_or_like_points_are_only_users() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    for name in ["ROOT", "a", "machine=x", "*", "**", "owner "] {
        let u = machine.as_user(name).unwrap();
        assert!(!u.may(Privilege::Stop, &p("a")), "{name}");
        assert!(!u.may(Privilege::Ask, &p("a")), "{name}");
        assert!(u.set_access_policy(AccessPolicy::Open).is_err(), "{name}");
        assert!(denied(u.stop(&p("a:x")).await), "{name}");
    }
    // A grant to the particle `a` is not a grant to the user "a", nor the
    // other way round.
    machine.grant(g("ask on b to a")).unwrap();
    assert!(!machine.as_user("a").unwrap().may(Privilege::Ask, &p("b")));
    machine.grant(g("ask on b:y to user=a")).unwrap();
    assert!(act(&machine, "a", "ask", "b:y").await.starts_with("err:"));
    // Bad user names.
    assert!(matches!(
        machine.as_user(""),
        Err(RuleError::Name { len: 0 })
    ));
    assert!(matches!(
        machine.as_user(&"u".repeat(256)),
        Err(RuleError::Name { len: 256 })
    ));
    machine.shutdown().await;
}

#[tokio::test]
async fn an_exact_root_grant_to_a_user_is_only_root() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    machine.grant(g("spawn on ROOT to user=bob")).unwrap();
    let bob = machine.as_user("bob").unwrap();
    bob.spawn(p("c"), "agent".into(), Body::empty())
        .await
        .unwrap();
    // A top-level spawn, but nothing below another's Point.
    assert!(bob
        .spawn(p("a:z"), "agent".into(), Body::empty())
        .await
        .is_err());
    // Bob spawned `c` but a user owns nothing: no stop on it.
    assert!(denied(bob.stop(&p("c")).await));
    assert!(denied(bob.stop(&p("a")).await));
    machine.shutdown().await;
}

// ---------------------------------------------------------------------
// Rules: names, scopes, confusions, sizes, scale.

fn allows(rules: &Rules, who: Who<'_>, target: &str, want: Privilege) -> bool {
    let visit = Visit {
        who,
        kind: None,
        via: None,
        confined: false,
        grants: &[],
    };
    rules.allows(false, &visit, &p(target), want)
}

fn rules_of(grants: &[&str]) -> Rules {
    let mut r = Rules::default();
    for x in grants {
        r.apply(&Change::Grant(g(x))).unwrap();
    }
    r
}

#[test]
fn exact_subtree_and_prefix_confusions() {
    let r = rules_of(&[
        "send on a to v",
        "ask on a:b:** to v",
        "stop on ROOT to v",
        "read on q:** to w:**",
        "link on q to w:z",
    ]);
    let v = p("v");
    let who = Who::Particle(&v);
    assert!(allows(&r, who, "a", Privilege::Send));
    assert!(!allows(&r, who, "a:b", Privilege::Send), "exact covers a:b");
    assert!(!allows(&r, who, "ab", Privilege::Send));
    assert!(allows(&r, who, "a:b", Privilege::Ask));
    assert!(allows(&r, who, "a:b:c:d", Privilege::Ask));
    assert!(
        !allows(&r, who, "a:bc", Privilege::Ask),
        "a:b:** covers a:bc"
    );
    assert!(!allows(&r, who, "a", Privilege::Ask));
    assert!(!allows(&r, who, "a:b", Privilege::Send));
    // `stop on ROOT` exact covers ROOT alone.
    assert!(!allows(&r, who, "a", Privilege::Stop));
    // Visitor patterns: `w:**` is w and below, not `wx`; `w:z` is not `w:zz`.
    for (visitor, ok) in [("w", true), ("w:z:q", true), ("wx", false), ("x:w", false)] {
        let v = p(visitor);
        assert_eq!(
            allows(&r, Who::Particle(&v), "q:r", Privilege::Read),
            ok,
            "{visitor}"
        );
    }
    let wzz = p("w:zz");
    assert!(!allows(&r, Who::Particle(&wzz), "q", Privilege::Link));
    let wz = p("w:z");
    assert!(allows(&r, Who::Particle(&wz), "q", Privilege::Link));
    assert!(!allows(&r, Who::Particle(&wz), "q:r", Privilege::Link));
    // Users and Machines named as the particle get nothing of it.
    assert!(!allows(&r, Who::User("v"), "a", Privilege::Send));
    assert!(!allows(&r, Who::Machine("v"), "a", Privilege::Send));
    // The `**` visitor pattern is every particle, not users or Machines.
    let r = rules_of(&["send on a to **"]);
    assert!(allows(&r, Who::Particle(&v), "a", Privilege::Send));
    assert!(!allows(&r, Who::User("u"), "a", Privilege::Send));
    assert!(!allows(&r, Who::Machine("m"), "a", Privilege::Send));
}

#[test]
fn names_that_look_like_other_names() {
    // A Point cannot be named like a user, a Machine or a pattern.
    for bad in [
        "machine=x",
        "user=alice",
        "kind=k",
        "a:ROOT",
        "a:*",
        "a:**:b",
        "*",
        "a b",
    ] {
        assert!(Point::parse(bad).is_err(), "{bad}");
    }
    assert!(matches!(
        "user=alice".parse::<Visitors>().unwrap(),
        Visitors::User(_)
    ));
    assert!(matches!(
        "user=machine=x".parse::<Visitors>().unwrap(),
        Visitors::User(ref u) if &**u == "machine=x"
    ));
    assert!("nobody=x".parse::<Visitors>().is_err());
    assert!("a:**:**".parse::<Visitors>().is_err());
    assert!("ROOT:**".parse::<Grant>().is_err());
    // A grant to `user=machine=x` is the user's, not the Machine x's.
    let r = rules_of(&["send on a to user=machine=x"]);
    assert!(allows(&r, Who::User("machine=x"), "a", Privilege::Send));
    assert!(!allows(&r, Who::Machine("x"), "a", Privilege::Send));
    // Grant text with extra words, or a privilege list with junk.
    for bad in [
        "send on a to b c",
        "send on a to",
        "send,, on a to b",
        "send on a:** to b on c",
        "SEND on a to b",
        "all,stop on a to b",
        "none on a to b",
    ] {
        assert!(bad.parse::<Grant>().is_err(), "{bad}");
    }
}

#[test]
fn huge_names_and_texts_are_refused_quickly() {
    let t = Instant::now();
    let long = "x".repeat(256);
    for tag in ["kind", "group", "machine", "user"] {
        assert!(matches!(
            format!("{tag}={long}").parse::<Visitors>(),
            Err(RuleError::Name { len: 256 })
        ));
        assert!(format!("{tag}={}", "x".repeat(255))
            .parse::<Visitors>()
            .is_ok());
    }
    // Built past the parser (a peer's change): refused by `apply` too.
    let mut r = Rules::default();
    for to in [
        Visitors::Kind(Kind::new(&*long)),
        Visitors::Group(long.as_str().into()),
        Visitors::Machine(long.as_str().into()),
        Visitors::User(long.as_str().into()),
        Visitors::User("".into()),
    ] {
        let grant = Grant::new(Privilege::Send, "a".parse().unwrap(), to.clone());
        assert!(r.apply(&Change::Grant(grant)).is_err(), "{to:?}");
        assert!(
            r.apply(&Change::Join {
                group: "g".into(),
                member: to.clone()
            })
            .is_err()
                || matches!(to, Visitors::Group(_))
        );
    }
    assert!(r
        .apply(&Change::Join {
            group: long.as_str().into(),
            member: Visitors::Anyone
        })
        .is_err());
    assert_eq!(r.len(), 0);
    assert_eq!(r.groups().count(), 0);
    // Points over 255 bytes or 32 segments.
    assert!(format!("send on {long} to a").parse::<Grant>().is_err());
    let deep = vec!["a"; 33].join(":");
    assert!(format!("send on {deep} to a").parse::<Grant>().is_err());
    // A megabyte of text is refused, not choked on.
    let mega = "send,".repeat(200_000);
    assert!(format!("{mega} on a to b").parse::<Grant>().is_err());
    assert!(format!("send on a to {}", "a:".repeat(300_000))
        .parse::<Grant>()
        .is_err());
    // A 300 kB user name on a check (a peer's voice): no match, no panic.
    let r = rules_of(&["send on a to *"]);
    let huge = "m".repeat(300_000);
    assert!(r.allows(
        false,
        &Visit {
            who: Who::Machine(&huge),
            kind: None,
            via: Some(&huge),
            confined: false,
            grants: &[]
        },
        &p("a"),
        Privilege::Send
    ));
    let r = rules_of(&["send on a to machine=m"]);
    assert!(!r.allows(
        false,
        &Visit {
            who: Who::Machine(&huge),
            kind: None,
            via: Some(&huge),
            confined: false,
            grants: &[]
        },
        &p("a"),
        Privilege::Send
    ));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn groups_hold_no_groups_and_partial_revokes_keep_the_rest() {
    let mut r = Rules::default();
    assert!(matches!(
        r.apply(&Change::Join {
            group: "g".into(),
            member: Visitors::Group("h".into())
        }),
        Err(RuleError::GroupInGroup { .. })
    ));
    assert!(matches!(
        r.apply(&Change::Join {
            group: "g".into(),
            member: Visitors::Group("g".into())
        }),
        Err(RuleError::GroupInGroup { .. })
    ));
    r.apply(&Change::Join {
        group: "h".into(),
        member: Visitors::Point(p("v")),
    })
    .unwrap();
    r.apply(&Change::Grant(g("send,ask,stop on a:** to group=g")))
        .unwrap();
    let v = p("v");
    // v is in h, not g: g holds no group.
    assert!(!allows(&r, Who::Particle(&v), "a:b", Privilege::Send));
    r.apply(&Change::Join {
        group: "g".into(),
        member: Visitors::Subtree(p("v")),
    })
    .unwrap();
    let vw = p("v:w");
    assert!(allows(&r, Who::Particle(&vw), "a:b", Privilege::Stop));
    // Revoke part: the rest stays.
    r.apply(&Change::Revoke(g("stop on a:** to group=g")))
        .unwrap();
    assert!(!allows(&r, Who::Particle(&vw), "a:b", Privilege::Stop));
    assert!(allows(&r, Who::Particle(&vw), "a:b", Privilege::Ask));
    // A revoke on another scope (exact `a`) takes nothing from `a:**`.
    r.apply(&Change::Revoke(g("all on a to group=g"))).unwrap();
    assert!(allows(&r, Who::Particle(&vw), "a", Privilege::Send));
    // Leaving ends it.
    r.apply(&Change::Leave {
        group: "g".into(),
        member: Visitors::Subtree(p("v")),
    })
    .unwrap();
    assert!(!allows(&r, Who::Particle(&vw), "a:b", Privilege::Send));
    // A revoke of everything removes the grant.
    r.apply(&Change::Revoke(g("all on a:** to group=g")))
        .unwrap();
    assert_eq!(r.len(), 0);
}

/// 100k grants of each shape: applied, and checked, in bounded time.
#[test]
fn a_hundred_thousand_rules_cost_no_quadratic_time() {
    const N: usize = 100_000;
    let budget = Duration::from_secs(if cfg!(debug_assertions) { 20 } else { 4 });
    // Spread over Points, and all on one Point, keyed visitors.
    for one_point in [false, true] {
        let mut r = Rules::default();
        let t = Instant::now();
        for i in 0..N {
            let on = if one_point {
                "hot".to_string()
            } else {
                format!("s{i}")
            };
            r.apply(&Change::Grant(Grant::new(
                Privilege::Send,
                on.parse().unwrap(),
                Visitors::Point(p(&format!("v{i}"))),
            )))
            .unwrap();
        }
        assert_eq!(r.len(), N);
        let v = p("stranger:x:y");
        for _ in 0..N {
            assert!(!allows(&r, Who::Particle(&v), "hot:a:b", Privilege::Send));
        }
        assert!(
            t.elapsed() < budget,
            "one_point={one_point}: {:?}",
            t.elapsed()
        );
    }
}

/// Was a finding: grants to groups at one Point are a Vec scanned on every
/// change (`Entries::set` retains) and on every check (`Entries::gives`
/// walks them all): quadratic to build, linear per check.
#[test]
fn a_hundred_thousand_group_grants_on_one_point_cost_no_quadratic_time() {
    const N: usize = 100_000;
    let budget = Duration::from_secs(if cfg!(debug_assertions) { 20 } else { 4 });
    let mut r = Rules::default();
    let t = Instant::now();
    for i in 0..N {
        r.apply(&Change::Grant(Grant::new(
            Privilege::Send,
            "hot:**".parse().unwrap(),
            Visitors::Group(format!("g{i}").into()),
        )))
        .unwrap();
    }
    let built = t.elapsed();
    let v = p("stranger");
    let t = Instant::now();
    for _ in 0..1_000 {
        assert!(!allows(&r, Who::Particle(&v), "hot:a", Privilege::Send));
    }
    let checked = t.elapsed();
    assert!(
        built < budget && checked < Duration::from_millis(500),
        "built in {built:?}, 1000 checks in {checked:?}"
    );
}

// ---------------------------------------------------------------------
// Waves: denied asks, signals, counting, policy switches.

#[tokio::test]
async fn a_denied_ask_never_hangs_or_crashes_and_is_not_delivered() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    let a = machine.particle(&p("a")).unwrap();
    let b = machine.particle(&p("b")).unwrap();
    let before = (a.restarts(), b.restarts(), a.load().taken);
    let before_stats = machine.access_stats();
    let t = Instant::now();
    let out = act(&machine, "b", "ask", "a").await;
    assert!(out.starts_with("err:"), "{out}");
    assert!(out.contains("access denied"), "a clear error: {out}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // A signal too: dropped, and the sender is not told.
    assert_eq!(act(&machine, "b", "send", "a").await, "ok");
    // Both live, neither restarted, `a` took no wave from b.
    assert_eq!((a.restarts(), b.restarts()), (before.0, before.1));
    assert_eq!(a.status(), Status::Ready);
    assert_eq!(b.status(), Status::Ready);
    assert_eq!(a.load().taken, before.2, "a denied wave reached a's lane");
    assert!(agent.seen.lock().iter().all(|(at, _, _)| at != &p("a")));
    let s = machine.access_stats();
    assert_eq!(s.denied_requests, before_stats.denied_requests + 1);
    assert_eq!(s.denied_signals, before_stats.denied_signals + 1);
    // An ask to itself is answered, not hung on.
    let own = machine
        .ask(&p("a"), ("do:ask", "a"))
        .within(Some(Duration::from_secs(3)))
        .await
        .unwrap();
    assert!(std::str::from_utf8(own.as_bytes())
        .unwrap()
        .starts_with("err:"));
    machine.shutdown().await;
}

#[tokio::test]
async fn a_denied_signal_waiting_on_a_full_lane_neither_waits_nor_queues() {
    let agent = Agent::default();
    let machine = Machine::standalone()
        .access(AccessPolicy::Enforced)
        .kind("agent", agent.clone())
        .build()
        .await
        .unwrap();
    let opts = SpawnOptions {
        lane: Some(LaneLimit {
            capacity: 1,
            when_full: WhenFull::Wait,
            max_bytes: None,
        }),
        ..SpawnOptions::default()
    };
    let full = machine
        .spawn_with(p("full"), "agent".into(), Body::empty(), opts)
        .await
        .unwrap();
    machine.inject(&p("full"), Fault::Pause).unwrap();
    full.signal(("fill", "")).unwrap();
    // Let it take the first if it will, then fill again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = full.signal(("fill", ""));
    let queued = full.queued();
    assert!(queued >= 1);
    let alice = machine.as_user("alice").unwrap();
    let r = alice.particle(&p("full")).unwrap();
    let t = Instant::now();
    let sent = tokio::time::timeout(Duration::from_secs(2), r.signal_waiting(("evil", ""))).await;
    assert!(sent.is_ok(), "a denied signal waited for room");
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        alice.signal_waiting(&p("full"), ("evil", "")),
    )
    .await;
    assert!(sent.is_ok(), "a denied signal waited for room");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(full.queued(), queued, "a denied signal was queued");
    assert_eq!(machine.access_stats().denied_signals, 2);
    machine.inject(&p("full"), Fault::Resume).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(agent.seen.lock().iter().all(|(_, _, m)| m != "evil"));
    machine.shutdown().await;
}

#[tokio::test]
async fn the_open_policy_gives_a_confined_visitor_nothing() {
    let (machine, _) = world(AccessPolicy::Open).await;
    assert_eq!(act(&machine, "b", "confined-send", "a").await, "no");
    assert_eq!(act(&machine, "b", "confined-send", "a:x").await, "no");
    assert_eq!(act(&machine, "b", "confined-read", "a").await, "no");
    assert_eq!(act(&machine, "b", "confined-send", "bb").await, "no");
    // Its own subtree and its parent it may.
    assert_eq!(act(&machine, "b", "confined-send", "b:y").await, "yes");
    assert_eq!(act(&machine, "b:y", "confined-send", "b").await, "yes");
    // But not its grandparent's sibling's through the parent rule.
    assert_eq!(act(&machine, "b:y", "confined-send", "a").await, "no");
    // A grant to `*` does count for it.
    machine.grant(g("send on a to *")).unwrap();
    assert_eq!(act(&machine, "b", "confined-send", "a").await, "yes");
    assert_eq!(act(&machine, "b", "confined-send", "a:x").await, "no");
    // Each refusal counted, as the kind of wave or action it would be.
    let stats = machine.access_stats();
    assert!(stats.denied_actions + stats.denied_signals + stats.denied_requests >= 5);
    machine.shutdown().await;
}

#[tokio::test]
async fn a_policy_switch_judges_the_very_next_wave_even_through_old_refs() {
    let (machine, agent) = world(AccessPolicy::Open).await;
    let alice = machine.as_user("alice").unwrap();
    let old_ref = alice.particle(&p("a")).unwrap();
    assert_eq!(
        old_ref.ask(("hello", "")).await.unwrap().as_bytes(),
        b"pong"
    );
    assert_eq!(act(&machine, "b", "ask", "a").await, "ok");
    machine.set_access_policy(AccessPolicy::Enforced).unwrap();
    assert!(denied(old_ref.ask(("hello", "")).await));
    assert!(act(&machine, "b", "ask", "a").await.starts_with("err:"));
    let n = agent.seen.lock().len();
    old_ref.signal(("hello", "")).unwrap();
    machine.ask(&p("a"), ("sync", "")).await.unwrap();
    assert_eq!(agent.seen.lock().len(), n + 1, "only the sync arrived");
    // A user may not switch it back.
    assert!(alice.set_access_policy(AccessPolicy::Open).is_err());
    // The owner (a superuser user) may.
    machine
        .as_user("owner")
        .unwrap()
        .set_access_policy(AccessPolicy::Open)
        .unwrap();
    assert_eq!(
        old_ref.ask(("hello", "")).await.unwrap().as_bytes(),
        b"pong"
    );
    // A revoked superuser loses it at once.
    let owner = machine.as_user("owner").unwrap();
    machine.set_superusers(&[]).unwrap();
    assert!(owner.set_access_policy(AccessPolicy::Enforced).is_err());
    assert!(!owner.may(Privilege::Stop, &p("a")));
    machine.shutdown().await;
}

#[tokio::test]
async fn a_rule_change_judges_the_very_next_wave() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    assert!(act(&machine, "b", "ask", "a").await.starts_with("err:"));
    machine.grant(g("ask on a to b")).unwrap();
    assert_eq!(act(&machine, "b", "ask", "a").await, "ok");
    // Revoking `send` leaves `ask`; revoking `ask` ends it at once.
    machine.revoke(g("send on a to b")).unwrap();
    assert_eq!(act(&machine, "b", "ask", "a").await, "ok");
    machine.revoke(g("ask on a to b")).unwrap();
    assert!(act(&machine, "b", "ask", "a").await.starts_with("err:"));
    // An exact grant on `a` gives nothing on `a:x`; `b` gives nothing to `b:y`.
    machine.grant(g("ask on a to b")).unwrap();
    assert!(act(&machine, "b", "ask", "a:x").await.starts_with("err:"));
    assert!(act(&machine, "b:y", "ask", "a").await.starts_with("err:"));
    machine.shutdown().await;
}

// ---------------------------------------------------------------------
// A peer Machine through `Inbound`.

struct Nowhere;
impl Remote for Nowhere {
    fn hosts(&self, _: &Point) -> bool {
        false
    }
    fn signal(&self, w: Wave) -> Result<(), WaveError> {
        Err(WaveError::NoSuchParticle { point: w.to })
    }
    fn ask(&self, _: Wave, a: Answerer) {
        a.answer(Ok(Body::empty()))
    }
    fn registered(&self, _: &Point) {}
    fn ended(&self, _: &Point, _: &DownReason) {}
    fn monitor(&self, _: &Point, _: &MonitorRef) -> bool {
        false
    }
    fn demonitor(&self, _: &MonitorRef) -> bool {
        false
    }
    fn link(&self, _: &Point, _: &Point) -> bool {
        false
    }
    fn unlink(&self, _: &Point, _: &Point) {}
    fn exited(&self, _: &Point, _: &str, _: bool) {}
    fn crash_notice(&self, _: &Point, _: CrashNotice) {}
    fn control(&self, _: Point, _: Point, _: Body, a: Answerer) {
        a.answer(Ok(Body::empty()))
    }
}

fn wave(from: &str, to: &str) -> Wave {
    Wave::signal(p(from), p(to), "hello", "x")
}

async fn peer_ask(inbound: &Inbound, peer: &str, from: &str, to: &str) -> Result<Body, WaveError> {
    inbound
        .ask(peer, wave(from, to), Some(Duration::from_secs(2)))
        .await
}

#[tokio::test]
async fn a_peer_is_judged_as_itself_never_as_root_or_another_machine() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    let inbound = machine.attach_remote(Arc::new(Nowhere)).unwrap();
    // As this Machine's root: refused outright, on every path.
    assert!(matches!(
        inbound.signal("peer", wave("ROOT", "a")),
        Err(WaveError::Forbidden { .. })
    ));
    assert!(matches!(
        peer_ask(&inbound, "peer", "ROOT", "a").await,
        Err(WaveError::Forbidden { .. })
    ));
    for want in Privilege::ALL {
        assert!(
            inbound
                .check("peer", &Point::root(), &p("a"), want)
                .is_err(),
            "a peer's ROOT got {want}"
        );
    }
    assert!(inbound
        .control(Point::root(), &p("a"), Body::empty())
        .await
        .is_err());
    // Its own voice and its particles: nothing without a grant.
    assert!(denied(peer_ask(&inbound, "peer", "peer", "a").await));
    assert!(denied(peer_ask(&inbound, "peer", "x:y", "a").await));
    assert!(inbound
        .check("peer", &p("peer"), &p("a"), Privilege::Stop)
        .is_err());
    // A grant to machine=peer: its voice and its particles, not another
    // Machine speaking as it, nor a local particle named like it.
    machine.grant(g("ask on a to machine=peer")).unwrap();
    assert!(peer_ask(&inbound, "peer", "peer", "a").await.is_ok());
    assert!(peer_ask(&inbound, "peer", "x:y", "a").await.is_ok());
    assert!(denied(peer_ask(&inbound, "other", "peer", "a").await));
    assert!(denied(peer_ask(&inbound, "other", "x:y", "a").await));
    assert!(denied(peer_ask(&inbound, "peer", "x:y", "a:x").await));
    machine
        .spawn(p("peer"), "agent".into(), Body::empty())
        .await
        .unwrap();
    assert!(act(&machine, "peer", "ask", "a").await.starts_with("err:"));
    // A grant to the Point `peer` (a local particle) is not the Machine's.
    machine.grant(g("stop on b to peer")).unwrap();
    assert!(inbound
        .check("peer", &p("peer"), &p("b"), Privilege::Stop)
        .is_err());
    // Denied signals from peers are dropped and counted.
    let before = machine.access_stats().denied_signals;
    // A peer speaking as a particle hosted here is refused outright.
    assert!(matches!(
        inbound.signal("other", wave("peer", "b")),
        Err(WaveError::Forbidden { .. })
    ));
    inbound.signal("peer", wave("zz", "b")).unwrap();
    assert_eq!(machine.access_stats().denied_signals, before + 1);
    machine.ask(&p("b"), ("sync", "")).await.unwrap();
    assert!(!agent
        .seen
        .lock()
        .iter()
        .any(|(at, _, m)| at == &p("b") && m == "hello"));
    machine.shutdown().await;
}

/// Defence in depth (the cluster's `may_send_as` refuses it first): a
/// peer claiming to be a particle this Machine hosts gets that particle's
/// ownership. `Inbound` should refuse a sender Point it hosts itself.
#[tokio::test]
async fn a_peer_cannot_speak_as_a_local_particle() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    let inbound = machine.attach_remote(Arc::new(Nowhere)).unwrap();
    let asked = peer_ask(&inbound, "peer", "a", "a:x").await;
    let checked = inbound.check("peer", &p("a"), &p("a:x"), Privilege::Stop);
    assert!(asked.is_err() && checked.is_err());
    assert!(!agent.seen.lock().iter().any(|(at, _, _)| at == &p("a:x")));
    machine.shutdown().await;
}

#[tokio::test]
async fn a_peers_rule_changes_are_checked_as_local_ones() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    let inbound = machine.attach_remote(Arc::new(Nowhere)).unwrap();
    let long: Arc<str> = "x".repeat(256).into();
    let bad = [
        Change::Grant(Grant::new(
            Privilege::Send,
            "a".parse().unwrap(),
            Visitors::User(long.clone()),
        )),
        Change::Grant(Grant::new(
            Privilege::Send,
            "a".parse().unwrap(),
            Visitors::Kind(Kind::new(&*long)),
        )),
        Change::Join {
            group: "g".into(),
            member: Visitors::Group("h".into()),
        },
        Change::Join {
            group: long.clone(),
            member: Visitors::Anyone,
        },
    ];
    for c in &bad {
        assert!(inbound.rules_changed(c).is_err(), "{c:?}");
    }
    assert_eq!(machine.rules().len(), 0);
    assert_eq!(machine.rules().groups().count(), 0);
    assert_eq!(inbound.rules().len(), 0);
    machine.shutdown().await;
}

/// The spawn-grants finding across Machines: a peer's spawn carries its
/// `SpawnOptions` (grants included) and `Inbound::spawn_child` admits them
/// as they come (the cluster judges only `spawn` on the parent first), so
/// a peer allowed to spawn under `a` makes a local particle that may send
/// to and ask every Point here.
#[tokio::test]
async fn a_peer_spawned_child_gets_no_grants_its_spawner_lacks() {
    let (machine, agent) = world(AccessPolicy::Enforced).await;
    let inbound = machine.attach_remote(Arc::new(Nowhere)).unwrap();
    let opts = SpawnOptions {
        grants: vec![Point::root()],
        ..SpawnOptions::default()
    };
    let spawned = inbound
        .spawn_child(p("a:evil"), "agent".into(), Body::empty(), opts)
        .await;
    if spawned.is_ok() {
        let out = act(&machine, "a:evil", "ask", "b:y").await;
        assert!(out.starts_with("err:"), "a:evil asked b:y: {out}");
        assert!(!agent.seen.lock().iter().any(|(at, _, _)| at == &p("b:y")));
    }
    machine.shutdown().await;
}

/// Under the open policy `link` is open, as in Erlang, where any process
/// may link to any other (and a linked crash is a crash): the enforced
/// policy is what denies it.
#[tokio::test]
async fn under_enforced_a_stranger_cannot_link() {
    let (machine, _) = world(AccessPolicy::Enforced).await;
    let victim = machine.particle(&p("a:x")).unwrap();
    let out = act(&machine, "b:y", "link-crash", "a:x").await;
    assert!(out.starts_with("err:") && out.contains("denied"), "{out}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(victim.restarts(), 0);
    machine.shutdown().await;
}
