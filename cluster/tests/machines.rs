//! Machines in a cluster, as real processes on loopback: per-sender order
//! across Machines, a cut link healed with nothing lost or doubled, a
//! killed Machine answered with a typed error, a wrong secret refused.

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

/// Waits until the sink's report has `want` waves, then returns it.
async fn drain(node: &mut Node, sink: &str, want: u64, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let r = node.cmd(&format!("ask {sink} report -")).await;
        let (total, _) = report_counts(&r);
        if total >= want || start.elapsed() > within {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks `watcher` for what it was told until `want` shows, or 5 s pass.
async fn told(node: &mut Node, watcher: &str, want: &str) -> String {
    let start = Instant::now();
    loop {
        let r = node.cmd(&format!("ask {watcher} told -")).await;
        if r.contains(want) || start.elapsed() > Duration::from_secs(5) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tree_across_three_machines_keeps_per_sender_order() {
    let a = NodeSpec::new("alpha");
    let mut b = NodeSpec::new("beta");
    let mut c = NodeSpec::new("gamma");
    b.seeds = vec![a.addr()];
    c.seeds = vec![a.addr(), b.addr()];
    let mut a = Node::start(a).await;
    let mut b = Node::start(b).await;
    let mut c = Node::start(c).await;
    for n in [&mut a, &mut b, &mut c] {
        assert_eq!(n.cmd("wait-peers 2 10000").await, "ok", "{}", n.name);
    }
    // One supervised tree: `app` and its sink on alpha, a subtree on each
    // of beta and gamma (children of `app`, on other Machines), and under
    // each of those four senders, beside their parent.
    assert_eq!(a.cmd("place app watcher here").await, "at alpha");
    assert_eq!(a.cmd("place app:sink sink parent").await, "at alpha");
    assert_eq!(a.cmd("place app:b watcher on:beta").await, "at beta");
    assert_eq!(a.cmd("place app:c watcher on:gamma").await, "at gamma");
    let mut senders = Vec::new();
    for (node, sub) in [(&mut b, "app:b"), (&mut c, "app:c")] {
        assert_eq!(node.cmd("wait-point app:sink 5000").await, "at alpha");
        for i in 0..4 {
            let p = format!("{sub}:s{i}");
            let at = node.cmd(&format!("place {p} sender parent")).await;
            assert_eq!(at, format!("at {}", node.name), "{p}");
            senders.push(p);
        }
    }
    // Every Machine knows where every sender lives.
    for p in &senders {
        let at = a.cmd(&format!("wait-point {p} 5000")).await;
        assert!(at == "at beta" || at == "at gamma", "{p}: {at}");
    }
    // 8 senders on two Machines, 1,000 waves each to the sink on a third.
    let per = 1_000u64;
    for (i, p) in senders.iter().enumerate() {
        let node = if i < 4 { &mut b } else { &mut c };
        assert_eq!(
            node.cmd(&format!("signal {p} go {per} app:sink")).await,
            "ok"
        );
    }
    let report = drain(&mut a, "app:sink", 8 * per, Duration::from_secs(60)).await;
    println!("sink: {report}");
    assert_eq!(report_counts(&report), (8 * per, 0), "{report}");
    for p in &senders {
        assert!(
            report.contains(&format!("{p}={per}")),
            "{p} missing in {report}"
        );
    }
    // A request across Machines, and its typed error for a Point nowhere.
    assert_eq!(c.cmd("ask app:b:s0 go 0 app:sink").await, "reply ");
    assert!(c.cmd("ask nowhere ping x").await.contains("NoSuchParticle"));
    // A child on beta crashes: its parent on alpha hears of it, and beta's
    // Star restarts it.
    assert!(a.cmd("ask app:b crash -").await.contains("Crashed"));
    let told = told(&mut a, "app", "crash app:b").await;
    assert!(
        told.contains("crash app:b asked to crash gave_up=false"),
        "{told}"
    );
    assert_eq!(a.cmd("ask app:b told -").await, "reply ");
    // Placement by load and by hash lands on a live Machine.
    let least = c.cmd("place spread-1 echo least").await;
    assert!(least.starts_with("at "), "{least}");
    let hashed = c.cmd("place spread-2 echo hash").await;
    assert!(hashed.starts_with("at "), "{hashed}");
    assert!(c
        .cmd("place x echo on:nowhere")
        .await
        .contains("no machine nowhere"));
    // Supervisor control across Machines: `app`, here, asks its child
    // supervisor on beta (an OTP one_for_one over two echoes) how many
    // children it runs. alpha's root is not beta's: it may not.
    assert_eq!(a.cmd("place app:s sup on:beta").await, "at beta");
    assert_eq!(a.cmd("ask app count app:s").await, "reply specs=2 active=2");
    assert_eq!(b.cmd("sup-count app:s").await, "ok specs=2 active=2");
    let refused = a.cmd("sup-count app:s").await;
    assert!(refused.contains("may not"), "{refused}");
    // A group across the three Machines, and broadcasts to it and to a
    // subtree, with each reply policy.
    assert_eq!(a.cmd("place e echo here").await, "at alpha");
    assert_eq!(a.cmd("place e:b echo on:beta").await, "at beta");
    assert_eq!(a.cmd("place e:c echo on:gamma").await, "at gamma");
    assert_eq!(a.cmd("join-group echoes e").await, "ok");
    assert_eq!(b.cmd("join-group echoes e:b").await, "ok");
    assert_eq!(c.cmd("join-group echoes e:c").await, "ok");
    assert!(b
        .cmd("join-group echoes e:c")
        .await
        .contains("no particle at e:c"));
    let start = Instant::now();
    while a.cmd("members echoes").await != "ok e,e:b,e:c" {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        a.cmd("bcast group:echoes all ping hi").await,
        "ok n=3 oks=3 e:b=hi,e:c=hi,e=hi"
    );
    let first = a.cmd("bcast group:echoes first ping hi").await;
    assert!(first.starts_with("ok n=1 oks=1 "), "{first}");
    let two = a.cmd("bcast group:echoes count:2 ping hi").await;
    assert!(two.starts_with("ok n=2 oks=2 "), "{two}");
    assert_eq!(
        a.cmd("bcast group:echoes none ping hi").await,
        "ok n=0 oks=0 "
    );
    assert_eq!(
        b.cmd("bcast sub:e all ping x").await,
        "ok n=3 oks=3 e:b=x,e:c=x,e=x"
    );
    // A member that ends leaves its group, everywhere.
    assert_eq!(c.cmd("stop e:c").await, "ok");
    let start = Instant::now();
    while a.cmd("members echoes").await != "ok e,e:b" {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_heals_and_every_wave_arrives_once_in_order() {
    let mut a = NodeSpec::new("alpha");
    a.dial_back = false;
    a.lost_ms = 20_000;
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let proxy = Proxy::start(a_addr).await;
    let mut b = NodeSpec::new("beta");
    b.seeds = vec![proxy.addr.clone()];
    b.lost_ms = 20_000;
    // Only through the proxy: neither side dials the other's own address.
    b.dial_back = false;
    let mut b = Node::start(b).await;
    assert_eq!(a.cmd("wait-peers 1 10000").await, "ok");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(b.cmd("wait-point sink 5000").await, "at alpha");
    assert_eq!(b.cmd("spawn s0 sender").await, "ok");
    assert_eq!(b.cmd("spawn s1 sender").await, "ok");
    // 5,000 waves from each sender, paced to take about a second and a
    // half: the cut falls in the middle of them.
    let per = 5_000u64;
    assert_eq!(b.cmd(&format!("signal s0 go {per} sink 30")).await, "ok");
    assert_eq!(b.cmd(&format!("signal s1 go {per} sink 30")).await, "ok");
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let during = report_counts(&a.cmd("ask sink report -").await).0;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = report_counts(&a.cmd("ask sink report -").await).0;
    println!("received before the cut ended: {during}, then {still}");
    assert!(still < 2 * per, "the cut did not cut: {still}");
    proxy.restore();
    let report = drain(&mut a, "sink", 2 * per, Duration::from_secs(60)).await;
    println!("sink: {report}");
    assert_eq!(report_counts(&report), (2 * per, 0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_machine_is_reported_lost_and_its_permanent_children_return() {
    let lost_ms = 1000u64;
    let mut a = NodeSpec::new("alpha");
    a.lost_ms = lost_ms;
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut c = NodeSpec::new("gamma");
    c.seeds = vec![a_addr.clone()];
    c.lost_ms = lost_ms;
    let mut c = Node::start(c).await;
    let mut b = NodeSpec::new("beta");
    b.seeds = vec![a_addr, c.addr.clone()];
    let mut b = Node::start(b).await;
    for n in [&mut a, &mut b, &mut c] {
        assert_eq!(n.cmd("wait-peers 2 10000").await, "ok", "{}", n.name);
    }
    // On alpha, a parent with a permanent child on beta; a watcher on
    // alpha monitors another particle of beta.
    assert_eq!(a.cmd("place app watcher here").await, "at alpha");
    assert_eq!(a.cmd("place app:w echo on:beta").await, "at beta");
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(b.cmd("join-group g echo-b").await, "ok");
    assert_eq!(a.cmd("wait-point echo-b 5000").await, "at beta");
    assert_eq!(c.cmd("wait-point echo-b 5000").await, "at beta");
    assert_eq!(a.cmd("ask app:w ping 1").await, "reply 1");
    // Monitors across Machines: one fires when its target stops, one when
    // its target's Machine is lost.
    assert_eq!(b.cmd("spawn short-lived echo").await, "ok");
    assert_eq!(a.cmd("wait-point short-lived 5000").await, "at beta");
    assert_eq!(a.cmd("spawn watcher watcher").await, "ok");
    assert_eq!(a.cmd("monitor watcher short-lived").await, "ok");
    assert_eq!(a.cmd("monitor watcher echo-b").await, "ok");
    assert_eq!(b.cmd("stop short-lived").await, "ok");
    let downs = told(&mut a, "watcher", "short-lived").await;
    assert_eq!(downs, "reply short-lived Shutdown");
    // Links across Machines: a crash of one end is an exit signal at the
    // other; so is the loss of its Machine.
    assert_eq!(b.cmd("spawn crashy watcher").await, "ok");
    assert_eq!(a.cmd("wait-point crashy 5000").await, "at beta");
    assert_eq!(a.cmd("spawn linker watcher").await, "ok");
    assert_eq!(a.cmd("ask linker link crashy").await, "reply ");
    assert_eq!(a.cmd("ask linker link echo-b").await, "reply ");
    // Linking to a Point nowhere fails the handler's `link` (here: a crash
    // of another watcher, whose handler does not catch it).
    assert_eq!(a.cmd("spawn linker-2 watcher").await, "ok");
    let r = a.cmd("ask linker-2 link nowhere").await;
    assert!(r.contains("no particle at nowhere"), "{r}");
    assert!(b.cmd("ask crashy crash -").await.contains("Crashed"));
    let exits = told(&mut a, "linker", "exit crashy").await;
    assert_eq!(exits, "reply exit crashy asked to crash");
    // Requests in flight to beta when it dies, from two Machines.
    assert_eq!(a.cmd("ask-bg 1 echo-b sleep 10000").await, "ok");
    assert_eq!(c.cmd("ask-bg 2 app:w sleep 10000").await, "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.kill().await;
    let killed = Instant::now();
    let r1 = a.cmd("result 1").await;
    let answered = killed.elapsed();
    let r2 = c.cmd("result 2").await;
    println!("in flight: {r1} / {r2}, answered after {answered:?}");
    assert!(r1.contains("MachineLost") && r1.contains("beta"), "{r1}");
    assert!(r2.contains("MachineLost"), "{r2}");
    // The bound: lost_after, plus a tick or two.
    // (Scheduling slack on a loaded 2-core runner on top.)
    let bound = Duration::from_millis(lost_ms + 1000);
    assert!(answered < bound, "{answered:?} > {bound:?}");
    // The parent heard, the watcher too, both within the bound.
    let told_app = told(&mut a, "app", "crash app:w").await;
    assert!(
        told_app.contains("crash app:w machine beta lost gave_up=false"),
        "{told_app}"
    );
    let downs = told(&mut a, "watcher", "echo-b").await;
    assert_eq!(
        downs,
        "reply short-lived Shutdown;echo-b MachineLost(\"beta\")"
    );
    // The link to crashy went with its first incarnation; echo-b's fires.
    let exits = told(&mut a, "linker", "exit echo-b").await;
    assert_eq!(
        exits,
        "reply exit crashy asked to crash;exit echo-b machine beta lost"
    );
    assert!(killed.elapsed() < bound + Duration::from_secs(1));
    // The permanent child is back, on its parent's Machine, and answers.
    assert_eq!(a.cmd("wait-point app:w 5000").await, "at alpha");
    assert_eq!(a.cmd("ask app:w ping 2").await, "reply 2");
    // gamma sees it there too; lost particles get typed errors, no hang.
    assert_eq!(c.cmd("wait-point app:w 5000").await, "at alpha");
    assert_eq!(c.cmd("ask app:w ping 3").await, "reply 3");
    assert!(c.cmd("ask echo-b ping 4").await.contains("NoSuchParticle"));
    assert_eq!(a.cmd("locate echo-b").await, "at None");
    // It left its group with its Machine.
    assert_eq!(a.cmd("members g").await, "ok ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_wrong_secret_is_refused() {
    let a = NodeSpec::new("alpha");
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut x = NodeSpec::new("intruder");
    x.secret = "not-the-secret".into();
    x.seeds = vec![a_addr];
    let mut x = Node::start(x).await;
    assert!(x.cmd("wait-peers 1 2000").await.starts_with("err"));
    assert_eq!(a.cmd("peers").await, "peers ");
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    assert_eq!(x.cmd("locate sink").await, "at None");
    assert!(x.cmd("signal sink n 1").await.starts_with("err"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_leaves_is_forgotten_at_once() {
    let a = NodeSpec::new("alpha");
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut b = NodeSpec::new("beta");
    b.seeds = vec![a_addr];
    let mut b = Node::start(b).await;
    assert_eq!(a.cmd("wait-peers 1 10000").await, "ok");
    assert_eq!(b.cmd("spawn echo-l echo").await, "ok");
    assert_eq!(a.cmd("spawn watcher watcher").await, "ok");
    assert_eq!(a.cmd("wait-point echo-l 5000").await, "at beta");
    assert_eq!(a.cmd("monitor watcher echo-l").await, "ok");
    let left = Instant::now();
    assert_eq!(b.cmd("leave").await, "ok");
    // Well before lost_after (3 s): it said goodbye.
    let downs = told(&mut a, "watcher", "echo-l").await;
    assert_eq!(downs, "reply echo-l MachineLost(\"beta\")");
    assert!(
        left.elapsed() < Duration::from_millis(1500),
        "{:?}",
        left.elapsed()
    );
    assert_eq!(a.cmd("locate echo-l").await, "at None");
    assert_eq!(a.cmd("peers").await, "peers ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_only_peers_with_the_clusters_certificate_join() {
    let dir = std::env::temp_dir().join(format!("hv-tls-{}", std::process::id()));
    make_certs(&dir, &["alpha", "beta"]);
    let mut a = NodeSpec::new("alpha");
    a.tls = Some(dir.clone());
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut b = NodeSpec::new("beta");
    b.tls = Some(dir.clone());
    b.seeds = vec![a_addr.clone()];
    let mut b = Node::start(b).await;
    assert_eq!(b.cmd("wait-peers 1 10000").await, "ok");
    assert_eq!(a.cmd("spawn echo-a echo").await, "ok");
    assert_eq!(b.cmd("wait-point echo-a 5000").await, "at alpha");
    assert_eq!(b.cmd("ask echo-a ping sealed").await, "reply sealed");
    // A Machine presenting a certificate the cluster's CA did not sign is
    // refused, whether it dials or is dialled.
    let mut r = NodeSpec::new("rogue");
    r.tls = Some(dir.clone());
    r.cert = Some("rogue".into());
    r.seeds = vec![a_addr];
    let mut r = Node::start(r).await;
    assert!(r.cmd("wait-peers 1 2000").await.starts_with("err"));
    assert_eq!(a.cmd("peers").await, "peers beta");
    assert_eq!(r.cmd("locate echo-a").await, "at None");
    // And one with no TLS at all.
    let mut p = NodeSpec::new("plain");
    p.seeds = vec![a.addr.clone()];
    let mut p = Node::start(p).await;
    assert!(p.cmd("wait-peers 1 2000").await.starts_with("err"));
    assert_eq!(a.cmd("peers").await, "peers beta");
    let _ = std::fs::remove_dir_all(&dir);
}
