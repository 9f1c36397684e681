//! Tree specs: a whole particle tree, declared and spawned in one call.

use crate::{Body, Kind, Point, RestartLimit, SpawnError, SpawnOptions};

/// A declarative particle tree: a node names one particle (by its last
/// segment), its Kind and spawn arguments, and its children.
///
/// ```
/// use hyperverse_runtime::*;
///
/// struct Worker;
/// impl Particle for Worker {
///     type State = ();
///     async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> { Ok(()) }
///     async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> { Ok(Body::empty()) }
/// }
///
/// # #[tokio::main] async fn main() {
/// let tree = TreeSpec::new("app", "worker")
///     .child(TreeSpec::new("db", "worker").star(0))
///     .children((0..3).map(|i| TreeSpec::new(format!("web-{i}"), "worker")));
/// assert_eq!(tree.len(), 5);
///
/// let machine = Machine::standalone().kind("worker", Worker).build().await.unwrap();
/// let points = machine.spawn_tree(&Point::root(), &tree).await.unwrap();
/// assert_eq!(points.len(), 5);
/// let app = machine.record(&"app".parse().unwrap()).unwrap();
/// assert_eq!(app.children.len(), 4);
/// machine.shutdown().await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TreeSpec {
    name: String,
    kind: Kind,
    args: Body,
    options: SpawnOptions,
    children: Vec<TreeSpec>,
}

/// One particle of a flattened tree, parents first.
pub(crate) struct Planned {
    pub point: Point,
    pub kind: Kind,
    pub args: Body,
    pub options: SpawnOptions,
}

impl TreeSpec {
    /// A node named `name` (one segment) of Kind `kind`, with empty arguments.
    pub fn new(name: impl Into<String>, kind: impl Into<Kind>) -> Self {
        TreeSpec {
            name: name.into(),
            kind: kind.into(),
            args: Body::empty(),
            options: SpawnOptions::default(),
            children: Vec::new(),
        }
    }

    /// Sets the spawn arguments.
    pub fn args(mut self, args: impl Into<Body>) -> Self {
        self.args = args.into();
        self
    }

    /// Places this node on Star `star` (its children follow it unless they
    /// say otherwise), e.g. to spread a tree's branches over the Stars.
    pub fn star(mut self, star: usize) -> Self {
        self.options.star = Some(star);
        self
    }

    /// Gives this node its own restart limit.
    pub fn restart_limit(mut self, limit: RestartLimit) -> Self {
        self.options.restart_limit = Some(limit);
        self
    }

    /// Adds a child.
    pub fn child(mut self, child: TreeSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Adds children.
    pub fn children(mut self, children: impl IntoIterator<Item = TreeSpec>) -> Self {
        self.children.extend(children);
        self
    }

    /// Particles in the tree, this node included.
    pub fn len(&self) -> usize {
        1 + self.children.iter().map(TreeSpec::len).sum::<usize>()
    }

    /// Never true: a spec always has its own node.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Lists the tree's particles parents first, checking every Point.
    pub(crate) fn flatten(&self, under: &Point, out: &mut Vec<Planned>) -> Result<(), SpawnError> {
        let point = under.child(&self.name)?;
        out.push(Planned {
            point: point.clone(),
            kind: self.kind.clone(),
            args: self.args.clone(),
            options: self.options.clone(),
        });
        for child in &self.children {
            child.flatten(&point, out)?;
        }
        Ok(())
    }
}
