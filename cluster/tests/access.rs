//! Access rules across Machines: real Machine processes (see `support`)
//! with the policy `Enforced`, so that nothing but ownership, the Machine
//! itself and grants let a visitor through.
//!
//! What must hold: a wave is judged where it arrives (a denied signal is
//! dropped there and counted, a denied request is answered
//! `WaveError::Denied` with the visitor, the target and the privilege, at
//! the asker on the other Machine); spawns, stops and links asked of
//! another Machine are judged there too; a rule change made on one
//! Machine reaches the others on the Registry's ordered links, and a
//! Machine that joins later learns the rules in force.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Not a test: the child process the tests below start (see `support`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a Machine process for the cluster tests; they start it themselves"]
async fn machine_process() {
    if let Ok(spec) = std::env::var("HV_NODE") {
        support::machine_process(&spec).await;
    }
}

/// How long a test waits for something to cross before it fails.
const WITHIN: Duration = Duration::from_secs(10);

/// Two Machines `<tag>-alpha` and `<tag>-beta` (beta dials alpha), each
/// with the policy enforced unless told otherwise.
async fn pair(tag: &str, alpha_enforced: bool, beta_enforced: bool) -> (Node, Node) {
    let mut a = NodeSpec::new(&format!("{tag}-alpha"));
    a.enforced = alpha_enforced;
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut b = NodeSpec::new(&format!("{tag}-beta"));
    b.enforced = beta_enforced;
    b.seeds = vec![a_addr];
    let mut b = Node::start(b).await;
    assert_eq!(b.cmd("wait-peers 1 10000").await, "ok");
    assert_eq!(a.cmd("wait-peers 1 10000").await, "ok");
    (a, b)
}

/// Asks `node` `cmd` until `done` holds for its answer, for at most
/// [`WITHIN`]; returns the last answer (the caller asserts on it).
async fn until(node: &mut Node, cmd: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let r = node.cmd(cmd).await;
        if done(&r) || start.elapsed() > WITHIN {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The grants `node` holds (its `rules` answer, split).
async fn grants(node: &mut Node) -> Vec<String> {
    let r = node.cmd("rules").await;
    let list = r.strip_prefix("rules ").unwrap_or("");
    list.split(';')
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits until `node` holds the grant `grant` (`present`) or no longer
/// does (`!present`); fails the test after [`WITHIN`].
async fn replicated(node: &mut Node, grant: &str, present: bool) {
    let start = Instant::now();
    loop {
        let held = grants(node).await;
        if held.iter().any(|g| g == grant) == present {
            return;
        }
        assert!(
            start.elapsed() < WITHIN,
            "{} still {} `{grant}` after {WITHIN:?}: {held:?}",
            node.name,
            if present { "lacks" } else { "holds" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sink's total (see `support::report_counts`), asked from its Machine.
async fn sink_total(node: &mut Node, sink: &str) -> u64 {
    report_counts(&node.cmd(&format!("ask {sink} report -")).await).0
}

/// Signals from a particle on beta to a sink on alpha are dropped at
/// alpha and counted there until alpha grants `send`; then they arrive.
/// Asks from beta's voice and from a particle of beta are answered
/// `Denied` (visitor, Point, privilege intact across the wire) until
/// alpha grants `ask` to beta, which covers both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_across_machines_are_judged_where_they_arrive() {
    let (mut a, mut b) = pair("acw", true, true).await;
    for (p, k) in [("sink", "sink"), ("echo", "echo")] {
        assert_eq!(a.cmd(&format!("spawn {p} {k}")).await, "ok");
        assert_eq!(b.cmd(&format!("wait-point {p} 5000")).await, "at acw-alpha");
    }
    for (p, k) in [("s0", "sender"), ("r", "relay")] {
        assert_eq!(b.cmd(&format!("spawn {p} {k}")).await, "ok");
        assert_eq!(a.cmd(&format!("wait-point {p} 5000")).await, "at acw-beta");
    }

    // Denied signals: dropped at alpha, counted there, never seen.
    let before = stat(&a.cmd("access-stats").await, "signals");
    assert_eq!(b.cmd("signal s0 go 5 sink").await, "ok");
    let stats = until(&mut a, "access-stats", |s| stat(s, "signals") >= before + 5).await;
    assert_eq!(stat(&stats, "signals"), before + 5, "{stats}");
    assert_eq!(sink_total(&mut a, "sink").await, 0);

    // Denied asks: beta's voice, and beta's particle `r`.
    let voice = b.cmd("ask echo ping hi").await;
    assert_eq!(
        voice,
        "err Denied { visitor: Machine(\"acw-beta\"), point: Point(echo), privilege: Ask }"
    );
    let particle = b.cmd("ask r ask echo ping hi").await;
    assert_eq!(
        particle,
        "reply err Denied { visitor: Particle(Point(r)), point: Point(echo), privilege: Ask }"
    );
    let stats = a.cmd("access-stats").await;
    assert!(stat(&stats, "requests") >= 2, "{stats}");

    // Granted: `send` to the particle s0 (of any Machine), `ask` to
    // beta's voice and every particle whose waves come from beta.
    assert_eq!(a.cmd("grant send on sink to s0").await, "ok");
    assert_eq!(a.cmd("grant ask on echo to machine=acw-beta").await, "ok");
    assert_eq!(b.cmd("signal s0 go 5 sink").await, "ok");
    let report = until(&mut a, "ask sink report -", |r| report_counts(r).0 >= 5).await;
    assert_eq!(report_counts(&report), (5, 0), "{report}");
    assert_eq!(b.cmd("ask echo ping hi").await, "reply hi");
    assert_eq!(b.cmd("ask r ask echo ping hi").await, "reply reply hi");
    // `send` was granted, not `ask`: r's signal goes, nothing more.
    assert!(b
        .cmd("ask r ask sink report -")
        .await
        .contains("privilege: Ask"));
}

/// A grant made on alpha reaches beta and lets alpha's next wave through
/// there; a revoke made on alpha reaches beta and stops the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_revokes_replicate_and_take_effect_for_the_next_wave() {
    let (mut a, mut b) = pair("acr", true, true).await;
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-b 5000").await, "at acr-beta");
    let denied = a.cmd("ask echo-b ping hi").await;
    assert!(
        denied.contains("Denied { visitor: Machine(\"acr-alpha\")"),
        "{denied}"
    );

    let grant = "ask on echo-b to machine=acr-alpha";
    assert_eq!(a.cmd(&format!("grant {grant}")).await, "ok");
    replicated(&mut b, grant, true).await;
    assert_eq!(a.cmd("ask echo-b ping hi").await, "reply hi");

    assert_eq!(a.cmd(&format!("revoke {grant}")).await, "ok");
    replicated(&mut b, grant, false).await;
    let denied = a.cmd("ask echo-b ping again").await;
    assert!(denied.contains("privilege: Ask"), "{denied}");

    // The other way: beta's grant reaches alpha.
    let back = "send,ask on acr-thing:** to machine=acr-beta";
    assert_eq!(b.cmd(&format!("grant {back}")).await, "ok");
    replicated(&mut a, back, true).await;
    assert_eq!(grants(&mut b).await, grants(&mut a).await);
}

/// A Machine that joins after a grant was made learns it, and is judged
/// by it: alpha's voice may ask gamma's echo because of a grant alpha
/// made before gamma existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_joins_after_a_grant_learns_it() {
    let mut a = NodeSpec::new("acj-alpha");
    a.enforced = true;
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let grant = "ask on echo-c to machine=acj-alpha";
    assert_eq!(a.cmd(&format!("grant {grant}")).await, "ok");
    assert_eq!(a.cmd("grant stop on x:** to kind=nobody").await, "ok");

    let mut c = NodeSpec::new("acj-gamma");
    c.enforced = true;
    c.seeds = vec![a_addr];
    let mut c = Node::start(c).await;
    assert_eq!(c.cmd("wait-peers 1 10000").await, "ok");
    replicated(&mut c, grant, true).await;
    replicated(&mut c, "stop on x:** to kind=nobody", true).await;
    assert_eq!(c.cmd("spawn echo-c echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-c 5000").await, "at acj-gamma");
    assert_eq!(a.cmd("ask echo-c ping joined").await, "reply joined");
    // Nothing else was given: another echo of gamma refuses alpha.
    assert_eq!(c.cmd("spawn echo-d echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-d 5000").await, "at acj-gamma");
    assert!(a.cmd("ask echo-d ping x").await.contains("privilege: Ask"));
}

/// Spawns placed on alpha by beta are judged at alpha (privilege `spawn`
/// on the new particle's parent, ROOT here), as are stops of alpha's
/// particles asked by beta (privilege `stop`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawns_and_stops_across_machines_are_judged_by_the_machine_asked() {
    let (mut a, mut b) = pair("acs", true, true).await;
    let actions = stat(&a.cmd("access-stats").await, "actions");

    // Spawn: refused, nothing made; then granted, made.
    let refused = b.cmd("place w1 echo on:acs-alpha").await;
    assert!(
        refused.contains("access denied: machine=acs-beta may not spawn ROOT"),
        "{refused}"
    );
    assert!(a.cmd("ask w1 ping x").await.contains("NoSuchParticle"));
    assert_eq!(a.cmd("grant spawn on ROOT to machine=acs-beta").await, "ok");
    assert_eq!(b.cmd("place w1 echo on:acs-alpha").await, "at acs-alpha");
    assert_eq!(a.cmd("ask w1 ping made").await, "reply made");

    // Stop: refused, the particle lives on; then granted, stopped.
    assert_eq!(a.cmd("spawn t1 echo").await, "ok");
    assert_eq!(b.cmd("wait-point t1 5000").await, "at acs-alpha");
    let refused = b.cmd("cstop t1").await;
    assert_eq!(
        refused,
        "err Denied { visitor: Machine(\"acs-beta\"), point: Point(t1), privilege: Stop }"
    );
    assert_eq!(a.cmd("ask t1 ping alive").await, "reply alive");
    let stats = a.cmd("access-stats").await;
    assert_eq!(stat(&stats, "actions"), actions + 2, "{stats}");
    assert_eq!(a.cmd("grant stop on t1 to machine=acs-beta").await, "ok");
    assert_eq!(b.cmd("cstop t1").await, "ok");
    assert!(a.cmd("ask t1 ping gone").await.contains("NoSuchParticle"));
    // A stop of a Point nobody hosts is the runtime's answer, locally.
    assert!(b.cmd("cstop nowhere").await.contains("NoSuchParticle"));
}

/// Links and monitors across Machines without a grant of `link`: alpha
/// refuses a link from beta's particle (beta's own policy is open, so
/// beta lets it go out) and the linker hears an exit signal `denied`; a
/// monitor set under beta's enforced policy fires `Denied` at once. With
/// the grant, made on alpha and replicated, both hold, and alpha's
/// particle's end reaches the watcher through each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_monitors_across_machines_need_the_link_privilege() {
    let (mut a, mut b) = pair("acl", true, false).await;
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    assert_eq!(b.cmd("wait-point echo-a 5000").await, "at acl-alpha");
    assert_eq!(b.cmd("spawn w watcher").await, "ok");
    assert_eq!(a.cmd("wait-point w 5000").await, "at acl-beta");
    let actions = stat(&a.cmd("access-stats").await, "actions");

    // Link: beta (open) lets it out; alpha refuses it.
    assert_eq!(b.cmd("ask w link echo-a").await, "reply ");
    let told = until(&mut b, "ask w told -", |r| r.contains("exit echo-a")).await;
    assert_eq!(told, "reply exit echo-a denied");
    let stats = a.cmd("access-stats").await;
    assert_eq!(stat(&stats, "actions"), actions + 1, "{stats}");

    // Monitor: under beta's enforced policy, refused where it is set.
    assert_eq!(b.cmd("policy enforced").await, "ok");
    b.cmd("ask w monitor echo-a").await;
    let told = until(&mut b, "ask w told -", |r| r.contains("echo-a Denied")).await;
    assert_eq!(told, "reply exit echo-a denied;echo-a Denied");

    // Granted on alpha, in force on beta once replicated: both hold, and
    // echo-a's end is told through each.
    let grant = "link on echo-a to w";
    assert_eq!(a.cmd(&format!("grant {grant}")).await, "ok");
    replicated(&mut b, grant, true).await;
    assert_eq!(
        b.cmd("ask w link echo-a").await,
        "reply exit echo-a denied;echo-a Denied"
    );
    b.cmd("ask w monitor echo-a").await;
    // The link and the monitor are in place at alpha before it stops
    // echo-a: beta's next wave to alpha goes after them on the link.
    let granted_ask = "ask on echo-a to machine=acl-beta";
    assert_eq!(a.cmd(&format!("grant {granted_ask}")).await, "ok");
    assert_eq!(b.cmd("ask echo-a ping ordered").await, "reply ordered");
    assert_eq!(a.cmd("stop echo-a").await, "ok");
    let told = until(&mut b, "ask w told -", |r| r.matches("echo-a").count() >= 4).await;
    let entries: Vec<&str> = told.trim_start_matches("reply ").split(';').collect();
    assert_eq!(entries.len(), 4, "{told}");
    assert!(entries[2..].iter().all(|e| !e.contains("enied")), "{told}");
    assert!(
        entries[2..].iter().any(|e| e.starts_with("exit echo-a ")),
        "{told}"
    );
    assert!(
        entries[2..].iter().any(|e| e.starts_with("echo-a ")),
        "{told}"
    );
}

/// A child beta spawns under a parent on alpha (beta's own voice may, on
/// beta) is taken on by alpha only if the rules there let beta spawn
/// under that parent: until then alpha refuses the adoption (counted),
/// and the child's crash notices do not reach the parent; with the
/// grant, the next child's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_under_a_parent_on_another_machine_is_adopted_by_the_rules() {
    let (mut a, mut b) = pair("aca", true, true).await;
    assert_eq!(a.cmd("spawn app watcher").await, "ok");
    assert_eq!(b.cmd("wait-point app 5000").await, "at aca-alpha");
    let actions = stat(&a.cmd("access-stats").await, "actions");

    assert_eq!(b.cmd("place app:c watcher here").await, "at aca-beta");
    let stats = until(&mut a, "access-stats", |s| stat(s, "actions") > actions).await;
    assert_eq!(stat(&stats, "actions"), actions + 1, "{stats}");
    assert!(b.cmd("ask app:c crash -").await.contains("Crashed"));

    assert_eq!(a.cmd("grant spawn on app to machine=aca-beta").await, "ok");
    replicated(&mut b, "spawn on app to machine=aca-beta", true).await;
    assert_eq!(b.cmd("place app:d watcher here").await, "at aca-beta");
    assert!(b.cmd("ask app:d crash -").await.contains("Crashed"));
    // Notices cross in order on one link: app:c's, had it been taken,
    // would be told before app:d's.
    let told = until(&mut a, "ask app told -", |r| r.contains("crash app:d")).await;
    assert!(told.contains("crash app:d asked to crash"), "{told}");
    assert!(!told.contains("app:c"), "{told}");
    let stats = a.cmd("access-stats").await;
    assert_eq!(stat(&stats, "actions"), actions + 1, "{stats}");
}

/// A particle that spawns through the cluster is the spawner the other
/// Machine judges (carried on the wire): beta's `boss` may spawn its own
/// children on alpha (it owns its subtree) but not a top-level particle;
/// beta's voice may not spawn under `boss` on alpha. Placed on its own
/// Machine, the particle is judged there as a local spawn would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_spawning_on_another_machine_is_judged_as_itself() {
    let (mut a, mut b) = pair("acp", true, true).await;
    assert_eq!(b.cmd("spawn boss spawner").await, "ok");
    assert_eq!(a.cmd("wait-point boss 5000").await, "at acp-beta");

    let own = b.cmd("ask boss place boss:kid echo acp-alpha").await;
    assert_eq!(own, "reply at acp-alpha");
    assert_eq!(a.cmd("ask boss:kid ping kid").await, "reply kid");
    // beta asked for it: beta takes the child alpha hosts for boss on
    // (nothing refused there).
    let stats = b.cmd("access-stats").await;
    assert_eq!(stat(&stats, "actions"), 0, "{stats}");

    let top = b.cmd("ask boss place other echo acp-alpha").await;
    assert!(
        top.contains("access denied: boss may not spawn ROOT"),
        "{top}"
    );
    let voice = b.cmd("place boss:kid2 echo on:acp-alpha").await;
    assert!(
        voice.contains("access denied: machine=acp-beta may not spawn boss"),
        "{voice}"
    );
    let here = b.cmd("ask boss place loose echo here").await;
    assert!(
        here.contains("access denied: boss may not spawn loose under ROOT"),
        "{here}"
    );
    assert!(b.cmd("ask loose ping x").await.contains("NoSuchParticle"));
    assert_eq!(
        b.cmd("ask boss place boss:near echo here").await,
        "reply at acp-beta"
    );
}
