//! Machines as real processes for the cluster tests: this test binary runs
//! itself as a child (its ignored `machine_process` test, with `HV_NODE`
//! set) that builds a clustered Machine and obeys one command per stdin
//! line, answering one line on stdout; and a TCP proxy the test can cut.

#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyperverse_cluster::{Audience, ClusterConfig, ClusteredMachine, Collect, Placement, TlsFiles};
use hyperverse_runtime::*;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// xorshift: the tests' only source of chance (seeded, replayable).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What marks the child's answers on its stdout.
const MARK: &str = "@hv ";

/// A free port on loopback, never one handed out before in this process
/// (a port bound and released may be handed out again at once, and two
/// Machines given one port would fight over it).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::OnceLock<Mutex<std::collections::HashSet<u16>>> =
        std::sync::OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if given.lock().insert(port) {
            return port;
        }
    }
}

/// Counts `n` waves per sender, checking each sender's numbers come 1, 2,
/// 3, … with none missing, doubled or out of order.
struct Sink;
#[derive(Default)]
struct Seen {
    last: HashMap<Point, u64>,
    bad: Vec<String>,
    total: u64,
}
impl Particle for Sink {
    type State = Seen;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<Seen, ParticleError> {
        Ok(Seen::default())
    }
    async fn handle(&self, _: &Ctx, s: &mut Seen, w: Wave) -> Result<Body, ParticleError> {
        match w.method.as_str() {
            "n" => {
                let n: u64 = w.body.as_str()?.parse()?;
                let last = s.last.entry(w.from.clone()).or_insert(0);
                if n != *last + 1 && s.bad.len() < 10 {
                    s.bad.push(format!("{} sent {n} after {last}", w.from));
                }
                *last = n;
                s.total += 1;
                Ok(Body::empty())
            }
            "report" => {
                let mut senders: Vec<String> =
                    s.last.iter().map(|(p, n)| format!("{p}={n}")).collect();
                senders.sort();
                Ok(format!(
                    "total={} bad={} senders={} {}",
                    s.total,
                    s.bad.len(),
                    senders.join(","),
                    s.bad.join(";")
                )
                .into())
            }
            other => Err(format!("no clause for {other}").into()),
        }
    }
}

/// On `go` (`count target [pause]`), sends `n` 1..=count to `target`,
/// pausing `pause` ms after every 100.
struct Sender;
impl Particle for Sender {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let text = w.body.as_str()?.to_string();
        let mut words = text.split(' ');
        let count: u64 = words.next().ok_or("go: count")?.parse()?;
        let target: Point = words.next().ok_or("go: target")?.parse()?;
        // Optional: milliseconds to pause after every 100 waves.
        let pause: u64 = words.next().map_or(Ok(0), str::parse)?;
        for i in 1..=count {
            ctx.signal(&target, ("n", i.to_string()))
                .map_err(|e| -> ParticleError { format!("send {i}: {e}").into() })?;
            if pause > 0 && i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        Ok(Body::empty())
    }
}

/// Answers every ask with its body.
struct Echo;
impl Particle for Echo {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if w.method.as_str() == "sleep" {
            let ms: u64 = w.body.as_str()?.parse()?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(w.body)
    }
}

/// Keeps the down notices it gets; `downs` answers them, one per line
/// joined by `;`.
struct Watcher;
impl Particle for Watcher {
    type State = Vec<String>;
    async fn start(&self, _: &Ctx, _: &Body) -> Result<Vec<String>, ParticleError> {
        Ok(Vec::new())
    }
    async fn handle(&self, ctx: &Ctx, s: &mut Vec<String>, w: Wave) -> Result<Body, ParticleError> {
        match w.method.as_str() {
            "crash" => return Err("asked to crash".into()),
            // Links itself with the Point in the body, trapping exits.
            "link" => {
                ctx.trap_exits(true);
                ctx.link(&w.body.as_str()?.parse()?)?;
            }
            // Monitors the Point in the body, as itself (the rules judge
            // it for `link` on that Point).
            "monitor" => {
                ctx.monitor(&w.body.as_str()?.parse()?);
            }
            // Counts the children of the supervisor in the body, as its
            // caller (the supervisor API judges who asks).
            "count" => {
                let sup = ctx.machine().supervisor(&w.body.as_str()?.parse()?);
                return Ok(match sup.count_children().await {
                    Ok(c) => format!("specs={} active={}", c.specs, c.active).into(),
                    Err(e) => format!("refused: {e}").into(),
                });
            }
            _ => {}
        }
        Ok(s.join(";").into())
    }
    async fn exit_signal(
        &self,
        _: &Ctx,
        s: &mut Vec<String>,
        e: ExitSignal,
    ) -> Result<(), ParticleError> {
        s.push(format!("exit {} {}", e.from, e.reason));
        Ok(())
    }
    async fn down(&self, _: &Ctx, s: &mut Vec<String>, n: DownNotice) -> Result<(), ParticleError> {
        s.push(format!("{} {:?}", n.target, n.reason));
        Ok(())
    }
    async fn crash_notice(
        &self,
        _: &Ctx,
        s: &mut Vec<String>,
        n: CrashNotice,
    ) -> Result<(), ParticleError> {
        s.push(format!(
            "crash {} {} gave_up={}",
            n.child, n.reason, n.gave_up
        ));
        Ok(())
    }
}

/// Sends and asks as itself what it is told: `ask` (`target method
/// body`) answers `reply …` or `err {WaveError:?}`; `signal` the same
/// words, `ok` or the error.
struct Relay;
impl Particle for Relay {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let text = w.body.as_str()?.to_string();
        let mut words = text.splitn(3, ' ');
        let target: Point = words.next().ok_or("relay: target")?.parse()?;
        let method = words.next().ok_or("relay: method")?.to_string();
        let body = words.next().unwrap_or("").to_string();
        let answer = match w.method.as_str() {
            "ask" => match ctx
                .ask(&target, (method, body))
                .within(Duration::from_secs(10))
                .await
            {
                Ok(b) => format!("reply {}", b.as_str().unwrap_or("?")),
                Err(e) => format!("err {e:?}"),
            },
            "signal" => match ctx.signal(&target, (method, body)) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("err {e}"),
            },
            other => return Err(format!("no clause for {other}").into()),
        };
        Ok(answer.into())
    }
}

/// The process's cluster membership, for particles that spawn through it
/// (taken back when the Machine leaves).
static CLUSTER: Mutex<Option<Arc<hyperverse_cluster::Cluster>>> = Mutex::new(None);

/// The process's cluster membership, if it has not left.
fn current_cluster() -> Option<Arc<hyperverse_cluster::Cluster>> {
    CLUSTER.lock().clone()
}

/// Spawns through the cluster as itself: `place` (`point kind machine`,
/// `here` for its own Machine) answers `at MACHINE` or `err …`.
struct Spawner;
impl Particle for Spawner {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        let text = w.body.as_str()?.to_string();
        let words: Vec<&str> = text.split(' ').collect();
        let [point, kind, on] = words.as_slice() else {
            return Err("place: point kind machine".into());
        };
        let placement = match *on {
            "here" => Placement::Here,
            m => Placement::On(m.to_string()),
        };
        let cluster = current_cluster().ok_or("no cluster")?;
        let placed = cluster
            .spawn(point.parse()?, (*kind).into(), Body::empty(), placement)
            .await;
        Ok(match placed {
            Ok(m) => format!("at {m}"),
            Err(e) => format!("err {e}"),
        }
        .into())
    }
}

/// Answers the access commands of a Machine process (`grant …`,
/// `revoke …`, `rules`, `access-stats`, `policy …`), or None for another
/// command.
fn access_command(machine: &Machine, line: &str) -> Option<String> {
    use hyperverse_runtime::access::AccessPolicy;
    let answer = |r: Result<(), hyperverse_runtime::access::RuleError>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("err {e}"),
    };
    if let Some(text) = line.strip_prefix("grant ") {
        return Some(match text.parse() {
            Ok(g) => answer(machine.grant(g)),
            Err(e) => format!("err {e}"),
        });
    }
    if let Some(text) = line.strip_prefix("revoke ") {
        return Some(match text.parse() {
            Ok(g) => answer(machine.revoke(g)),
            Err(e) => format!("err {e}"),
        });
    }
    match line {
        "rules" => {
            let grants: Vec<String> = machine.rules().grants().map(|g| g.to_string()).collect();
            Some(format!("rules {}", grants.join(";")))
        }
        "access-stats" => {
            let s = machine.access_stats();
            Some(format!(
                "stats signals={} requests={} actions={} changes={}",
                s.denied_signals, s.denied_requests, s.denied_actions, s.changes
            ))
        }
        "policy enforced" => Some(answer(machine.set_access_policy(AccessPolicy::Enforced))),
        "policy open" => Some(answer(machine.set_access_policy(AccessPolicy::Open))),
        _ => None,
    }
}

/// One number from an `access-stats` answer (`signals=`, `requests=`,
/// `actions=`, `changes=`).
pub fn stat(stats: &str, key: &str) -> u64 {
    stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
}

/// One-for-one over two echoes, `a` and `b`.
fn two_echoes() -> SupervisorSpec {
    SupervisorSpec::new(
        SupFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(10)),
        ["a", "b"]
            .into_iter()
            .map(|id| ChildSpec::worker(id, ChildStart::kind("echo", Body::empty())))
            .collect(),
    )
}

/// The child: a clustered Machine run by commands on stdin.
pub async fn machine_process(spec: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut f: HashMap<&str, &str> = HashMap::new();
    for kv in spec.split(';') {
        if let Some((k, v)) = kv.split_once('=') {
            f.insert(k, v);
        }
    }
    let mut config = ClusterConfig::new(f["name"], f["listen"], f["secret"])
        .unwrap()
        .lost_after(Duration::from_millis(
            f.get("lost_ms").map_or(3000, |v| v.parse().unwrap()),
        ))
        .dial_back(f.get("dial_back") != Some(&"0"));
    for s in f.get("seeds").into_iter().flat_map(|s| s.split(',')) {
        if !s.is_empty() {
            config = config.seed(s);
        }
    }
    if let Some(dir) = f.get("tls") {
        let dir = std::path::Path::new(dir);
        // The certificate named `cert` (the Machine's name unless told).
        let cert = f.get("cert").copied().unwrap_or(f["name"]);
        config = config.tls(TlsFiles {
            cert: dir.join(format!("{cert}.crt")),
            key: dir.join(format!("{cert}.key")),
            ca: dir.join("ca.crt"),
        });
    }
    let policy = match f.get("access") {
        Some(&"enforced") => hyperverse_runtime::access::AccessPolicy::Enforced,
        _ => hyperverse_runtime::access::AccessPolicy::Open,
    };
    let built = Machine::clustered(config)
        .machine(|b| {
            b.stars(2)
                .request_timeout(Duration::from_secs(10))
                .supervisor("sup", two_echoes())
                .access(policy)
        })
        .kind("relay", Relay)
        .kind("spawner", Spawner)
        .kind("sink", Sink)
        .kind("sender", Sender)
        .kind("echo", Echo)
        .kind("watcher", Watcher)
        .build()
        .await;
    let (machine, cluster) = match built {
        Ok(x) => x,
        Err(e) => {
            println!("{MARK}error {e}");
            return;
        }
    };
    let cluster = Arc::new(cluster);
    *CLUSTER.lock() = Some(cluster.clone());
    println!("{MARK}ready");
    let background: Arc<Mutex<HashMap<String, tokio::task::JoinHandle<String>>>> = Arc::default();
    let mut leaving = false;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(answer) = access_command(&machine, &line) {
            println!("{MARK}{answer}");
            continue;
        }
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        let answer = match words.as_slice() {
            ["spawn", point, kind] => match machine
                .spawn(point.parse().unwrap(), (*kind).into(), Body::empty())
                .await
            {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("err {e}"),
            },
            ["peers"] => format!("peers {}", cluster.peers().join(",")),
            ["wait-peers", n, ms] => match cluster
                .wait_for_peers(
                    n.parse().unwrap(),
                    Duration::from_millis(ms.parse().unwrap()),
                )
                .await
            {
                Ok(()) => "ok".into(),
                Err(e) => format!("err {e}"),
            },
            ["wait-point", p, ms] => match cluster
                .wait_for_point(
                    &p.parse().unwrap(),
                    Duration::from_millis(ms.parse().unwrap()),
                )
                .await
            {
                Ok(m) => format!("at {m}"),
                Err(p) => format!("err {p} not located"),
            },
            ["locate", p] => format!("at {:?}", cluster.locate(&p.parse().unwrap())),
            ["signal", p, m, body] => {
                match machine.signal(&p.parse().unwrap(), (m.to_string(), body.to_string())) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("err {e}"),
                }
            }
            ["ask", p, m, body] => {
                match machine
                    .ask(&p.parse().unwrap(), (m.to_string(), body.to_string()))
                    .within(Duration::from_secs(20))
                    .await
                {
                    Ok(b) => format!("reply {}", b.as_str().unwrap_or("?")),
                    Err(e) => format!("err {e:?}"),
                }
            }
            ["monitor", watcher, target] => {
                match machine.monitor(&watcher.parse().unwrap(), &target.parse().unwrap()) {
                    Ok(_) => "ok".into(),
                    Err(e) => format!("err {e}"),
                }
            }
            ["stop", p] => match machine.stop(&p.parse().unwrap()).await {
                Ok(()) => "ok".into(),
                Err(e) => format!("err {e}"),
            },
            // Stops a Point wherever it lives, through the cluster.
            ["cstop", p] => match cluster.stop(&p.parse().unwrap()).await {
                Ok(()) => "ok".into(),
                Err(e) => format!("err {e:?}"),
            },
            ["place", p, kind, placement] => {
                let placement = match *placement {
                    "parent" => Placement::Parent,
                    "here" => Placement::Here,
                    "least" => Placement::LeastLoaded,
                    "hash" => Placement::Hash,
                    other => Placement::On(other.trim_start_matches("on:").to_string()),
                };
                match cluster
                    .spawn(p.parse().unwrap(), (*kind).into(), Body::empty(), placement)
                    .await
                {
                    Ok(m) => format!("at {m}"),
                    Err(e) => format!("err {e}"),
                }
            }
            ["ask-bg", id, p, rest] => {
                let (m, body) = rest.split_once(' ').unwrap();
                let ask = machine
                    .ask(&p.parse().unwrap(), (m.to_string(), body.to_string()))
                    .within(Duration::from_secs(20));
                let task = tokio::spawn(async move {
                    match ask.await {
                        Ok(b) => format!("reply {}", b.as_str().unwrap_or("?")),
                        Err(e) => format!("err {e:?}"),
                    }
                });
                background.lock().insert(id.to_string(), task);
                "ok".into()
            }
            ["result", id] => {
                let task = background.lock().remove(*id);
                match task {
                    Some(t) => t.await.unwrap_or_else(|e| format!("err {e}")),
                    None => "err no such ask".into(),
                }
            }
            ["sup-count", p] => match machine
                .supervisor(&p.parse().unwrap())
                .count_children()
                .await
            {
                Ok(c) => format!("ok specs={} active={}", c.specs, c.active),
                Err(e) => format!("err {e}"),
            },
            ["join-group", g, p] => match cluster.join_group(g, &p.parse().unwrap()) {
                Ok(()) => "ok".into(),
                Err(e) => format!("err {e}"),
            },
            ["members", g] => {
                let m: Vec<String> = cluster.members(g).iter().map(|p| p.to_string()).collect();
                format!("ok {}", m.join(","))
            }
            ["bcast", audience, collect, rest] => {
                let to = match audience.split_once(':') {
                    Some(("group", g)) => Audience::Group(g.to_string()),
                    Some(("sub", p)) => Audience::Subtree(p.parse().unwrap()),
                    _ => panic!("audience {audience}"),
                };
                let collect = match *collect {
                    "none" => Collect::Nothing,
                    "first" => Collect::First,
                    "all" => Collect::All,
                    n => Collect::Count(n.trim_start_matches("count:").parse().unwrap()),
                };
                let (m, body) = rest.split_once(' ').unwrap();
                let got = cluster
                    .broadcast(
                        &to,
                        (m.to_string(), body.to_string()),
                        collect,
                        Duration::from_secs(5),
                    )
                    .await;
                let oks = got.iter().filter(|(_, r)| r.is_ok()).count();
                let mut each: Vec<String> = got
                    .iter()
                    .map(|(p, r)| match r {
                        Ok(b) => format!("{p}={}", b.as_str().unwrap_or("?")),
                        Err(e) => format!("{p}!{e}"),
                    })
                    .collect();
                each.sort();
                format!("ok n={} oks={oks} {}", got.len(), each.join(","))
            }
            ["leave"] => {
                leaving = true;
                break;
            }
            ["quit"] => break,
            _ => format!("err unknown command {line}"),
        };
        println!("{MARK}{answer}");
    }
    if leaving {
        CLUSTER.lock().take();
        let Ok(cluster) = Arc::try_unwrap(cluster) else {
            panic!("a particle holds the cluster while it leaves");
        };
        cluster.leave().await;
        println!("{MARK}ok");
        // Standalone now: wait to be killed.
        while let Ok(Some(_)) = lines.next_line().await {}
    }
}

/// Writes a CA, a certificate and key per Machine in `names` signed by it
/// (for 127.0.0.1 and localhost), and a `rogue` certificate that another,
/// unknown CA signed, into `dir`.
pub fn make_certs(dir: &std::path::Path, names: &[&str]) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, what: &str, text: String| {
        std::fs::write(dir.join(format!("{name}.{what}")), text).unwrap();
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    write("ca", "crt", ca_cert.pem());
    let ca = Issuer::new(ca_params, ca_key);
    let mut rogue_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    rogue_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let rogue_ca = Issuer::new(rogue_params, KeyPair::generate().unwrap());
    let leaf = |name: &str, issuer: &Issuer<'_, KeyPair>| {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        write(name, "crt", cert.pem());
        write(name, "key", key.serialize_pem());
    };
    for n in names {
        leaf(n, &ca);
    }
    leaf("rogue", &rogue_ca);
}

/// A Machine process, from the test's side.
pub struct Node {
    pub name: String,
    pub addr: String,
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

/// How to start a Machine process.
pub struct NodeSpec {
    pub name: String,
    pub port: u16,
    pub secret: String,
    pub seeds: Vec<String>,
    pub lost_ms: u64,
    pub dial_back: bool,
    pub tls: Option<std::path::PathBuf>,
    /// The certificate to present, when not the Machine's own.
    pub cert: Option<String>,
    /// The Machine's access policy: enforced, or (false) open.
    pub enforced: bool,
}

impl NodeSpec {
    pub fn new(name: &str) -> Self {
        NodeSpec {
            name: name.into(),
            port: free_port(),
            secret: "test-secret".into(),
            seeds: vec![],
            lost_ms: 3000,
            dial_back: true,
            tls: None,
            cert: None,
            enforced: false,
        }
    }
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Node {
    pub async fn start(spec: NodeSpec) -> Node {
        let addr = spec.addr();
        let mut text = format!(
            "name={};listen={};secret={};seeds={};lost_ms={};dial_back={}",
            spec.name,
            addr,
            spec.secret,
            spec.seeds.join(","),
            spec.lost_ms,
            u8::from(spec.dial_back)
        );
        if let Some(dir) = &spec.tls {
            text.push_str(&format!(";tls={}", dir.display()));
        }
        if let Some(cert) = &spec.cert {
            text.push_str(&format!(";cert={cert}"));
        }
        if spec.enforced {
            text.push_str(";access=enforced");
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "machine_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HV_NODE", text)
            .env(
                "RUST_LOG",
                std::env::var("HV_NODE_LOG")
                    .unwrap_or_else(|_| "hyperverse=warn,ractor_cluster=error".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut node = Node {
            name: spec.name,
            addr,
            child,
            stdin,
            stdout,
        };
        let first = node.line().await;
        assert_eq!(first, "ready", "{} did not start", node.name);
        node
    }

    async fn line(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("{} said nothing for 60 s", self.name))
                .unwrap()
                .unwrap_or_else(|| panic!("{} exited", self.name));
            // The child's harness writes lines of its own, and "test
            // machine_process ... " before our first line: ours are marked.
            if let Some(at) = line.find(MARK) {
                return line[at + MARK.len()..].to_string();
            }
        }
    }

    /// Sends one command and returns its answer line.
    pub async fn cmd(&mut self, c: &str) -> String {
        self.stdin
            .write_all(format!("{c}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        self.line().await
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A TCP proxy the test can cut or slow: cut, every connection through
/// it is dropped and new ones refused until it is restored; slowed, each
/// chunk it forwards waits first (order kept).
pub struct Proxy {
    pub addr: String,
    cut: Arc<AtomicBool>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// Copies one direction, each chunk after the proxy's delay.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let d = delay_ms.load(Ordering::Relaxed);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c2, k2, d2) = (cut.clone(), conns.clone(), delay_ms.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if c2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let d = d2.clone();
                k2.lock().push(tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ri, wo, d.clone()) => {}
                        _ = pump(ro, wi, d) => {}
                    }
                }));
            }
        });
        Proxy {
            addr,
            cut,
            delay_ms,
            conns,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().drain(..) {
            c.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Delays every chunk by `ms` (0: none).
    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

/// Each sender's last number from a sink's report (`senders=p=n,…`).
pub fn report_senders(report: &str) -> HashMap<String, u64> {
    report
        .split_whitespace()
        .find_map(|w| w.strip_prefix("senders="))
        .unwrap_or("")
        .split(',')
        .filter_map(|kv| kv.rsplit_once('='))
        .filter_map(|(p, n)| Some((p.to_string(), n.parse().ok()?)))
        .collect()
}

/// Parses `total=… bad=…` from a sink's report.
pub fn report_counts(report: &str) -> (u64, u64) {
    let field = |k: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (field("total="), field("bad="))
}
