//! One conformance suite for the edge ports (idempotency keys, rate limits, the
//! availability feed): every case is written once, as an async fn over an
//! [`Edge`], and runs against the in-process fallbacks and against Redis.
//!
//! The Redis cases use the machine's Redis (`redis://127.0.0.1:6379`, or
//! `FLASHCORE_TEST_REDIS`) under a fresh prefix `fc-test-<uuid>:` per test, deleted
//! afterwards. They fail, never skip, when Redis is unreachable. The outage case
//! starts a throwaway `redis-server` of its own and never touches the shared one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcore_actors::ports::AvailabilityFeed;
use flashcore_domain::{Availability, Sku};
use flashcore_http_ports::{IdempotencyClaim, IdempotencyStore, Quota, RateDecision, RateLimiter, StoredResponse};
use flashcore_persistence::local::{LocalIdempotency, LocalRateLimiter};
use flashcore_persistence::memory::LocalFeed;
use flashcore_persistence::redis::{Redis, RedisFeed};
use flashcore_test_support::test_redis_url;
use support::{WITHIN, eventually};
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Support
// ---------------------------------------------------------------------------

const OP_TIMEOUT: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(10);

/// A fresh Redis namespace, deleted at the end of the test (and, best effort,
/// when the test panics first).
struct RedisNamespace {
    url: String,
    edge: Redis,
    cleaned: bool,
}

impl RedisNamespace {
    /// Fails the test with a clear message when Redis is unreachable.
    async fn new() -> Self {
        let url = test_redis_url();
        let prefix = format!("fc-test-{}:", uuid::Uuid::new_v4());
        let edge = Redis::new(&url, &prefix, OP_TIMEOUT).expect("FLASHCORE_TEST_REDIS is not a valid Redis URL");
        if let Err(e) = edge.ping().await {
            panic!(
                "Redis is unreachable at {url} ({e}). The Redis edge tests need it: start redis-server \
                 or point FLASHCORE_TEST_REDIS at one."
            );
        }
        RedisNamespace { url, edge, cleaned: false }
    }

    /// Another edge node on the same namespace (its own connection).
    fn other_node(&self) -> Redis {
        Redis::new(&self.url, self.edge.prefix(), OP_TIMEOUT).unwrap()
    }

    async fn cleanup(mut self) {
        self.edge.delete_prefix().await.expect("deleting the test prefix");
        self.cleaned = true;
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // The test panicked before `cleanup`: delete synchronously, best effort.
        let Ok(client) = redis::Client::open(self.url.as_str()) else { return };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else { return };
        let pattern = format!("{}*", self.edge.prefix());
        let mut cursor = 0u64;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query::<(u64, Vec<String>)>(&mut con)
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = redis::cmd("UNLINK").arg(keys).query::<u64>(&mut con);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// The edge ports of one implementation, plus a factory of feed nodes.
struct Edge {
    idem: Arc<dyn IdempotencyStore>,
    limiter: Arc<dyn RateLimiter>,
    /// Starts a feed node (for Redis: a new node on the same namespace).
    new_feed: Box<dyn Fn() -> Arc<dyn AvailabilityFeed> + Send + Sync>,
    /// Redis feeds started, stopped before the namespace is deleted (so no late
    /// flush writes into it again).
    feeds: Arc<Mutex<Vec<Arc<RedisFeed>>>>,
    redis: Option<RedisNamespace>,
}

impl Edge {
    fn local() -> Edge {
        Edge {
            idem: Arc::new(LocalIdempotency::default()),
            limiter: Arc::new(LocalRateLimiter::default()),
            new_feed: Box::new(|| Arc::new(LocalFeed::default())),
            feeds: Arc::default(),
            redis: None,
        }
    }

    async fn redis() -> Edge {
        let ns = RedisNamespace::new().await;
        let edge = ns.edge.clone();
        let feeds: Arc<Mutex<Vec<Arc<RedisFeed>>>> = Arc::default();
        let started = Arc::clone(&feeds);
        Edge {
            idem: Arc::new(edge.clone()),
            limiter: Arc::new(edge.clone()),
            new_feed: Box::new(move || {
                let feed = RedisFeed::start(&edge);
                started.lock().unwrap().push(Arc::clone(&feed));
                feed
            }),
            feeds,
            redis: Some(ns),
        }
    }

    async fn cleanup(self) {
        let feeds = std::mem::take(&mut *self.feeds.lock().unwrap());
        for feed in feeds {
            feed.shutdown().await;
        }
        if let Some(ns) = self.redis {
            ns.cleanup().await;
        }
    }
}

/// Runs `case` against both implementations, as `<case>::local` and `<case>::redis`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local() {
                let edge = super::Edge::local();
                super::$case(&edge).await;
                edge.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                let edge = super::Edge::redis().await;
                super::$case(&edge).await;
                edge.cleanup().await;
            }
        }
    )*};
}

conformance!(
    idempotency_claims_follow_the_key_lifecycle,
    a_released_claim_can_be_acquired_again,
    only_the_owner_can_complete_or_release_a_claim,
    an_abandoned_claim_lapses_after_its_lock_ttl,
    a_completed_response_lapses_after_its_ttl,
    concurrent_claims_of_one_key_acquire_it_exactly_once,
    rate_limit_allows_a_burst_then_one_request_per_interval,
    rate_limit_keys_are_independent,
    the_feed_serves_the_latest_value_and_streams_changes,
);

fn response(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into()), ("location".into(), "/v1/orders/1".into())],
        body: body.into(),
    }
}

fn key() -> String {
    format!("client-1:{}", uuid::Uuid::new_v4())
}

const LONG: Duration = Duration::from_secs(60);

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn avail(sold: u64) -> Availability {
    Availability { total: 100, sold, held: 1, available: 99 - sold }
}

// ---------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------

async fn idempotency_claims_follow_the_key_lifecycle(edge: &Edge) {
    let (k, idem) = (key(), &edge.idem);
    // A body with quotes, slashes and non-ASCII survives the round trip verbatim.
    let stored = response(r#"{"id":"o/1","note":"caf\u00e9 \"ok\"","total":12.5,"items":[]}"#);

    assert_eq!(idem.claim(&k, "fp-a", "owner-1", LONG).await.unwrap(), IdempotencyClaim::Acquired);
    assert_eq!(idem.claim(&k, "fp-a", "owner-2", LONG).await.unwrap(), IdempotencyClaim::InProgress);
    assert_eq!(idem.claim(&k, "fp-b", "owner-3", LONG).await.unwrap(), IdempotencyClaim::Mismatch);

    idem.complete(&k, "owner-1", &stored, LONG).await.unwrap();
    assert_eq!(idem.claim(&k, "fp-a", "owner-4", LONG).await.unwrap(), IdempotencyClaim::Completed(stored.clone()));
    assert_eq!(idem.claim(&k, "fp-b", "owner-5", LONG).await.unwrap(), IdempotencyClaim::Mismatch);
    // Replays do not consume the stored response.
    assert_eq!(idem.claim(&k, "fp-a", "owner-6", LONG).await.unwrap(), IdempotencyClaim::Completed(stored));
}

async fn a_released_claim_can_be_acquired_again(edge: &Edge) {
    let (k, idem) = (key(), &edge.idem);
    assert_eq!(idem.claim(&k, "fp-a", "owner-1", LONG).await.unwrap(), IdempotencyClaim::Acquired);
    idem.release(&k, "owner-1").await.unwrap();
    // Free again, for any body.
    assert_eq!(idem.claim(&k, "fp-b", "owner-2", LONG).await.unwrap(), IdempotencyClaim::Acquired);
    // Releasing a completed entry changes nothing.
    idem.complete(&k, "owner-2", &response("{}"), LONG).await.unwrap();
    idem.release(&k, "owner-2").await.unwrap();
    assert_eq!(idem.claim(&k, "fp-b", "owner-3", LONG).await.unwrap(), IdempotencyClaim::Completed(response("{}")));
}

async fn only_the_owner_can_complete_or_release_a_claim(edge: &Edge) {
    let (k, idem) = (key(), &edge.idem);
    assert_eq!(idem.claim(&k, "fp-a", "owner-1", LONG).await.unwrap(), IdempotencyClaim::Acquired);

    idem.complete(&k, "intruder", &response("{}"), LONG).await.unwrap();
    idem.release(&k, "intruder").await.unwrap();
    assert_eq!(idem.claim(&k, "fp-a", "owner-2", LONG).await.unwrap(), IdempotencyClaim::InProgress);

    idem.complete(&k, "owner-1", &response("mine"), LONG).await.unwrap();
    // Once completed, not even the owner can overwrite or release it.
    idem.complete(&k, "owner-1", &response("again"), LONG).await.unwrap();
    idem.release(&k, "owner-1").await.unwrap();
    assert_eq!(idem.claim(&k, "fp-a", "owner-3", LONG).await.unwrap(), IdempotencyClaim::Completed(response("mine")));

    // Completing or releasing a key nobody claimed creates nothing.
    let other = key();
    idem.complete(&other, "owner-1", &response("ghost"), LONG).await.unwrap();
    idem.release(&other, "owner-1").await.unwrap();
    assert_eq!(idem.claim(&other, "fp-a", "owner-1", LONG).await.unwrap(), IdempotencyClaim::Acquired);
}

async fn an_abandoned_claim_lapses_after_its_lock_ttl(edge: &Edge) {
    let (k, idem) = (key(), Arc::clone(&edge.idem));
    assert_eq!(
        idem.claim(&k, "fp-a", "dead-node", Duration::from_millis(200)).await.unwrap(),
        IdempotencyClaim::Acquired
    );
    assert_eq!(idem.claim(&k, "fp-a", "retry-0", LONG).await.unwrap(), IdempotencyClaim::InProgress);

    let mut attempt = 0;
    eventually(WITHIN, "the abandoned claim to lapse", || {
        attempt += 1;
        let (idem, k, owner) = (Arc::clone(&idem), k.clone(), format!("retry-{attempt}"));
        async move {
            match idem.claim(&k, "fp-a", &owner, LONG).await.unwrap() {
                IdempotencyClaim::Acquired => Some(()),
                IdempotencyClaim::InProgress => None,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    // The dead node can no longer complete what it no longer holds.
    idem.complete(&k, "dead-node", &response("late"), LONG).await.unwrap();
    assert_eq!(idem.claim(&k, "fp-a", "retry-x", LONG).await.unwrap(), IdempotencyClaim::InProgress);
}

async fn a_completed_response_lapses_after_its_ttl(edge: &Edge) {
    let (k, idem) = (key(), Arc::clone(&edge.idem));
    assert_eq!(idem.claim(&k, "fp-a", "owner-1", LONG).await.unwrap(), IdempotencyClaim::Acquired);
    idem.complete(&k, "owner-1", &response("{}"), Duration::from_millis(300)).await.unwrap();
    assert_eq!(idem.claim(&k, "fp-a", "owner-2", LONG).await.unwrap(), IdempotencyClaim::Completed(response("{}")));

    eventually(WITHIN, "the stored response to lapse", || {
        let (idem, k) = (Arc::clone(&idem), k.clone());
        async move {
            match idem.claim(&k, "fp-b", "owner-3", LONG).await.unwrap() {
                IdempotencyClaim::Acquired => Some(()),
                IdempotencyClaim::Mismatch => None,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
}

async fn concurrent_claims_of_one_key_acquire_it_exactly_once(edge: &Edge) {
    let k = key();
    let claims = (0..50).map(|i| {
        let (idem, k) = (Arc::clone(&edge.idem), k.clone());
        tokio::spawn(async move { idem.claim(&k, "fp-a", &format!("owner-{i}"), LONG).await.unwrap() })
    });
    let results = futures::future::join_all(claims).await;
    let acquired = results.iter().filter(|r| matches!(r, Ok(IdempotencyClaim::Acquired))).count();
    let in_progress = results.iter().filter(|r| matches!(r, Ok(IdempotencyClaim::InProgress))).count();
    assert_eq!((acquired, in_progress), (1, 49), "{results:?}");
}

// ---------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------

async fn rate_limit_allows_a_burst_then_one_request_per_interval(edge: &Edge) {
    let (k, limiter) = (key(), &edge.limiter);
    let quota = Quota { per_second: 10, burst: 5 };
    for i in 0..5 {
        assert_eq!(limiter.check(&k, quota).await.unwrap(), RateDecision::Allowed, "request {i} of the burst");
    }
    let RateDecision::Limited { retry_after } = limiter.check(&k, quota).await.unwrap() else {
        panic!("the request after the burst must be limited");
    };
    assert!(retry_after >= Duration::from_millis(1) && retry_after <= Duration::from_millis(100), "{retry_after:?}");

    // Waiting what it said is enough; then the bucket is empty again.
    tokio::time::sleep(retry_after).await;
    assert_eq!(limiter.check(&k, quota).await.unwrap(), RateDecision::Allowed);
    assert!(matches!(limiter.check(&k, quota).await.unwrap(), RateDecision::Limited { .. }));
}

async fn rate_limit_keys_are_independent(edge: &Edge) {
    let (a, b, limiter) = (key(), key(), &edge.limiter);
    let quota = Quota { per_second: 1, burst: 2 };
    assert_eq!(limiter.check(&a, quota).await.unwrap(), RateDecision::Allowed);
    assert_eq!(limiter.check(&a, quota).await.unwrap(), RateDecision::Allowed);
    let RateDecision::Limited { retry_after } = limiter.check(&a, quota).await.unwrap() else {
        panic!("a is over its quota");
    };
    assert!(retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1), "{retry_after:?}");
    assert_eq!(limiter.check(&b, quota).await.unwrap(), RateDecision::Allowed);
    assert_eq!(limiter.check(&b, quota).await.unwrap(), RateDecision::Allowed);
}

// ---------------------------------------------------------------------------
// Availability feed
// ---------------------------------------------------------------------------

async fn the_feed_serves_the_latest_value_and_streams_changes(edge: &Edge) {
    let feed = (edge.new_feed)();
    let s = sku("FEED-1");
    assert_eq!(feed.latest(&s), None);
    let publisher = feed.publisher(&s);
    publisher.publish(avail(1));
    publisher.publish(avail(2));
    // Served from the local mirror at once, for Redis too.
    assert_eq!(feed.latest(&s), Some(avail(2)));

    let mut rx = feed.subscribe(&s);
    assert_eq!(*rx.borrow_and_update(), Some(avail(2)), "a subscriber starts from the latest value");
    publisher.publish(avail(3));
    tokio::time::timeout(DEADLINE, rx.changed()).await.expect("no change seen").unwrap();
    assert_eq!(*rx.borrow_and_update(), Some(avail(3)));
}

/// Two edge nodes on one namespace.
async fn two_nodes() -> (RedisNamespace, Arc<RedisFeed>, Arc<RedisFeed>) {
    let ns = RedisNamespace::new().await;
    let a = RedisFeed::start(&ns.edge);
    let b = RedisFeed::start(&ns.other_node());
    (ns, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_value_published_on_one_node_reaches_the_others() {
    let (ns, a, b) = two_nodes().await;
    let s = sku("FANOUT-1");
    let mut rx = b.subscribe(&s);
    assert_eq!(*rx.borrow_and_update(), None);

    let publisher = a.publisher(&s);
    publisher.publish(avail(1));
    publisher.publish(avail(7)); // coalesced: the latest value wins

    eventually(WITHIN, "node B to see node A's value", || async { (b.latest(&s) == Some(avail(7))).then_some(()) })
        .await;
    let seen = tokio::time::timeout(DEADLINE, rx.wait_for(|v| *v == Some(avail(7)))).await;
    assert!(matches!(seen, Ok(Ok(_))), "B's subscriber never saw the value");

    a.shutdown().await;
    b.shutdown().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_started_later_loads_the_values_published_before() {
    let ns = RedisNamespace::new().await;
    let a = RedisFeed::start(&ns.edge);
    let s = sku("RESYNC-1");
    a.publisher(&s).publish(avail(4));
    // Shutting down flushes what is pending.
    a.shutdown().await;

    let late = RedisFeed::start(&ns.other_node());
    eventually(WITHIN, "the late node to load the value", || async {
        (late.latest(&s) == Some(avail(4))).then_some(())
    })
    .await;

    late.shutdown().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_values_never_override_a_sku_this_node_publishes() {
    let (ns, a, b) = two_nodes().await;
    let (mine, marker) = (sku("OWNED-1"), sku("MARKER-1"));
    b.publisher(&mine).publish(avail(5));

    // A publishes the contested SKU, then a marker: once B has the marker it has
    // also processed the contested message (same pipeline, in order).
    a.publisher(&mine).publish(avail(1));
    a.publisher(&marker).publish(avail(2));
    eventually(WITHIN, "node B to see the marker", || async { (b.latest(&marker) == Some(avail(2))).then_some(()) })
        .await;
    assert_eq!(b.latest(&mine), Some(avail(5)), "B's own value is the truth for B");

    a.shutdown().await;
    b.shutdown().await;
    ns.cleanup().await;
}

// ---------------------------------------------------------------------------
// Outage (a throwaway redis-server, never the shared one)
// ---------------------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_redis(port: u16) -> tokio::process::Child {
    tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting a throwaway redis-server (is it installed?)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_redis_is_down_operations_fail_fast_and_publishing_stays_local_until_it_returns() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let timeout = Duration::from_millis(300);
    // Built with nothing listening: no I/O, no error.
    let edge = Redis::new(&url, "fc-outage:", timeout).unwrap();
    let feed = RedisFeed::start(&edge);
    let s = sku("OUTAGE-1");
    let publisher = feed.publisher(&s);

    let started = Instant::now();
    assert!(edge.claim("k", "fp", "o", LONG).await.is_err());
    assert!(edge.check("k", Quota { per_second: 1, burst: 1 }).await.is_err());
    assert!(started.elapsed() < timeout * 2 + Duration::from_millis(500), "took {:?}", started.elapsed());

    publisher.publish(avail(3));
    assert_eq!(feed.latest(&s), Some(avail(3)), "publishing keeps working locally");

    let mut server = start_redis(port);
    eventually(WITHIN, "the edge to reconnect", || async { edge.ping().await.ok() }).await;
    assert_eq!(edge.claim("k", "fp", "o", LONG).await.unwrap(), IdempotencyClaim::Acquired);

    // The value queued during the outage goes out once Redis is back.
    let observer = RedisFeed::start(&Redis::new(&url, "fc-outage:", timeout).unwrap());
    eventually(WITHIN, "the queued value to reach redis", || async {
        (observer.latest(&s) == Some(avail(3))).then_some(())
    })
    .await;
    // And the feed that started during the outage has subscribed since.
    let theirs = sku("OUTAGE-2");
    observer.publisher(&theirs).publish(avail(8));
    eventually(WITHIN, "the early feed to resubscribe", || async {
        (feed.latest(&theirs) == Some(avail(8))).then_some(())
    })
    .await;

    feed.shutdown().await;
    observer.shutdown().await;
    server.kill().await.unwrap();
}
