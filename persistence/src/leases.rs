//! The lease rules every adapter of [`LeaseStore`] shares: when a set of leases
//! may be taken, and how a lease row reads. The adapters differ only in how they
//! make the read-decide-write atomic (a Postgres transaction with `FOR UPDATE`,
//! SQLite's `BEGIN IMMEDIATE`, a mutex).

use flashcore_actors::ports::{Lease, LeaseRow, Member, MemberStatus, Owner, StoreError};
use flashcore_domain::{ShardId, Shards, Timestamp};

use crate::rows::instant;

/// Members silent this long (ms) are dropped from the membership table.
pub const MEMBER_RETENTION_MS: i64 = 86_400_000;

/// Every member, newest heartbeat first (the same SQL on both stores).
pub const MEMBERS_QUERY: &str = "SELECT node_id, generation, address, status, heartbeat_ms FROM cluster_members \
                                 ORDER BY heartbeat_ms DESC, node_id";

/// A `cluster_members` row: (node, generation, address, status, heartbeat ms).
pub type MemberColumns = (String, i64, String, String, i64);

/// A `shard_leases` row: (shard, owner node, owner generation, epoch, expires at ms).
pub type LeaseColumns = (i64, Option<String>, Option<i64>, i64, i64);

/// Decodes a `shard_leases` row.
pub fn lease_row((shard, node, generation, epoch, expires): LeaseColumns) -> Result<LeaseRow, StoreError> {
    let corrupt = |what: &str| StoreError::Unavailable(format!("corrupt lease row for shard {shard}: {what}"));
    let owner = match (node, generation) {
        (Some(node), Some(g)) => Some(Owner { node, generation: u64::try_from(g).map_err(|_| corrupt("generation"))? }),
        (None, None) => None,
        _ => return Err(corrupt("half an owner")),
    };
    Ok(LeaseRow {
        shard: ShardId::from_number(u32::try_from(shard).map_err(|_| corrupt("shard"))?),
        owner,
        epoch: u64::try_from(epoch).map_err(|_| corrupt("epoch"))?,
        expires_at: instant(expires)?,
    })
}

/// The store was set up with `rows` lease rows numbered `0..rows` (`max` is the
/// highest); it must match the configured shard count.
pub fn check_shard_count(rows: i64, max: i64, all: Shards) -> Result<(), StoreError> {
    let want = i64::from(all.count());
    if rows == 0 || (rows == want && max == want - 1) {
        return Ok(());
    }
    Err(StoreError::Unavailable(format!(
        "the store was set up with {rows} shards but FLASHCORE_SHARDS is {want}: every node must use the store's count"
    )))
}

/// True when `owner` may take every lease in `rows` (those it asks for) at `now`:
/// each is free, expired, or already its own.
pub fn may_take(rows: &[LeaseRow], owner: &Owner, now: Timestamp) -> bool {
    rows.iter().all(|r| match &r.owner {
        None => true,
        Some(o) => o == owner || r.expires_at <= now,
    })
}

/// The shards as storage numbers.
pub fn shard_numbers(shards: &[ShardId]) -> Vec<i32> {
    shards.iter().map(|s| s.get() as i32).collect()
}

/// Leases from (shard, epoch) rows.
pub fn leases_of(rows: Vec<(i64, i64)>) -> Result<Vec<Lease>, StoreError> {
    rows.into_iter()
        .map(|(shard, epoch)| {
            let bad = || StoreError::Unavailable(format!("corrupt lease row {shard}/{epoch}"));
            Ok(Lease {
                shard: ShardId::from_number(u32::try_from(shard).map_err(|_| bad())?),
                epoch: u64::try_from(epoch).map_err(|_| bad())?,
            })
        })
        .collect()
}

/// A `cluster_members` row.
pub fn member((node, generation, address, status, heartbeat): MemberColumns) -> Result<Member, StoreError> {
    let bad = |what: &str| StoreError::Unavailable(format!("corrupt member row {node}: {what}"));
    Ok(Member {
        owner: Owner { generation: u64::try_from(generation).map_err(|_| bad("generation"))?, node: node.clone() },
        address,
        status: MemberStatus::parse(&status).ok_or_else(|| bad("status"))?,
        heartbeat_at: instant(heartbeat)?,
    })
}
