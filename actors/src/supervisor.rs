//! Supervisors: one per entity kind, parent of every actor of that kind.
//!
//! Children are spawned linked to their supervisor, so ractor reports each
//! child's panic or error as `SupervisionEvent::ActorFailed` and each clean stop
//! as `ActorTerminated`. The supervisor's policy is one_for_one: only the failed
//! child is restarted (from its last snapshot plus the journal, through the
//! registry's single activation path), within a restart intensity; past it, the
//! entity is quarantined for the rest of the window. A supervisor never dies of
//! a child's failure.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, Message, SupervisionEvent};

use crate::registry::Registry;

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

impl<K, M> Actor for EntitySupervisor<K, M>
where
    K: Clone + Eq + Hash + std::fmt::Display + Send + Sync + 'static,
    M: Message,
{
    type Msg = SupervisorMsg;
    type State = Arc<Registry<K, M>>;
    type Arguments = Arc<Registry<K, M>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        registry: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(registry)
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
        registry: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => registry.child_failed(cell.get_id(), err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, _) => registry.child_stopped(cell.get_id()),
            _ => {}
        }
        Ok(())
    }
}
