//! Supervisors: one per entity kind, parent of every actor of that kind, and the
//! one place that decides what happens after a failure.
//!
//! Children are spawned linked to their supervisor, so ractor reports each
//! child's panic or error as `SupervisionEvent::ActorFailed` and each clean stop
//! as `ActorTerminated`. The policy is one_for_one: only the failed child is
//! restarted (from its last snapshot plus the journal, through the registry's
//! single activation path), within a [`RestartPolicy`]; past it, the entity is
//! quarantined for the rest of the window. The registry only carries the
//! decision out: it retires the dead slot, restarts, or refuses callers while
//! the quarantine lasts. A supervisor never dies of a child's failure.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, Message, SupervisionEvent};

use crate::registry::Registry;

/// Restart intensity: how often one entity may fail before it rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed per entity within `period`; one more failure quarantines
    /// it, so a poisoned entity cannot spin in a restart loop.
    pub max_restarts: usize,
    /// The window restarts are counted in, and how long a quarantine lasts.
    pub period: Duration,
}

/// Each entity's recent failures, counted against a [`RestartPolicy`].
#[derive(Debug)]
pub struct RestartIntensity<K> {
    policy: RestartPolicy,
    failures: HashMap<K, VecDeque<Instant>>,
}

impl<K: Clone + Eq + Hash> RestartIntensity<K> {
    /// No failures seen yet.
    pub fn new(policy: RestartPolicy) -> Self {
        RestartIntensity { policy, failures: HashMap::new() }
    }

    /// Counts a failure of `key` at `now`: `None` if it may restart, or the
    /// instant its quarantine ends if it failed too often within the window.
    pub fn failed(&mut self, key: &K, now: Instant) -> Option<Instant> {
        let log = self.failures.entry(key.clone()).or_default();
        log.push_back(now);
        while log.front().is_some_and(|t| now.duration_since(*t) > self.policy.period) {
            log.pop_front();
        }
        (log.len() > self.policy.max_restarts).then(|| now + self.policy.period)
    }
}

/// The supervisor of one entity kind.
#[derive(Debug)]
pub struct EntitySupervisor<K, M>(PhantomData<fn() -> (K, M)>);

impl<K, M> Default for EntitySupervisor<K, M> {
    fn default() -> Self {
        EntitySupervisor(PhantomData)
    }
}

/// Messages a supervisor takes itself (none but stop; children speak through events).
#[derive(Debug)]
pub enum SupervisorMsg {}

/// A supervisor's state: the registry it acts on and the failures it counted.
#[derive(Debug)]
pub struct SupervisorState<K, M: Message> {
    registry: Arc<Registry<K, M>>,
    intensity: RestartIntensity<K>,
}

impl<K, M> Actor for EntitySupervisor<K, M>
where
    K: Clone + Eq + Hash + std::fmt::Display + Send + Sync + 'static,
    M: Message,
{
    type Msg = SupervisorMsg;
    type State = SupervisorState<K, M>;
    type Arguments = (Arc<Registry<K, M>>, RestartPolicy);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (registry, policy): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState { registry, intensity: RestartIntensity::new(policy) })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(key) = state.registry.child_failed(cell.get_id(), err.to_string()) else {
                    return Ok(());
                };
                match state.intensity.failed(&key, Instant::now()) {
                    None => state.registry.restart(key),
                    Some(until) => {
                        let kind = state.registry.config().kind;
                        tracing::error!(kind, entity.id = %key, "restart intensity exceeded; quarantining");
                        state.registry.quarantine(key, until);
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => state.registry.child_stopped(cell.get_id()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_intensity_quarantine_until_the_window_ends() {
        let policy = RestartPolicy { max_restarts: 2, period: Duration::from_secs(10) };
        let mut intensity = RestartIntensity::new(policy);
        let t0 = Instant::now();
        assert_eq!(intensity.failed(&"a", t0), None);
        assert_eq!(intensity.failed(&"a", t0 + Duration::from_secs(1)), None);
        assert_eq!(intensity.failed(&"b", t0 + Duration::from_secs(1)), None, "counted per entity");
        let third = t0 + Duration::from_secs(2);
        assert_eq!(intensity.failed(&"a", third), Some(third + policy.period));
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let policy = RestartPolicy { max_restarts: 1, period: Duration::from_secs(10) };
        let mut intensity = RestartIntensity::new(policy);
        let t0 = Instant::now();
        assert_eq!(intensity.failed(&"a", t0), None);
        assert_eq!(intensity.failed(&"a", t0 + Duration::from_secs(11)), None);
        let again = t0 + Duration::from_secs(12);
        assert_eq!(intensity.failed(&"a", again), Some(again + policy.period));
    }
}
