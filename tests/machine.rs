//! The Machine: placement on Stars, particle trees, the Registry's view,
//! and stopping children before parents.

use std::sync::Arc;
use std::time::Duration;

use hyperverse::*;
use parking_lot::Mutex;

/// Logs the order in which particles stop.
#[derive(Clone, Default)]
struct Node {
    stopped: Arc<Mutex<Vec<Point>>>,
}

impl Particle for Node {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        if &*w.method == "spawn" {
            let name = std::str::from_utf8(w.body.as_bytes())?;
            ctx.spawn_child(name, ctx.kind(), Body::empty())?;
        }
        Ok(Body::from(ctx.me().to_string()))
    }
    async fn stop(&self, ctx: &Ctx, _: ()) {
        // Slow enough that a parent stopping early would overtake its children.
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.stopped.lock().push(ctx.me().clone());
    }
}

async fn machine(node: &Node, stars: usize) -> Machine {
    Machine::standalone()
        .stars(stars)
        .kind("node", node.clone())
        .build()
        .await
        .unwrap()
}

fn tree() -> TreeSpec {
    TreeSpec::new("app", "node").children((0..3).map(|r| {
        TreeSpec::new(format!("region-{r}"), "node")
            .children((0..4).map(|w| TreeSpec::new(format!("worker-{w}"), "node")))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_are_placed_with_their_parent_and_listed_by_the_registry() {
    let node = Node::default();
    let m = machine(&node, 3).await;
    let points = m.spawn_tree(&Point::root(), &tree()).await.unwrap();
    assert_eq!(points.len(), 16);
    assert_eq!(points[0].to_string(), "app");
    let app = m.record(&points[0]).unwrap();
    assert_eq!(app.children.len(), 3);
    let subtree = m.registry().subtree(&points[0]);
    assert_eq!(subtree.len(), 16);
    for rec in &subtree {
        assert_eq!(rec.star, app.star, "{} is with its parent", rec.point);
        assert_eq!(rec.status, Status::Ready);
        assert_eq!(rec.kind, Kind::new("node"));
    }
    let region: Point = "app:region-1".parse().unwrap();
    assert_eq!(m.registry().subtree(&region).len(), 5);
    assert_eq!(m.record(&region).unwrap().parent, Some(points[0].clone()));

    // Top-level particles go round-robin across the Stars.
    let mut stars = Vec::new();
    for i in 0..3 {
        let lane = m
            .spawn(
                format!("top-{i}").parse().unwrap(),
                "node".into(),
                Body::empty(),
            )
            .await
            .unwrap();
        stars.push(lane.star());
    }
    stars.sort();
    stars.dedup();
    assert_eq!(stars.len(), 3, "one per Star");

    // A particle spawns a child of its own; the Registry sees the link.
    let reply = m.ask(&region, ("spawn", "extra")).await.unwrap();
    assert_eq!(reply.as_bytes(), b"app:region-1");
    let extra: Point = "app:region-1:extra".parse().unwrap();
    assert_eq!(
        m.ask(&extra, ("who", Body::empty()))
            .await
            .unwrap()
            .as_bytes(),
        b"app:region-1:extra"
    );
    assert!(m.record(&region).unwrap().children.contains(&extra));
    assert_eq!(m.registry().len(), 20);
    m.shutdown().await;
    assert!(m.registry().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_before_parents() {
    let node = Node::default();
    let m = machine(&node, 2).await;
    m.spawn_tree(&Point::root(), &tree()).await.unwrap();
    m.shutdown().await;
    let order = node.stopped.lock().clone();
    assert_eq!(order.len(), 16);
    for (i, p) in order.iter().enumerate() {
        for later in &order[i + 1..] {
            assert!(
                !p.is_ancestor_of(later),
                "{p} stopped before its descendant {later}"
            );
        }
    }
    assert_eq!(order.last().unwrap().to_string(), "app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_subtree_leaves_the_rest_serving() {
    let node = Node::default();
    let m = machine(&node, 2).await;
    m.spawn_tree(&Point::root(), &tree()).await.unwrap();
    let region: Point = "app:region-0".parse().unwrap();
    m.stop(&region).await.unwrap();
    assert_eq!(node.stopped.lock().len(), 5);
    assert_eq!(node.stopped.lock().last(), Some(&region));
    assert!(m.record(&region).is_none());
    assert_eq!(m.record(&"app".parse().unwrap()).unwrap().children.len(), 2);
    assert!(m
        .ask(
            &"app:region-2:worker-3".parse().unwrap(),
            ("x", Body::empty())
        )
        .await
        .is_ok());
    assert!(matches!(
        m.stop(&region).await,
        Err(WaveError::NoSuchParticle { .. })
    ));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_that_collides_is_rolled_back() {
    let node = Node::default();
    let m = machine(&node, 2).await;
    m.spawn("app".parse().unwrap(), "node".into(), Body::empty())
        .await
        .unwrap();
    // Two children named alike: the second collides after the first (and
    // its own children) are up; exactly those are stopped again.
    let branch = |name: &str| {
        TreeSpec::new(name, "node")
            .children((0..3).map(|i| TreeSpec::new(format!("leaf-{i}"), "node")))
    };
    let spec = TreeSpec::new("sub", "node")
        .child(branch("twin"))
        .child(branch("twin"));
    let err = m
        .spawn_tree(&"app".parse().unwrap(), &spec)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SpawnError::AlreadyExists { point } if point.as_str() == "app:sub:twin"),
        "{err:?}"
    );
    assert_eq!(
        m.registry().len(),
        1,
        "only the pre-existing particle is left"
    );
    assert_eq!(
        node.stopped.lock().len(),
        5,
        "sub, twin and its three leaves"
    );
    assert!(m
        .ask(&"app".parse().unwrap(), ("x", Body::empty()))
        .await
        .is_ok());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_node_can_choose_its_star_and_its_children_follow() {
    let m = Machine::standalone()
        .stars(3)
        .kind("node", Node::default())
        .build()
        .await
        .unwrap();
    let spec = TreeSpec::new("spread", "node")
        .star(0)
        .children((0..3).map(|s| {
            TreeSpec::new(format!("branch-{s}"), "node")
                .star(s)
                .child(TreeSpec::new("leaf", "node"))
        }));
    m.spawn_tree(&Point::root(), &spec).await.unwrap();
    for s in 0..3 {
        let leaf: Point = format!("spread:branch-{s}:leaf").parse().unwrap();
        assert_eq!(m.record(&leaf).unwrap().star, s);
        assert_eq!(m.record(&leaf.parent().unwrap()).unwrap().star, s);
    }
    m.shutdown().await;
}
