//! Access rules on Points, enforced on one Machine across its Stars: every
//! action is taken from inside a particle's handler (the runtime stamps
//! the sender), against particles on another Star, allowed and denied;
//! rule changes take effect for the next wave; a CLI user's handle is
//! judged as that user; and a property test sends real waves under random
//! rules and checks delivery against the rules' own decision.

use std::sync::Arc;

use hyperverse_runtime::access::{
    AccessPolicy, Grant, Privilege, RuleError, Visit, Visitor, Visitors,
};
use hyperverse_runtime::*;
use parking_lot::Mutex;

fn p(s: &str) -> Point {
    s.parse().unwrap()
}

fn g(s: &str) -> Grant {
    s.parse().unwrap()
}

/// What an agent's action came to, typed.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Wave(Result<(), WaveError>),
    Spawn(Result<(), SpawnError>),
    Fault(Result<(), FaultError>),
    Rule(Result<(), RuleError>),
    Read(bool),
}

/// Waves each particle saw: (at, from, method).
type Seen = Arc<Mutex<Vec<(Point, Point, String)>>>;

/// A particle that does what it is asked (method: the action; body: the
/// target Point) as itself, and logs the outcome; and that records every
/// other wave it gets.
#[derive(Clone)]
struct Agent {
    out: Arc<Mutex<Vec<Outcome>>>,
    seen: Seen,
    downs: Arc<Mutex<Vec<DownNotice>>>,
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
        let outcome = match w.method.as_str() {
            "do:send" => Outcome::Wave(
                ctx.signal(&target(), ("hello", "x"))
                    .map_err(WaveError::from),
            ),
            "do:ask" => Outcome::Wave(ctx.ask(&target(), ("hello", "x")).await.map(drop)),
            "do:spawn" => Outcome::Spawn(
                ctx.machine()
                    .spawn(target(), "agent".into(), Body::empty())
                    .await
                    .map(drop),
            ),
            "do:stop" => Outcome::Wave(ctx.machine().stop(&target()).await),
            "do:link" => Outcome::Wave(ctx.link(&target())),
            "do:monitor" => {
                ctx.monitor(&target());
                Outcome::Wave(Ok(()))
            }
            "do:fault" => Outcome::Fault(ctx.machine().inject(&target(), Fault::Pause)),
            "do:read" => Outcome::Read(ctx.machine().record(&target()).is_some()),
            "do:grant" => Outcome::Rule(ctx.machine().grant(text.parse().unwrap())),
            _ => {
                self.seen
                    .lock()
                    .push((ctx.me().clone(), w.from.clone(), w.method.to_string()));
                return Ok("pong".into());
            }
        };
        self.out.lock().push(outcome);
        Ok(Body::empty())
    }

    async fn down(&self, _: &Ctx, _: &mut (), notice: DownNotice) -> Result<(), ParticleError> {
        self.downs.lock().push(notice);
        Ok(())
    }
}

struct World {
    machine: Machine,
    agent: Agent,
}

impl World {
    /// Two Stars; `a` and `a:x` on Star 0, `b` and `b:y` on Star 1.
    async fn new(policy: AccessPolicy) -> World {
        let agent = Agent {
            out: Arc::default(),
            seen: Arc::default(),
            downs: Arc::default(),
        };
        let machine = Machine::standalone()
            .stars(2)
            .access(policy)
            .kind("agent", agent.clone())
            .build()
            .await
            .unwrap();
        for (at, star) in [("a", 0), ("a:x", 0), ("b", 1), ("b:y", 1)] {
            let opts = SpawnOptions {
                star: Some(star),
                ..SpawnOptions::default()
            };
            machine
                .spawn_with(p(at), "agent".into(), Body::empty(), opts)
                .await
                .unwrap();
        }
        assert_ne!(
            machine.record(&p("a:x")).unwrap().star,
            machine.record(&p("b:y")).unwrap().star,
            "the two lines live on two Stars"
        );
        World { machine, agent }
    }

    /// Has the agent at `by` do `action` to `target`, and returns its
    /// outcome (the ask to the agent comes from the Machine, a superuser).
    async fn act(&self, by: &str, action: &str, target: &str) -> Outcome {
        self.machine
            .ask(&p(by), (format!("do:{action}"), target.to_string()))
            .await
            .unwrap();
        self.agent.out.lock().pop().expect("an outcome")
    }

    /// Whether `at` saw a wave from `from` (the agent handles in order: an
    /// ask from the Machine after the signal is answered after it).
    async fn saw(&self, at: &str, from: &str) -> bool {
        self.machine.ask(&p(at), ("flush", "")).await.unwrap();
        let seen = self.agent.seen.lock();
        seen.iter()
            .any(|(to, f, m)| to == &p(at) && f == &p(from) && m == "hello")
    }

    fn forget_seen(&self) {
        self.agent.seen.lock().clear();
    }
}

fn denied(visitor: &str, point: &str, privilege: Privilege) -> Outcome {
    Outcome::Wave(Err(WaveError::Denied {
        visitor: Visitor::Particle(p(visitor)),
        point: p(point),
        privilege,
    }))
}

const OK: Outcome = Outcome::Wave(Ok(()));

#[tokio::test]
async fn a_denied_signal_is_dropped_and_counted_and_a_grant_lets_the_next_through() {
    let w = World::new(AccessPolicy::Enforced).await;
    // Denied: the sender is not told (as across Machines), the target never sees it.
    assert_eq!(w.act("a:x", "send", "b:y").await, OK);
    assert!(!w.saw("b:y", "a:x").await);
    assert_eq!(w.machine.access_stats().denied_signals, 1);
    // A grant takes effect for the next wave.
    w.machine.grant(g("send on b:** to a:x")).unwrap();
    assert_eq!(w.act("a:x", "send", "b:y").await, OK);
    assert!(w.saw("b:y", "a:x").await);
    // Revoked: the next is dropped again.
    w.forget_seen();
    w.machine.revoke(g("send on b:** to a:x")).unwrap();
    assert_eq!(w.act("a:x", "send", "b:y").await, OK);
    assert!(!w.saw("b:y", "a:x").await);
    assert_eq!(w.machine.access_stats().denied_signals, 2);
    // Ownership: `a` may write to its child, and `a:x` to its parent.
    assert_eq!(w.act("a", "send", "a:x").await, OK);
    assert!(w.saw("a:x", "a").await);
    assert_eq!(w.act("a:x", "send", "a").await, OK);
    assert!(w.saw("a", "a:x").await);
    w.machine.shutdown().await;
}

#[tokio::test]
async fn a_denied_request_is_answered_access_denied_and_no_one_crashes() {
    let w = World::new(AccessPolicy::Enforced).await;
    assert_eq!(
        w.act("a:x", "ask", "b:y").await,
        denied("a:x", "b:y", Privilege::Ask)
    );
    assert_eq!(w.machine.access_stats().denied_requests, 1);
    // Send alone does not give ask.
    w.machine.grant(g("send on b:y to a:** ")).unwrap();
    assert_eq!(
        w.act("a:x", "ask", "b:y").await,
        denied("a:x", "b:y", Privilege::Ask)
    );
    w.machine.grant(g("ask on b:y to a:**")).unwrap();
    assert_eq!(w.act("a:x", "ask", "b:y").await, OK);
    // Neither side crashed.
    for at in ["a:x", "b:y"] {
        assert_eq!(w.machine.record(&p(at)).unwrap().restarts, 0);
    }
    w.machine.shutdown().await;
}

#[tokio::test]
async fn spawn_stop_link_monitor_fault_and_read_are_judged_too() {
    let w = World::new(AccessPolicy::Enforced).await;
    // Spawn under another's subtree: denied, then granted.
    let spawn = w.act("a:x", "spawn", "b:y:kid").await;
    assert_eq!(
        spawn,
        Outcome::Spawn(Err(SpawnError::Denied {
            visitor: Visitor::Particle(p("a:x")),
            point: p("b:y:kid"),
            parent: p("b:y"),
        }))
    );
    assert!(w.machine.record(&p("b:y:kid")).is_none());
    w.machine.grant(g("spawn on b:y to a:x")).unwrap();
    assert_eq!(
        w.act("a:x", "spawn", "b:y:kid").await,
        Outcome::Spawn(Ok(()))
    );
    // Stop: denied, then granted.
    assert_eq!(
        w.act("a:x", "stop", "b:y:kid").await,
        denied("a:x", "b:y:kid", Privilege::Stop)
    );
    assert!(w.machine.record(&p("b:y:kid")).is_some());
    w.machine.grant(g("stop on b:y:** to a:x")).unwrap();
    assert_eq!(w.act("a:x", "stop", "b:y:kid").await, OK);
    assert!(w.machine.record(&p("b:y:kid")).is_none());
    // Fault injection is acting on a life: stop.
    assert_eq!(
        w.act("b", "fault", "a:x").await,
        Outcome::Fault(Err(FaultError::Denied {
            visitor: Visitor::Particle(p("b")),
            point: p("a:x"),
        }))
    );
    // Link and monitor: denied, then granted.
    assert_eq!(
        w.act("a:x", "link", "b:y").await,
        denied("a:x", "b:y", Privilege::Link)
    );
    assert_eq!(w.act("a:x", "monitor", "b:y").await, OK);
    let down = w
        .agent
        .downs
        .lock()
        .pop()
        .expect("a denied monitor fires at once");
    assert_eq!((down.target, down.reason), (p("b:y"), DownReason::Denied));
    w.machine.grant(g("link on b:y to a:x")).unwrap();
    assert_eq!(w.act("a:x", "link", "b:y").await, OK);
    // Registry reads.
    assert_eq!(w.act("a:x", "read", "b").await, Outcome::Read(false));
    assert_eq!(w.act("a:x", "read", "a:x").await, Outcome::Read(true));
    w.machine.grant(g("read on ** to *")).unwrap();
    assert_eq!(w.act("a:x", "read", "b").await, Outcome::Read(true));
    assert!(w.machine.access_stats().denied_actions >= 5);
    w.machine.shutdown().await;
}

#[tokio::test]
async fn only_owners_and_superusers_change_rules() {
    let w = World::new(AccessPolicy::Enforced).await;
    // `a` grants on its own subtree; `a:x` may not grant on `b`'s.
    assert_eq!(
        w.act("a", "grant", "ask on a:x to b:y").await,
        Outcome::Rule(Ok(()))
    );
    assert!(matches!(
        w.act("a:x", "grant", "ask on b:y to a:x").await,
        Outcome::Rule(Err(RuleError::NotOwner { .. }))
    ));
    assert_eq!(w.act("b:y", "ask", "a:x").await, OK);
    let listed: Vec<String> = w.machine.rules().grants().map(|g| g.to_string()).collect();
    assert_eq!(listed, ["ask on a:x to b:y"]);
    w.machine.shutdown().await;
}

#[tokio::test]
async fn the_open_policy_keeps_what_programs_did_and_grants_only_add() {
    let w = World::new(AccessPolicy::Open).await;
    assert_eq!(w.act("a:x", "ask", "b:y").await, OK);
    assert_eq!(w.act("a:x", "send", "b:y").await, OK);
    assert!(w.saw("b:y", "a:x").await);
    assert_eq!(
        w.act("a:x", "spawn", "b:y:kid").await,
        Outcome::Spawn(Ok(()))
    );
    // Stopping another line still takes ownership or a grant.
    assert_eq!(
        w.act("a:x", "stop", "b:y:kid").await,
        denied("a:x", "b:y:kid", Privilege::Stop)
    );
    w.machine.grant(g("stop on b:** to kind=agent")).unwrap();
    assert_eq!(w.act("a:x", "stop", "b:y:kid").await, OK);
    // Switching the policy takes effect for the next wave.
    w.machine.set_access_policy(AccessPolicy::Enforced).unwrap();
    assert_eq!(
        w.act("a:x", "ask", "b:y").await,
        denied("a:x", "b:y", Privilege::Ask)
    );
    w.machine.shutdown().await;
}

#[tokio::test]
async fn kinds_and_groups_name_visitors() {
    let w = World::new(AccessPolicy::Enforced).await;
    w.machine.grant(g("ask on b:** to group=ops")).unwrap();
    assert_eq!(
        w.act("a:x", "ask", "b:y").await,
        denied("a:x", "b:y", Privilege::Ask)
    );
    w.machine
        .join_group("ops", Visitors::Subtree(p("a")))
        .unwrap();
    assert_eq!(w.act("a:x", "ask", "b:y").await, OK);
    w.machine
        .leave_group("ops", Visitors::Subtree(p("a")))
        .unwrap();
    assert_eq!(
        w.act("a:x", "ask", "b:y").await,
        denied("a:x", "b:y", Privilege::Ask)
    );
    w.machine.grant(g("ask on b:y to kind=agent")).unwrap();
    assert_eq!(w.act("a:x", "ask", "b:y").await, OK);
    w.machine.shutdown().await;
}

#[tokio::test]
async fn a_user_handle_is_judged_as_its_user() {
    let machine = Machine::standalone()
        .stars(2)
        .access(AccessPolicy::Enforced)
        .superuser("owner")
        .kind(
            "agent",
            Agent {
                out: Arc::default(),
                seen: Arc::default(),
                downs: Arc::default(),
            },
        )
        .build()
        .await
        .unwrap();
    machine
        .spawn(p("app"), "agent".into(), Body::empty())
        .await
        .unwrap();
    let alice = machine.as_user("alice").unwrap();
    assert_eq!(alice.visitor(), Visitor::User("alice".into()));
    let refused = alice
        .spawn(p("app:kid"), "agent".into(), Body::empty())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, SpawnError::Denied { ref visitor, .. } if *visitor == Visitor::User("alice".into()))
    );
    assert!(refused
        .to_string()
        .contains("access denied: user=alice may not spawn app:kid"));
    assert!(matches!(
        alice.ask(&p("app"), ("hello", "")).await,
        Err(WaveError::Denied { .. })
    ));
    assert!(matches!(
        alice.stop(&p("app")).await,
        Err(WaveError::Denied { .. })
    ));
    assert!(
        alice.registry().subtree(&Point::root()).is_empty(),
        "nothing readable"
    );
    assert!(alice.kill_star(0, "no").await.is_err());
    // A ParticleRef resolved through alice's handle stays alice's.
    let app = alice.particle(&p("app")).unwrap();
    assert!(matches!(
        app.ask(("hello", "")).await,
        Err(WaveError::Denied { .. })
    ));
    // A user handle cannot make other user handles, or grant.
    assert!(matches!(
        alice.as_user("owner"),
        Err(RuleError::NotOwner { .. })
    ));
    assert!(matches!(
        alice.grant(g("all on ** to user=alice")),
        Err(RuleError::NotOwner { .. })
    ));
    machine
        .grant(g("spawn,ask,read on app:** to user=alice"))
        .unwrap();
    alice
        .spawn(p("app:kid"), "agent".into(), Body::empty())
        .await
        .unwrap();
    assert_eq!(
        alice
            .ask(&p("app"), ("hello", ""))
            .await
            .unwrap()
            .as_bytes(),
        b"pong"
    );
    assert_eq!(alice.registry().subtree(&Point::root()).len(), 2);
    // Nor shut the Machine down, or make a particle monitor for it.
    alice.shutdown().await;
    assert!(machine.record(&p("app")).is_some(), "still up");
    assert!(matches!(
        alice.monitor(&p("app"), &p("app:kid")),
        Err(WaveError::Denied { .. })
    ));
    assert!(alice
        .control(&p("app"), "x", std::time::Duration::from_secs(1))
        .await
        .is_err());
    // The owner is a superuser.
    let owner = machine.as_user("owner").unwrap();
    owner.stop(&p("app")).await.unwrap();
    machine.shutdown().await;
}

mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Strategy;

    const POINTS: [&str; 6] = ["a", "a:x", "a:x:z", "b", "b:y", "c"];
    const SCOPES: [&str; 8] = ["a", "a:**", "a:x", "b:**", "b:y", "c", "**", "a:x:z"];
    const VISITORS: [&str; 8] = [
        "a",
        "a:**",
        "b:y",
        "c",
        "kind=agent",
        "*",
        "group=g",
        "a:x:z",
    ];

    fn rule() -> impl Strategy<Value = (bool, Grant)> {
        (
            any::<bool>(),
            prop::sample::select(&["send", "ask", "send,ask", "stop"][..]),
            prop::sample::select(&SCOPES[..]),
            prop::sample::select(&VISITORS[..]),
        )
            .prop_map(|(revoke, pr, on, to)| (revoke, g(&format!("{pr} on {on} to {to}"))))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Real waves under random rules: a signal arrives, and an ask is
        /// answered, exactly when the rules in force say so.
        #[test]
        fn delivery_follows_the_rules(
            rules in prop::collection::vec(rule(), 0..10),
            waves in prop::collection::vec((0..6usize, 0..6usize, any::<bool>()), 1..12),
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let agent = Agent { out: Arc::default(), seen: Arc::default(), downs: Arc::default() };
                let machine = Machine::standalone().stars(2).access(AccessPolicy::Enforced)
                    .kind("agent", agent.clone()).build().await.unwrap();
                for at in POINTS {
                    machine.spawn(p(at), "agent".into(), Body::empty()).await.unwrap();
                }
                machine.join_group("g", Visitors::Point(p("c"))).unwrap();
                for (revoke, grant) in &rules {
                    if *revoke { machine.revoke(grant.clone()) } else { machine.grant(grant.clone()) }.unwrap();
                }
                let w = World { machine: machine.clone(), agent: agent.clone() };
                let rules_now = machine.rules();
                let kind = Kind::new("agent");
                for (from, to, ask) in waves {
                    let (from, to) = (p(POINTS[from]), p(POINTS[to]));
                    if from == to { continue; }
                    let want = if ask { Privilege::Ask } else { Privilege::Send };
                    let visit = Visit { kind: Some(&kind), ..Visit::particle(&from) };
                    let expected = rules_now.allows(false, &visit, &to, want);
                    w.forget_seen();
                    let outcome = w.act(from.as_str(), if ask { "ask" } else { "send" }, to.as_str()).await;
                    if ask {
                        prop_assert_eq!(outcome == OK, expected, "ask {} -> {}", from, to);
                    } else {
                        prop_assert_eq!(w.saw(to.as_str(), from.as_str()).await, expected, "send {} -> {}", from, to);
                    }
                }
                machine.shutdown().await;
                Ok(())
            })?;
        }
    }
}

#[tokio::test]
async fn bad_rules_are_typed_errors_and_change_nothing() {
    let w = World::new(AccessPolicy::Enforced).await;
    for text in [
        "send on a to",
        "sned on a to b",
        "send on a::b to *",
        "send on a to kind=",
    ] {
        assert!(text.parse::<Grant>().is_err(), "{text}");
    }
    let bad = Machine::standalone()
        .superuser("")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(
        bad,
        MachineError::BadRule(RuleError::Name { len: 0 })
    ));
    assert!(matches!(
        w.machine.join_group("g", Visitors::Group("h".into())),
        Err(RuleError::GroupInGroup { .. })
    ));
    assert!(w.machine.rules().is_empty());
    w.machine.shutdown().await;
}

/// A Remote that hosts `far` and its subtree, and counts what it carries.
#[derive(Default)]
struct Far {
    carried: Mutex<usize>,
}

impl remote::Remote for Far {
    fn hosts(&self, point: &Point) -> bool {
        p("far").contains(point)
    }
    fn signal(&self, _: Wave) -> Result<(), WaveError> {
        *self.carried.lock() += 1;
        Ok(())
    }
    fn ask(&self, _: Wave, a: remote::Answerer) {
        *self.carried.lock() += 1;
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
    fn control(&self, _: Point, _: Point, _: Body, a: remote::Answerer) {
        a.answer(Ok(Body::empty()))
    }
}

/// A user is this Machine's: its waves never leave as the Machine's own
/// voice (which a peer would judge as `machine=…`, with every grant the
/// peer gives the Machine), under either policy; only a superuser's do.
#[tokio::test]
async fn a_users_waves_do_not_leave_the_machine() {
    let machine = Machine::standalone()
        .superuser("owner")
        .build()
        .await
        .unwrap();
    let far = Arc::new(Far::default());
    let _inbound = machine.attach_remote(far.clone()).unwrap();
    let alice = machine.as_user("alice").unwrap();
    let refused = alice.signal(&p("far:x"), ("m", "b")).unwrap_err();
    assert!(matches!(
        refused.error(),
        WaveError::Denied {
            privilege: Privilege::Send,
            ..
        }
    ));
    assert!(matches!(
        alice.ask(&p("far:x"), ("m", "b")).await,
        Err(WaveError::Denied {
            privilege: Privilege::Ask,
            ..
        })
    ));
    assert!(alice.signal_waiting(&p("far:x"), ("m", "b")).await.is_err());
    assert_eq!(*far.carried.lock(), 0, "nothing left for the peer");
    // The Machine's own handle still reaches it.
    machine.signal(&p("far:x"), ("m", "b")).unwrap();
    machine.ask(&p("far:x"), ("m", "b")).await.unwrap();
    assert_eq!(*far.carried.lock(), 2);
    // So does a superuser's (the daemon's owner: as trusted as the Machine).
    let owner = machine.as_user("owner").unwrap();
    owner.signal(&p("far:x"), ("m", "b")).unwrap();
    assert_eq!(*far.carried.lock(), 3);
    let stats = machine.access_stats();
    assert_eq!((stats.denied_signals, stats.denied_requests), (2, 1));
    machine.shutdown().await;
}
