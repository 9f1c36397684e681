//! What the demo will do, decided up front from the options and the seed:
//! the tree's shape, each sender's share of the waves, and which workers
//! crash, how, and when. Deciding everything before the Machine starts keeps
//! a run reproducible from its seed (up to thread timing).

use hyperverse::{Point, PointError, TreeSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::particles::{REGION, WORKER};
use super::DemoArgs;

/// How a planned crash happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The handler returns `Err`: the ordinary way a particle fails.
    Error,
    /// The handler panics: the runtime must catch it like an error.
    Panic,
}

/// One planned crash.
#[derive(Debug, Clone)]
pub struct Crash {
    /// Index into [`Layout::workers`].
    pub worker: usize,
    /// Error or panic.
    pub how: How,
    /// The reason the worker is told to give (the crash wave's body).
    pub reason: String,
    /// Which sender sends the crash wave…
    pub sender: usize,
    /// …and before which of its waves, so crashes land mid-traffic.
    pub at: u64,
}

/// One sender task's share of the traffic.
#[derive(Debug, Clone)]
pub struct SenderPlan {
    /// How many `work` waves it sends.
    pub waves: u64,
    /// Seed of its own generator (targets, signal or request).
    pub seed: u64,
    /// Indices into [`Plan::crashes`] it sends, in `at` order.
    pub crashes: Vec<usize>,
}

/// The particle tree: `demo`, its regions `demo:region-R`, their workers
/// `demo:region-R:worker-W`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The whole tree, spawned in one call. Region R is placed on Star
    /// R mod S and its workers follow it, so the report is the same on every
    /// run.
    pub tree: TreeSpec,
    /// The regions' Points.
    pub regions: Vec<Point>,
    /// The workers' Points, region by region.
    pub workers: Vec<Point>,
    /// For each worker, the index of its region.
    pub region_of: Vec<usize>,
}

impl Layout {
    /// Regions under `demo`, spread over `stars` Stars, with the workers
    /// shared out as evenly as possible.
    fn new(regions: usize, workers: usize, stars: usize) -> Result<Layout, PointError> {
        let base = Point::parse("demo")?;
        let mut layout = Layout {
            tree: TreeSpec::new(base.as_str(), REGION).star(0),
            regions: Vec::with_capacity(regions),
            workers: Vec::with_capacity(workers),
            region_of: Vec::with_capacity(workers),
        };
        for r in 0..regions {
            let count = workers / regions + usize::from(r < workers % regions);
            let name = format!("region-{r}");
            let region = base.child(&name)?;
            let mut tree = TreeSpec::new(name, REGION).star(r % stars.max(1));
            for w in 0..count {
                let name = format!("worker-{w}");
                layout.workers.push(region.child(&name)?);
                layout.region_of.push(r);
                tree = tree.child(TreeSpec::new(name, WORKER));
            }
            layout.tree = layout.tree.child(tree);
            layout.regions.push(region);
        }
        Ok(layout)
    }

    /// Particles in the whole tree: `demo`, the regions and the workers.
    pub fn len(&self) -> usize {
        1 + self.regions.len() + self.workers.len()
    }
}

/// Everything the demo will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub layout: Layout,
    pub senders: Vec<SenderPlan>,
    pub crashes: Vec<Crash>,
}

impl Plan {
    /// Draws the plan from `args.seed`. `args` must have passed
    /// [`DemoArgs::validate`] (there are at least as many workers as crashes).
    pub fn new(args: &DemoArgs, stars: usize) -> Result<Plan, PointError> {
        let layout = Layout::new(args.regions, args.particles, stars)?;
        let mut rng = StdRng::seed_from_u64(args.seed);

        let senders: Vec<SenderPlan> = (0..args.senders)
            .map(|s| {
                let share = args.waves / args.senders as u64
                    + u64::from((s as u64) < args.waves % args.senders as u64);
                Ok(SenderPlan {
                    waves: share,
                    seed: rng.gen(),
                    crashes: Vec::new(),
                })
            })
            .collect::<Result<_, PointError>>()?;

        // Distinct workers, so each crashed worker should show exactly one
        // restart; one of them (if any) panics, the others return errors.
        let targets = rand::seq::index::sample(&mut rng, layout.workers.len(), args.crashes);
        let panicker = (args.crashes > 0).then(|| rng.gen_range(0..args.crashes));
        let mut crashes: Vec<Crash> = targets
            .into_iter()
            .enumerate()
            .map(|(i, worker)| {
                let sender = i % senders.len();
                let how = if Some(i) == panicker {
                    How::Panic
                } else {
                    How::Error
                };
                Crash {
                    worker,
                    how,
                    reason: String::new(),
                    sender,
                    at: rng.gen_range(0..=senders[sender].waves),
                }
            })
            .collect();
        // Number the crashes in the order they will (roughly) happen.
        crashes.sort_by_key(|c| (c.at, c.sender));
        for (i, c) in crashes.iter_mut().enumerate() {
            c.reason = format!("planned crash {} of {}", i + 1, args.crashes);
        }

        let mut senders = senders;
        for (i, c) in crashes.iter().enumerate() {
            senders[c.sender].crashes.push(i);
        }
        Ok(Plan {
            layout,
            senders,
            crashes,
        })
    }
}

#[cfg(test)]
impl Plan {
    fn new_for_test(args: &DemoArgs) -> Result<Plan, PointError> {
        Plan::new(args, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(regions: usize, particles: usize, waves: u64, crashes: usize) -> DemoArgs {
        DemoArgs {
            stars: Some(2),
            regions,
            particles,
            waves,
            senders: 3,
            crashes,
            seed: 9,
            wasm_particles: 1,
            wasm_waves: 0,
            storm_ms: 0,
        }
    }

    #[test]
    fn workers_are_shared_out_evenly() {
        let plan = Plan::new_for_test(&args(7, 50, 10, 0)).unwrap();
        let sizes: Vec<usize> = (0..7)
            .map(|r| plan.layout.region_of.iter().filter(|&&x| x == r).count())
            .collect();
        assert_eq!(sizes, [8, 7, 7, 7, 7, 7, 7]);
        assert_eq!(plan.layout.len(), 58);
        assert_eq!(plan.layout.tree.len(), 58);
        assert_eq!(plan.layout.workers[8].as_str(), "demo:region-1:worker-0");
    }

    #[test]
    fn crashes_hit_distinct_workers_and_one_panics() {
        let plan = Plan::new_for_test(&args(4, 40, 1_000, 12)).unwrap();
        let mut targets: Vec<usize> = plan.crashes.iter().map(|c| c.worker).collect();
        targets.sort_unstable();
        targets.dedup();
        assert_eq!(targets.len(), 12);
        let panics = plan.crashes.iter().filter(|c| c.how == How::Panic).count();
        assert_eq!(panics, 1);
        for (i, c) in plan.crashes.iter().enumerate() {
            assert!(c.at <= plan.senders[c.sender].waves);
            assert!(plan.senders[c.sender].crashes.contains(&i));
            assert_eq!(c.reason, format!("planned crash {} of 12", i + 1));
        }
        assert_eq!(plan.senders.iter().map(|s| s.waves).sum::<u64>(), 1_000);
    }

    #[test]
    fn a_seed_gives_the_same_plan() {
        let a = Plan::new_for_test(&args(4, 40, 1_000, 5)).unwrap();
        let b = Plan::new_for_test(&args(4, 40, 1_000, 5)).unwrap();
        let key = |p: &Plan| {
            p.crashes
                .iter()
                .map(|c| (c.worker, c.sender, c.at, c.how))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
    }
}
