//! Bad input and absent targets give typed errors, promptly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperverse::*;
use tokio::sync::Notify;

/// Sleeps on "slow"; stops itself on "quit"; echoes otherwise.
struct Sleepy {
    release: Arc<Notify>,
}

impl Particle for Sleepy {
    type State = ();
    async fn start(&self, _: &Ctx, _: &Body) -> Result<(), ParticleError> {
        Ok(())
    }
    async fn handle(&self, ctx: &Ctx, _: &mut (), w: Wave) -> Result<Body, ParticleError> {
        match &*w.method {
            "slow" => self.release.notified().await,
            "quit" => ctx.stop(),
            _ => {}
        }
        Ok(w.body)
    }
}

async fn machine(release: Arc<Notify>) -> Machine {
    Machine::standalone()
        .stars(2)
        .kind("sleepy", Sleepy { release })
        .request_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn request_to_a_missing_point_fails_at_once() {
    let m = machine(Arc::new(Notify::new())).await;
    let nobody: Point = "app:nobody".parse().unwrap();
    let t = Instant::now();
    let err = m.ask(&nobody, ("hello", Body::empty())).await.unwrap_err();
    assert_eq!(
        err,
        WaveError::NoSuchParticle {
            point: nobody.clone()
        }
    );
    // Far below the 5 s a hang would take; loose enough for a loaded CI machine.
    assert!(t.elapsed() < Duration::from_secs(1), "no hang");
    // A refused signal hands its wave back.
    let refused = m.signal(&nobody, ("x", "lost")).unwrap_err();
    assert_eq!(
        refused.error(),
        &WaveError::NoSuchParticle {
            point: nobody.clone()
        }
    );
    let back = refused.into_inner();
    assert_eq!(
        (back.method.as_str(), back.body.as_bytes()),
        ("x", &b"lost"[..])
    );
    assert_eq!(back.to, nobody);
    assert!(matches!(
        m.particle(&nobody),
        Err(WaveError::NoSuchParticle { .. })
    ));
    m.shutdown().await;
}

#[tokio::test]
async fn request_to_a_stopped_particle_fails_at_once() {
    let m = machine(Arc::new(Notify::new())).await;
    let p: Point = "quitter".parse().unwrap();
    let lane = m
        .spawn(p.clone(), "sleepy".into(), Body::empty())
        .await
        .unwrap();
    let hi = lane.ask(("echo", "hi")).within(None).await.unwrap();
    assert_eq!(hi.as_bytes(), b"hi");
    // It stops itself after this request; one queued behind it gets `Stopped`.
    let quit = lane.ask(("quit", "bye")).within(Duration::from_secs(1));
    let behind = lane.ask(("echo", "late")).within(Duration::from_secs(5));
    let (quit, behind) = tokio::join!(quit, behind);
    assert_eq!(quit.unwrap().as_bytes(), b"bye");
    let t = Instant::now();
    assert_eq!(behind.unwrap_err(), WaveError::Stopped { point: p.clone() });
    // Through the kept lane, and by Point (the record is gone).
    let err = lane
        .ask(("echo", "x"))
        .within(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err, WaveError::Stopped { point: p.clone() });
    // A call has no timeout, and still cannot hang on a stopped particle.
    let err = lane.ask(("echo", "x")).within(None).await.unwrap_err();
    assert_eq!(err, WaveError::Stopped { point: p.clone() });
    let refused = lane.signal(("x", "lost")).unwrap_err();
    assert_eq!(refused.error(), &WaveError::Stopped { point: p.clone() });
    let back = refused.into_inner();
    assert_eq!(
        (back.method.as_str(), back.body.as_bytes()),
        ("x", &b"lost"[..])
    );
    assert!(matches!(
        m.ask(&p, ("echo", "x")).await,
        Err(WaveError::NoSuchParticle { .. })
    ));
    // Far below the 5 s a hang would take; loose enough for a loaded CI machine.
    assert!(t.elapsed() < Duration::from_secs(1), "no hang");
    m.shutdown().await;
}

#[tokio::test]
async fn a_slow_reply_times_out_with_a_typed_error() {
    let release = Arc::new(Notify::new());
    let m = machine(release.clone()).await;
    let p: Point = "slow".parse().unwrap();
    m.spawn(p.clone(), "sleepy".into(), Body::empty())
        .await
        .unwrap();
    let err = m.ask(&p, ("slow", Body::empty())).await.unwrap_err();
    assert_eq!(
        err,
        WaveError::Timeout {
            point: p.clone(),
            after: Duration::from_millis(200)
        }
    );
    release.notify_one();
    // The particle is still serving afterwards.
    assert_eq!(m.ask(&p, ("echo", "ok")).await.unwrap().as_bytes(), b"ok");
    m.shutdown().await;
}

#[tokio::test]
async fn requests_after_shutdown_say_so() {
    let m = machine(Arc::new(Notify::new())).await;
    let p: Point = "a".parse().unwrap();
    m.spawn(p.clone(), "sleepy".into(), Body::empty())
        .await
        .unwrap();
    m.shutdown().await;
    assert_eq!(
        m.ask(&p, ("x", Body::empty())).await.unwrap_err(),
        WaveError::MachineDown
    );
    assert_eq!(
        m.spawn(p, "sleepy".into(), Body::empty())
            .await
            .unwrap_err(),
        SpawnError::MachineDown
    );
}

#[tokio::test]
async fn spawn_errors_are_typed() {
    let m = machine(Arc::new(Notify::new())).await;
    let p: Point = "app".parse().unwrap();
    assert_eq!(
        m.spawn(p.clone(), "nope".into(), Body::empty())
            .await
            .unwrap_err(),
        SpawnError::UnknownKind {
            point: p.clone(),
            kind: "nope".into()
        }
    );
    m.spawn(p.clone(), "sleepy".into(), Body::empty())
        .await
        .unwrap();
    assert_eq!(
        m.spawn(p.clone(), "sleepy".into(), Body::empty())
            .await
            .unwrap_err(),
        SpawnError::AlreadyExists { point: p.clone() }
    );
    assert_eq!(
        m.spawn(Point::root(), "sleepy".into(), Body::empty())
            .await
            .unwrap_err(),
        SpawnError::Root
    );
    let pinned = SpawnOptions {
        star: Some(7),
        ..Default::default()
    };
    assert_eq!(
        m.spawn_with("b".parse().unwrap(), "sleepy".into(), Body::empty(), pinned)
            .await
            .unwrap_err(),
        SpawnError::NoSuchStar { star: 7, stars: 2 }
    );
    // A tree with a bad segment is refused before anything is spawned.
    let bad = TreeSpec::new("tree", "sleepy").child(TreeSpec::new("bad name", "sleepy"));
    let err = m.spawn_tree(&Point::root(), &bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            SpawnError::Point(PointError::IllegalChar { ch: ' ', .. })
        ),
        "{err:?}"
    );
    assert!(m.record(&"tree".parse().unwrap()).is_none());
    m.shutdown().await;
}

#[tokio::test]
async fn duplicate_kinds_and_zero_stars_are_build_errors() {
    let notify = Arc::new(Notify::new());
    let err = Machine::standalone()
        .kind(
            "k",
            Sleepy {
                release: notify.clone(),
            },
        )
        .kind("k", Sleepy { release: notify })
        .build()
        .await
        .unwrap_err();
    assert_eq!(err, MachineError::DuplicateKind { kind: "k".into() });
    assert_eq!(
        Machine::standalone().stars(0).build().await.unwrap_err(),
        MachineError::NoStars
    );
    assert!(matches!(
        Machine::standalone()
            .restart_limit(1, Duration::ZERO)
            .build()
            .await,
        Err(MachineError::Intensity(_))
    ));
}

#[test]
fn malformed_points_and_wave_bytes_are_typed_errors() {
    assert!(matches!(
        Point::parse("a::b"),
        Err(PointError::EmptySegment { position: 2, .. })
    ));
    assert!(matches!(
        "a:b/c".parse::<Point>(),
        Err(PointError::IllegalChar {
            ch: '/',
            position: 3,
            ..
        })
    ));
    let wave = Wave::signal("a".parse().unwrap(), "b".parse().unwrap(), "m", "body");
    let bytes = wave.to_bytes().unwrap();
    assert_eq!(Wave::from_bytes(&bytes).unwrap(), wave);
    assert!(matches!(Wave::from_bytes(&[]), Err(CodecError::Empty)));
    assert!(matches!(
        Wave::from_bytes(&[2]),
        Err(CodecError::Version {
            found: 2,
            expected: 1
        })
    ));
    for cut in 1..bytes.len() {
        assert!(
            Wave::from_bytes(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    // A body that does not decode as the type asked for.
    let truncated = Body::from(&b"\xfd\x01"[..]); // a u64 marker, then too few bytes
    assert!(matches!(
        truncated.decode::<u64>(),
        Err(CodecError::Decode(_))
    ));
    assert!(matches!(
        Body::from("xyz").decode::<(u8, u8)>(),
        Err(CodecError::TrailingBytes { extra: 1 })
    ));
}
