//! Following a waiting-room ticket, for its event stream: on the room's own
//! node from the figures the queue actor publishes, and (cluster mode) on any
//! other node by relay.
//!
//! A room runs on its SKU's node. A node streaming tickets of a room elsewhere
//! asks that node, every [`crate::engine::RELAY_EVERY`] while anyone here
//! follows one, for all the tickets its streams follow in one call
//! ([`crate::peers::PeerOp::Tickets`]): a room's relay costs one call per
//! period however many shoppers watch through this node, and the room's node
//! answers from its published line without asking its actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use flashcore_domain::{CartId, Sku};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::waiting_room::{QueueError, RoomStats, TicketView};

/// A ticket: its number and the cart holding it.
pub(crate) type TicketKey = (u32, CartId);

/// The tickets of one room elsewhere that streams here follow, each with the
/// last view its room's node answered.
#[derive(Debug, Default)]
pub(crate) struct Followed(Mutex<HashMap<TicketKey, watch::Sender<TicketView>>>);

impl Followed {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<TicketKey, watch::Sender<TicketView>>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn subscribe(&self, key: TicketKey, now: TicketView) -> watch::Receiver<TicketView> {
        self.with(|m| match m.get(&key) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(now);
                m.insert(key, tx);
                rx
            }
        })
    }

    /// Forgets the tickets nobody follows any more; true when none is left.
    pub(crate) fn prune(&self) -> bool {
        self.with(|m| {
            m.retain(|_, tx| tx.receiver_count() > 0);
            m.is_empty()
        })
    }

    /// The tickets followed now.
    pub(crate) fn keys(&self) -> Vec<TicketKey> {
        self.with(|m| m.keys().copied().collect())
    }

    /// The room's node answered `result` for `key`: a new view goes to its
    /// streams; a ticket or room that no longer exists ends them (its sender
    /// dropped); a failure keeps the last view, the next poll tries again.
    pub(crate) fn publish(&self, key: TicketKey, result: Result<TicketView, QueueError>) {
        self.with(|m| match result {
            Ok(view) => {
                if let Some(tx) = m.get(&key) {
                    tx.send_if_modified(|old| {
                        let changed = *old != view;
                        *old = view;
                        changed
                    });
                }
            }
            Err(QueueError::NoRoom | QueueError::TicketNotFound | QueueError::Engine(EngineError::ProductNotFound)) => {
                m.remove(&key);
            }
            Err(_) => {}
        });
    }
}

/// Per SKU of another node's room, the tickets followed here.
#[derive(Debug, Default)]
pub(crate) struct TicketRelays(dashmap::DashMap<Sku, Arc<Followed>>);

impl TicketRelays {
    /// A stream of `key`'s views, starting from `now`; with the room's
    /// [`Followed`] when nobody here followed one of its tickets yet, so the
    /// caller starts its poll.
    pub(crate) fn follow(
        &self,
        sku: &Sku,
        key: TicketKey,
        now: TicketView,
    ) -> (watch::Receiver<TicketView>, Option<Arc<Followed>>) {
        match self.0.entry(sku.clone()) {
            dashmap::Entry::Occupied(e) => (e.get().subscribe(key, now), None),
            dashmap::Entry::Vacant(e) => {
                let followed = Arc::new(Followed::default());
                let rx = followed.subscribe(key, now);
                e.insert(Arc::clone(&followed));
                (rx, Some(followed))
            }
        }
    }

    /// True when `mine`'s poll should stop: nobody follows its tickets (it is
    /// forgotten here at once, so a new follower starts a new poll), or it
    /// is no longer the room's relay.
    pub(crate) fn retire(&self, sku: &Sku, mine: &Arc<Followed>) -> bool {
        // Under the map's lock, as `follow` subscribes: no follower slips in
        // between the check and the removal.
        self.0.remove_if(sku, |_, f| Arc::ptr_eq(f, mine) && f.prune()).is_some()
            || self.0.get(sku).is_none_or(|f| !Arc::ptr_eq(&f, mine))
    }
}

/// One ticket's changes, for its stream.
#[derive(Debug)]
pub struct TicketFollow {
    view: TicketView,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// The room is this node's: read the ticket again when its figures change
    /// (from the line the queue actor published with the change).
    Here { engine: Engine, sku: Sku, cart: CartId, rooms: watch::Receiver<RoomStats> },
    /// The room is another node's: its views as the relay last got them.
    Relayed(watch::Receiver<TicketView>),
}

impl TicketFollow {
    pub(crate) fn here(
        engine: Engine,
        sku: Sku,
        cart: CartId,
        rooms: watch::Receiver<RoomStats>,
        view: TicketView,
    ) -> Self {
        TicketFollow { view, source: Source::Here { engine, sku, cart, rooms } }
    }

    pub(crate) fn relayed(view: TicketView, rx: watch::Receiver<TicketView>) -> Self {
        TicketFollow { view, source: Source::Relayed(rx) }
    }

    /// The ticket as last seen.
    pub fn view(&self) -> &TicketView {
        &self.view
    }

    /// Waits for the ticket's next view; `None` once it can no longer be
    /// followed here (the room or ticket is gone, or the engine stopped).
    pub async fn changed(&mut self) -> Option<&TicketView> {
        match &mut self.source {
            Source::Here { engine, sku, cart, rooms } => {
                rooms.changed().await.ok()?;
                rooms.borrow_and_update();
                self.view = engine.queue_ticket(sku, self.view.ticket, *cart).await.ok()?;
            }
            Source::Relayed(rx) => {
                rx.changed().await.ok()?;
                self.view = rx.borrow_and_update().clone();
            }
        }
        Some(&self.view)
    }
}
