//! The Machine supervises its Stars as an OTP supervisor would: its root
//! actor runs a `hyperverse_supervisors::Supervisor` (one_for_one, each Star
//! a transient child) over the Star actors, linked to it through ractor's
//! supervision. A Star that fails is restarted in place: particles keep
//! their Star number, and the new Star starts with empty restart histories.
//! Stars stopped at shutdown end normally and are not restarted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyperverse_supervisors::{
    ChildSpec, Children, ExitReason, Outcome, Restart, Shutdown, Strategy, SupEvent, SupFlags,
    Supervisor,
};
use parking_lot::RwLock;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::event::EventSink;
use crate::star::{Star, StarArgs, StarCounters, StarMsg};
use crate::targets;
use crate::{Event, Point};

/// The start of a Star failure injected by `Machine::kill_star`: not a
/// fault of the Star, so its restart does not count against the intensity.
pub(crate) const KILLED: &str = "killed by a fault injection: ";

/// How often Stars may fail before the Machine stops restarting them.
const STAR_INTENSITY: (u32, Duration) = (10, Duration::from_secs(5));

/// One Star as the Machine sees it: its current actor (replaced when it
/// is restarted) and its counters (kept across restarts).
pub(crate) struct StarSlot {
    actor: RwLock<Option<ActorRef<StarMsg>>>,
    pub(crate) counters: Arc<StarCounters>,
}

impl StarSlot {
    pub(crate) fn new() -> Self {
        StarSlot {
            actor: RwLock::new(None),
            counters: Arc::default(),
        }
    }

    /// Sends to the Star's current actor; false if it is down.
    pub(crate) fn send(&self, msg: StarMsg) -> bool {
        match &*self.actor.read() {
            Some(a) => a.cast(msg).is_ok(),
            None => false,
        }
    }

    /// Its current actor's id (changes when it is restarted).
    pub(crate) fn actor_id(&self) -> Option<ActorId> {
        self.actor.read().as_ref().map(|a| a.get_id())
    }

    /// Stops the Star normally (Machine shutdown).
    pub(crate) fn stop(&self) {
        if let Some(a) = &*self.actor.read() {
            a.stop(None);
        }
    }
}

/// The Machine's root actor.
pub(crate) struct MachineRoot;

pub(crate) struct RootArgs {
    pub slots: Arc<[StarSlot]>,
    pub events: Arc<EventSink>,
    pub remote: crate::remote::RemoteSlot,
}

pub(crate) struct RootState {
    sup: Supervisor<StarKids>,
    kids: StarKids,
}

/// The Stars, as the root supervisor's children.
struct StarKids {
    root: ActorCell,
    slots: Arc<[StarSlot]>,
    events: Arc<EventSink>,
    remote: crate::remote::RemoteSlot,
    /// Which child each running Star actor is.
    ids: HashMap<ActorId, String>,
}

impl Children for StarKids {
    /// The Star's number.
    type Start = usize;
    type Handle = ActorId;

    async fn start(&mut self, id: &str, &star: &usize) -> Result<ActorId, ExitReason> {
        let args = StarArgs {
            id: star,
            events: self.events.clone(),
            counters: self.slots[star].counters.clone(),
            remote: self.remote.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, Star, args, self.root.clone())
            .await
            .map_err(|e| ExitReason::Error(e.to_string()))?;
        let aid = actor.get_id();
        *self.slots[star].actor.write() = Some(actor);
        self.ids.insert(aid, id.to_string());
        Ok(aid)
    }

    async fn stop(&mut self, id: &str, handle: &ActorId, shutdown: Shutdown) -> ExitReason {
        let star: usize = id.trim_start_matches("star-").parse().unwrap_or(usize::MAX);
        let actor = self.slots.get(star).and_then(|s| s.actor.read().clone());
        if let Some(a) = actor.filter(|a| a.get_id() == *handle) {
            self.ids.remove(handle);
            match shutdown {
                Shutdown::BrutalKill => a.kill(),
                _ => a.stop(None),
            }
            return ExitReason::Shutdown;
        }
        ExitReason::Shutdown
    }

    fn event(&mut self, event: &SupEvent) {
        tracing::info!(target: targets::MACHINE, ?event, "star supervisor");
        self.events.emit(|| Event::Supervisor {
            supervisor: Point::root(),
            event: event.clone(),
        });
    }
}

impl Actor for MachineRoot {
    type Msg = ();
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        me: ActorRef<()>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut kids = StarKids {
            root: me.get_cell(),
            slots: args.slots.clone(),
            events: args.events,
            remote: args.remote,
            ids: HashMap::new(),
        };
        let specs = (0..args.slots.len())
            .map(|i| ChildSpec::worker(format!("star-{i}"), i).restart(Restart::Transient))
            .collect();
        let (max, period) = STAR_INTENSITY;
        let flags = SupFlags::new(Strategy::OneForOne).intensity(max, period);
        let mut sup = Supervisor::start(flags, specs, &mut kids).await?;
        sup.take_log();
        Ok(RootState { sup, kids })
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<()>,
        evt: SupervisionEvent,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let (who, exit) = match evt {
            SupervisionEvent::ActorFailed(who, why) => {
                let why = why.to_string();
                if why.starts_with(KILLED) {
                    st.sup.exempt_next_restart();
                } else {
                    tracing::error!(target: targets::MACHINE, actor = %who.get_id(), reason = %why, "star failed");
                }
                (who, ExitReason::Error(why))
            }
            SupervisionEvent::ActorTerminated(who, _, _) => (who, ExitReason::Normal),
            _ => return Ok(()),
        };
        let aid = who.get_id();
        let Some(id) = st.kids.ids.remove(&aid) else {
            return Ok(());
        };
        let mut outcome = st.sup.child_exited(&mut st.kids, &id, &aid, exit).await;
        // A Star that fails to start is retried at once (its supervisor has
        // no backoff and nothing else to answer), within the intensity.
        while let Outcome::TryAgain { id, after } = outcome {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            outcome = st.sup.try_again(&mut st.kids, &id).await;
        }
        st.sup.take_log();
        if let Outcome::Shutdown(_) = outcome {
            tracing::error!(target: targets::MACHINE, "stars keep failing: the Machine stops restarting them");
        }
        Ok(())
    }
}
