//! Cluster mode's shares of the shards (DESIGN §9), on the real lease stores:
//! several members, each an [`Ownership`] in share mode keeping its leases in
//! the same store, converge to balanced shares; a member that joins takes its
//! share from the others a few shards at a time; one that leaves gracefully
//! hands its shards off at once; one that dies has them taken over once they
//! expire, every epoch + 1, and its late writes are refused.
//!
//! A member here is the ownership's own keeper plus what a node does on each
//! phase (serve once recovered, carry a move out in place, stand by after a
//! loss), without an engine: this is the lease protocol, not the sale. A
//! member "dies" when its tasks are aborted: it stops renewing and heartbeating
//! at once, as a killed process does.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flashcore_actors::ownership::{LeaseConfig, Ownership, Phase};
use flashcore_actors::ports::{EntityKind, Fence, LeaseStore, Owner, SnapshotRecord, StateJson};
use flashcore_domain::{JournalPos, ShardId, Shards, Sku};
use support::Stores;
use tokio::task::JoinHandle;

const SHARDS: u64 = 8;

fn shards() -> Shards {
    Shards::new(SHARDS).expect("shard count")
}

fn config() -> LeaseConfig {
    LeaseConfig {
        shards: shards(),
        ttl: Duration::from_millis(900),
        poll: Duration::from_millis(50),
        share: true,
        ..LeaseConfig::default()
    }
}

/// One member: its ownership and the tasks that keep it (aborted when it dies).
struct Member {
    own: Arc<Ownership>,
    tasks: Vec<JoinHandle<()>>,
}

impl Member {
    fn start(store: &Arc<dyn LeaseStore>, name: &str) -> Member {
        let owner = Owner { node: name.to_owned(), generation: 1 };
        let own = Ownership::new(owner, format!("{name}.test:7000"), config());
        let keeper = tokio::spawn(Arc::clone(&own).keep(Arc::clone(store)));
        let driver = tokio::spawn(drive(Arc::clone(&own), Arc::clone(store)));
        // Shards taken while serving are "recovered" at once.
        let adopter = tokio::spawn({
            let own = Arc::clone(&own);
            async move {
                loop {
                    own.shards_taken().await;
                    own.adopted();
                }
            }
        });
        Member { own, tasks: vec![keeper, driver, adopter] }
    }

    fn held(&self) -> usize {
        if self.own.phase() == Phase::Serving { self.own.held().len() } else { 0 }
    }

    fn die(self) -> Arc<Ownership> {
        for t in &self.tasks {
            t.abort();
        }
        self.own
    }
}

/// What the node does on each phase, minus the engine: a move's flush is
/// immediate here.
async fn drive(own: Arc<Ownership>, store: Arc<dyn LeaseStore>) {
    let mut phases = own.watch();
    loop {
        let phase = *phases.borrow_and_update();
        match phase {
            Phase::Recovering => {
                own.serve();
            }
            Phase::Moving => {
                let leaving = own.moving();
                own.release_shards(&*store, &leaving).await;
                own.resume();
            }
            Phase::Lost => own.back_to_standby(),
            Phase::Stopped => return,
            Phase::Standby | Phase::Serving | Phase::HandingOff => {}
        }
        if phases.changed().await.is_err() {
            return;
        }
    }
}

/// Unexpired leases by owner node, and every shard's epoch.
async fn shard_map(store: &dyn LeaseStore) -> (BTreeMap<String, Vec<ShardId>>, BTreeMap<ShardId, u64>) {
    let now = flashcore_actors::clock::now();
    let mut by_owner: BTreeMap<String, Vec<ShardId>> = BTreeMap::new();
    let mut epochs = BTreeMap::new();
    for row in store.leases().await.expect("lease rows") {
        epochs.insert(row.shard, row.epoch);
        if let Some(o) = row.owner.filter(|_| row.expires_at > now) {
            by_owner.entry(o.node).or_default().push(row.shard);
        }
    }
    (by_owner, epochs)
}

/// The shards with the same owner in both maps.
fn kept_shards(before: &BTreeMap<String, Vec<ShardId>>, after: &BTreeMap<String, Vec<ShardId>>) -> Vec<ShardId> {
    before
        .iter()
        .flat_map(|(owner, shards)| {
            shards.iter().filter(|s| after.get(owner).is_some_and(|v| v.contains(s))).copied().collect::<Vec<_>>()
        })
        .collect()
}

/// Waits until the members serve exactly `want` shards each (by position) and
/// the lease table says the same.
async fn settle(store: &dyn LeaseStore, members: &[&Member], want: &[usize], what: &str) {
    support::eventually(support::WITHIN, what, || async {
        let held: Vec<usize> = members.iter().map(|m| m.held()).collect();
        if held != want {
            return None;
        }
        let (by_owner, _) = shard_map(store).await;
        let table: Vec<usize> = members.iter().map(|m| by_owner.get(&m.own.owner().node).map_or(0, Vec::len)).collect();
        (table == want && by_owner.len() == members.len()).then_some(())
    })
    .await;
}

/// A SKU whose shard is `shard`.
fn sku_in(shard: ShardId) -> Sku {
    (0..10_000)
        .map(|i| Sku::parse(&format!("SKU-{i}")).expect("a valid SKU"))
        .find(|s| shards().of_sku(s) == shard)
        .expect("some SKU lands in every shard")
}

async fn members_share_the_shards(s: Stores) {
    // The suites' stores come with every lease held by one test owner: free them.
    s.leases.release(s.fence.owner(), &s.fence.leases()).await.expect("release");
    let store = Arc::clone(&s.leases);

    // Three members: 8 shards as 3 + 3 + 2 (the first by id gets the extras).
    let a = Member::start(&store, "node-a");
    let b = Member::start(&store, "node-b");
    let c = Member::start(&store, "node-c");
    settle(&*store, &[&a, &b, &c], &[3, 3, 2], "three members to share 8 shards 3/3/2").await;

    // Nothing moves once every member holds its quota (no thrash): the epochs
    // stay as they are over several renewal rounds.
    let (_, settled) = shard_map(&*store).await;
    let moves: Vec<u64> = [&a, &b, &c].iter().map(|m| m.own.view().moves).collect();
    tokio::time::sleep(config().ttl * 3).await;
    let (_, later) = shard_map(&*store).await;
    assert_eq!(settled, later, "a balanced cluster moves no shard");
    assert_eq!(moves, [&a, &b, &c].iter().map(|m| m.own.view().moves).collect::<Vec<_>>());

    // A fourth member joins: it takes 2 shards from the others (8 = 2 × 4).
    // The others move in place: every shard that stays with its owner keeps
    // its epoch (its state stays in the owner's memory, still fenced right).
    let (owners_before, epochs_before) = shard_map(&*store).await;
    let d = Member::start(&store, "node-d");
    settle(&*store, &[&a, &b, &c, &d], &[2, 2, 2, 2], "the newcomer to get its share").await;
    assert!(a.own.view().moves + b.own.view().moves + c.own.view().moves >= 2, "the full members handed off");
    let (owners_after, epochs_after) = shard_map(&*store).await;
    let kept = kept_shards(&owners_before, &owners_after);
    assert_eq!(kept.len(), 6, "each full member kept 2 of its shards: {owners_before:?} -> {owners_after:?}");
    for shard in &kept {
        assert_eq!(epochs_after[shard], epochs_before[shard], "shard {shard} stayed with its owner: same epoch");
    }
    for shard in &owners_after["node-d"] {
        assert!(epochs_after[shard] > epochs_before[shard], "shard {shard} moved to the newcomer: a new epoch");
    }

    // It leaves gracefully: its shards are released and taken at once, well
    // before they would expire.
    let (before, _) = shard_map(&*store).await;
    let d_shards = before["node-d"].clone();
    for t in &d.tasks {
        t.abort();
    }
    d.own.begin_handoff();
    d.own.release(&*store).await;
    let left = std::time::Instant::now();
    settle(&*store, &[&a, &b, &c], &[3, 3, 2], "the others to take the leaver's shards").await;
    assert!(left.elapsed() < config().ttl * 3, "a graceful leave is taken over without waiting for expiry");
    let (after, epochs_after_leave) = shard_map(&*store).await;
    assert!(d_shards.iter().all(|s| after.values().any(|v| v.contains(s))), "every shard of the leaver has an owner");
    for shard in kept_shards(&before, &after) {
        assert_eq!(epochs_after_leave[&shard], epochs_after[&shard], "shard {shard} stayed with its owner: same epoch");
    }

    // Node b dies: a and c take its shards once they expire, epoch + 1 ...
    let (before, epochs_before) = shard_map(&*store).await;
    let b_shards = before["node-b"].clone();
    let b_fence: Arc<Fence> = b.own.fence().expect("b holds its leases");
    let b_own = b.die();
    settle(&*store, &[&a, &c], &[4, 4], "the survivors to take the dead member's shards").await;
    let (_, epochs_after) = shard_map(&*store).await;
    for shard in &b_shards {
        assert!(epochs_after[shard] > epochs_before[shard], "shard {shard}: taken over with a new epoch");
    }
    // ... and a late write of b to one of them is refused.
    let sku = sku_in(b_shards[0]);
    let late = SnapshotRecord {
        kind: EntityKind::Sku,
        id: sku.to_string(),
        pos: JournalPos(1),
        version: 1,
        state: StateJson::encode(&serde_json::json!({ "late": true })).expect("json"),
    };
    let err = s.snapshots.save(std::slice::from_ref(&late), &b_fence).await.expect_err("fenced");
    assert!(err.is_fenced(), "{err:?}");
    assert_eq!(s.snapshots.load(EntityKind::Sku, &sku.to_string()).await.expect("load"), None);
    drop(b_own);

    for m in [a, c] {
        m.die();
    }
}

#[tokio::test]
async fn members_share_the_shards_in_memory() {
    members_share_the_shards(support::memory().await).await;
}

#[tokio::test]
async fn members_share_the_shards_on_sqlite() {
    members_share_the_shards(support::sqlite().await).await;
}

#[tokio::test]
async fn members_share_the_shards_on_postgres() {
    members_share_the_shards(support::postgres().await).await;
}
