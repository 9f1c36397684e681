//! Access rules: what one check costs with 10, 1,000 and 100,000 rules,
//! and ping-pong with rules off and on, in one process.
//!
//! A check is timed through `Machine::may` on a CLI user's handle: the
//! code every wave takes on entering a lane (the open policy's fast path,
//! then superusers, then the rules under their read lock), without a
//! wave around it. A user is never an owner, so with the enforced policy
//! every check walks the rules: the worst case, not the owner's fast path.
//! The rules are spread over many Points, some on the target's own
//! ancestors for other visitors, so the walk finds nodes and misses keys
//! as it would in a big Registry. Figures: ns per allowed check and per
//! denied check (the visitor holds no grant: the whole walk).
//!
//! Ping-pong: the `pingpong` shape's echo, asked through the user's
//! handle; `pingpong_rules_off` with the open policy (the fast path: one
//! atomic load), `pingpong_rules_on` with the enforced policy and 100,000
//! rules (the whole check on every request).

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use hyperverse::access::{AccessPolicy, Grant, Privilege};
use hyperverse::{Body, Kind, Machine, Point};

use crate::measure::{ns_per, Measured};
use crate::pingpong::Echo;
use crate::Sizes;

/// The rule counts the issue asks about.
const COUNTS: [usize; 3] = [10, 1_000, 100_000];
/// Checks per timed rep.
const CHECKS: u64 = 1_000_000;

fn grant(text: &str) -> Result<Grant, Box<dyn Error>> {
    Ok(text.parse()?)
}

/// The `i`th filler rule: most on Points of their own, every tenth on one
/// of the target's ancestors for a visitor that is not the checker.
fn filler(i: usize) -> Result<Grant, Box<dyn Error>> {
    match i % 10 {
        0 => grant(&format!("send on bench:** to user=other{i}")),
        1 => grant(&format!("ask on bench:svc:** to app:c{i}:**")),
        _ => grant(&format!(
            "send,ask on fill:s{}:p{i}:** to user=u{i}",
            i % 997
        )),
    }
}

/// Times `CHECKS` calls of `check`, `reps` times; ns per call.
fn time_checks(
    reps: usize,
    check: impl Fn() -> bool,
    expect: bool,
) -> Result<Vec<f64>, Box<dyn Error>> {
    if check() != expect {
        return Err(format!("the check said {} where {expect} was expected", !expect).into());
    }
    let mut out = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..CHECKS {
            black_box(check());
        }
        out.push(ns_per(t.elapsed(), CHECKS));
    }
    Ok(out)
}

/// Ping-pong through `echo` (a user's handle on it), as the `pingpong` shape times it.
async fn pingpong(s: &Sizes, echo: &hyperverse::ParticleRef) -> Result<Vec<f64>, Box<dyn Error>> {
    for _ in 0..10_000 {
        echo.ask(("ping", Body::empty())).within(None).await?;
    }
    let mut reps = Vec::with_capacity(s.reps);
    for _ in 0..s.reps {
        let t = Instant::now();
        for _ in 0..s.pingpong_n {
            black_box(echo.ask(("ping", Body::empty())).within(None).await?);
        }
        reps.push(ns_per(t.elapsed(), s.pingpong_n));
    }
    Ok(reps)
}

/// Hyperverse: the checks, then ping-pong with rules off and on.
pub async fn hyperverse(s: &Sizes) -> Result<Vec<Measured>, Box<dyn Error>> {
    let machine = Machine::standalone()
        .kind("echo", Echo)
        .access(AccessPolicy::Open)
        .build()
        .await?;
    machine
        .spawn(Point::parse("bench")?, Kind::new("echo"), Body::empty())
        .await?;
    machine
        .spawn(Point::parse("bench:svc")?, Kind::new("echo"), Body::empty())
        .await?;
    let target = Point::parse("bench:svc:echo")?;
    machine
        .spawn(target.clone(), Kind::new("echo"), Body::empty())
        .await?;
    machine.grant(grant("ask on bench:svc:** to user=alice")?)?;
    let alice = machine.as_user("alice")?;
    let bob = machine.as_user("bob")?;
    let mut out = Vec::new();

    // Rules off: the user's ping-pong on the open policy's fast path.
    let echo = alice.particle(&target)?;
    let off = pingpong(s, &echo).await?;

    machine.set_access_policy(AccessPolicy::Enforced)?;
    let mut made = 1;
    for n in COUNTS {
        while made < n {
            machine.grant(filler(made)?)?;
            made += 1;
        }
        if machine.rules().len() != n {
            return Err(format!("{} rules, not {n}", machine.rules().len()).into());
        }
        let allowed = time_checks(s.reps, || alice.may(Privilege::Ask, &target), true)?;
        let denied = time_checks(s.reps, || bob.may(Privilege::Ask, &target), false)?;
        out.push(
            Measured::reps(&format!("check_{n}"), "ns/check", allowed).with("rules", n as u64),
        );
        out.push(
            Measured::reps(&format!("check_denied_{n}"), "ns/check", denied)
                .with("rules", n as u64),
        );
    }

    // Rules on: every request checked against 100,000 rules.
    let on = pingpong(s, &echo).await?;
    if machine.access_stats().denied_requests != 0 {
        return Err("a request of the ping-pong was denied".into());
    }
    out.push(
        Measured::reps("pingpong_rules_off", "ns/rt", off)
            .with("requests", s.pingpong_n)
            .with("policy", "open (a user's handle)"),
    );
    out.push(
        Measured::reps("pingpong_rules_on", "ns/rt", on)
            .with("requests", s.pingpong_n)
            .with("policy", "enforced, 100000 rules (a user's handle)"),
    );
    Ok(out)
}
