//! The daemon's Prometheus metrics, served over HTTP when the config has
//! `[metrics] listen = "ADDR"`.
//!
//! Two sources: what the runtime reports as it happens (crashes with their
//! reasons, stops: [`Metrics::observe`], and reloads: [`Metrics::reloaded`])
//! is counted as it comes, in [`Metrics`]; what the Machine can tell at any
//! moment (particles by status, lane depths, waves taken, each Star's
//! counters) is read from it at each scrape. Every metric is named
//! `hyperverse_*`; the HELP line of each says what it counts.
//!
//! The registry and the text encoding are Prometheus' own Rust client's
//! (`prometheus-client`), in the Prometheus text format 0.0.4 that every
//! Prometheus-compatible scraper reads; the HTTP side is in [`http`].

mod depth;
mod http;
mod labels;
mod waves;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyperverse::modules::ReloadReport;
use hyperverse::{Event, Machine, Point, Status};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use depth::Depths;
use labels::{Capped, Reasons};
use waves::{Lane, WavesTaken};

/// Distinct free-text crash reasons that get series of their own (see
/// [`labels`]); later ones are counted as `other`.
const REASON_TEXTS: usize = 16;
/// Distinct module names that get series of their own.
const MODULES: usize = 64;

/// Two labels, e.g. `star` and `reason`.
type Pair = [(&'static str, String); 2];
/// The `star` label.
type Star = [(&'static str, String); 1];

/// What the daemon counts as it runs (fed by the Machine's observer and by
/// reloads), beside what it samples from the Machine at each scrape.
///
/// The observer runs on the runtime's threads for every event: a stop is
/// one atomic add; a crash takes two short-held locks (the reason's label,
/// then the counter's series), and at worst waits for a scrape to finish
/// writing the crash family's few lines when it adds a series. Nothing in
/// it panics: locks are taken poisoned or not.
#[derive(Debug)]
pub struct Metrics {
    /// `hyperverse_crashes_total{star, reason}`.
    crashes: Family<Pair, Counter>,
    /// `hyperverse_stopped_total`.
    stopped: Counter,
    /// `hyperverse_reloads_total{module, outcome}`.
    reloads: Family<Pair, Counter>,
    /// `hyperverse_reload_particles_total{module, result}`.
    reload_particles: Family<Pair, Counter>,
    reasons: Reasons,
    modules: Capped,
    /// Waves taken per Star; scrape side only (scrapes take turns, from
    /// sampling the lanes to adding their deltas).
    waves: Mutex<WavesTaken>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            crashes: Family::default(),
            stopped: Counter::default(),
            reloads: Family::default(),
            reload_particles: Family::default(),
            reasons: Reasons::new(REASON_TEXTS),
            modules: Capped::new(MODULES),
            waves: Mutex::new(WavesTaken::default()),
        }
    }
}

impl Metrics {
    /// Counters at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Counts one runtime event (called for every event, synchronously:
    /// quick, and only crashes and stops are counted here; spawns and
    /// restarts are read from the Stars' own counters at each scrape).
    pub fn observe(&self, event: &Event) {
        match event {
            Event::Crashed(notice) => {
                let labels = [
                    ("star", notice.star.to_string()),
                    ("reason", self.reasons.label(&notice.reason)),
                ];
                self.crashes.get_or_create(&labels).inc();
            }
            Event::Stopped { .. } => {
                self.stopped.inc();
            }
            _ => {}
        }
    }

    /// Counts one reload of `module`: its outcome, and each particle's.
    pub fn reloaded(&self, module: &str, report: &ReloadReport) {
        let module = self.modules.admit(module);
        let outcome = if report.rolled_back {
            "rolled_back"
        } else if report.failed.is_empty() {
            "complete"
        } else {
            "partial"
        };
        self.reload(&module, outcome);
        for (result, n) in [
            ("reloaded", report.reloaded.len()),
            ("current", report.current.len()),
            ("failed", report.failed.len()),
            ("gone", report.gone.len()),
        ] {
            self.reload_particles
                .get_or_create(&[("module", module.clone()), ("result", result.to_string())])
                .inc_by(n as u64);
        }
    }

    /// Counts a reload of `module` that did not happen at all (the new
    /// version did not compile or was refused): no particle was touched.
    pub fn reload_failed(&self, module: &str) {
        let module = self.modules.admit(module);
        self.reload(&module, "error");
    }

    fn reload(&self, module: &str, outcome: &str) {
        self.reloads
            .get_or_create(&[
                ("module", module.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// The metrics now, as Prometheus text: the counters kept here, and
    /// what `machine` says at this moment.
    pub fn render(&self, machine: &Machine) -> String {
        let stars = machine.stars();
        // Held from sampling to update: a scrape that sampled earlier but
        // updated later would otherwise forget lanes a later one saw, and
        // the next scrape would count their waves again.
        let mut waves_taken = self
            .waves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_status: BTreeMap<(usize, &'static str), i64> = BTreeMap::new();
        let mut depths = Vec::new();
        let mut lanes = Vec::new();
        for record in machine.registry().subtree(&Point::root()) {
            *by_status
                .entry((record.star, status_label(record.status)))
                .or_default() += 1;
            // Ended since the Registry was read: nothing to sample.
            let Ok(particle) = machine.particle(&record.point) else {
                continue;
            };
            let load = particle.load();
            lanes.push(Lane {
                seq: particle.spawn_seq(),
                star: particle.star(),
                taken: load.taken,
            });
            if record.status != Status::Stopped {
                depths.push(load.queued);
            }
        }
        let depths = Depths::of(&mut depths);
        waves_taken.update(lanes);
        let mut waves: BTreeMap<usize, u64> = (0..stars).map(|s| (s, 0)).collect();
        waves.extend(waves_taken.totals());
        drop(waves_taken);

        let mut registry = Registry::with_prefix("hyperverse");
        registry.register(
            "stars",
            "Stars (schedulers) on the Machine",
            gauge_of(stars),
        );
        registry.register(
            "particles",
            "Particles in the Registry, by Star and status (starting, ready, restarting, stopped)",
            {
                let f = Family::<Pair, Gauge>::default();
                for star in 0..stars {
                    for status in STATUSES {
                        f.get_or_create(&[
                            ("star", star.to_string()),
                            ("status", status.to_string()),
                        ])
                        .set(0);
                    }
                }
                for ((star, status), n) in &by_status {
                    f.get_or_create(&[("star", star.to_string()), ("status", status.to_string())])
                        .set(*n);
                }
                f
            },
        );
        registry.register(
            "waves_taken",
            "Waves (letters) particles took off their lanes, by Star; rate() of it is waves per second. Counted between scrapes per live particle: waves a particle took after the last scrape before it ended are not counted",
            {
                let f = Family::<Star, Counter>::default();
                for (star, n) in &waves {
                    f.get_or_create(&[("star", star.to_string())]).inc_by(*n);
                }
                f
            },
        );
        registry.register(
            "lane_depth",
            "Letters waiting in a live particle's lane, as quantiles over live particles at the scrape (nearest rank; 0 when none lives)",
            {
                let f = Family::<[(&'static str, &'static str); 1], Gauge>::default();
                for (q, v) in [("0.5", depths.p50), ("0.9", depths.p90), ("0.99", depths.p99)] {
                    f.get_or_create(&[("quantile", q)]).set(gauge(v));
                }
                f
            },
        );
        registry.register(
            "lane_depth_max",
            "Letters waiting in the deepest live lane at the scrape",
            gauge_of(depths.max),
        );
        registry.register(
            "letters_queued",
            "Letters waiting in all live lanes at the scrape",
            gauge_of(depths.sum),
        );
        let (spawned, restarts, gave_up) = (
            Family::<Star, Counter>::default(),
            Family::<Star, Counter>::default(),
            Family::<Star, Counter>::default(),
        );
        for s in machine.star_stats() {
            let star = [("star", s.star.to_string())];
            spawned.get_or_create(&star).inc_by(s.spawned);
            restarts.get_or_create(&star).inc_by(s.restarts);
            gave_up.get_or_create(&star).inc_by(s.gave_up);
        }
        registry.register("spawned", "Particles spawned, by Star", spawned);
        registry.register(
            "restarts",
            "Restarts of crashed particles (by their Star or their supervisor), by Star",
            restarts,
        );
        registry.register(
            "gave_up",
            "Particles not restarted because their restart limit was exceeded, by Star",
            gave_up,
        );
        registry.register(
            "crashes",
            "Particle crashes, by Star and reason: a class for the runtime's own reasons (panic, linked, killed, shutdown, no_handler, wasm_trap, wasm_fuel, wasm_limit, wasm_denied, wasm_abi, wasm), else the first words of the particle's own reason for the first few distinct ones, then other",
            self.crashes.clone(),
        );
        registry.register(
            "stopped",
            "Particles that stopped normally",
            self.stopped.clone(),
        );
        registry.register(
            "reloads",
            "Hot reloads of a WASM module, by module and outcome (complete, partial: some particles stayed on the old version, rolled_back, error: no new version)",
            self.reloads.clone(),
        );
        registry.register(
            "reload_particles",
            "Particles a hot reload looked at, by module and result (reloaded, current, failed, gone)",
            self.reload_particles.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// Every status, so that each (Star, status) series exists from the start
/// (a series that appears only when non-zero breaks `rate()` and alerts).
const STATUSES: [&str; 4] = ["starting", "ready", "restarting", "stopped"];

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Starting => "starting",
        Status::Ready => "ready",
        Status::Restarting => "restarting",
        Status::Stopped => "stopped",
    }
}

fn gauge(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn gauge_of(v: usize) -> Gauge {
    let g = Gauge::default();
    g.set(gauge(v));
    g
}

/// Serves the metrics over HTTP at `addr` (Prometheus text format at
/// `/metrics`) until the task is aborted.
///
/// # Errors
///
/// The address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    machine: Machine,
    metrics: Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(http::spawn(
        listener,
        Arc::new(move || metrics.render(&machine)),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyperverse::modules::{ContentHash, ModuleVersion, ReloadFailure, ReloadReport};
    use hyperverse::{
        Body, CrashNotice, Ctx, Event, Machine, Particle, ParticleError, Point, Wave,
    };

    use super::Metrics;

    struct Echo;
    impl Particle for Echo {
        type State = ();
        async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
            Ok(())
        }
        async fn handle(&self, _: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
            Ok(w.body)
        }
    }

    fn crash(star: usize, reason: &str) -> Event {
        Event::Crashed(CrashNotice {
            child: Point::parse("x").unwrap(),
            kind: "echo".into(),
            reason: reason.to_string(),
            restarts: 1,
            in_period: 1,
            star,
            supervisor: None,
            gave_up: false,
            in_flight: None,
        })
    }

    fn report(reloaded: usize, failed: usize, rolled_back: bool) -> ReloadReport {
        let version = |seq| ModuleVersion {
            name: "counter".into(),
            seq,
            hash: ContentHash([0; 32]),
        };
        let p = |i: usize| Point::parse(&format!("p{i}")).unwrap();
        ReloadReport {
            previous: Some(version(1)),
            version: version(2),
            reloaded: (0..reloaded).map(p).collect(),
            current: vec![],
            failed: (0..failed)
                .map(|i| ReloadFailure {
                    point: p(100 + i),
                    stays_on: Some(1),
                    reason: "restore trapped".into(),
                })
                .collect(),
            gone: vec![p(200)],
            rolled_back,
            compile: Duration::ZERO,
            swap: Duration::ZERO,
        }
    }

    /// The line of `text` that starts with `series` (name and labels).
    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' ')))
    }

    #[tokio::test]
    async fn events_and_reloads_are_counted_and_the_machine_sampled() {
        let machine = Machine::standalone()
            .stars(2)
            .kind("echo", Echo)
            .build()
            .await
            .unwrap();
        let metrics = Metrics::new();
        let e = machine
            .spawn(Point::parse("e").unwrap(), "echo".into(), Body::empty())
            .await
            .unwrap();
        for _ in 0..3 {
            e.ask(("ping", "x")).await.unwrap();
        }
        metrics.observe(&crash(1, "asked to crash"));
        metrics.observe(&crash(1, "asked to crash"));
        metrics.observe(&crash(0, "panic: at 3"));
        metrics.observe(&Event::Stopped {
            point: Point::parse("y").unwrap(),
        });
        metrics.reloaded("counter", &report(2, 0, false));
        metrics.reloaded("counter", &report(1, 1, true));
        metrics.reload_failed("counter");

        let text = metrics.render(&machine);
        let star = e.star().to_string();
        for (series, value) in [
            ("hyperverse_stars", "2".to_string()),
            (
                &format!("hyperverse_particles{{star=\"{star}\",status=\"ready\"}}"),
                "1".into(),
            ),
            (
                &format!("hyperverse_waves_taken_total{{star=\"{star}\"}}"),
                "3".into(),
            ),
            (
                &format!("hyperverse_spawned_total{{star=\"{star}\"}}"),
                "1".into(),
            ),
            (
                "hyperverse_crashes_total{star=\"1\",reason=\"asked to crash\"}",
                "2".into(),
            ),
            (
                "hyperverse_crashes_total{star=\"0\",reason=\"panic\"}",
                "1".into(),
            ),
            ("hyperverse_stopped_total", "1".into()),
            (
                "hyperverse_reloads_total{module=\"counter\",outcome=\"complete\"}",
                "1".into(),
            ),
            (
                "hyperverse_reloads_total{module=\"counter\",outcome=\"rolled_back\"}",
                "1".into(),
            ),
            (
                "hyperverse_reloads_total{module=\"counter\",outcome=\"error\"}",
                "1".into(),
            ),
            (
                "hyperverse_reload_particles_total{module=\"counter\",result=\"reloaded\"}",
                "3".into(),
            ),
            (
                "hyperverse_reload_particles_total{module=\"counter\",result=\"failed\"}",
                "1".into(),
            ),
            (
                "hyperverse_reload_particles_total{module=\"counter\",result=\"gone\"}",
                "2".into(),
            ),
            ("hyperverse_lane_depth{quantile=\"0.99\"}", "0".into()),
            ("hyperverse_lane_depth_max", "0".into()),
        ] {
            let found = line(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
            assert_eq!(found, format!("{series} {value}"), "{text}");
        }

        // The particle ends: its waves stay in the total.
        machine.stop(&Point::parse("e").unwrap()).await.unwrap();
        let text = metrics.render(&machine);
        let series = format!("hyperverse_waves_taken_total{{star=\"{star}\"}}");
        assert_eq!(
            line(&text, &series),
            Some(&*format!("{series} 3")),
            "{text}"
        );
        let series = format!("hyperverse_particles{{star=\"{star}\",status=\"ready\"}}");
        assert_eq!(
            line(&text, &series),
            Some(&*format!("{series} 0")),
            "{text}"
        );
        machine.shutdown().await;
    }
}
