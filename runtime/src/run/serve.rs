//! Serving letters: waves (to `handle` or to a typed handler), typed
//! messages, and the rest (exit signals, down and crash notices, control)
//! out of line.

use std::any::Any;
use std::future::Future;

use std::pin::Pin;

use futures::future::Either;
use futures::FutureExt;
use hyperverse_supervisors::ExitReason;

use super::end::End;
use super::guard::guarded;
use crate::control::{Control, ControlKind, ControlLetter, ControlReply};
use crate::lane::{LaneReceiver, Letter, Next, ReplyTx, Typed};
use crate::message::Reply;
use crate::message::{Answer, Incoming, Want};
use crate::particle::{Call, Key};
use crate::supervision::{SupState, SupervisorParticle, SupervisorReply};
use crate::targets;
use crate::Messages;
use crate::{Body, Ctx, InFlight, Particle, ParticleError, Point, Wave, WaveError};
use std::any::TypeId;

/// Handles letters until a stop or a crash.
///
/// The loop every wave takes: it holds the wave only inside the handler's
/// future (see [`handling`]) and sends everything else out of line.
// Not an `async fn`: that would keep its arguments twice in the future.
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    lane: &'a mut LaneReceiver,
) -> impl Future<Output = End> + Send + 'a {
    async move {
        'letters: loop {
            // The hot path, a wave for `handle`, is awaited in the loop; the
            // rest leaves the labelled block as a future, awaited after it.
            // No await happens while a taken letter is held by value, so
            // the loop keeps no room for one beside the handler's future.
            let rare = 'sort: {
                // The letter is matched where it is taken (no copy of it
                // by value), and its room is free before the handler runs.
                let (wave, reply) = match lane.recv().await {
                    Next::Letter(Letter::Wave(wave)) => (wave, None),
                    Next::Letter(Letter::Request(wave, reply)) => (wave, Some(reply)),
                    Next::Letter(Letter::Typed(typed)) => {
                        break 'sort typed_step(particle, ctx, &mut *state, typed)
                    }
                    Next::Stop => return End::Stop,
                    // An injected crash: as a panic in the next handler,
                    // with no wave in hand.
                    Next::Crash(reason) => {
                        return End::crash(ExitReason::Error(reason), None, None)
                    }
                    Next::Interrupted => continue 'letters,
                    // Everything else is rare: handled out of line, in one
                    // boxed future, so that the loop every wave takes stays
                    // small.
                    Next::Letter(other) => {
                        break 'sort Either::Left(boxed(system_letter(
                            particle,
                            ctx,
                            &mut *state,
                            other,
                        )))
                    }
                };
                // A wave whose method a typed handler declares goes to it,
                // decoded (boxed: the loop of a particle that declares none
                // keeps no room for it). Sorted in a plain `fn`: a wave
                // borrowed here would be kept beside the handler's future.
                let (in_flight, reply, handled) =
                    match for_handle(particle, ctx, &mut *state, wave, reply) {
                        Ok(handling) => handling,
                        Err(typed) => break 'sort Either::Left(typed),
                    };
                match handled.await {
                    Ok(body) => {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(Reply::Body(body)));
                        }
                        continue 'letters;
                    }
                    Err(reason) => return End::crash(reason, Some(in_flight), reply),
                }
            };
            if let Some(end) = rare.await {
                return end;
            }
        }
    }
}

/// A wave for `handle`: what a crash would have in hand, where the answer
/// goes, and the handler's future; or, if a typed handler declares its
/// method, the boxed future of that handler.
#[allow(clippy::type_complexity)]
fn for_handle<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    wave: Wave,
    reply: Option<ReplyTx>,
) -> Result<
    (
        InFlight,
        Option<ReplyTx>,
        impl Future<Output = Result<Body, ExitReason>> + Send + 'a,
    ),
    Boxed<'a>,
> {
    if let Some(call) = by_method::<P>(&wave.method) {
        return Err(boxed(typed_wave(particle, ctx, state, call, wave, reply)));
    }
    let (in_flight, handled) = handling(particle, ctx, state, wave);
    Ok((in_flight, reply, handled))
}

/// The future that handles a typed message: its declared handler, with
/// the value itself; or, for a type the particle does not declare, the
/// message as a wave (boxed: rare). A plain `fn`: the letter is moved in
/// whole, and the caller keeps nothing of it.
fn typed_step<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    typed: Typed,
) -> Either<Boxed<'a>, impl Future<Output = Option<End>> + Send + 'a> {
    match by_type::<P>(typed.value.type_id()) {
        Some(call) => {
            let (in_flight, reply, handled) = typed_handling(particle, ctx, state, call, typed);
            // `map`, not an async block: a block would keep the handler's
            // future twice (captured, and awaited).
            Either::Right(handled.map(move |handled| answer(ctx, handled, in_flight, reply)))
        }
        None => Either::Left(boxed(typed_as_wave(particle, ctx, state, typed))),
    }
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Option<End>> + Send + 'a>>;

/// The rare steps of [`serve`], boxed under one type.
fn boxed<'a>(step: impl Future<Output = Option<End>> + Send + 'a) -> Boxed<'a> {
    Box::pin(step)
}

/// What a typed handler would have in hand if it crashed, where its answer
/// goes, and its future with the value moved into it. A plain `fn`, as
/// [`handling`] is.
fn typed_handling<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    call: Call<P>,
    typed: Typed,
) -> (
    InFlight,
    Option<ReplyTx>,
    impl Future<Output = Result<Answer, ExitReason>> + Send + 'a,
) {
    let Typed {
        from,
        value,
        vt,
        reply,
        ..
    } = typed;
    let in_flight = InFlight {
        method: vt.method.into(),
        from,
    };
    let want = if reply.is_some() {
        Want::Value
    } else {
        Want::Nothing
    };
    let handled = guarded(
        &ctx.cell,
        call(particle, ctx, state, Incoming::Value(value), want),
    );
    (in_flight, reply, handled)
}

/// A wave for a typed handler (by its method): decoded and handled by it.
async fn typed_wave<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: &mut P::State,
    call: Call<P>,
    wave: Wave,
    reply: Option<ReplyTx>,
) -> Option<End> {
    let in_flight = InFlight {
        method: wave.method,
        from: wave.from,
    };
    let want = if reply.is_some() {
        Want::Bytes
    } else {
        Want::Nothing
    };
    let handled = guarded(
        &ctx.cell,
        call(particle, ctx, state, Incoming::Body(wave.body), want),
    );
    answer(ctx, handled.await, in_flight, reply)
}

/// A typed message of a type the particle does not declare: encoded into
/// a wave (the one place a typed message is encoded in-process) and
/// handled as one, by its method.
async fn typed_as_wave<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: &mut P::State,
    typed: Typed,
) -> Option<End> {
    let (wave, reply) = match typed.into_wave() {
        Ok(sent) => sent,
        Err((error, typed)) => {
            refuse_unreadable(ctx, typed.reply, error);
            return None;
        }
    };
    if let Some(call) = by_method::<P>(&wave.method) {
        return typed_wave(particle, ctx, state, call, wave, reply).await;
    }
    let (in_flight, handled) = handling(particle, ctx, state, wave);
    match handled.await {
        Ok(body) => {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(Reply::Body(body)));
            }
            None
        }
        Err(reason) => Some(End::crash(reason, Some(in_flight), reply)),
    }
}

/// Answers a typed handler's outcome: its reply, an unreadable message or
/// an unencodable reply refused (no crash), or the crash. `Some` ends the
/// incarnation.
fn answer(
    ctx: &Ctx,
    handled: Result<Answer, ExitReason>,
    in_flight: InFlight,
    reply: Option<ReplyTx>,
) -> Option<End> {
    match handled {
        Ok(Answer::Reply(answer)) => {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(answer));
            }
            None
        }
        Ok(Answer::Done) => None,
        Ok(Answer::Undecodable(error)) => {
            tracing::debug!(target: targets::ROUTE, point = %ctx.me(), method = %in_flight.method, from = %in_flight.from, %error, "unreadable message refused");
            refuse_unreadable(ctx, reply, error);
            None
        }
        Ok(Answer::Unencodable(error)) => {
            tracing::debug!(target: targets::ROUTE, point = %ctx.me(), method = %in_flight.method, from = %in_flight.from, %error, "a reply could not be encoded");
            if let Some(reply) = reply {
                let _ = reply.send(Err(WaveError::BadReply {
                    point: ctx.me().clone(),
                    error,
                }));
            }
            None
        }
        Err(reason) => Some(End::crash(reason, Some(in_flight), reply)),
    }
}

/// A message the particle could not read is answered with the error, not
/// handled: a sender cannot crash a particle with bad bytes.
fn refuse_unreadable(ctx: &Ctx, reply: Option<ReplyTx>, error: crate::CodecError) {
    if let Some(reply) = reply {
        let _ = reply.send(Err(WaveError::BadMessage {
            point: ctx.me().clone(),
            error,
        }));
    }
}

/// What a crash in the handler would have in hand, and the handler's
/// future with the wave moved into it. A plain `fn`: the wave is borrowed
/// here, not in `serve`, whose future would otherwise keep room for it
/// beside the handler's.
fn handling<'a, P: Particle>(
    particle: &'a P,
    ctx: &'a Ctx,
    state: &'a mut P::State,
    wave: Wave,
) -> (
    InFlight,
    impl Future<Output = Result<Body, ExitReason>> + Send + 'a,
) {
    let in_flight = InFlight {
        method: wave.method.clone(),
        from: wave.from.clone(),
    };
    // `lazy` rather than an async block: the wave is held once, not twice.
    let handled = futures::future::lazy(move |_| particle.handle(ctx, state, wave)).flatten();
    (in_flight, guarded(&ctx.cell, handled))
}

/// Runs one of the particle's hooks (exit signal, down or crash notice) as
/// its code: `None` if it succeeded, else the crash, with `in_flight` as
/// what it had in hand. The hook is called inside the guard, so that a
/// panic before its future exists is caught too.
async fn hook<F: Future<Output = Result<(), ParticleError>>>(
    ctx: &Ctx,
    in_flight: InFlight,
    hook: impl FnOnce() -> F,
) -> Option<End> {
    let hooked = futures::future::lazy(|_| hook()).flatten();
    match guarded(&ctx.cell, hooked).await {
        Ok(()) => None,
        Err(reason) => Some(End::crash(reason, Some(in_flight), None)),
    }
}

/// A letter other than a wave, in `serve`: a link's exit signal, a
/// monitor's down notice, a child's crash notice or a control letter.
/// `Some` ends the incarnation; `None` goes on to the next letter.
async fn system_letter<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: &mut P::State,
    letter: Letter,
) -> Option<End> {
    match letter {
        Letter::Exit(signal) => {
            let in_flight = InFlight {
                method: "exit".into(),
                from: signal.from.clone(),
            };
            if !ctx.cell.traps_exits() {
                if signal.normal {
                    return None;
                }
                let reason = format!("linked {} crashed: {}", signal.from, signal.reason);
                return Some(End::crash(ExitReason::Error(reason), Some(in_flight), None));
            }
            hook(ctx, in_flight, || particle.exit_signal(ctx, state, signal)).await
        }
        Letter::Down(notice) => {
            let in_flight = InFlight {
                method: "down".into(),
                from: notice.target.clone(),
            };
            hook(ctx, in_flight, || particle.down(ctx, state, notice)).await
        }
        Letter::Notice(notice) => {
            let in_flight = InFlight {
                method: "crash_notice".into(),
                from: notice.child.clone(),
            };
            hook(ctx, in_flight, || {
                particle.crash_notice(ctx, state, *notice)
            })
            .await
        }
        Letter::Control(letter) => {
            let ControlLetter {
                from, kind, reply, ..
            } = *letter;
            let in_flight = InFlight {
                method: kind.label().into(),
                from: from.clone(),
            };
            let handled = guarded(&ctx.cell, handle_control(particle, ctx, state, from, kind));
            match handled.await {
                Ok(answer) => {
                    if let (Some(reply), Some(answer)) = (reply, answer) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Err(reason) => {
                    // Told at once (not after the Star decides, as a
                    // request's sender is): control has no reply wave.
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(WaveError::Crashed {
                            point: ctx.me().clone(),
                            reason: reason.to_string(),
                        }));
                    }
                    return Some(End::crash(reason, Some(in_flight), None));
                }
            }
            None
        }
        Letter::Wave(_) | Letter::Request(..) | Letter::Typed(_) => {
            unreachable!("waves are served in `serve`")
        }
    }
}

/// Handles one control letter in `particle`'s task: a supervisor particle's
/// API and exit reports go to the supervisor, Driver control to the
/// particle's [`crate::Particle::control`] hook. `Ok(None)` for a letter
/// that wants no answer; an `Err` is a crash of the particle (or, for a
/// supervisor, its escalation).
async fn handle_control<P: Particle>(
    particle: &P,
    ctx: &Ctx,
    state: &mut P::State,
    from: Point,
    kind: ControlKind,
) -> Result<Option<ControlReply>, ParticleError> {
    if let ControlKind::Driver(body) = kind {
        let answer = particle.control(ctx, state, Control { from, body }).await?;
        return Ok(Some(ControlReply::Driver(answer)));
    }
    // Resolved at compile time for each Kind: supervisors are the one
    // Particle of the runtime's own that takes the supervisor's letters.
    let sup = (particle as &dyn Any).downcast_ref::<SupervisorParticle>();
    let st = (state as &mut dyn Any).downcast_mut::<SupState>();
    match (sup, st) {
        (Some(sup), Some(st)) => sup
            .control(ctx, st, from, kind)
            .await
            .map_err(|exit| Box::new(exit) as ParticleError),
        // An API call to a particle that is no supervisor is answered so;
        // an exit report for one (its parent was no supervisor) is dropped.
        _ => Ok(matches!(kind, ControlKind::Supervisor(_))
            .then_some(ControlReply::Supervisor(SupervisorReply::NotASupervisor))),
    }
}

/// The handler `P` declares for a value of type `type_id`.
fn by_type<P: Particle>(type_id: TypeId) -> Option<Call<P>> {
    let mut visit = Messages {
        key: Key::Type(type_id),
        found: None,
        methods: None,
    };
    P::messages(&mut visit);
    visit.found
}

/// The handler `P` declares for waves of `method`.
fn by_method<P: Particle>(method: &str) -> Option<Call<P>> {
    let mut visit = Messages {
        key: Key::Method(method),
        found: None,
        methods: None,
    };
    P::messages(&mut visit);
    visit.found
}
