//! Redis failures the edge must ride out without a restart, each against a
//! throwaway `redis-server` the test starts (never the shared one): refused
//! credentials (a Redis restarted with another password, then with ours again),
//! an established subscription that drops (the feed resubscribes and catches up
//! on what it missed), and the `redis` breaker failing calls fast meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use flashcore_actors::breaker::CircuitState;
use flashcore_actors::ports::AvailabilityFeed;
use flashcore_domain::{Availability, Sku};
use flashcore_persistence::redis::{Redis, RedisFeed};
use flashcore_test_support::eventually;
use tokio::time::Instant;

const OP_TIMEOUT: Duration = Duration::from_millis(300);
const WITHIN: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A throwaway redis-server on `port`, requiring `password` if given; killed on drop.
struct Server(tokio::process::Child);

impl Server {
    async fn start(port: u16, password: Option<&str>) -> Server {
        let mut args = vec!["--port".to_owned(), port.to_string(), "--bind".into(), "127.0.0.1".into()];
        args.extend(["--save", "", "--appendonly", "no"].map(String::from));
        if let Some(p) = password {
            args.extend(["--requirepass".to_owned(), p.to_owned()]);
        }
        let child = tokio::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting a throwaway redis-server (is it installed?)");
        // Listening once a TCP connect succeeds.
        eventually(WITHIN, "redis-server to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        Server(child)
    }

    async fn stop(mut self) {
        self.0.kill().await.unwrap();
        self.0.wait().await.unwrap();
    }
}

fn avail(sold: u64) -> Availability {
    Availability { total: 100, sold, held: 0, available: 100 - sold }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_retried_and_recover_without_a_restart() {
    // Arrange: Redis up with our password; the edge connects.
    let port = free_port();
    let url = format!("redis://:right-password@127.0.0.1:{port}");
    let server = Server::start(port, Some("right-password")).await;
    let edge = Redis::new(&url, "fc-auth:", OP_TIMEOUT).unwrap();
    edge.ping().await.expect("connects with the right password");

    // Act: Redis restarts with another password.
    server.stop().await;
    let server = Server::start(port, Some("rotated-password")).await;

    // Assert: refused, and after a few refusals the breaker answers at once.
    eventually(WITHIN, "the breaker to open on refused credentials", || async {
        let _ = edge.ping().await;
        (edge.breaker().state() == CircuitState::Open).then_some(())
    })
    .await;
    let started = Instant::now();
    let refused = edge.ping().await;
    let fast = started.elapsed();
    assert!(refused.is_err());
    assert!(fast < Duration::from_millis(50), "an open breaker answers at once, took {fast:?}");
    println!("redis: refused credentials answered in {fast:?} once the breaker opened");

    // Act: Redis restarts with our password again.
    server.stop().await;
    let server = Server::start(port, Some("right-password")).await;
    let back = Instant::now();

    // Assert: the same edge recovers by itself, within one probe interval (≤ 4 s).
    eventually(WITHIN, "the edge to reconnect with its credentials", || async { edge.ping().await.ok() }).await;
    let recovered = back.elapsed();
    println!("redis: recovered {recovered:?} after Redis came back with the right password");
    assert!(recovered < Duration::from_secs(5), "{recovered:?}");
    assert_eq!(edge.breaker().state(), CircuitState::Closed);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_from_the_start_recovers_once_redis_accepts_it() {
    let port = free_port();
    let url = format!("redis://:ours@127.0.0.1:{port}");
    let server = Server::start(port, Some("theirs")).await;
    let edge = Redis::new(&url, "fc-auth-start:", OP_TIMEOUT).unwrap();
    let refused = edge.ping().await.expect_err("refused credentials");
    assert!(refused.message().contains("WRONGPASS") || refused.message().contains("auth"), "{refused}");

    server.stop().await;
    let server = Server::start(port, Some("ours")).await;
    eventually(WITHIN, "the edge to connect once its password is accepted", || async { edge.ping().await.ok() }).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_resubscribes_and_catches_up_on_what_it_missed() {
    // Arrange: a feed subscribed and receiving another node's values.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let server = Server::start(port, None).await;
    let prefix = "fc-resub:";
    let feed = RedisFeed::start(&Redis::new(&url, prefix, OP_TIMEOUT).unwrap());
    let other = RedisFeed::start(&Redis::new(&url, prefix, OP_TIMEOUT).unwrap());
    let s = Sku::parse("RESUB-1").unwrap();
    let publisher = other.publisher(&s);
    publisher.publish(avail(1));
    eventually(WITHIN, "the first value to arrive", || async { (feed.latest(&s) == Some(avail(1))).then_some(()) })
        .await;

    // Act: the established subscriptions are dropped by the server, and a value is
    // written and published in the same transaction, so no subscriber can hear it:
    // only a resubscription that resyncs from the hash finds it.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let missed = serde_json::to_string(&avail(7)).unwrap();
    let message = serde_json::json!({ "sku": s.as_str(), "availability": avail(7) }).to_string();
    let (killed,): (u64,) = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .cmd("HSET")
        .arg(format!("{prefix}avail"))
        .arg(s.as_str())
        .arg(missed)
        .ignore()
        .cmd("PUBLISH")
        .arg(format!("{prefix}avail"))
        .arg(message)
        .ignore()
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(killed >= 2, "both feeds' subscriptions were dropped ({killed})");

    // Assert: the feed resubscribed and caught up on the latest value, and hears new ones.
    let dropped = Instant::now();
    eventually(WITHIN, "the feed to catch up on the value it missed", || async {
        (feed.latest(&s) == Some(avail(7))).then_some(())
    })
    .await;
    println!("redis: a dropped subscription caught up {:?} after the drop", dropped.elapsed());
    publisher.publish(avail(9));
    eventually(WITHIN, "new values after the resubscription", || async {
        (feed.latest(&s) == Some(avail(9))).then_some(())
    })
    .await;
    feed.shutdown().await;
    other.shutdown().await;
    server.stop().await;
}
