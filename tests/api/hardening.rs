//! Defences every response gets: security headers, a body limit, strict and
//! bounded bodies, CORS only for configured origins, a request deadline, and
//! error bodies that never show internals.

use std::time::Duration;

use flashcore_domain::Sku;
use flashcore_tests::{TEST_ADMIN_KEY, TestApp, TestCart, assert_problem, eventually, test_config};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

/// The SKU the admin cases act on (demo catalog: 400 units).
const SKU: &str = "MUG-WHITE";
/// The SKU the cart holds.
const HELD: &str = "TSHIRT-BLACK";

/// A running app with a cart holding 2 × [`HELD`].
struct Shop {
    app: TestApp,
    cart: TestCart,
}

impl Shop {
    async fn open() -> Shop {
        Shop::open_with(test_config()).await
    }

    async fn open_with(config: flashcore_http::Config) -> Shop {
        let app = TestApp::spawn_with(config).await;
        let cart = app.new_cart().await;
        let res = cart.set(HELD, 2).await;
        assert_eq!(res.status(), StatusCode::OK, "arranging: {}", res.text().await.unwrap_or_default());
        Shop { app, cart }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// The body-carrying writes, each with its credential, `body` as raw JSON.
    fn writes(&self, body: &Value) -> Vec<(&'static str, RequestBuilder)> {
        let c = &self.app.client;
        let json = |r: RequestBuilder| r.header("content-type", "application/json").body(body.to_string());
        vec![
            (
                "PUT item",
                json(c.put(self.url(&self.cart.path(&format!("/items/{SKU}")))).bearer_auth(&self.cart.token)),
            ),
            (
                "checkout",
                json(
                    c.post(self.url(&self.cart.path("/checkout")))
                        .bearer_auth(&self.cart.token)
                        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string()),
                ),
            ),
            ("admin product", json(c.put(self.url(&format!("/v1/admin/products/{SKU}"))).bearer_auth(TEST_ADMIN_KEY))),
            (
                "admin stock",
                json(c.post(self.url(&format!("/v1/admin/products/{SKU}/stock"))).bearer_auth(TEST_ADMIN_KEY)),
            ),
            ("admin key", json(c.post(self.url("/v1/admin/keys")).bearer_auth(TEST_ADMIN_KEY))),
        ]
    }
}

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

// ------------------------------------------------------------ security headers

#[tokio::test]
async fn api_responses_error_responses_and_the_docs_page_carry_the_security_headers() {
    // Arrange
    let shop = Shop::open().await;
    let cases = [
        ("an API response", shop.url("/v1/products?limit=2"), 200, true),
        ("a cart (personal)", shop.url(&shop.cart.path("")), 200, true),
        ("a 401", shop.url(&shop.cart.path("")), 401, true),
        ("a 404 problem", shop.url("/v1/products/NO-SUCH-SKU"), 404, true),
        ("an unknown path", shop.url("/v1/nope"), 404, true),
        ("the docs page", shop.url("/docs"), 200, false),
        ("an operational endpoint", shop.url("/health"), 200, false),
    ];

    for (case, url, status, api) in cases {
        let mut req = shop.app.client.get(&url);
        if case == "a cart (personal)" {
            req = req.bearer_auth(&shop.cart.token);
        }

        // Act
        let res = req.send().await.unwrap();

        // Assert
        assert_eq!(res.status().as_u16(), status, "{case}");
        assert_eq!(header(&res, "x-content-type-options").as_deref(), Some("nosniff"), "{case}");
        assert_eq!(header(&res, "x-frame-options").as_deref(), Some("DENY"), "{case}");
        assert_eq!(header(&res, "referrer-policy").as_deref(), Some("no-referrer"), "{case}");
        let csp = header(&res, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{case}: CSP {csp:?}");
        if api {
            assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"), "{case}");
        }
    }

    // The docs page keeps its own, looser policy: its inline script may run, but
    // it may load nothing from elsewhere.
    let docs = shop.app.client.get(shop.url("/docs")).send().await.unwrap();
    let csp = header(&docs, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'unsafe-inline'") && csp.contains("connect-src 'self'"), "docs CSP {csp:?}");
    assert!(!csp.contains('*') && !csp.contains("http"), "docs CSP allows no other origin: {csp:?}");
    shop.app.stop().await;
}

// ------------------------------------------------------------------ body limit

#[tokio::test]
async fn a_body_over_the_configured_limit_is_a_413_problem_on_every_write_and_changes_nothing() {
    // Arrange: a 2 KiB limit and bodies of about 4 KiB that would otherwise be valid.
    let mut config = test_config();
    config.http.max_body_bytes = 2048;
    let shop = Shop::open_with(config).await;
    let before = shop.app.snapshot().await;
    let padding = " ".repeat(4096);
    let body = |v: Value| format!("{v}{padding}");
    let c = &shop.app.client;
    let cases: Vec<(&str, RequestBuilder, String)> = vec![
        (
            "PUT item",
            c.put(shop.url(&shop.cart.path(&format!("/items/{SKU}")))).bearer_auth(&shop.cart.token),
            body(json!({ "quantity": 1 })),
        ),
        (
            "checkout",
            c.post(shop.url(&shop.cart.path("/checkout")))
                .bearer_auth(&shop.cart.token)
                .header("Idempotency-Key", "too-large"),
            body(json!({ "payment": { "token": "tok_visa" } })),
        ),
        (
            "admin product",
            c.put(shop.url(&format!("/v1/admin/products/{SKU}"))).bearer_auth(TEST_ADMIN_KEY),
            body(json!({ "title": "Renamed", "price": { "amount": 1, "currency": "EUR" } })),
        ),
        (
            "admin stock",
            c.post(shop.url(&format!("/v1/admin/products/{SKU}/stock"))).bearer_auth(TEST_ADMIN_KEY),
            body(json!({ "restock": 5 })),
        ),
        (
            "admin key",
            c.post(shop.url("/v1/admin/keys")).bearer_auth(TEST_ADMIN_KEY),
            body(json!({ "name": "big", "role": "admin" })),
        ),
    ];

    for (case, req, body) in cases {
        // Act
        let res = req.header("content-type", "application/json").body(body).send().await.unwrap();

        // Assert
        let problem = flashcore_tests::problem(res, 413, "payload-too-large").await;
        assert!(problem.is_ok(), "{case}: {problem:?}");
    }
    assert_eq!(shop.app.snapshot().await, before);

    // And a body just under the limit still works.
    let res = shop.cart.set(SKU, 1).await;
    assert_eq!(res.status(), StatusCode::OK);
    shop.app.stop().await;
}

// ----------------------------------------------------- strict, bounded bodies

#[tokio::test]
async fn unknown_json_fields_are_a_422_invalid_body_problem_on_every_write_and_change_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.app.snapshot().await;
    let product = |extra: Value| {
        let mut p = json!({ "title": "Renamed", "price": { "amount": 999, "currency": "EUR" } });
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    let bodies: Vec<(&str, Value)> = vec![
        ("PUT item", json!({ "quantity": 1, "price": 0 })),
        ("checkout", json!({ "payment": { "token": "tok_visa" }, "discount": 100 })),
        ("checkout", json!({ "payment": { "token": "tok_visa", "amount": 1 } })),
        ("admin product", product(json!({ "stock": 5 }))),
        ("admin stock", json!({ "restock": 5, "reason": "x" })),
        ("admin key", json!({ "name": "k", "role": "admin", "expires": "never" })),
    ];

    for (route, body) in &bodies {
        // Act
        let (_, req) = shop.writes(body).into_iter().find(|(r, _)| r == route).unwrap();
        let res = req.send().await.unwrap();

        // Assert
        let problem = assert_problem(res, 422, "invalid-body").await;
        assert!(problem["detail"].as_str().unwrap_or_default().contains("unknown field"), "{route}: {problem}");
    }
    assert_eq!(shop.app.snapshot().await, before);
    shop.app.stop().await;
}

// Regression: `MoneyDto` once lacked `deny_unknown_fields`, so an unknown member
// inside `price` was silently accepted and the product replaced.
#[tokio::test]
async fn an_unknown_field_inside_the_price_of_an_admin_product_is_a_422_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.app.snapshot().await;
    let body = json!({ "title": "Renamed", "price": { "amount": 999, "currency": "EUR", "tax": 20 } });

    // Act
    let (_, req) = shop.writes(&body).into_iter().find(|(r, _)| *r == "admin product").unwrap();
    let res = req.send().await.unwrap();

    // Assert
    assert_problem(res, 422, "invalid-body").await;
    assert_eq!(shop.app.snapshot().await, before);
    shop.app.stop().await;
}

#[tokio::test]
async fn lengths_and_quantities_out_of_bounds_are_422_problems_and_change_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.app.snapshot().await;
    let price = json!({ "amount": 999, "currency": "EUR" });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("PUT item", json!({ "quantity": 1001 }), "invalid-quantity"),
        ("admin product", json!({ "title": "x".repeat(201), "price": price }), "invalid-product"),
        ("admin product", json!({ "title": "é".repeat(201), "price": price }), "invalid-product"),
        ("admin product", json!({ "title": "", "price": price }), "invalid-product"),
        ("admin product", json!({ "title": "ok", "description": "x".repeat(2001), "price": price }), "invalid-product"),
        ("admin product", json!({ "title": "ok", "price": price, "total": 1_000_000_001_u64 }), "invalid-stock"),
        ("admin product", json!({ "title": "ok", "price": { "amount": 0, "currency": "EUR" } }), "invalid-price"),
        ("admin stock", json!({ "restock": 0 }), "invalid-stock"),
        ("admin stock", json!({ "restock": 1_000_000_001_u64 }), "invalid-stock"),
        ("admin stock", json!({ "set_total": 1_000_000_001_u64 }), "invalid-stock"),
        ("admin stock", json!({ "restock": 1, "set_total": 500 }), "invalid-stock"),
        ("admin stock", json!({}), "invalid-stock"),
        ("admin key", json!({ "name": "k".repeat(101), "role": "operator" }), "invalid-name"),
        ("admin key", json!({ "name": "k", "role": "root" }), "invalid-role"),
    ];

    for (route, body, code) in &cases {
        // Act
        let (_, req) = shop.writes(body).into_iter().find(|(r, _)| r == route).unwrap();
        let res = req.send().await.unwrap();

        // Assert
        let problem = assert_problem(res, 422, code).await;
        if *code == "invalid-quantity" {
            assert_eq!(problem["max"], 1000, "{problem}");
        }
    }
    assert_eq!(shop.app.snapshot().await, before);

    // The bounds themselves are accepted.
    let title = "x".repeat(200);
    let (_, req) = shop
        .writes(&json!({ "title": title, "price": price }))
        .into_iter()
        .find(|(r, _)| *r == "admin product")
        .unwrap();
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(shop.app.product(SKU).await["title"], title.as_str());
    shop.app.stop().await;
}

// ------------------------------------------------------------------------ CORS

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url("/v1/carts/x/checkout"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
        .send()
        .await
        .unwrap()
}

fn cors_headers(res: &Response) -> Vec<String> {
    res.headers().keys().map(|k| k.as_str().to_owned()).filter(|k| k.starts_with("access-control-")).collect()
}

#[tokio::test]
async fn a_preflight_from_a_configured_origin_is_allowed_with_the_idempotency_key_header() {
    // Arrange
    let mut config = test_config();
    config.http.cors_origins = vec!["https://shop.example".into()];
    let app = TestApp::spawn_with(config).await;

    // Act
    let res = preflight(&app, "https://shop.example").await;

    // Assert
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some("https://shop.example"));
    let allowed = header(&res, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    for h in ["idempotency-key", "authorization", "content-type"] {
        assert!(allowed.contains(h), "allow-headers {allowed:?} lacks {h}");
    }
    let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "allow-methods {methods:?}");

    // An actual request from that origin is allowed to read the response too.
    let res =
        app.client.get(app.url("/v1/products?limit=1")).header("Origin", "https://shop.example").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some("https://shop.example"));
    app.stop().await;
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_allow_origin_header() {
    // Arrange
    let mut config = test_config();
    config.http.cors_origins = vec!["https://shop.example".into()];
    let app = TestApp::spawn_with(config).await;

    for origin in ["https://evil.example", "https://shop.example.evil.example", "http://shop.example", "null"] {
        // Act
        let res = preflight(&app, origin).await;
        let get = app.client.get(app.url("/v1/products?limit=1")).header("Origin", origin).send().await.unwrap();

        // Assert
        assert_eq!(header(&res, "access-control-allow-origin"), None, "preflight from {origin}");
        assert_eq!(header(&get, "access-control-allow-origin"), None, "GET from {origin}");
    }
    app.stop().await;
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers_at_all() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let pre = preflight(&app, "https://shop.example").await;
    let get =
        app.client.get(app.url("/v1/products?limit=1")).header("Origin", "https://shop.example").send().await.unwrap();

    // Assert
    assert_eq!(cors_headers(&pre), Vec::<String>::new(), "preflight ({})", pre.status());
    assert_eq!(cors_headers(&get), Vec::<String>::new(), "GET");
    assert_eq!(get.status(), StatusCode::OK);
    app.stop().await;
}

// -------------------------------------------------------------------- deadline

// A 1 ms deadline is not reliably exceeded: the memory store answers a product
// page or even a checkout in well under a millisecond, so such a test would be
// flaky. The built-in test payment provider's `tok_slow` token always takes 2 s
// (`flashcore_actors::payments::SLOW_AUTHORIZATION`), so a checkout with it is
// deterministically cut by a 1 s deadline, while everything else in the test
// stays far below it.
#[tokio::test]
async fn a_request_past_the_deadline_is_a_503_timeout_problem_and_its_retry_gets_the_one_outcome() {
    // Arrange
    let mut config = test_config();
    config.http.request_timeout = Duration::from_secs(1);
    let shop = Shop::open_with(config).await;
    let started = std::time::Instant::now();

    // Act
    let res = shop.cart.checkout_with("slow-checkout", "tok_slow").await;

    // Assert: cut at the deadline, not when the payment finished.
    assert!(started.elapsed() < flashcore_actors::payments::SLOW_AUTHORIZATION, "{:?}", started.elapsed());
    assert_eq!(header(&res, "retry-after").as_deref(), Some("1"));
    let body = assert_problem(res, 503, "timeout").await;
    assert!(body["detail"].as_str().unwrap_or_default().contains("Idempotency-Key"), "{body}");

    // Act: retry with the same key, as the problem suggests.
    let order = eventually(Duration::from_secs(15), "the retried checkout to answer", || async {
        let res = shop.cart.checkout_with("slow-checkout", "tok_slow").await;
        (res.status() == StatusCode::CREATED).then_some(res)
    })
    .await;

    // Assert: the one order, placed once.
    let order: Value = order.json().await.unwrap();
    let orders = shop.app.admin_get("/v1/admin/orders").await;
    let ids: Vec<&Value> = orders["items"].as_array().unwrap().iter().map(|o| &o["order_id"]).collect();
    assert_eq!(ids, vec![&order["order_id"]], "{orders}");
    assert_eq!(shop.cart.get().await["status"], "checked_out");
    shop.app.stop().await;
}

// ------------------------------------------------------------- no internals

/// Things an error body must never contain.
const INTERNALS: [&str; 12] = [
    "panicked",
    "panic",
    "sqlx",
    ".rs",
    "src/",
    "::",
    "thread '",
    "backtrace",
    "RUST_",
    "injected fault",
    "tok_error always fails",
    "flashcore_",
];

fn assert_no_internals(case: &str, body: &str) {
    for bad in INTERNALS {
        assert!(!body.to_lowercase().contains(&bad.to_lowercase()), "{case}: body shows {bad:?}: {body}");
    }
}

/// Asserts `res` is the problem `code` with `status` and no internals; returns its body.
async fn plain_problem(case: &str, res: Response, status: u16, code: &str) -> Value {
    let body = assert_problem(res, status, code).await;
    assert_no_internals(case, &body.to_string());
    body
}

#[tokio::test]
async fn client_error_problems_show_no_internals() {
    // Arrange
    let shop = Shop::open().await;
    let c = &shop.app.client;
    let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
        ("unknown path", c.get(shop.url("/src/main.rs")), 404, "not-found"),
        ("unknown product", c.get(shop.url("/v1/products/NO-SUCH-SKU")), 404, "product-not-found"),
        // The client resolves the dots: this asks for /etc/passwd.
        (
            "path traversal",
            c.get(shop.url("/v1/carts/../../etc/passwd")).bearer_auth(&shop.cart.token),
            404,
            "not-found",
        ),
        ("wrong method", c.delete(shop.url("/v1/products")), 405, "method-not-allowed"),
        (
            "wrong method on admin",
            c.patch(shop.url("/v1/admin/keys")).bearer_auth(TEST_ADMIN_KEY),
            405,
            "method-not-allowed",
        ),
        ("not UTF-8 in the path", c.get(shop.url("/v1/products/%FF%FE")), 400, "invalid-path"),
        ("bad query", c.get(shop.url("/v1/products?limit=abc")), 400, "invalid-query"),
        (
            "malformed JSON",
            c.put(shop.url(&shop.cart.path(&format!("/items/{SKU}"))))
                .bearer_auth(&shop.cart.token)
                .header("content-type", "application/json")
                .body("{\"quantity\":"),
            400,
            "malformed-json",
        ),
        (
            "wrong JSON type",
            c.put(shop.url(&shop.cart.path(&format!("/items/{SKU}"))))
                .bearer_auth(&shop.cart.token)
                .json(&json!({ "quantity": "many" })),
            422,
            "invalid-body",
        ),
        ("bad credential", c.get(shop.url("/v1/admin/actors")).bearer_auth("fck_nope"), 401, "unauthorized"),
    ];

    for (case, req, status, code) in cases {
        // Act
        let res = req.send().await.unwrap();

        // Assert
        plain_problem(case, res, status, code).await;
    }
    shop.app.stop().await;
}

#[tokio::test]
async fn server_error_problems_show_no_internals() {
    // Arrange: a SKU actor that panicked past its restart intensity (quarantined),
    // a payment provider that fails, and a request past its deadline.
    let mut config = test_config();
    config.engine.max_restarts = 1;
    config.engine.restart_period = Duration::from_secs(30);
    config.http.request_timeout = Duration::from_secs(1);
    let shop = Shop::open_with(config).await;
    let crashing = Sku::parse(SKU).unwrap();
    let quarantined = || async {
        let kinds = shop.app.engine.actor_stats(5);
        kinds.into_iter().find(|s| s.kind == "sku").map(|s| s.quarantined)
    };
    shop.app.engine.inject_sku_failure(&crashing).await.unwrap();
    eventually(Duration::from_secs(5), "the first restart", || async {
        let kinds = shop.app.engine.actor_stats(5);
        kinds.into_iter().find(|s| s.kind == "sku").filter(|s| s.restarts >= 1).map(|_| ())
    })
    .await;
    shop.app.engine.inject_sku_failure(&crashing).await.unwrap();
    eventually(Duration::from_secs(5), "the quarantine", || async { quarantined().await.filter(|q| *q >= 1) }).await;

    // Act / Assert: the panicked actor's SKU.
    let res = shop.cart.set(SKU, 1).await;
    assert!(res.headers().contains_key("retry-after"));
    plain_problem("quarantined SKU", res, 503, "unavailable").await;

    // Act / Assert: the payment provider fails.
    let res = shop.cart.checkout_with("provider-error", "tok_error").await;
    plain_problem("payment provider error", res, 502, "payment-provider-error").await;

    // Act / Assert: the deadline.
    let res = shop.cart.checkout_with("too-slow", "tok_slow").await;
    plain_problem("deadline", res, 503, "timeout").await;
    shop.app.stop().await;
}

#[tokio::test]
async fn operational_endpoints_ignore_a_probes_own_authorization_header() {
    let app = flashcore_tests::TestApp::spawn().await;
    for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
        let res = app.client.get(app.url(path)).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK, "{path}");
    }
    app.stop().await;
}
