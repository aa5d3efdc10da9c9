//! Request/reply on top of ractor's mailbox, with a leaner reply handle than
//! `ractor::RpcReplyPort`.
//!
//! A request carries a [`Reply`]: a bare oneshot sender, without the timeout
//! `RpcReplyPort` carries. Every message of an actor moves at the size of its
//! largest variant, several times between the caller and the handler, so the
//! reply handle's size is paid on the hot path. The request itself goes through
//! the actor's ordinary mailbox ([`ActorRef::cast`]), so ordering, supervision
//! and the registry's gate are unchanged.

use std::time::Duration;

use ractor::{ActorRef, Message};
use tokio::sync::oneshot;

/// Where an actor answers a request: dropped unanswered, the caller sees
/// [`AskError::NoAnswer`].
pub type Reply<T> = oneshot::Sender<T>;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The actor is not running (its mailbox is closed).
    #[error("the actor is not running")]
    NotRunning,
    /// The actor dropped the request without answering (it failed handling it).
    #[error("the actor dropped the request")]
    NoAnswer,
    /// No answer within the timeout.
    #[error("no answer in time")]
    Timeout,
}

/// Sends the request `build` makes around a fresh [`Reply`] and waits for the
/// answer, for at most `timeout` when one is given.
pub async fn ask<M, R>(
    actor: &ActorRef<M>,
    build: impl FnOnce(Reply<R>) -> M,
    timeout: Option<Duration>,
) -> Result<R, AskError>
where
    M: Message,
{
    let (tx, rx) = oneshot::channel();
    actor.cast(build(tx)).map_err(|_| AskError::NotRunning)?;
    match timeout {
        None => rx.await.map_err(|_| AskError::NoAnswer),
        Some(limit) => match tokio::time::timeout(limit, rx).await {
            Ok(answer) => answer.map_err(|_| AskError::NoAnswer),
            Err(_) => Err(AskError::Timeout),
        },
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use ractor::{Actor, ActorProcessingErr};

    use super::*;

    struct Doubler;

    enum Msg {
        Double(u32, Reply<u32>),
        Ignore(#[allow(dead_code)] Reply<u32>),
        Stall(Reply<u32>),
    }

    impl Actor for Doubler {
        type Msg = Msg;
        type State = Vec<Reply<u32>>;
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<Msg>, (): ()) -> Result<Self::State, ActorProcessingErr> {
            Ok(Vec::new())
        }

        async fn handle(
            &self,
            _: ActorRef<Msg>,
            msg: Msg,
            stalled: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                Msg::Double(n, reply) => {
                    let _ = reply.send(n * 2);
                }
                Msg::Ignore(_) => {}
                // Kept, never answered: the caller's timeout must end the wait.
                Msg::Stall(reply) => stalled.push(reply),
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn answers_drops_timeouts_and_stopped_actors_are_told_apart() {
        let (actor, handle) = Actor::spawn(None, Doubler, ()).await.unwrap();
        assert_eq!(ask(&actor, |r| Msg::Double(21, r), None).await, Ok(42));
        assert_eq!(ask(&actor, |r| Msg::Double(2, r), Some(Duration::from_secs(5))).await, Ok(4));
        assert_eq!(ask(&actor, Msg::Ignore, None).await, Err(AskError::NoAnswer));
        assert_eq!(ask(&actor, Msg::Stall, Some(Duration::from_millis(20))).await, Err(AskError::Timeout));
        actor.stop(None);
        handle.await.unwrap();
        assert_eq!(ask(&actor, |r| Msg::Double(1, r), None).await, Err(AskError::NotRunning));
    }
}
