//! Particle trees: spawned one by one, then declared as data and spawned in
//! one call; listed from the Registry; sent a wave; shut down.
//!
//! Run with `cargo run --example particle_tree`.

use hyperverse::*;

/// Answers `hello` with a greeting that says who greeted whom, and how many
/// greetings this particle has handled (its state).
struct Greeter;

impl Particle for Greeter {
    type State = u64;

    async fn start(&self, _ctx: &Ctx, _args: &Body) -> Result<u64, ParticleError> {
        Ok(0)
    }

    async fn handle(
        &self,
        ctx: &Ctx,
        greeted: &mut u64,
        wave: Wave,
    ) -> Result<Body, ParticleError> {
        match &*wave.method {
            "hello" => {
                *greeted += 1;
                let who = std::str::from_utf8(wave.body.as_bytes())?;
                Ok(format!("hello {who}, from {} (greeting #{greeted})", ctx.me()).into())
            }
            other => Err(format!("unknown method `{other}`").into()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let machine = Machine::standalone()
        .stars(2)
        .kind("greeter", Greeter)
        .build()
        .await?;

    // One by one: a parent first, then its children. A top-level particle
    // goes to the next Star round-robin; a child goes on its parent's Star.
    let shop: Point = "shop".parse()?;
    machine
        .spawn(shop.clone(), Kind::new("greeter"), Body::empty())
        .await?;
    for till in ["till-1", "till-2"] {
        machine
            .spawn(shop.child(till)?, Kind::new("greeter"), Body::empty())
            .await?;
    }
    println!("spawned one by one: shop, shop:till-1, shop:till-2");

    // Declaratively: a tree as data, spawned in one call that checks every
    // Point and Kind first and waits until every particle has started.
    let farm = TreeSpec::new("farm", "greeter")
        .child(
            TreeSpec::new("barn", "greeter")
                .children((1..=3).map(|i| TreeSpec::new(format!("cow-{i}"), "greeter"))),
        )
        .child(TreeSpec::new("field", "greeter"));
    let spawned = machine.spawn_tree(&Point::root(), &farm).await?;
    println!(
        "spawn_tree started {} particles, rooted at farm",
        spawned.len()
    );

    // The Registry knows both trees, with each particle's Star and status.
    println!("registry:");
    for top in [&shop, &"farm".parse()?] {
        let records = machine.registry().subtree(top);
        print_tree(&records, top, 1);
    }

    // A signal, then a request, both from the Machine (ROOT): one sender's
    // waves arrive in order, so the request is the cow's second greeting.
    let cow: Point = "farm:barn:cow-2".parse()?;
    machine.signal(&cow, ("hello", "farmer"))?;
    let reply = machine.ask(&cow, ("hello", "vet")).await?;
    println!("{}", std::str::from_utf8(reply.as_bytes())?);

    // Children stop before their parents.
    machine.shutdown().await;
    println!("shut down; {} particles left", machine.registry().len());
    Ok(())
}

/// Prints `at` and, depth first, its descendants found in `records` (which
/// `Registry::subtree` lists breadth first).
fn print_tree(records: &[Record], at: &Point, depth: usize) {
    let Some(record) = records.iter().find(|r| r.point == *at) else {
        return;
    };
    let name = format!("{}{}", "  ".repeat(depth), at.name());
    println!(
        "{name:<14} {} on star {}, {:?}",
        record.kind, record.star, record.status
    );
    for child in &record.children {
        print_tree(records, child, depth + 1);
    }
}
