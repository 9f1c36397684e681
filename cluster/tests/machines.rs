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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_machines_keep_per_sender_order_across_them() {
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
    assert_eq!(a.cmd("spawn sink sink").await, "ok");
    // 8 senders: 4 on beta, 4 on gamma, each 1,000 waves to alpha's sink.
    let per = 1_000u64;
    let mut senders = Vec::new();
    for (node, prefix) in [(&mut b, "sb"), (&mut c, "sc")] {
        assert_eq!(node.cmd("wait-point sink 5000").await, "at alpha");
        for i in 0..4 {
            let p = format!("{prefix}{i}");
            assert_eq!(node.cmd(&format!("spawn {p} sender")).await, "ok");
            senders.push(p);
        }
    }
    // Every Machine knows where every sender lives.
    for p in &senders {
        let at = a.cmd(&format!("wait-point {p} 5000")).await;
        assert!(at == "at beta" || at == "at gamma", "{p}: {at}");
    }
    for (i, p) in senders.iter().enumerate() {
        let node = if i < 4 { &mut b } else { &mut c };
        assert_eq!(node.cmd(&format!("signal {p} go {per} sink")).await, "ok");
    }
    let report = drain(&mut a, "sink", 8 * per, Duration::from_secs(60)).await;
    println!("sink: {report}");
    assert_eq!(report_counts(&report), (8 * per, 0), "{report}");
    for p in &senders {
        assert!(
            report.contains(&format!("{p}={per}")),
            "{p} missing in {report}"
        );
    }
    // A request across Machines, and its typed error for a Point nowhere.
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(c.cmd("wait-point echo-b 5000").await, "at beta");
    assert_eq!(c.cmd("ask echo-b ping hello").await, "reply hello");
    assert!(c.cmd("ask nowhere ping x").await.contains("NoSuchParticle"));
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
async fn a_killed_machine_is_lost_and_requests_to_it_get_a_typed_error() {
    let mut a = NodeSpec::new("alpha");
    a.lost_ms = 1000;
    let a_addr = a.addr();
    let mut a = Node::start(a).await;
    let mut b = NodeSpec::new("beta");
    b.seeds = vec![a_addr];
    let mut b = Node::start(b).await;
    assert_eq!(a.cmd("wait-peers 1 10000").await, "ok");
    assert_eq!(b.cmd("spawn echo-b echo").await, "ok");
    assert_eq!(a.cmd("wait-point echo-b 5000").await, "at beta");
    assert_eq!(a.cmd("ask echo-b ping 1").await, "reply 1");
    // Monitors across Machines: one fires when its target stops, one when
    // its target's Machine is lost.
    assert_eq!(b.cmd("spawn short-lived echo").await, "ok");
    assert_eq!(a.cmd("wait-point short-lived 5000").await, "at beta");
    assert_eq!(a.cmd("spawn watcher watcher").await, "ok");
    assert_eq!(a.cmd("monitor watcher short-lived").await, "ok");
    assert_eq!(a.cmd("monitor watcher echo-b").await, "ok");
    assert_eq!(b.cmd("stop short-lived").await, "ok");
    let start = Instant::now();
    loop {
        let downs = a.cmd("ask watcher downs -").await;
        if downs.contains("short-lived") {
            assert_eq!(downs, "reply short-lived Shutdown");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{downs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.kill().await;
    let killed = Instant::now();
    // Within the bound (lost_after, plus a tick), beta's Points are gone:
    // a request gets a typed error, not a hang.
    loop {
        let r = a.cmd("ask echo-b ping 2").await;
        if r.contains("NoSuchParticle") || r.contains("MachineLost") {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(5), "still {r}");
    }
    let took = killed.elapsed();
    println!("beta lost after {took:?}");
    assert!(took < Duration::from_millis(1000 + 1000), "{took:?}");
    assert_eq!(a.cmd("locate echo-b").await, "at None");
    assert_eq!(
        a.cmd("ask watcher downs -").await,
        "reply short-lived Shutdown;echo-b MachineLost(\"beta\")"
    );
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
