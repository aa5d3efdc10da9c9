//! Who may call what. One table lists every route that takes a credential or
//! lives under `/v1/admin`, crossed with every kind of caller; each cell says
//! what the API answers. Every refusal is a problem document, changes nothing,
//! and is counted in `flashcore_auth_denied_total`; every allowed write changes
//! something and every allowed read changes nothing.

use std::time::Duration;

use flashcore_tests::{TEST_ADMIN_KEY, TestApp, TestCart, assert_problem, eventually, problem};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

/// The SKU every row acts on (demo catalog: 400 units, no per-order limit).
const SKU: &str = "MUG-WHITE";

/// A caller, one column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    /// No `Authorization` header.
    None,
    /// The token of the cart the route is about (for an order: the cart that placed it).
    Own,
    /// The token of another, valid cart.
    WrongCart,
    /// An `operator` API key.
    Operator,
    /// An `admin` API key.
    Admin,
}

/// The columns, in the order of [`Row::expect`].
const CREDS: [Cred; 5] = [Cred::None, Cred::Own, Cred::WrongCart, Cred::Operator, Cred::Admin];

/// What one cell expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Allowed: this 2xx status.
    Ok(u16),
    /// Refused: a problem with this status and code.
    No(u16, &'static str),
    /// The column does not apply (there is no "own cart" on an operator route).
    Na,
}

/// Not authenticated.
const E401: Expect = Expect::No(401, "unauthorized");
/// Authenticated but not allowed.
const E403: Expect = Expect::No(403, "forbidden");
/// Another cart's order answers like a missing one, so ids can't be probed.
const E404: Expect = Expect::No(404, "order-not-found");
/// The route has no "own cart" column.
const NA: Expect = Expect::Na;
const OK200: Expect = Expect::Ok(200);
const OK201: Expect = Expect::Ok(201);
const OK204: Expect = Expect::Ok(204);

/// One route. `path` is the route template as axum matches it (it is also the
/// `route` label of the metrics); `{cart_id}`, `{sku}`, `{order_id}` and
/// `{key_id}` are filled from the [`Fixture`].
#[derive(Debug)]
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    /// Sends an `Idempotency-Key` (checkout needs one).
    idempotency_key: bool,
    /// One cell per [`CREDS`] column: none, own cart, wrong cart, operator, admin.
    expect: [Expect; 5],
    /// An allowed write that may leave the state as it was (resuming a running room).
    idempotent: bool,
}

const fn row(method: &'static str, path: &'static str, body: Option<&'static str>, expect: [Expect; 5]) -> Row {
    Row { method, path, body, idempotency_key: false, expect, idempotent: false }
}

const fn idempotent(mut r: Row) -> Row {
    r.idempotent = true;
    r
}

const fn with_key(mut r: Row) -> Row {
    r.idempotency_key = true;
    r
}

const QTY: Option<&str> = Some(r#"{"quantity": 1}"#);
const PAY: Option<&str> = Some(r#"{"payment": {"token": "tok_visa"}, "email": "buyer@example.com"}"#);
const PRODUCT: Option<&str> = Some(r#"{"title": "Renamed mug", "price": {"amount": 999, "currency": "EUR"}}"#);
const RESTOCK: Option<&str> = Some(r#"{"restock": 5}"#);
const RATE: Option<&str> = Some(r#"{"admit_per_second": 7}"#);
/// The waiting room's SKU: its sale starts in a year, so nobody is admitted while a row runs.
const QUEUE_SKU: &str = "SOCKS-RED";
const E404T: Expect = Expect::No(404, "ticket-not-found");
const NEW_KEY: Option<&str> = Some(r#"{"name": "minted-by-the-matrix", "role": "admin"}"#);

/// The auth matrix.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //   method    route template                              body     none  own    wrong  operator admin
    row("GET",    "/v1/carts/{cart_id}",                      None,    [E401, OK200, E403, E403,  E403]),
    row("PUT",    "/v1/carts/{cart_id}/items/{sku}",          QTY,     [E401, OK200, E403, E403,  E403]),
    row("DELETE", "/v1/carts/{cart_id}/items/{sku}",          None,    [E401, OK200, E403, E403,  E403]),
    with_key(row("POST", "/v1/carts/{cart_id}/checkout",      PAY,     [E401, OK201, E403, E403,  E403])),
    row("GET",    "/v1/orders/{order_id}",                    None,    [E401, OK200, E404, OK200, OK200]),
    row("PUT",    "/v1/admin/products/{sku}",                 PRODUCT, [E401, NA,    E403, E403,  OK200]),
    row("POST",   "/v1/admin/products/{sku}/stock",           RESTOCK, [E401, NA,    E403, E403,  OK200]),
    row("GET",    "/v1/admin/orders",                         None,    [E401, NA,    E403, OK200, OK200]),
    row("GET",    "/v1/admin/actors",                         None,    [E401, NA,    E403, OK200, OK200]),
    row("GET",    "/v1/admin/journal",                        None,    [E401, NA,    E403, OK200, OK200]),
    row("GET",    "/v1/admin/cluster",                        None,    [E401, NA,    E403, OK200, OK200]),
    row("GET",    "/v1/admin/dependencies",                   None,    [E401, NA,    E403, OK200, OK200]),
    row("GET",    "/v1/admin/keys",                           None,    [E401, NA,    E403, E403,  OK200]),
    row("POST",   "/v1/admin/keys",                           NEW_KEY, [E401, NA,    E403, E403,  OK201]),
    row("DELETE", "/v1/admin/keys/{key_id}",                  None,    [E401, NA,    E403, E403,  OK204]),
    row("POST",   "/v1/products/{sku}/queue",                 None,    [E401, OK200, OK201, E403, E403]),
    row("GET",    "/v1/products/{sku}/queue/{ticket_id}",     None,    [E401, OK200, E404T, E403, E403]),
    row("GET",    "/v1/products/{sku}/queue/{ticket_id}/events", None, [E401, OK200, E404T, E403, E403]),
    row("GET",    "/v1/admin/queues",                         None,    [E401, NA,    E403, OK200, OK200]),
    row("GET",    "/v1/admin/products/{sku}/queue",           None,    [E401, NA,    E403, OK200, OK200]),
    row("POST",   "/v1/admin/products/{sku}/queue/pause",     None,    [E401, NA,    E403, E403,  OK200]),
    idempotent(row("POST", "/v1/admin/products/{sku}/queue/resume", None, [E401, NA, E403, E403, OK200])),
    row("PUT",    "/v1/admin/products/{sku}/queue/rate",      RATE,    [E401, NA,    E403, E403,  OK200]),
];

/// A fresh app with one of everything a row may touch.
struct Fixture {
    app: TestApp,
    /// The cart the cart routes address: 2 × [`SKU`].
    cart: TestCart,
    /// Another open cart (empty): its token is the "wrong cart" one.
    other: TestCart,
    /// The cart that placed [`Fixture::order`].
    buyer: TestCart,
    order: String,
    operator_key: String,
    admin_key: String,
    /// An operator key nobody uses: the one `DELETE /v1/admin/keys/{key_id}` targets.
    victim_key_id: String,
}

impl Fixture {
    async fn open() -> Fixture {
        let app = TestApp::spawn().await;
        let cart = app.new_cart().await;
        assert_eq!(cart.set(SKU, 2).await.status(), StatusCode::OK);
        let other = app.new_cart().await;
        let buyer = app.new_cart().await;
        assert_eq!(buyer.set("TSHIRT-BLACK", 1).await.status(), StatusCode::OK);
        let res = buyer.checkout("fixture-order").await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let order = res.json::<Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned();
        let (_, operator_key) = app.create_key("matrix-operator", "operator").await;
        let (_, admin_key) = app.create_key("matrix-admin", "admin").await;
        let (victim_key_id, _) = app.create_key("matrix-victim", "operator").await;
        // A waiting room whose sale starts in a year, and the cart's ticket in it.
        let res = app
            .client
            .put(app.url(&format!("/v1/admin/products/{QUEUE_SKU}")))
            .bearer_auth(&admin_key)
            .json(&serde_json::json!({"title": "Queued socks", "price": {"amount": 500, "currency": "EUR"},
                "sale_starts_at": "2099-01-01T00:00:00Z", "waiting_room": {"admit_per_second": 1, "pass_ttl_secs": 60}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "the waiting room");
        let res = app
            .client
            .post(app.url(&format!("/v1/products/{QUEUE_SKU}/queue")))
            .bearer_auth(&cart.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "the cart's ticket");
        // The room publishes its figures once a tick: settle before the matrix compares.
        eventually(Duration::from_secs(5), "the room to show the ticket", || async {
            let rooms = app.admin_get("/v1/admin/queues").await;
            (rooms["items"][0]["joined"] == 1).then_some(())
        })
        .await;
        Fixture { app, cart, other, buyer, order, operator_key, admin_key, victim_key_id }
    }

    fn path(&self, template: &str) -> String {
        template
            .replace("{cart_id}", &self.cart.id)
            .replace("{sku}", if template.contains("/queue") { QUEUE_SKU } else { SKU })
            .replace("{ticket_id}", "0")
            .replace("{order_id}", &self.order)
            .replace("{key_id}", &self.victim_key_id)
    }

    fn credential(&self, row: &Row, cred: Cred) -> Option<&str> {
        match cred {
            Cred::None => None,
            Cred::Own if row.path.contains("{order_id}") => Some(&self.buyer.token),
            Cred::Own => Some(&self.cart.token),
            Cred::WrongCart => Some(&self.other.token),
            Cred::Operator => Some(&self.operator_key),
            Cred::Admin => Some(&self.admin_key),
        }
    }

    fn request(&self, row: &Row, cred: Cred) -> RequestBuilder {
        let method = Method::from_bytes(row.method.as_bytes()).unwrap();
        let mut req = self.app.client.request(method, self.app.url(&self.path(row.path)));
        if let Some(c) = self.credential(row, cred) {
            req = req.bearer_auth(c);
        }
        if row.idempotency_key {
            req = req.header("Idempotency-Key", format!("matrix-{cred:?}"));
        }
        if let Some(body) = row.body {
            req = req.header("content-type", "application/json").body(body);
        }
        req
    }
}

/// `flashcore_auth_denied_total` from `/metrics`, summed over the series whose
/// labels match `route` and (if given) `reason`.
async fn denied_total(app: &TestApp, route: &str, reason: Option<&str>) -> u64 {
    let mut labels = vec![("route", route)];
    labels.extend(reason.map(|r| ("reason", r)));
    app.metric("flashcore_auth_denied_total", &labels).await as u64
}

/// Checks one cell's response; `Err` describes the mismatch.
async fn check_cell(case: &str, res: Response, expect: Expect) -> Result<(), String> {
    match expect {
        Expect::Na => Ok(()),
        Expect::Ok(want) if res.status().as_u16() == want => Ok(()),
        Expect::Ok(want) => {
            let status = res.status();
            Err(format!("{case}: expected {want}, got {status}: {}", res.text().await.unwrap_or_default()))
        }
        Expect::No(want, code) => {
            let body = problem(res, want, code).await.map_err(|e| format!("{case}: {e}"))?;
            let leaks: Vec<&str> = ["lines", "secret", "items", "email", "payment_ref"]
                .into_iter()
                .filter(|l| body.get(l).is_some())
                .collect();
            if leaks.is_empty() { Ok(()) } else { Err(format!("{case}: leaks {leaks:?}; body: {body}")) }
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_auth_matrix_says() {
    let mut failures = Vec::new();
    for row in MATRIX {
        // Arrange: fresh state per row, so an allowed write can't disturb the next row.
        let fx = Fixture::open().await;
        let before = fx.app.snapshot().await;
        let denied_before = denied_total(&fx.app, row.path, None).await;
        let refusals: Vec<Cred> =
            CREDS.iter().zip(row.expect).filter(|(_, e)| matches!(e, Expect::No(..))).map(|(c, _)| *c).collect();
        let counted = row.expect.iter().filter(|e| matches!(e, Expect::No(401 | 403, _))).count() as u64;

        // Act / Assert: every refusal first; together they change nothing.
        for (cred, expect) in CREDS.iter().zip(row.expect).filter(|(c, _)| refusals.contains(c)) {
            let case = format!("{} {} as {cred:?}", row.method, row.path);
            if let Err(e) = check_cell(&case, fx.request(row, *cred).send().await.unwrap(), expect).await {
                failures.push(e);
            }
        }
        let after_refusals = fx.app.snapshot().await;
        if after_refusals != before {
            failures.push(format!(
                "{} {}: a refusal changed state\nbefore: {before:?}\nafter:  {after_refusals:?}",
                row.method, row.path
            ));
        }
        let denied = denied_total(&fx.app, row.path, None).await - denied_before;
        if denied < counted {
            failures.push(format!(
                "{} {}: flashcore_auth_denied_total{{route}} rose by {denied}, expected at least {counted}",
                row.method, row.path
            ));
        }

        // Act / Assert: then every allowed call; a read changes nothing, a write something.
        for (cred, expect) in CREDS.iter().zip(row.expect).filter(|(_, e)| matches!(e, Expect::Ok(_))) {
            let case = format!("{} {} as {cred:?}", row.method, row.path);
            let res = fx.request(row, *cred).send().await.unwrap();
            if let Err(e) = check_cell(&case, res, expect).await {
                failures.push(e);
            }
        }
        // A write shows within a tick (the waiting room publishes its figures
        // every 100 ms), so a write that must change something is given that long.
        let after = if row.method == "GET" || row.idempotent {
            fx.app.snapshot().await
        } else {
            let what = format!("{} {} to change state", row.method, row.path);
            eventually(Duration::from_secs(2), &what, || async {
                let now = fx.app.snapshot().await;
                (now != before).then_some(now)
            })
            .await
        };
        match (row.method == "GET", after == before) {
            (true, false) => failures.push(format!("{} {}: a read changed state", row.method, row.path)),
            (false, true) if !row.idempotent => {
                failures.push(format!("{} {}: the allowed write changed nothing", row.method, row.path))
            }
            _ => {}
        }
        fx.app.stop().await;
    }
    assert!(failures.is_empty(), "{} cell(s) differ from the matrix:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn the_matrix_covers_every_route_that_takes_a_credential_or_is_an_operator_route() {
    // Arrange: every route in the OpenAPI document that declares a security scheme.
    let app = TestApp::spawn().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut secured = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let has_security = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
            if has_security || path.starts_with("/v1/admin") {
                secured.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }

    // Act
    let mut listed: Vec<String> = MATRIX.iter().map(|r| format!("{} {}", r.method, r.path)).collect();

    // Assert
    secured.sort();
    listed.sort();
    assert_eq!(listed, secured, "the matrix must list exactly the secured routes");
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_authorization_header_is_a_401_with_a_bearer_challenge_on_every_kind_of_route() {
    // Arrange
    let fx = Fixture::open().await;
    let cart_route = "/v1/carts/{cart_id}";
    let headers: Vec<(&str, reqwest::header::HeaderValue)> = vec![
        ("no scheme", fx.cart.token.parse().unwrap()),
        ("basic scheme", "Basic dXNlcjpwYXNz".parse().unwrap()),
        ("scheme only", "Bearer".parse().unwrap()),
        ("empty", "".parse().unwrap()),
        ("another scheme with a key", format!("Token {}", fx.admin_key).parse().unwrap()),
        ("key without a scheme", fx.admin_key.parse().unwrap()),
        ("not UTF-8", reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap()),
    ];
    // No other test sends a malformed header to the key listing, so its count is exact.
    let keys_route = "/v1/admin/keys";
    let malformed_before = denied_total(&fx.app, cart_route, Some("malformed")).await;
    let keys_before = denied_total(&fx.app, keys_route, Some("malformed")).await;
    let before = fx.app.snapshot().await;
    let paths = [
        fx.cart.path(""),
        format!("/v1/orders/{}", fx.order),
        "/v1/admin/actors".to_owned(),
        "/v1/admin/keys".to_owned(),
    ];

    for (case, value) in &headers {
        for path in &paths {
            // Act
            let res = fx.app.client.get(fx.app.url(path)).header("Authorization", value.clone()).send().await.unwrap();

            // Assert
            problem(res, 401, "unauthorized").await.unwrap_or_else(|e| panic!("{case} on {path}: {e}"));
        }
        // A write too: refused before anything runs.
        let res = fx
            .app
            .client
            .put(fx.app.url(&format!("/v1/admin/products/{SKU}")))
            .header("Authorization", value.clone())
            .json(&json!({ "title": "Renamed mug", "price": { "amount": 1, "currency": "EUR" } }))
            .send()
            .await
            .unwrap();
        problem(res, 401, "unauthorized").await.unwrap_or_else(|e| panic!("{case} on the product write: {e}"));
    }

    // Assert: nothing changed, and each refusal was counted as malformed.
    assert_eq!(fx.app.snapshot().await, before);
    let counted = denied_total(&fx.app, cart_route, Some("malformed")).await - malformed_before;
    assert!(counted >= headers.len() as u64, "malformed denials on {cart_route}: {counted}");
    let on_keys = denied_total(&fx.app, keys_route, Some("malformed")).await - keys_before;
    assert_eq!(on_keys, headers.len() as u64, "malformed denials on {keys_route}");
    fx.app.stop().await;
}

#[tokio::test]
async fn an_unknown_api_key_is_a_401_with_a_bearer_challenge_and_changes_nothing() {
    // Arrange: well-formed keys that were never issued.
    let fx = Fixture::open().await;
    let unknown = [format!("fck_{}", "A".repeat(43)), "fck_".to_owned(), format!("{}x", fx.admin_key)];
    let route = "/v1/admin/products/{sku}/stock";
    let counted_before = denied_total(&fx.app, route, Some("unknown-key")).await;
    let before = fx.app.snapshot().await;

    for key in &unknown {
        // Act
        let res = fx
            .app
            .client
            .post(fx.app.url(&format!("/v1/admin/products/{SKU}/stock")))
            .bearer_auth(key)
            .json(&json!({ "restock": 5 }))
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(res, 401, "unauthorized").await;
        let read = fx.app.client.get(fx.app.url("/v1/admin/orders")).bearer_auth(key).send().await.unwrap();
        assert_problem(read, 401, "unauthorized").await;
    }
    assert_eq!(fx.app.snapshot().await, before);
    let counted = denied_total(&fx.app, route, Some("unknown-key")).await - counted_before;
    // No other test sends an unknown key to this route: the count is exact.
    assert_eq!(counted, unknown.len() as u64, "unknown-key denials on {route}");
    fx.app.stop().await;
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_with_401_within_the_key_cache_lifetime() {
    // Arrange: a working operator key, cached by a first successful call.
    let fx = Fixture::open().await;
    let (id, secret) = fx.app.create_key("soon-revoked", "operator").await;
    let actors = fx.app.url("/v1/admin/actors");
    let res = fx.app.client.get(&actors).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Act
    let res = fx
        .app
        .client
        .delete(fx.app.url(&format!("/v1/admin/keys/{id}")))
        .bearer_auth(&fx.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // Assert: refused within the cache lifetime (10 s), with a challenge.
    let refused = eventually(Duration::from_secs(15), "the revoked key to be refused", || async {
        let res = fx.app.client.get(&actors).bearer_auth(&secret).send().await.ok()?;
        (res.status() == StatusCode::UNAUTHORIZED).then_some(res)
    })
    .await;
    assert_problem(refused, 401, "unauthorized").await;
    let keys = fx.app.admin_get("/v1/admin/keys").await;
    let listed = keys.as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).cloned().unwrap_or(Value::Null);
    assert_eq!(listed["revoked"], true, "{keys}");
    assert!(!keys.to_string().contains(&secret), "a listing never shows a secret");
    // The other keys still work.
    let res = fx.app.client.get(&actors).bearer_auth(&fx.operator_key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    fx.app.stop().await;
}

#[tokio::test]
async fn denials_are_counted_by_route_and_reason_and_no_secret_ever_reaches_metrics() {
    // Arrange
    let fx = Fixture::open().await;
    // (route, reason, credential, status, code, whether only this test is refused so).
    let cases = [
        ("/v1/admin/keys", "role", Some(fx.operator_key.clone()), 403, "forbidden", false),
        ("/v1/admin/keys", "missing-credential", None, 401, "unauthorized", false),
        ("/v1/admin/keys", "token-on-admin", Some(fx.cart.token.clone()), 403, "forbidden", false),
        ("/v1/carts/{cart_id}", "key-on-cart", Some(fx.admin_key.clone()), 403, "forbidden", false),
        ("/v1/carts/{cart_id}", "wrong-cart", Some(fx.other.token.clone()), 403, "forbidden", false),
        ("/v1/carts/{cart_id}", "invalid-token", Some(format!("{}.forged", fx.cart.id)), 401, "unauthorized", false),
        ("/v1/carts/{cart_id}", "unknown-key", Some(format!("fck_{}", "B".repeat(43))), 401, "unauthorized", true),
    ];

    for (route, reason, bearer, status, code, only_here) in &cases {
        let before = denied_total(&fx.app, route, Some(reason)).await;
        let path = route.replace("{cart_id}", &fx.cart.id);
        let mut req = fx.app.client.get(fx.app.url(&path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }

        // Act
        let res = req.send().await.unwrap();

        // Assert: the refusal, counted once under its reason. The recorder is
        // shared by the tests running at once, so a series that other tests also
        // raise can only be checked for having risen.
        problem(res, *status, code).await.unwrap_or_else(|e| panic!("{route} {reason}: {e}"));
        let after = denied_total(&fx.app, route, Some(reason)).await;
        if *only_here {
            assert_eq!(after, before + 1, "{route} {reason}: counter {before} -> {after}");
        } else {
            assert!(after > before, "{route} {reason}: counter {before} -> {after}");
        }
    }
    let text = fx.app.metrics().await;
    for secret in [TEST_ADMIN_KEY, &fx.admin_key, &fx.operator_key, &fx.cart.token, &fx.other.token, &fx.buyer.token] {
        assert!(!text.contains(secret), "a credential appears in /metrics");
    }
    assert!(!text.contains("fck_"), "no API key (or prefix of one) appears in /metrics");
    fx.app.stop().await;
}
