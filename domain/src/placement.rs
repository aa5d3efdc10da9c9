//! Shard placement: which shards a node of the cluster should take or hand off.
//!
//! Every node runs the same rule on the same facts (the live members and the
//! lease table, both read from the store) and acts only on its own behalf: it
//! takes free leases up to its quota and releases leases beyond it. The store's
//! all-or-none lease acquisition settles races, so no coordinator is needed and
//! a node that decides on stale facts only fails to take a lease, never takes
//! one that is held (the pattern of Akka's least-shard allocation, without a
//! central coordinator).
//!
//! - **Quotas.** With `s` shards and `n` live members sorted by id, the first
//!   `s mod n` members have a quota of `ceil(s / n)`, the others `floor(s / n)`:
//!   the quotas add up to `s`, so when every node holds its quota nothing moves
//!   (no thrash).
//! - **Taking.** A node below its quota takes free shards (no owner, or an owner
//!   that is not a live member), its preferred ones first. Preference is
//!   rendezvous hashing: each node ranks the shards by a hash of (node, shard),
//!   so nodes racing for free shards mostly want different ones.
//! - **Handing off.** A node above its quota releases the excess, its least
//!   preferred first, but only while no shard is free (free shards are taken
//!   first) and some live member is below its own quota, and at most
//!   `max_moves` per round, so a join moves shards a few at a time.

use crate::shard::{ShardId, Shards};

/// What one node should do in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moves {
    /// Free shards to take, most preferred first (up to the quota).
    pub take: Vec<ShardId>,
    /// Held shards to hand off, least preferred first.
    pub release: Vec<ShardId>,
}

impl Moves {
    /// True when nothing should change.
    pub fn is_empty(&self) -> bool {
        self.take.is_empty() && self.release.is_empty()
    }
}

/// The quota of `member` among `live` (any order) for `shards`; 0 if `member`
/// is not live.
pub fn quota(shards: Shards, live: &[&str], member: &str) -> u32 {
    let mut sorted: Vec<&str> = live.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let Some(rank) = sorted.iter().position(|m| *m == member) else {
        return 0;
    };
    let n = sorted.len() as u32;
    let (base, extra) = (shards.count() / n, shards.count() % n);
    base + u32::from((rank as u32) < extra)
}

/// This node's moves for this round. `owners[i]` is the current owner of shard
/// `i` (`None`: free); `live` are the members that may own shards, `me` among
/// them. `max_moves` bounds the releases of one round (at least 1).
pub fn plan(shards: Shards, owners: &[Option<&str>], live: &[&str], me: &str, max_moves: u32) -> Moves {
    let is_live = |o: &Option<&str>| o.is_some_and(|o| live.contains(&o));
    let mine: Vec<ShardId> = shard_ids(shards, owners).filter(|s| owners[s.get() as usize] == Some(me)).collect();
    let free: Vec<ShardId> = shard_ids(shards, owners).filter(|s| !is_live(&owners[s.get() as usize])).collect();
    let my_quota = quota(shards, live, me);
    let held = mine.len() as u32;
    let mut moves = Moves::default();
    if held < my_quota {
        let mut free = free;
        free.sort_by_key(|s| std::cmp::Reverse(preference(me, *s)));
        free.truncate((my_quota - held) as usize);
        moves.take = free;
    } else if held > my_quota && free.is_empty() {
        let held_by = |m: &str| owners.iter().filter(|o| **o == Some(m)).count() as i64;
        let someone_short = live.iter().any(|m| *m != me && held_by(m) < i64::from(quota(shards, live, m)));
        // One member hands shards over at a time (the one most over its
        // quota, then the first by id): a hand-over pauses the member's
        // admissions until its work in flight is done, and two members
        // pausing at once can wait on each other's work.
        let over = |m: &str| held_by(m) - i64::from(quota(shards, live, m));
        let first = live.iter().filter(|m| over(m) > 0).min_by(|x, y| over(y).cmp(&over(x)).then(x.cmp(y)));
        if someone_short && first == Some(&me) {
            let mut mine = mine;
            mine.sort_by_key(|s| preference(me, *s));
            mine.truncate((held - my_quota).min(max_moves.max(1)) as usize);
            moves.release = mine;
        }
    }
    moves
}

fn shard_ids(shards: Shards, owners: &[Option<&str>]) -> impl Iterator<Item = ShardId> {
    shards.all().take(owners.len())
}

/// How much `node` wants `shard` (rendezvous weight): FNV-1a of both, mixed.
pub fn preference(node: &str, shard: ShardId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([b'#']).chain(shard.get().to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final avalanche (splitmix64's) so nearby shard numbers rank unrelated.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(n: u64) -> Shards {
        Shards::new(n).unwrap()
    }

    #[test]
    fn quotas_add_up_and_differ_by_at_most_one() {
        let live = ["c", "a", "b"];
        let q: Vec<u32> = live.iter().map(|m| quota(shards(256), &live, m)).collect();
        assert_eq!(q.iter().sum::<u32>(), 256);
        assert_eq!(quota(shards(256), &live, "a"), 86, "the first by id gets the extra shard");
        assert_eq!(quota(shards(256), &live, "c"), 85);
        assert_eq!(quota(shards(256), &live, "d"), 0, "not live: no quota");
        assert_eq!(quota(shards(2), &["a", "b", "c"], "c"), 0, "more nodes than shards");
    }

    #[test]
    fn a_lone_node_takes_everything_free() {
        let owners = vec![None; 8];
        let m = plan(shards(8), &owners, &["a"], "a", 4);
        assert_eq!(m.take.len(), 8);
        assert!(m.release.is_empty());
    }

    #[test]
    fn a_dead_owners_shards_are_free() {
        let owners = vec![Some("gone"), Some("a"), Some("gone"), Some("a")];
        let m = plan(shards(4), &owners, &["a"], "a", 4);
        assert_eq!(m.take.len(), 2);
        assert!(m.take.iter().all(|s| owners[s.get() as usize] == Some("gone")));
    }

    #[test]
    fn a_full_node_hands_off_to_a_newcomer_a_few_at_a_time() {
        let owners = vec![Some("a"); 16];
        let m = plan(shards(16), &owners, &["a", "b"], "a", 3);
        assert_eq!(m.release.len(), 3, "bounded by max_moves");
        assert!(m.take.is_empty());
        // The newcomer has nothing free to take yet.
        assert!(plan(shards(16), &owners, &["a", "b"], "b", 3).is_empty());
    }

    #[test]
    fn one_member_hands_off_at_a_time_the_most_over_its_quota_first() {
        // a and b hold 6 each, c joins: quotas 4 each. Equally over: the first by id.
        let mut owners = vec![Some("a"); 6];
        owners.extend(vec![Some("b"); 6]);
        let live = ["a", "b", "c"];
        assert_eq!(plan(shards(12), &owners, &live, "a", 32).release.len(), 2);
        assert!(plan(shards(12), &owners, &live, "b", 32).is_empty(), "b waits for a");
        // Once a is at its quota (c took 2), b hands off.
        for o in owners.iter_mut().take(2) {
            *o = Some("c");
        }
        assert!(plan(shards(12), &owners, &live, "a", 32).is_empty());
        assert_eq!(plan(shards(12), &owners, &live, "b", 32).release.len(), 2);
        // The one most over its quota goes first, whatever its id.
        let mut owners = vec![Some("a"); 5];
        owners.extend(vec![Some("b"); 7]);
        assert!(plan(shards(12), &owners, &live, "a", 32).is_empty());
        assert_eq!(plan(shards(12), &owners, &live, "b", 32).release.len(), 3);
    }

    #[test]
    fn no_hand_off_while_shards_are_free() {
        let mut owners = vec![Some("a"); 16];
        owners[0] = None;
        assert!(plan(shards(16), &owners, &["a", "b"], "a", 3).release.is_empty());
    }
}
