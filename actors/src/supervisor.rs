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

/// What a supervisor decided about a failed entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Reactivate it now, from its last snapshot plus the journal.
    Restart,
    /// Refuse it until then: it failed too often within the window.
    Quarantine(Instant),
}

/// The supervisor of scheduled entities ([`crate::entity`]: carts), which are
/// not actors and so have no supervisor actor to link to: their registry
/// reports each failure here and carries out the decision. The policy is the
/// same one_for_one [`RestartPolicy`] as [`EntitySupervisor`]'s.
#[derive(Debug)]
pub struct Supervision<K> {
    intensity: std::sync::Mutex<RestartIntensity<K>>,
}

impl<K: Clone + Eq + Hash> Supervision<K> {
    /// A supervisor with no failures seen yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Supervision { intensity: std::sync::Mutex::new(RestartIntensity::new(policy)) }
    }

    /// Decides what happens to `key`, which just failed.
    pub fn failed(&self, key: &K) -> Decision {
        let mut intensity = self.intensity.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match intensity.failed(key, Instant::now()) {
            None => Decision::Restart,
            Some(until) => Decision::Quarantine(until),
        }
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
pub(crate) mod tests {
    use super::*;
    use crate::gate::Ticket;
    use crate::registry::{Activation, RegistryConfig, RegistryError, Spawner};
    use crate::reply::Reply;

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

    /// Answers how it was activated, parks tickets to keep them in flight, and
    /// panics on demand.
    #[derive(Debug, Clone, Copy)]
    struct Probe;

    enum ProbeMsg {
        Activation(Ticket, Reply<Activation>),
        Park(Ticket),
        Crash(Ticket),
    }

    impl Actor for Probe {
        type Msg = ProbeMsg;
        type State = (Activation, Vec<Ticket>);
        type Arguments = Activation;

        async fn pre_start(&self, _: ActorRef<ProbeMsg>, a: Activation) -> Result<Self::State, ActorProcessingErr> {
            Ok((a, Vec::new()))
        }

        async fn handle(
            &self,
            _: ActorRef<ProbeMsg>,
            msg: ProbeMsg,
            (activation, parked): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                ProbeMsg::Activation(_ticket, reply) => {
                    let _ = reply.send(*activation);
                }
                ProbeMsg::Park(ticket) => parked.push(ticket),
                ProbeMsg::Crash(_ticket) => panic!("probe told to fail"),
            }
            Ok(())
        }
    }

    async fn probes(max_inflight: u64, policy: RestartPolicy) -> Arc<Registry<u32, ProbeMsg>> {
        let registry =
            Registry::new(RegistryConfig { kind: "probe", max_inflight, call_timeout: Duration::from_secs(5) });
        let (supervisor, _) = Actor::spawn(None, EntitySupervisor::default(), (Arc::clone(&registry), policy))
            .await
            .expect("supervisor starts");
        let spawner = Spawner::new(Probe, |_: &u32, activation: Activation| activation);
        registry.wire(Arc::new(spawner), supervisor.get_cell());
        registry
    }

    /// A deadline poll of its own: `flashcore-test-support` pulls in sqlx, which
    /// does not build under `cfg(loom)` (this crate's loom models). Shared with
    /// [`crate::entity`]'s tests.
    pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    const LENIENT: RestartPolicy = RestartPolicy { max_restarts: 5, period: Duration::from_secs(30) };

    #[tokio::test]
    async fn the_activation_reaches_the_actor_only_when_it_starts() {
        let registry = probes(8, LENIENT).await;
        assert_eq!(registry.call_new(&1, ProbeMsg::Activation).await, Ok(Activation::New));
        assert_eq!(registry.call(&1, ProbeMsg::Activation).await, Ok(Activation::New), "same actor, not a second one");
        assert_eq!(registry.call(&2, ProbeMsg::Activation).await, Ok(Activation::Recover));
        assert_eq!(registry.active(), 2);
    }

    #[tokio::test]
    async fn forced_messages_pass_the_in_flight_bound_that_refuses_new_work() {
        let registry = probes(1, LENIENT).await;
        registry.cast(&1, ProbeMsg::Park).await.expect("first message admitted");
        eventually("the parked ticket", || registry.stats(1).mailbox_depth == 1).await;

        assert_eq!(registry.call(&1, ProbeMsg::Activation).await, Err(RegistryError::Busy { depth: 1 }));
        assert_eq!(registry.cast(&1, ProbeMsg::Park).await, Err(RegistryError::Busy { depth: 1 }));
        assert_eq!(registry.force_call(&1, ProbeMsg::Activation).await, Ok(Activation::Recover));
        registry.force_cast(&1, ProbeMsg::Park).await.expect("forced cast admitted");
        eventually("both parked tickets", || registry.stats(1).mailbox_depth == 2).await;
        assert_eq!(registry.stats(1).rejections, 2);
    }

    #[tokio::test]
    async fn the_supervisor_restarts_within_the_intensity_and_quarantines_past_it() {
        let registry = probes(8, RestartPolicy { max_restarts: 1, period: Duration::from_secs(30) }).await;
        assert_eq!(registry.call_new(&7, ProbeMsg::Activation).await, Ok(Activation::New));

        registry.force_cast(&7, ProbeMsg::Crash).await.expect("crash delivered");
        eventually("the restart", || registry.stats(0).restarts == 1).await;
        assert_eq!(
            registry.call(&7, ProbeMsg::Activation).await,
            Ok(Activation::Recover),
            "a restarted entity recovers, even one that started new"
        );

        registry.force_cast(&7, ProbeMsg::Crash).await.expect("crash delivered");
        eventually("the quarantine", || registry.stats(0).quarantined == 1).await;
        match registry.call(&7, ProbeMsg::Activation).await {
            Err(RegistryError::Quarantined { retry_after }) => {
                assert!(retry_after > Duration::from_secs(25) && retry_after <= Duration::from_secs(30));
            }
            other => panic!("expected a quarantine, got {other:?}"),
        }
        let stats = registry.stats(0);
        assert_eq!((stats.failures, stats.restarts, stats.active), (2, 1, 0));
        assert_eq!(registry.call(&8, ProbeMsg::Activation).await, Ok(Activation::Recover), "only the entity rests");
    }
}
