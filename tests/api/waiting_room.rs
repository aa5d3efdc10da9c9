//! The waiting room (issue 17, DESIGN §12), against the real binary on SQLite:
//! the pre-start draw is a fair permutation, admission keeps its rate, cart
//! edits need a valid pass, a sell-out closes the line at once (also on the
//! SSE stream), and a `kill -9` keeps the line.

use std::time::{Duration, Instant};

use flashcore_domain::{CartId, Sku, Timestamp};
use flashcore_http::cart_tokens::CartTokens;
use flashcore_tests::{Api, Process, TEST_ADMIN_KEY, TestCart, assert_problem, data_dir, eventually};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "waiting-room-secret-waiting-room-secret";

fn env(dir: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    vec![
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ("FLASHCORE_TOKEN_SECRET", SECRET.to_owned()),
        ("FLASHCORE_ADMIN_KEY", TEST_ADMIN_KEY.to_owned()),
    ]
}

async fn start(dir: &tempfile::TempDir) -> Process {
    let env = env(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Process::start(&env).await
}

fn rfc3339_in(secs: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let t = now + secs;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

/// `PUT /v1/admin/products/{sku}` with `total` units, an optional sale start
/// and waiting room (`(admit_per_second, pass_ttl_secs)`).
async fn put_product(api: &Api, sku: &str, total: u64, starts: Option<String>, room: Option<(u32, u32)>) -> Value {
    let room = room.map(|(rate, ttl)| json!({ "admit_per_second": rate, "pass_ttl_secs": ttl }));
    let res = api
        .client
        .put(api.url(&format!("/v1/admin/products/{sku}")))
        .bearer_auth(TEST_ADMIN_KEY)
        .json(&json!({
            "title": "Sneaker", "price": { "amount": 12_000, "currency": "EUR" }, "max_per_order": 1,
            "sale_starts_at": starts, "total": total, "waiting_room": room,
        }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "PUT product: {}", res.status());
    res.json().await.unwrap()
}

async fn admin(api: &Api, path: &str) -> reqwest::Response {
    api.client.post(api.url(path)).bearer_auth(TEST_ADMIN_KEY).send().await.unwrap()
}

async fn join(api: &Api, cart: &TestCart, sku: &str) -> reqwest::Response {
    api.client.post(api.url(&format!("/v1/products/{sku}/queue"))).bearer_auth(&cart.token).send().await.unwrap()
}

async fn joined(api: &Api, cart: &TestCart, sku: &str) -> Value {
    let res = join(api, cart, sku).await;
    assert_eq!(res.status(), StatusCode::CREATED, "join");
    res.json().await.unwrap()
}

async fn ticket(api: &Api, cart: &TestCart, sku: &str, id: &str) -> Value {
    let res = api
        .client
        .get(api.url(&format!("/v1/products/{sku}/queue/{id}")))
        .bearer_auth(&cart.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET ticket");
    res.json().await.unwrap()
}

async fn put_with_pass(api: &Api, cart: &TestCart, sku: &str, pass: Option<&str>) -> reqwest::Response {
    let mut req = api
        .client
        .put(api.url(&cart.path(&format!("/items/{sku}"))))
        .bearer_auth(&cart.token)
        .json(&json!({ "quantity": 1 }));
    if let Some(p) = pass {
        req = req.header("Waiting-Room-Pass", p);
    }
    req.send().await.unwrap()
}

/// Joins `n` new carts, 64 at a time; returns (cart, ticket id) in join order
/// (ticket numbers follow arrival at the server).
async fn join_many(api: &Api, sku: &str, n: usize) -> Vec<(TestCart, String)> {
    let mut tickets: Vec<(TestCart, String)> = futures::stream::iter(0..n)
        .map(|_| async {
            let cart = api.new_cart().await;
            let t = joined(api, &cart, sku).await;
            (cart, t["ticket_id"].as_str().unwrap().to_owned())
        })
        .buffered(64)
        .collect()
        .await;
    tickets.sort_by_key(|(_, id)| id.parse::<u64>().unwrap());
    tickets
}

async fn room(api: &Api, sku: &str) -> Value {
    api.admin_get(&format!("/v1/admin/products/{sku}/queue")).await
}

async fn wait_admitted(api: &Api, cart: &TestCart, sku: &str, id: &str) -> Value {
    eventually(Duration::from_secs(20), "the ticket to be admitted", || async {
        let t = ticket(api, cart, sku, id).await;
        (t["state"] == "admitted").then_some(t)
    })
    .await
}

#[tokio::test]
async fn pre_start_joiners_are_drawn_into_a_random_permutation() {
    const N: usize = 10_000;
    let dir = data_dir();
    let p = start(&dir).await;
    let sku = "DRAW-1";
    put_product(&p, sku, 100, Some(rfc3339_in(3_600)), Some((1, 60))).await;
    // Paused: the draw happens at the start, but nobody is admitted while we read.
    assert_eq!(admin(&p, &format!("/v1/admin/products/{sku}/queue/pause")).await.status(), StatusCode::OK);

    let tickets = join_many(&p, sku, N).await;
    let (cart, id) = &tickets[0];
    let before = ticket(&p, cart, sku, id).await;
    assert_eq!(before["state"], "waiting");
    assert_eq!(before["position"], Value::Null, "no place before the draw");
    let again = join(&p, cart, sku).await;
    assert_eq!(again.status(), StatusCode::OK, "one ticket per cart");
    assert_eq!(again.json::<Value>().await.unwrap()["ticket_id"], id.as_str());

    // The sale starts now: the draw.
    put_product(&p, sku, 100, Some(rfc3339_in(-1)), Some((1, 60))).await;
    eventually(Duration::from_secs(10), "the draw", || async { (room(&p, sku).await["drawn"] == true).then_some(()) })
        .await;

    let positions: Vec<u64> = futures::stream::iter(&tickets)
        .map(|(cart, id)| async { ticket(&p, cart, sku, id).await["position"].as_u64().expect("a place") })
        .buffered(64)
        .collect()
        .await;
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert!(sorted.iter().copied().eq(1..=N as u64), "every place exactly once");
    // Spearman's rho between arrival and place (sd ≈ 0.01 for a random
    // permutation); deciles of arrival among the first 1,000 places (≈100
    // each, sd ≈ 9.5); fixed points (Poisson(1)).
    let n = N as f64;
    let d2: f64 = positions.iter().enumerate().map(|(i, p)| (i as f64 + 1.0 - *p as f64).powi(2)).sum();
    let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
    assert!(rho.abs() < 0.05, "rank correlation between arrival and place: {rho}");
    let mut deciles = [0u32; 10];
    for (i, p) in positions.iter().enumerate() {
        if *p <= 1_000 {
            deciles[i * 10 / N] += 1;
        }
    }
    assert!(deciles.iter().all(|d| (52..=148).contains(d)), "arrival deciles in the first 1,000: {deciles:?}");
    let fixed = positions.iter().enumerate().filter(|(i, p)| *i as u64 + 1 == **p).count();
    assert!(fixed <= 10, "{fixed} kept their arrival place");

    // Later arrivals queue behind the pool, first come first served.
    let late = p.new_cart().await;
    assert_eq!(joined(&p, &late, sku).await["position"], N as u64 + 1);
}

#[tokio::test]
async fn admission_keeps_the_configured_rate() {
    const RATE: u64 = 20;
    let dir = data_dir();
    let p = start(&dir).await;
    let sku = "RATE-1";
    put_product(&p, sku, 10_000, None, Some((RATE as u32, 600))).await;
    admin(&p, &format!("/v1/admin/products/{sku}/queue/pause")).await;
    join_many(&p, sku, 400).await;
    assert_eq!(room(&p, sku).await["admitted"], 0, "paused: nobody admitted");

    let resumed = admin(&p, &format!("/v1/admin/products/{sku}/queue/resume")).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let (t0, a0) = eventually(Duration::from_secs(5), "the first admissions", || async {
        let a = room(&p, sku).await["admitted"].as_u64().unwrap();
        (a > 0).then(|| (Instant::now(), a))
    })
    .await;
    // Measure over at least 10 s.
    let (t1, a1) = eventually(Duration::from_secs(20), "10 s of admissions", || async {
        let a = room(&p, sku).await["admitted"].as_u64().unwrap();
        (t0.elapsed() >= Duration::from_secs(10)).then(|| (Instant::now(), a))
    })
    .await;
    let rate = (a1 - a0) as f64 / (t1 - t0).as_secs_f64();
    assert!((rate - RATE as f64).abs() <= RATE as f64 * 0.10, "admitted {rate:.2}/s at a configured {RATE}/s");

    // An admin changes the rate; the room shows it.
    let res = p
        .client
        .put(p.url(&format!("/v1/admin/products/{sku}/queue/rate")))
        .bearer_auth(TEST_ADMIN_KEY)
        .json(&json!({ "admit_per_second": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(room(&p, sku).await["admit_per_second"], 5);
    let bad = p
        .client
        .put(p.url(&format!("/v1/admin/products/{sku}/queue/rate")))
        .bearer_auth(TEST_ADMIN_KEY)
        .json(&json!({ "admit_per_second": 0 }))
        .send()
        .await
        .unwrap();
    assert_problem(bad, 422, "invalid-rate").await;
}

#[tokio::test]
async fn cart_edits_need_a_valid_pass_for_their_own_cart() {
    let dir = data_dir();
    let p = start(&dir).await;
    let sku = "PASS-1";
    let product = put_product(&p, sku, 10, None, Some((50, 60))).await;
    assert_eq!(product["waiting_room"]["admit_per_second"], 50);
    let buyer = p.new_cart().await;
    let other = p.new_cart().await;

    // Without a pass: refused, saying where to join; nothing held.
    let res = put_with_pass(&p, &buyer, sku, None).await;
    let body = assert_problem(res, 409, "waiting-room-required").await;
    assert_eq!(body["join"], format!("/v1/products/{sku}/queue"));
    assert_eq!(body["reason"], "missing");
    assert_problem(put_with_pass(&p, &buyer, sku, Some("123.garbage")).await, 409, "waiting-room-required").await;
    assert_eq!(p.available(sku).await, 10);

    // Admitted: the pass works for its own cart only.
    let t = joined(&p, &buyer, sku).await;
    let t = wait_admitted(&p, &buyer, sku, t["ticket_id"].as_str().unwrap()).await;
    let pass = t["pass"].as_str().unwrap();
    assert!(t["pass_expires_at"].is_string());
    let stolen = assert_problem(put_with_pass(&p, &other, sku, Some(pass)).await, 409, "waiting-room-required").await;
    assert_eq!(stolen["reason"], "invalid");
    assert_eq!(put_with_pass(&p, &buyer, sku, Some(pass)).await.status(), StatusCode::OK);
    // Reads come from the availability feed, a moment behind the SKU actor.
    eventually(Duration::from_secs(5), "the unit held", || async { (p.available(sku).await == 9).then_some(()) }).await;
    assert_eq!(buyer.checkout("wr-pass-1").await.status(), StatusCode::CREATED);

    // An expired pass (signed with the server's key, so only its time is wrong).
    let tokens = CartTokens::new(SECRET.as_bytes().to_vec());
    let other_id = CartId::parse(&other.id).unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let expired = tokens.issue_pass(&other_id, &Sku::parse(sku).unwrap(), Timestamp::from_millis(now_ms - 1_000));
    let res = put_with_pass(&p, &other, sku, Some(&expired)).await;
    assert_eq!(assert_problem(res, 409, "waiting-room-required").await["reason"], "expired");
    assert_eq!(p.available(sku).await, 9, "no edit went through without a valid pass");

    // Someone else's ticket is not found; a product without a room has no line.
    let res = p
        .client
        .get(p.url(&format!("/v1/products/{sku}/queue/{}", t["ticket_id"].as_str().unwrap())))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "ticket-not-found").await;
    put_product(&p, "PLAIN-1", 5, None, None).await;
    assert_problem(join(&p, &other, "PLAIN-1").await, 409, "no-waiting-room").await;
    assert_eq!(other.set("PLAIN-1", 1).await.status(), StatusCode::OK, "no pass needed without a room");
}

/// Reads every ticket; returns the admitted ones (cart, ticket) and the rest's
/// poll hints.
async fn split_admitted<'a>(api: &Api, sku: &str, tickets: &'a [(TestCart, String)]) -> Vec<(&'a TestCart, Value)> {
    let mut admitted = Vec::new();
    for (cart, id) in tickets {
        let t = ticket(api, cart, sku, id).await;
        if t["state"] == "admitted" {
            assert_eq!(t["poll_after_ms"], Value::Null, "an admitted ticket needs no more polls");
            admitted.push((cart, t));
        } else {
            assert_eq!(t["state"], "waiting");
            let poll = t["poll_after_ms"].as_u64().expect("a waiting ticket says when to come back");
            assert!((500..=60_000).contains(&poll), "poll after {poll} ms");
        }
    }
    admitted
}

/// Watches the room for `window` and asserts it admits exactly `n` all along.
async fn admitted_stays(api: &Api, sku: &str, n: u64, window: Duration) {
    let t0 = Instant::now();
    eventually(window * 2, "the end of the observation window", || async {
        assert_eq!(room(api, sku).await["admitted"], n, "admitted beyond the free units");
        (t0.elapsed() >= window).then_some(())
    })
    .await;
}

#[tokio::test]
async fn admission_stops_at_the_units_a_pass_can_still_buy() {
    let dir = data_dir();
    let p = start(&dir).await;
    let sku = "CAP-1";
    // 3 units, 50 admissions a second, passes valid 10 s.
    put_product(&p, sku, 3, None, Some((50, 10))).await;
    admin(&p, &format!("/v1/admin/products/{sku}/queue/pause")).await;
    let tickets = join_many(&p, sku, 8).await;
    assert!(split_admitted(&p, sku, &tickets).await.is_empty());

    // Three free units: three passes, however much the rate allows (it would
    // admit all 8 within 200 ms).
    admin(&p, &format!("/v1/admin/products/{sku}/queue/resume")).await;
    eventually(Duration::from_secs(5), "3 admitted", || async { (room(&p, sku).await["admitted"] == 3).then_some(()) })
        .await;
    admitted_stays(&p, sku, 3, Duration::from_secs(1)).await;
    let admitted = split_admitted(&p, sku, &tickets).await;
    assert_eq!(admitted.len(), 3);

    // One buys with its pass: one unit fewer free, one claim fewer: still 3.
    let (buyer, t) = &admitted[0];
    assert_eq!(put_with_pass(&p, buyer, sku, t["pass"].as_str()).await.status(), StatusCode::OK);
    assert_eq!(buyer.checkout("cap-1").await.status(), StatusCode::CREATED);
    // Another adds with its pass, then changes its mind: the released unit
    // goes to the next in line.
    let (leaver, t) = &admitted[1];
    assert_eq!(put_with_pass(&p, leaver, sku, t["pass"].as_str()).await.status(), StatusCode::OK);
    admitted_stays(&p, sku, 3, Duration::from_millis(500)).await;
    assert_eq!(leaver.set(sku, 0).await.status(), StatusCode::OK);
    eventually(Duration::from_secs(5), "a 4th admitted", || async {
        (room(&p, sku).await["admitted"] == 4).then_some(())
    })
    .await;
    // The third never uses its pass: once it lapses (10 s), its unit is the next one's.
    eventually(Duration::from_secs(20), "a 5th admitted", || async {
        (room(&p, sku).await["admitted"] == 5).then_some(())
    })
    .await;
    let r = room(&p, sku).await;
    assert_eq!((r["sold_out"].as_bool(), r["waiting"].as_u64()), (Some(false), Some(3)));
}

#[tokio::test]
async fn a_sell_out_closes_the_line_at_once() {
    let dir = data_dir();
    let p = start(&dir).await;
    let sku = "SOLD-1";
    put_product(&p, sku, 2, None, Some((2, 60))).await;
    admin(&p, &format!("/v1/admin/products/{sku}/queue/pause")).await;
    let tickets = join_many(&p, sku, 6).await;
    let (last_cart, last_id) = &tickets[5];
    let res = p
        .client
        .get(p.url(&format!("/v1/products/{sku}/queue/{last_id}/events")))
        .bearer_auth(&last_cart.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut stream = Box::pin(res.bytes_stream());
    let mut seen = String::new();

    admin(&p, &format!("/v1/admin/products/{sku}/queue/resume")).await;
    // Two units: the first two in line are admitted, and nobody else.
    for (cart, id) in &tickets[..2] {
        let t = wait_admitted(&p, cart, sku, id).await;
        assert_eq!(put_with_pass(&p, cart, sku, t["pass"].as_str()).await.status(), StatusCode::OK);
        assert_eq!(cart.checkout(&format!("sold-{id}")).await.status(), StatusCode::CREATED);
    }

    // The waiting see it at once: on the stream and on a read.
    while !seen.contains("\"state\":\"sold-out\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("an event in time");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    assert!(seen.contains("event: ticket"));
    assert_eq!(ticket(&p, last_cart, sku, last_id).await["state"], "sold-out");
    let r = room(&p, sku).await;
    assert_eq!(r["sold_out"], true);
    assert!(r["admitted"].as_u64().unwrap() < 6, "admission stopped");
    let late = p.new_cart().await;
    assert_problem(join(&p, &late, sku).await, 409, "sold-out").await;
    let orders = p.admin_get("/v1/admin/orders?limit=100").await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 2, "exactly the stock sold");
}

#[tokio::test]
async fn a_kill_9_keeps_the_line() {
    let dir = data_dir();
    let p = start(&dir).await;
    let sku = "LINE-1";
    put_product(&p, sku, 1_000, None, Some((20, 600))).await;
    admin(&p, &format!("/v1/admin/products/{sku}/queue/pause")).await;
    let tickets = join_many(&p, sku, 60).await;
    admin(&p, &format!("/v1/admin/products/{sku}/queue/resume")).await;
    eventually(Duration::from_secs(10), "some admissions", || async {
        (room(&p, sku).await["admitted"].as_u64().unwrap() >= 10).then_some(())
    })
    .await;
    // Pausing is stored before it answers: the line as it stands is durable.
    assert_eq!(admin(&p, &format!("/v1/admin/products/{sku}/queue/pause")).await.status(), StatusCode::OK);
    let before: Vec<Value> = futures::future::join_all(tickets.iter().map(|(c, id)| ticket(&p, c, sku, id))).await;
    let admitted = before.iter().filter(|t| t["state"] == "admitted").count();
    assert!(admitted >= 10);

    p.signal("KILL");
    drop(p);
    let p = start(&dir).await;
    let r = room(&p, sku).await;
    assert_eq!((r["joined"].as_u64(), r["admitted"].as_u64()), (Some(60), Some(admitted as u64)));
    assert_eq!(r["paused"], true);
    for ((cart, id), was) in tickets.iter().zip(&before) {
        let cart = cart.on(&p);
        let now = ticket(&p, &cart, sku, id).await;
        assert_eq!(now["state"], was["state"], "ticket {id}");
        assert_eq!(now["position"], was["position"], "ticket {id}");
        assert_eq!(now["pass_expires_at"], was["pass_expires_at"], "ticket {id}");
    }
    // The first in line (admitted before the kill) still buys with its pass.
    let (cart, id) = &tickets[0];
    let t = ticket(&p, &cart.on(&p), sku, id).await;
    assert_eq!(put_with_pass(&p, &cart.on(&p), sku, t["pass"].as_str()).await.status(), StatusCode::OK);
}
