//! Property tests of shard placement: nodes that each apply [`plan`] to the same
//! lease table, in any order, with the store's rule that only a free lease can
//! be taken, converge to every shard owned by exactly one live node with every
//! node at its quota, and then nothing moves.
#![allow(clippy::unwrap_used)]

use flashcore_domain::Shards;
use flashcore_domain::placement::{plan, quota};
use proptest::prelude::*;

/// One simulated round: every node, in `order`, reads the table and applies its
/// moves (a take succeeds only if the shard is still free: the store's check).
/// Returns the number of leases that changed hands.
fn round(shards: Shards, owners: &mut [Option<String>], live: &[String], order: &[usize], max_moves: u32) -> usize {
    let mut changed = 0;
    let live_refs: Vec<&str> = live.iter().map(String::as_str).collect();
    for &i in order {
        let me = live[i % live.len()].as_str();
        let view: Vec<Option<&str>> = owners.iter().map(|o| o.as_deref()).collect();
        let moves = plan(shards, &view, &live_refs, me, max_moves);
        for s in moves.release {
            let slot = &mut owners[s.get() as usize];
            assert_eq!(slot.as_deref(), Some(me), "released a shard it does not hold");
            *slot = None;
            changed += 1;
        }
        for s in moves.take {
            let slot = &mut owners[s.get() as usize];
            let free = slot.as_deref().is_none_or(|o| !live.iter().any(|m| m == o));
            if free {
                *slot = Some(me.to_owned());
                changed += 1;
            }
        }
    }
    changed
}

fn balanced(shards: Shards, owners: &[Option<String>], live: &[String]) -> bool {
    let refs: Vec<&str> = live.iter().map(String::as_str).collect();
    owners.iter().all(|o| o.as_ref().is_some_and(|o| live.contains(o)))
        && live.iter().all(|m| {
            owners.iter().filter(|o| o.as_deref() == Some(m.as_str())).count() as u32 == quota(shards, &refs, m)
        })
}

/// (shards, live nodes, initial owner per shard as a node index, where the
/// index past the live ones is a dead node, orders of acting nodes, max moves).
type Scenario = (u32, Vec<String>, Vec<Option<usize>>, Vec<Vec<usize>>, u32);

fn scenario() -> impl Strategy<Value = Scenario> {
    (1u32..300, 1usize..7, 1u32..8).prop_flat_map(|(s, n, max_moves)| {
        let nodes: Vec<String> = (0..n).map(|i| format!("node-{i:02}")).collect();
        // Initial owners: a live node, a dead one (index n), or nobody.
        let owners = proptest::collection::vec(proptest::option::of(0..=n), s as usize);
        let orders = proptest::collection::vec(proptest::collection::vec(0..n, n..=2 * n), 1..4);
        (Just(s), Just(nodes), owners, orders, Just(max_moves))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// From any table (free, dead and live owners, any imbalance), rounds in any
    /// interleaving reach the balanced placement, within a bounded number of
    /// rounds, and a balanced placement is left alone.
    #[test]
    fn placement_converges_and_then_holds_still((s, live, initial, orders, max_moves) in scenario()) {
        let shards = Shards::new(u64::from(s)).unwrap();
        let mut owners: Vec<Option<String>> = initial
            .into_iter()
            .map(|o| o.map(|i| live.get(i).cloned().unwrap_or_else(|| "dead".to_owned())))
            .collect();
        let everyone: Vec<usize> = (0..live.len()).collect();
        // Enough rounds for the worst case: every shard handed off max_moves at a time.
        let bound = 4 + 2 * (s / max_moves) as usize;
        let mut rounds = 0;
        while !balanced(shards, &owners, &live) {
            prop_assert!(rounds <= bound, "not balanced after {rounds} rounds: {owners:?}");
            let order = &orders[rounds % orders.len()];
            // Every node acts at least once per round besides the random order.
            round(shards, &mut owners, &live, order, max_moves);
            round(shards, &mut owners, &live, &everyone, max_moves);
            rounds += 1;
        }
        for order in &orders {
            prop_assert_eq!(round(shards, &mut owners, &live, order, max_moves), 0, "a balanced placement moved");
        }
    }

    /// The last node (by id) leaves: the others take its shards and end
    /// balanced, and no shard they already held moves.
    #[test]
    fn a_departure_moves_only_the_departed_shards(s in 1u32..300, n in 2usize..7) {
        let shards = Shards::new(u64::from(s)).unwrap();
        let mut live: Vec<String> = (0..n).map(|i| format!("node-{i:02}")).collect();
        let mut owners: Vec<Option<String>> = vec![None; s as usize];
        let everyone: Vec<usize> = (0..n).collect();
        for _ in 0..(4 + 2 * s as usize) {
            if balanced(shards, &owners, &live) { break; }
            round(shards, &mut owners, &live, &everyone, 8);
        }
        prop_assert!(balanced(shards, &owners, &live));
        let gone = live.pop().unwrap();
        let before = owners.clone();
        let everyone: Vec<usize> = (0..live.len()).collect();
        for _ in 0..(4 + 2 * s as usize) {
            if balanced(shards, &owners, &live) { break; }
            round(shards, &mut owners, &live, &everyone, 8);
        }
        prop_assert!(balanced(shards, &owners, &live));
        for (b, a) in before.iter().zip(&owners) {
            if b.as_deref() != Some(gone.as_str()) {
                prop_assert_eq!(a, b, "a survivor's shard moved");
            }
        }
    }
}
