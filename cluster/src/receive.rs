//! What arrives from peers: batches split into envelopes, each checked
//! against its session's token, numbered data taken in order, and each
//! item handled (checked against who may say it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use hyperverse_runtime::access::Privilege;
use hyperverse_runtime::{ExitSignal, Point};

use crate::core::{Core, Loss, REMOTE_ANSWER_WITHIN};
use crate::frame::{Envelope, Frame, Item, WireError};
use crate::link::Accept;
use crate::peer::{Hello, Peer};

impl Core {
    /// A batch from a peer's session: its frames, in order. Bytes that do
    /// not split into frames end the batch (what came before stands).
    pub(crate) fn receive_batch(self: &Arc<Self>, batch: &[u8]) {
        let Some((token, frames)) = crate::frame::batch_open(batch) else {
            return;
        };
        for frame in frames {
            match frame {
                Ok(f) => self.receive(f, token),
                Err(e) => {
                    tracing::warn!(target: "hyperverse::cluster", error = %e, "a malformed batch: the rest dropped");
                    return;
                }
            }
        }
    }

    /// One envelope's bytes from a peer's session.
    pub(crate) fn receive(self: &Arc<Self>, bytes: &[u8], token: u64) {
        let env = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "hyperverse::cluster", error = %e, "undecodable frame dropped");
                return;
            }
        };
        if env.machine == self.me || self.leaving.load(Ordering::Acquire) {
            return;
        }
        let Some(peer) = self.known(&env.machine) else {
            if let Frame::Hello {
                stream,
                upto,
                token,
            } = env.frame
            {
                // A peer whose session this side has not seen up yet: its
                // Hello waits (a few, the first per name).
                let mut early = self.early_hellos.lock();
                if early.len() < 64 {
                    early.entry(env.machine).or_insert(Hello {
                        epoch: env.epoch,
                        stream,
                        upto,
                        token,
                    });
                }
            }
            return;
        };
        if let Frame::Hello {
            stream,
            upto,
            token,
        } = env.frame
        {
            let hello = Hello {
                epoch: env.epoch,
                stream,
                upto,
                token,
            };
            let mut p = peer.lock();
            if p.awaiting_hello {
                self.take_hello(&mut p, hello);
            } else {
                // A new session's Hello that came before this side saw the
                // session: kept (the latest) for when it does.
                drop(p);
                self.early_hellos.lock().insert(env.machine, hello);
            }
            return;
        }
        {
            let p = peer.lock();
            if p.issued == 0 || token != p.issued {
                drop(p);
                tracing::debug!(target: "hyperverse::cluster", peer = %env.machine, "an envelope without its session's token: dropped");
                return;
            }
        }
        let item = {
            let mut p = peer.lock();
            let mut restarted = false;
            if let Some(old) = p.epoch.filter(|e| *e != env.epoch) {
                // The peer restarted: its old particles are gone.
                drop(p);
                tracing::warn!(target: "hyperverse::cluster", peer = %env.machine, old, new = env.epoch, "peer restarted");
                self.lose(&env.machine, Loss::Restarted);
                p = peer.lock();
                restarted = true;
            }
            p.epoch = Some(env.epoch);
            p.heard_at = Instant::now();
            if let Frame::Data { stream, seq, .. } = &env.frame {
                if !restarted && p.inbox.restarts(*stream, *seq) {
                    // The same incarnation began a new stream to us: it
                    // declared this Machine lost. Its view holds: our
                    // records of it go too (it dropped what it kept for
                    // us, and restarts the children we hosted for it).
                    drop(p);
                    tracing::warn!(target: "hyperverse::cluster", peer = %env.machine, "the peer declared this machine lost");
                    self.lose(&env.machine, Loss::DeclaredUs);
                    p = peer.lock();
                }
            }
            match env.frame {
                Frame::Ping => return,
                Frame::Bye => {
                    drop(p);
                    self.lose(&env.machine, Loss::Left);
                    return;
                }
                Frame::Data { stream, seq, item } => match p.inbox.take(stream, seq) {
                    Accept::Deliver => {
                        p.ack_due = true;
                        item
                    }
                    Accept::Duplicate | Accept::Gap => return,
                },
                Frame::Ack { stream, upto } => {
                    if stream == p.out.stream {
                        p.out.ack(upto);
                        p.acked_at = Instant::now();
                    }
                    return;
                }
                Frame::Hello { .. } => return,
            }
        };
        self.handle(&env.machine, item);
    }

    /// Takes the peer's Hello for this session: the token to present,
    /// what it has of our stream (the rest is sent again). An epoch other
    /// than the one known is a restart, handled when its data comes.
    pub(crate) fn take_hello(&self, p: &mut Peer, hello: Hello) {
        p.awaiting_hello = false;
        p.presented = hello.token;
        // A batch begun under the old token would be dropped: its data
        // frames are sent again below, under the new one.
        p.batch.clear();
        if hello.stream == p.out.stream {
            p.out.ack(hello.upto);
        }
        p.resend(&self.writer);
    }

    /// Drops the monitors the local particle at `watcher` set on remote
    /// ones (its incarnation ended).
    pub(crate) fn forget_watcher(&self, watcher: &Point) {
        let mut monitors = self.monitors.lock();
        if self.watchers.lock().remove(watcher).is_none() {
            return;
        }
        monitors.retain(|_, list| {
            list.retain(|(w, _)| w != watcher);
            !list.is_empty()
        });
    }

    /// `point` is free again: a claim that waited for it takes it.
    pub(crate) fn promote_claim(&self, point: &Point) {
        let Some(claimant) = self.claims.lock().remove(point) else {
            return;
        };
        if let Some(peer) = self.known(&claimant) {
            let mut p = peer.lock();
            if p.wire.is_some() {
                self.locations
                    .write()
                    .insert(point.clone(), claimant.clone());
                p.points.insert(point.clone());
            }
        }
    }

    /// Whether `machine` may send as `from`: its own name, or a Point it
    /// hosts (its records arrive on the same ordered link before any wave
    /// its particles send, so this is exact, not stale).
    pub(crate) fn may_send_as(&self, machine: &str, from: &Point) -> bool {
        // Its own voice is its name, unless a particle lives at that Point
        // (it would speak as that particle).
        (from.to_string() == machine && self.locate(from).is_none())
            || self
                .locations
                .read()
                .get(from)
                .is_some_and(|m| m == machine)
    }

    pub(crate) fn handle(self: &Arc<Self>, machine: &str, item: Item) {
        let Some(inbound) = self.inbound.get() else {
            return;
        };
        match item {
            Item::Signal(w) => {
                if !self.may_send_as(machine, &w.from) {
                    tracing::warn!(target: "hyperverse::cluster", peer = machine, from = %w.from, "forged sender: wave dropped");
                    return;
                }
                if let Err(e) = inbound.signal(machine, w) {
                    tracing::debug!(target: "hyperverse::cluster", peer = machine, error = %e, "remote signal refused");
                }
            }
            Item::Request { id, wave } => {
                if !self.may_send_as(machine, &wave.from) {
                    let e = WireError::Forbidden(wave.from.clone());
                    let _ = self.send(machine, Item::Reply { id, result: Err(e) });
                    return;
                }
                let ask = inbound.ask(machine, wave, Some(REMOTE_ANSWER_WITHIN));
                let core = self.clone();
                let machine = machine.to_string();
                self.runtime.spawn(async move {
                    let result = ask.await.map_err(|e| WireError::from_wave(&e));
                    core.reply(&machine, id, result);
                });
            }
            Item::Control { id, from, to, body } => {
                // The supervisor API acts on its children's lives: judged
                // as a stop of the supervisor (its ancestors own it), and
                // then by the supervisor's own rule.
                if let Err(e) = self.judge_peer(machine, &from, &to, Privilege::Stop) {
                    let e = WireError::from_wave(&e);
                    let _ = self.send(machine, Item::Reply { id, result: Err(e) });
                    return;
                }
                let answer = inbound.control(from, &to, body);
                let core = self.clone();
                let machine = machine.to_string();
                self.runtime.spawn(async move {
                    let result = answer.await.map_err(|e| WireError::from_wave(&e));
                    core.reply(&machine, id, result);
                });
            }
            Item::Reply { id, result } => {
                let mut pending = self.pending.lock();
                if pending.get(&id).is_some_and(|p| p.machine == machine) {
                    let p = pending.remove(&id).expect("checked");
                    drop(pending);
                    p.answer.answer(result.map_err(|e| e.into_wave(p.to)));
                }
            }
            Item::Hosted { points } => {
                let peer = self.peer(machine);
                let mut p = peer.lock();
                let mut loc = self.locations.write();
                for point in points {
                    if inbound.hosts(&point) {
                        tracing::warn!(target: "hyperverse::cluster", peer = machine, %point, "a claim on a point of this machine: refused");
                        continue;
                    }
                    match loc.get(&point) {
                        Some(holder) if holder != machine => {
                            // Another Machine holds it: the claim waits for
                            // its end (a particle that moved is told on two
                            // links, in no order between them).
                            tracing::debug!(target: "hyperverse::cluster", peer = machine, %point, %holder, "a claim on a point held elsewhere: waits");
                            self.claims.lock().insert(point, machine.to_string());
                        }
                        _ => {
                            loc.insert(point.clone(), machine.to_string());
                            p.points.insert(point);
                        }
                    }
                }
            }
            Item::Ended { point, reason } => {
                let peer = self.peer(machine);
                let owned = peer.lock().points.remove(&point);
                if !owned {
                    // Not its to end (or a waiting claim withdrawn).
                    self.claims
                        .lock()
                        .retain(|p, m| !(p == &point && m == machine));
                    return;
                }
                self.gone(machine, std::slice::from_ref(&point), |_| reason.clone());
                self.family_ended(machine, &point);
                self.groups_gone(machine, std::slice::from_ref(&point));
                self.promote_claim(&point);
            }
            Item::Spawn {
                id,
                from,
                point,
                kind,
                args,
                restart,
            } => {
                let parent = crate::access::spawn_target(&point);
                if let Err(e) = self.judge_peer(machine, &from, &parent, Privilege::Spawn) {
                    let result = Err(e.to_string());
                    let _ = self.send(machine, Item::Spawned { id, result });
                    return;
                }
                let core = self.clone();
                let machine = machine.to_string();
                self.runtime.spawn(async move {
                    let result = core.spawn_here(point, kind, args, restart, from).await;
                    let _ = core.send(&machine, Item::Spawned { id, result });
                });
            }
            Item::Spawned { id, result } => {
                let mut spawns = self.spawns.lock();
                if spawns.get(&id).is_some_and(|(m, _, _)| m == machine) {
                    if let Some((_, _, tx)) = spawns.remove(&id) {
                        let _ = tx.send(result);
                    }
                }
            }
            Item::Adopted(adoption) => self.adopted(machine, adoption),
            Item::Group {
                group,
                point,
                joined,
            } => {
                // A Machine speaks for its own particles only.
                if group.is_empty() || group.len() > 255 {
                    return;
                }
                if !joined || self.may_send_as(machine, &point) {
                    self.groups_set(&group, &point, machine, joined);
                }
            }
            Item::Groups(entries) => {
                for (group, point) in entries {
                    if group.is_empty() || group.len() > 255 {
                        continue;
                    }
                    if self.may_send_as(machine, &point) {
                        self.groups_set(&group, &point, machine, true);
                    }
                }
            }
            Item::Link { from, to } => {
                if !self.may_send_as(machine, &from) {
                    return;
                }
                match inbound.check(machine, &from, &to, Privilege::Link) {
                    Ok(()) => self.linked(machine, from, to),
                    Err(e) => self.link_refused(machine, from, to, &e),
                }
            }
            Item::Unlink { from, to } => {
                if self.may_send_as(machine, &from) {
                    self.unlinked(&from, &to);
                }
            }
            Item::Exit {
                from,
                to,
                reason,
                normal,
            } => {
                // Checked against the link table: only the Machine the
                // link was made with can fire it.
                self.exit_from(
                    machine,
                    ExitSignal {
                        from,
                        reason,
                        normal,
                    },
                    &to,
                );
            }
            Item::Rules(changes) => {
                if let Err(e) = self.rules_from(machine, &changes) {
                    tracing::warn!(target: "hyperverse::access", peer = machine, error = %e, "a peer's rule changes refused");
                }
            }
            Item::Stop { id, from, point } => self.stop_asked(machine, id, &from, point),
            Item::Stopped { id, result } => self.stopped(machine, id, result),
            Item::Crash { parent, notice } => {
                // Only for a child that Machine told us it hosts for that
                // parent.
                if self.is_abroad(machine, &notice.child, &parent) {
                    self.child_crashed(&parent, notice);
                }
            }
        }
    }
}
