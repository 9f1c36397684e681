//! A watcher's monitors go when it ends (as a dead Erlang process's do):
//! short-lived watchers of a long-lived target leave nothing behind.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::p;
use hyperverse::*;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::SeqCst);
        System.dealloc(ptr, l)
    }
}
#[global_allocator]
static A: Counting = Counting;

/// Monitors the Point in its args (if any) in `start`.
struct W;
impl Particle for W {
    type State = ();
    async fn start(&self, ctx: &Ctx, args: &Body) -> Result<(), ParticleError> {
        if !args.as_bytes().is_empty() {
            ctx.monitor(&args.as_str()?.parse()?);
        }
        Ok(())
    }
    async fn handle(&self, _: &Ctx, _: &mut (), _: Wave) -> Result<Body, ParticleError> {
        Ok(Body::empty())
    }
}

async fn churn(m: &Machine, n: usize, args: &'static str) -> isize {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = LIVE.load(Ordering::SeqCst);
    for i in 0..n {
        let at = p(&format!("w{i}"));
        m.spawn(at.clone(), "w".into(), Body::from(args))
            .await
            .unwrap();
        m.stop(&at).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    LIVE.load(Ordering::SeqCst) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_of_ended_watchers_are_removed() {
    let m = Machine::standalone()
        .stars(1)
        .kind("w", W)
        .build()
        .await
        .unwrap();
    m.spawn(p("server"), "w".into(), Body::empty())
        .await
        .unwrap();
    const N: usize = 5_000;
    churn(&m, 1_000, "").await; // warm up
    let plain = churn(&m, N, "").await;
    let watching = churn(&m, N, "server").await;
    let per = (watching - plain) / N as isize;
    eprintln!("live bytes: {plain} without monitors, {watching} with; {per} B per ended watcher");
    assert!(
        per < 16,
        "each ended watcher leaves {per} bytes in the server's monitors"
    );
    m.shutdown().await;
}
