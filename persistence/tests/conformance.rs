//! One conformance suite for every adapter of the journal, snapshot, catalog and
//! API key ports: the same cases run against the in-process, SQLite and Postgres stores.
//! An adapter is correct when it behaves like the others here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use flashcore_actors::ports::{
    AppendOutcome, EntityKind, FactCursor, Fence, Lease, MemberStatus, Owner, SnapshotRecord, StateJson,
};
use flashcore_domain::{
    Cart, CartId, Currency, HoldId, JournalEntry, JournalPos, Money, Order, OrderId, Product, ShardId, Sku,
    StockFactKind, Timestamp,
};
use flashcore_http_ports::{ApiKeyRecord, Role};
use serde_json::json;

use support::Stores;

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn product(code: &str, cents: i64) -> Product {
    Product::new(sku(code), format!("Product {code}"), "desc", Money::new(cents, Currency::EUR).unwrap(), Some(3), None)
        .unwrap()
}

/// An order for `lines` of (sku, qty, unit cents) under `key`.
fn order(key: &str, lines: &[(&str, u32, i64)]) -> Order {
    let mut cart = Cart::new(CartId::new());
    for (code, qty, cents) in lines {
        cart.apply_reserved(&product(code, *cents), *qty, HoldId::new(), Timestamp::from_millis(9_000));
    }
    Order::from_cart(
        &cart,
        OrderId::new(),
        key.into(),
        Some("a@b.co".into()),
        "pay_1".into(),
        Timestamp::from_millis(1_234),
    )
    .unwrap()
}

fn written(o: &AppendOutcome) -> u64 {
    match o {
        AppendOutcome::Written(p) => p.0,
        AppendOutcome::DuplicateKey => panic!("expected written, got duplicate"),
    }
}

pub async fn appends_assign_increasing_positions_and_orders_round_trip(s: Stores) {
    let a = order("k1", &[("A", 2, 150), ("B", 1, 99)]);
    let b = order("k2", &[("A", 1, 150)]);
    let restock = JournalEntry::Stock { sku: sku("A"), kind: StockFactKind::Restocked { qty: 5 } };
    let out = s
        .journal
        .append(&[JournalEntry::Order(a.clone()), restock, JournalEntry::Order(b.clone())], &s.fence)
        .await
        .unwrap();
    let pos: Vec<u64> = out.iter().map(written).collect();
    assert!(pos[0] < pos[1] && pos[1] < pos[2], "{pos:?}");
    let more = s.journal.append(&[JournalEntry::Order(order("k3", &[("C", 1, 1)]))], &s.fence).await.unwrap();
    assert!(written(&more[0]) > pos[2]);

    assert_eq!(s.journal.order(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.journal.order_for_cart(b.cart_id).await.unwrap(), Some(b.clone()));
    assert_eq!(s.journal.order(OrderId::new()).await.unwrap(), None);
    assert_eq!(s.journal.order_for_cart(CartId::new()).await.unwrap(), None);
}

pub async fn a_duplicate_key_or_cart_skips_only_its_own_entry(s: Stores) {
    let first = order("same", &[("A", 1, 10)]);
    s.journal.append(&[JournalEntry::Order(first.clone())], &s.fence).await.unwrap();
    let dup_key = order("same", &[("A", 1, 10)]);
    let mut dup_cart = order("other", &[("A", 1, 10)]);
    dup_cart.cart_id = first.cart_id;
    let fine = order("fine", &[("A", 1, 10)]);
    let out = s
        .journal
        .append(
            &[JournalEntry::Order(dup_key.clone()), JournalEntry::Order(dup_cart), JournalEntry::Order(fine.clone())],
            &s.fence,
        )
        .await
        .unwrap();
    assert_eq!(out[0], AppendOutcome::DuplicateKey);
    assert_eq!(out[1], AppendOutcome::DuplicateKey);
    written(&out[2]);
    assert_eq!(s.journal.order(dup_key.id).await.unwrap(), None);
    assert_eq!(s.journal.order(fine.id).await.unwrap(), Some(fine));
    let sold: u32 = s
        .journal
        .stock_facts(&sku("A"), JournalPos(0), &[])
        .await
        .unwrap()
        .iter()
        .map(|f| match f.kind {
            StockFactKind::Sold { qty, .. } => qty,
            _ => 0,
        })
        .sum();
    assert_eq!(sold, 2, "the skipped orders left no facts");
}

pub async fn stock_facts_are_per_sku_in_position_order_after_a_watermark_or_for_named_orders(s: Stores) {
    let o1 = order("k1", &[("A", 2, 1), ("B", 1, 1)]);
    let o2 = order("k2", &[("A", 3, 1)]);
    let total = JournalEntry::Stock { sku: sku("A"), kind: StockFactKind::TotalSet { total: 50 } };
    let out = s.journal.append(&[total, JournalEntry::Order(o1.clone())], &s.fence).await.unwrap();
    let out2 = s.journal.append(&[JournalEntry::Order(o2.clone())], &s.fence).await.unwrap();
    let (p_total, p1, p2) = (written(&out[0]), written(&out[1]), written(&out2[0]));

    let all = s.journal.stock_facts(&sku("A"), JournalPos(0), &[]).await.unwrap();
    assert_eq!(all.iter().map(|f| f.pos.0).collect::<Vec<_>>(), vec![p_total, p1, p2]);
    assert_eq!(all[0].kind, StockFactKind::TotalSet { total: 50 });
    assert_eq!(all[1].kind, StockFactKind::Sold { order: o1.id, hold: o1.lines[0].hold_id, qty: 2 });
    assert!(all.iter().all(|f| f.sku == sku("A")));

    let newer = s.journal.stock_facts(&sku("A"), JournalPos(p1), &[]).await.unwrap();
    assert_eq!(newer.iter().map(|f| f.pos.0).collect::<Vec<_>>(), vec![p2]);
    let with_order = s.journal.stock_facts(&sku("A"), JournalPos(p2), &[o1.id]).await.unwrap();
    assert_eq!(with_order.iter().map(|f| f.pos.0).collect::<Vec<_>>(), vec![p1]);
    assert_eq!(s.journal.stock_facts(&sku("B"), JournalPos(0), &[]).await.unwrap().len(), 1);
    assert!(s.journal.stock_facts(&sku("NONE"), JournalPos(0), &[]).await.unwrap().is_empty());
}

pub async fn every_skus_facts_page_in_position_order_without_splitting_or_repeating_a_position(s: Stores) {
    // Orders with lines on several SKUs share one position per order.
    let mut entries = vec![JournalEntry::Stock { sku: sku("B"), kind: StockFactKind::TotalSet { total: 99 } }];
    for i in 0..7 {
        entries.push(JournalEntry::Order(order(&format!("k{i}"), &[("A", 1, 1), ("B", 2, 1), ("C", 1, 1)])));
    }
    let out = s.journal.append(&entries, &s.fence).await.unwrap();
    let first_order = written(&out[1]);

    for page_size in [1, 2, 3, 5, 100] {
        let mut got = Vec::new();
        let mut cursor = FactCursor::after(JournalPos(first_order));
        loop {
            let page = s.journal.stock_facts_page(&cursor, page_size).await.unwrap();
            assert!(page.len() <= page_size);
            let Some(last) = page.last() else { break };
            cursor = FactCursor::after_fact(last);
            got.extend(page);
        }
        // Everything after the first order: 6 orders × 3 SKUs, each once, in position order.
        assert_eq!(got.len(), 18, "page size {page_size}");
        assert!(got.windows(2).all(|w| w[0].pos <= w[1].pos), "page size {page_size}");
        let mut keys: Vec<_> = got.iter().map(|f| (f.pos, f.sku.clone())).collect();
        keys.dedup();
        assert_eq!(keys.len(), 18, "no fact twice at page size {page_size}");
        assert!(got.iter().all(|f| f.pos.0 > first_order));
    }
    let everything = s.journal.stock_facts_page(&FactCursor::default(), 1_000).await.unwrap();
    assert_eq!(everything.len(), 22);
    assert_eq!(everything[0].kind, StockFactKind::TotalSet { total: 99 });

    let JournalEntry::Order(o) = &entries[3] else { unreachable!() };
    let of_order = s.journal.stock_facts_of_orders(&[o.id]).await.unwrap();
    assert_eq!(of_order.iter().map(|f| f.sku.as_str()).collect::<Vec<_>>(), ["A", "B", "C"]);
    assert!(of_order.iter().all(|f| matches!(f.kind, StockFactKind::Sold { order, .. } if order == o.id)));
    assert!(s.journal.stock_facts_of_orders(&[]).await.unwrap().is_empty());
    assert!(s.journal.stock_facts_of_orders(&[OrderId::new()]).await.unwrap().is_empty());
}

pub async fn orders_list_newest_first_with_a_cursor(s: Stores) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let o = order(&format!("k{i}"), &[("A", 1, 1)]);
        ids.push(o.id);
        s.journal.append(&[JournalEntry::Order(o)], &s.fence).await.unwrap();
    }
    ids.sort();
    ids.reverse();
    let page = s.journal.orders(3, None).await.unwrap();
    assert_eq!(page.iter().map(|o| o.id).collect::<Vec<_>>(), ids[..3]);
    let rest = s.journal.orders(10, Some(page[2].id)).await.unwrap();
    assert_eq!(rest.iter().map(|o| o.id).collect::<Vec<_>>(), ids[3..]);
}

fn record(kind: EntityKind, id: &str, version: u64, state: serde_json::Value) -> SnapshotRecord {
    let state = StateJson::encode(&state).unwrap();
    SnapshotRecord { kind, id: id.into(), pos: JournalPos(version * 10), version, state }
}

fn state_of(rec: Option<SnapshotRecord>) -> serde_json::Value {
    rec.unwrap().state.decode().unwrap()
}

pub async fn snapshots_round_trip_and_only_move_forward(s: Stores) {
    assert_eq!(s.snapshots.load(EntityKind::Sku, "A").await.unwrap(), None);
    let v2 = record(EntityKind::Sku, "A", 2, json!({"total": 5, "holds": [1, 2]}));
    s.snapshots.save(&[v2.clone(), record(EntityKind::Cart, "A", 1, json!({"cart": true}))], &s.fence).await.unwrap();
    assert_eq!(s.snapshots.load(EntityKind::Sku, "A").await.unwrap(), Some(v2.clone()));
    assert_eq!(state_of(s.snapshots.load(EntityKind::Cart, "A").await.unwrap()), json!({"cart": true}));

    s.snapshots.save(&[record(EntityKind::Sku, "A", 1, json!({"stale": true}))], &s.fence).await.unwrap();
    assert_eq!(s.snapshots.load(EntityKind::Sku, "A").await.unwrap(), Some(v2), "an older version never wins");
    let v3 = record(EntityKind::Sku, "A", 3, json!({"total": 6}));
    s.snapshots.save(std::slice::from_ref(&v3), &s.fence).await.unwrap();
    assert_eq!(s.snapshots.load(EntityKind::Sku, "A").await.unwrap(), Some(v3));

    let many: Vec<_> = (0..1_500).map(|i| record(EntityKind::Cart, &format!("c{i}"), 1, json!({"i": i}))).collect();
    s.snapshots.save(&many, &s.fence).await.unwrap();
    assert_eq!(state_of(s.snapshots.load(EntityKind::Cart, "c1499").await.unwrap()), json!({"i": 1499}));
}

pub async fn snapshots_of_one_kind_page_in_id_order(s: Stores) {
    let skus: Vec<_> = (0..25).map(|i| record(EntityKind::Sku, &format!("S{i:03}"), 1, json!({"i": i}))).collect();
    let carts: Vec<_> = (0..5).map(|i| record(EntityKind::Cart, &format!("S{i:03}"), 1, json!({"cart": i}))).collect();
    s.snapshots.save(&skus, &s.fence).await.unwrap();
    s.snapshots.save(&carts, &s.fence).await.unwrap();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.snapshots.load_page(EntityKind::Sku, after.as_deref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        got.extend(page);
    }
    assert_eq!(got, skus, "every SKU snapshot once, in id order, none of another kind");
    // Waiting rooms are snapshots of their own kind, beside their SKU's.
    let room = record(EntityKind::Queue, "S001", 4, json!({"line": [3, 1, 2]}));
    s.snapshots.save(std::slice::from_ref(&room), &s.fence).await.unwrap();
    assert_eq!(s.snapshots.load(EntityKind::Queue, "S001").await.unwrap(), Some(room.clone()));
    assert_eq!(s.snapshots.load_page(EntityKind::Queue, None, 10).await.unwrap(), vec![room]);
}

pub async fn the_catalog_lists_in_sku_order_reads_one_and_upserts_replace(s: Stores) {
    for code in ["C", "A", "B"] {
        s.catalog.upsert(&product(code, 100)).await.unwrap();
    }
    let mut starts = product("D", 5);
    starts.sale_starts_at = Some(Timestamp::from_millis(1_700_000_000_000));
    starts.max_per_order = None;
    s.catalog.upsert(&starts).await.unwrap();
    s.catalog.upsert(&product("B", 250)).await.unwrap();

    let all = s.catalog.list(10, None).await.unwrap();
    assert_eq!(all.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["A", "B", "C", "D"]);
    assert_eq!(all[1].price.amount(), 250);
    assert_eq!(all[3], starts);
    let page = s.catalog.list(2, Some(&sku("A"))).await.unwrap();
    assert_eq!(page.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["B", "C"]);
    assert_eq!(s.catalog.get(&sku("D")).await.unwrap(), Some(starts));
    assert_eq!(s.catalog.get(&sku("B")).await.unwrap().map(|p| p.price.amount()), Some(250));
    assert_eq!(s.catalog.get(&sku("E")).await.unwrap(), None);
}

/// A live key named `name` whose hash is `hash` repeated.
fn api_key(name: &str, hash: u8, role: Role, created_ms: u64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        role,
        key_sha256: [hash; 32],
        created_at: Timestamp::from_millis(created_ms),
        revoked: false,
    }
}

pub async fn api_keys_round_trip_stay_unique_and_stop_matching_once_revoked(s: Stores) {
    // Arrange: the newer key goes in first, so listing must sort.
    let ci = api_key("ci", 1, Role::Admin, 1_700_000_000_007);
    let alice = api_key("alice", 2, Role::Operator, 1_699_999_999_999);
    s.api_keys.insert_key(&ci).await.unwrap();
    s.api_keys.insert_key(&alice).await.unwrap();

    // Every field round-trips, the instant to the millisecond.
    assert_eq!(s.api_keys.find_key(&[1; 32]).await.unwrap(), Some(ci.clone()));
    assert_eq!(s.api_keys.find_key(&[2; 32]).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.api_keys.find_key(&[3; 32]).await.unwrap(), None);

    // A duplicate hash or id is refused and changes nothing.
    let same_hash = api_key("copy", 1, Role::Operator, 1);
    assert!(s.api_keys.insert_key(&same_hash).await.is_err(), "duplicate hash");
    let same_id = ApiKeyRecord { key_sha256: [4; 32], ..alice.clone() };
    assert!(s.api_keys.insert_key(&same_id).await.is_err(), "duplicate id");
    assert_eq!(s.api_keys.find_key(&[4; 32]).await.unwrap(), None);
    assert_eq!(s.api_keys.list_keys().await.unwrap(), [alice.clone(), ci.clone()], "oldest first, nothing added");

    // Act: revoke (twice: idempotent).
    assert!(s.api_keys.revoke_key(&ci.id).await.unwrap());
    assert!(s.api_keys.revoke_key(&ci.id).await.unwrap());

    // Assert: a revoked key authenticates nothing but is still listed.
    assert_eq!(s.api_keys.find_key(&[1; 32]).await.unwrap(), None);
    assert_eq!(s.api_keys.find_key(&[2; 32]).await.unwrap(), Some(alice.clone()));
    let revoked = ApiKeyRecord { revoked: true, ..ci };
    assert_eq!(s.api_keys.list_keys().await.unwrap(), [alice, revoked]);
    assert!(!s.api_keys.revoke_key(&uuid::Uuid::new_v4().to_string()).await.unwrap());
    assert!(!s.api_keys.revoke_key("not-a-uuid").await.unwrap());
}

// ---------------------------------------------------------------------------
// Ownership: leases, epochs and fencing.
// ---------------------------------------------------------------------------

fn all_shards() -> Vec<ShardId> {
    support::shards().all().collect()
}

fn one_order() -> JournalEntry {
    JournalEntry::Order(order(&uuid::Uuid::new_v4().to_string(), &[("A", 1, 10)]))
}

pub async fn leases_are_taken_all_or_none_and_every_take_bumps_the_epoch(s: Stores) {
    let (a, b) = (s.fence.owner().clone(), support::owner(2));
    let ttl = Duration::from_secs(60);
    // Held by A: B gets nothing, A renews.
    assert_eq!(s.leases.acquire(&b, &all_shards(), support::shards(), ttl).await.unwrap(), None);
    assert!(s.leases.renew(&a, &s.fence.leases(), ttl).await.unwrap());
    // A taking its own leases again gets fresh epochs; its old fence is stale.
    let again = s.leases.acquire(&a, &all_shards(), support::shards(), ttl).await.unwrap().expect("its own");
    for (old, new) in s.fence.leases().iter().zip(&again) {
        assert_eq!((new.shard, new.epoch), (old.shard, old.epoch + 1));
    }
    let err = s.journal.append(&[one_order()], &s.fence).await.unwrap_err();
    assert!(err.is_fenced(), "{err:?}");
    assert!(!s.leases.renew(&a, &s.fence.leases(), ttl).await.unwrap(), "a stale epoch does not renew");
    let fresh = Fence::new(a.clone(), support::shards(), &again);
    s.journal.append(&[one_order()], &fresh).await.unwrap();
    // The lease table shows A at the new epochs.
    let rows = s.leases.leases().await.unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().zip(&again).all(|(r, l)| r.owner.as_ref() == Some(&a) && r.epoch == l.epoch));
}

pub async fn a_take_over_after_expiry_fences_every_write_of_the_old_owner(s: Stores) {
    // A holds the leases only briefly.
    s.leases.release(s.fence.owner(), &s.fence.leases()).await.unwrap();
    let (a, b) = (support::owner(3), support::owner(4));
    let old = support::take_all(&*s.leases, &a, Duration::from_millis(300)).await;
    s.journal.append(&[one_order()], &old).await.expect("A writes while it holds the lease");

    // B takes over once A's leases expire.
    let new = support::eventually(support::WITHIN, "A's leases to expire", || async {
        let got = s.leases.acquire(&b, &all_shards(), support::shards(), Duration::from_secs(60)).await.unwrap();
        got.map(|leases| Fence::new(b.clone(), support::shards(), &leases))
    })
    .await;
    assert!(new.leases().iter().zip(old.leases()).all(|(n, o)| n.epoch == o.epoch + 1));

    // Every late write of A is refused and leaves nothing behind.
    let late = order("late", &[("A", 1, 10)]);
    let err = s.journal.append(&[JournalEntry::Order(late.clone())], &old).await.unwrap_err();
    assert!(err.is_fenced(), "{err:?}");
    assert_eq!(s.journal.order(late.id).await.unwrap(), None);
    let restock = JournalEntry::Stock { sku: sku("A"), kind: StockFactKind::Restocked { qty: 5 } };
    assert!(s.journal.append(std::slice::from_ref(&restock), &old).await.unwrap_err().is_fenced());
    let snap = record(EntityKind::Sku, "A", 9, json!({"late": true}));
    assert!(s.snapshots.save(std::slice::from_ref(&snap), &old).await.unwrap_err().is_fenced());
    assert_eq!(s.snapshots.load(EntityKind::Sku, "A").await.unwrap(), None);
    assert!(!s.leases.renew(&a, &old.leases(), Duration::from_secs(60)).await.unwrap());
    let facts = s.journal.stock_facts(&sku("A"), JournalPos(0), &[]).await.unwrap();
    assert_eq!(facts.len(), 1, "only the sale A made while it held the lease");

    // B writes.
    s.journal.append(&[restock], &new).await.unwrap();
    s.snapshots.save(std::slice::from_ref(&snap), &new).await.unwrap();
    assert_eq!(s.snapshots.load(EntityKind::Sku, "A").await.unwrap(), Some(snap));
}

pub async fn a_released_lease_is_taken_at_once(s: Stores) {
    let b = support::owner(5);
    let ttl = Duration::from_secs(60);
    assert_eq!(s.leases.acquire(&b, &all_shards(), support::shards(), ttl).await.unwrap(), None);
    s.leases.release(s.fence.owner(), &s.fence.leases()).await.unwrap();
    let taken = s.leases.acquire(&b, &all_shards(), support::shards(), ttl).await.unwrap().expect("free at once");
    assert_eq!(taken.len(), 8);
    assert!(s.journal.append(&[one_order()], &s.fence).await.unwrap_err().is_fenced());
    // Another shard count than the store's is refused outright.
    let other = flashcore_domain::Shards::new(16).unwrap();
    let all16: Vec<_> = other.all().collect();
    assert!(s.leases.acquire(&support::owner(6), &all16, other, ttl).await.is_err());
}

pub async fn only_one_of_two_racing_owners_gets_the_leases(s: Stores) {
    s.leases.release(s.fence.owner(), &s.fence.leases()).await.unwrap();
    for round in 0..10u64 {
        let (a, b) = (support::owner(100 + 2 * round), support::owner(101 + 2 * round));
        let (ttl, all) = (Duration::from_millis(200), all_shards());
        let (ra, rb) = tokio::join!(
            s.leases.acquire(&a, &all, support::shards(), ttl),
            s.leases.acquire(&b, &all, support::shards(), ttl),
        );
        let winners = [ra.unwrap(), rb.unwrap()].iter().filter(|r| r.is_some()).count();
        assert!(winners <= 1, "round {round}: both owners got the leases");
        // Let this round's leases go before the next.
        let rows = s.leases.leases().await.unwrap();
        for o in [&a, &b] {
            let held: Vec<_> = rows
                .iter()
                .filter(|r| r.owner.as_ref() == Some(o))
                .map(|r| Lease { shard: r.shard, epoch: r.epoch })
                .collect();
            s.leases.release(o, &held).await.unwrap();
        }
    }
}

pub async fn members_heartbeat_and_leave(s: Stores) {
    let (a, b) = (support::owner(8), support::owner(9));
    s.leases.heartbeat(&a, "127.0.0.1:1", MemberStatus::Owner).await.unwrap();
    s.leases.heartbeat(&b, "127.0.0.1:2", MemberStatus::Standby).await.unwrap();
    s.leases.heartbeat(&a, "127.0.0.1:1", MemberStatus::Left).await.unwrap();
    // A heartbeat after leaving (a late timer) does not bring a member back.
    s.leases.heartbeat(&a, "127.0.0.1:1", MemberStatus::Owner).await.unwrap();
    let members = s.leases.members().await.unwrap();
    let status = |o: &Owner| members.iter().find(|m| &m.owner == o).map(|m| (m.status, m.address.clone()));
    assert_eq!(status(&a), Some((MemberStatus::Left, "127.0.0.1:1".into())));
    assert_eq!(status(&b), Some((MemberStatus::Standby, "127.0.0.1:2".into())));
}

macro_rules! conformance {
    ($adapter:ident, $make:path) => {
        mod $adapter {
            #[tokio::test]
            async fn appends_assign_increasing_positions_and_orders_round_trip() {
                super::appends_assign_increasing_positions_and_orders_round_trip($make().await).await;
            }

            #[tokio::test]
            async fn a_duplicate_key_or_cart_skips_only_its_own_entry() {
                super::a_duplicate_key_or_cart_skips_only_its_own_entry($make().await).await;
            }

            #[tokio::test]
            async fn stock_facts_are_per_sku_in_position_order_after_a_watermark_or_for_named_orders() {
                super::stock_facts_are_per_sku_in_position_order_after_a_watermark_or_for_named_orders($make().await)
                    .await;
            }

            #[tokio::test]
            async fn every_skus_facts_page_in_position_order_without_splitting_or_repeating_a_position() {
                super::every_skus_facts_page_in_position_order_without_splitting_or_repeating_a_position($make().await)
                    .await;
            }

            #[tokio::test]
            async fn snapshots_of_one_kind_page_in_id_order() {
                super::snapshots_of_one_kind_page_in_id_order($make().await).await;
            }

            #[tokio::test]
            async fn orders_list_newest_first_with_a_cursor() {
                super::orders_list_newest_first_with_a_cursor($make().await).await;
            }

            #[tokio::test]
            async fn snapshots_round_trip_and_only_move_forward() {
                super::snapshots_round_trip_and_only_move_forward($make().await).await;
            }

            #[tokio::test]
            async fn the_catalog_lists_in_sku_order_reads_one_and_upserts_replace() {
                super::the_catalog_lists_in_sku_order_reads_one_and_upserts_replace($make().await).await;
            }

            #[tokio::test]
            async fn api_keys_round_trip_stay_unique_and_stop_matching_once_revoked() {
                super::api_keys_round_trip_stay_unique_and_stop_matching_once_revoked($make().await).await;
            }

            #[tokio::test]
            async fn leases_are_taken_all_or_none_and_every_take_bumps_the_epoch() {
                super::leases_are_taken_all_or_none_and_every_take_bumps_the_epoch($make().await).await;
            }

            #[tokio::test]
            async fn a_take_over_after_expiry_fences_every_write_of_the_old_owner() {
                super::a_take_over_after_expiry_fences_every_write_of_the_old_owner($make().await).await;
            }

            #[tokio::test]
            async fn a_released_lease_is_taken_at_once() {
                super::a_released_lease_is_taken_at_once($make().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn only_one_of_two_racing_owners_gets_the_leases() {
                super::only_one_of_two_racing_owners_gets_the_leases($make().await).await;
            }

            #[tokio::test]
            async fn members_heartbeat_and_leave() {
                super::members_heartbeat_and_leave($make().await).await;
            }
        }
    };
}

conformance!(memory, crate::support::memory);
conformance!(sqlite, crate::support::sqlite);
conformance!(postgres, crate::support::postgres);
