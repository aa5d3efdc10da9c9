//! Bad input on every route: each gets a 4xx `application/problem+json` with a
//! stable `code`, never a 5xx, and changes nothing — stock stays where it was,
//! carts keep their lines, and no order is placed.

use flashcore_tests::{TestApp, assert_problem};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

const FLASH: &str = "FLASH-SNEAKER-01";
const UPCOMING: &str = "UPCOMING-CONSOLE-01";
const TSHIRT: &str = "TSHIRT-BLACK";
const MUG: &str = "MUG-WHITE";
/// The SKUs whose availability every "changes nothing" check compares.
const WATCHED: [&str; 4] = [FLASH, UPCOMING, TSHIRT, MUG];

/// A well-formed cart id no cart token was ever issued for.
const STRANGER_CART: &str = "0190a6f4-1b2c-7d3e-8f40-123456789abc";
/// A well-formed order id no order has.
const STRANGER_ORDER: &str = "0190a6f4-1b2c-7d3e-8f40-cba987654321";

/// What a bad request must leave exactly as it was.
#[derive(Debug, PartialEq)]
struct State {
    /// The cart as `GET /v1/carts/{id}` shows it (status, lines, holds, totals).
    cart: Value,
    /// `available` of each [`WATCHED`] SKU.
    available: Vec<(String, u64)>,
}

/// A running app with a cart holding 2 × TSHIRT-BLACK and 1 × FLASH-SNEAKER-01,
/// plus a second, empty cart (the "someone else").
struct Shop {
    app: TestApp,
    cart: String,
    token: String,
    other_cart: String,
    other_token: String,
}

impl Shop {
    async fn open() -> Shop {
        let app = TestApp::spawn().await;
        let (cart, token) = app.new_cart().await;
        for (sku, qty) in [(TSHIRT, 2), (FLASH, 1)] {
            let res = app.set_item(&cart, &token, sku, qty).await;
            assert_eq!(res.status(), StatusCode::OK, "arranging {sku}: {}", res.text().await.unwrap_or_default());
        }
        let (other_cart, other_token) = app.new_cart().await;
        Shop { app, cart, token, other_cart, other_token }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    fn items(&self, sku: &str) -> String {
        self.url(&format!("/v1/carts/{}/items/{sku}", self.cart))
    }

    fn checkout_url(&self) -> String {
        self.url(&format!("/v1/carts/{}/checkout", self.cart))
    }

    async fn cart_json(&self, cart: &str, token: &str) -> Value {
        let res = self.app.client.get(self.url(&format!("/v1/carts/{cart}"))).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    async fn state(&self) -> State {
        let mut available = Vec::new();
        for sku in WATCHED {
            available.push((sku.to_owned(), self.app.available(sku).await));
        }
        State { cart: self.cart_json(&self.cart, &self.token).await, available }
    }

    async fn other_state(&self) -> Value {
        self.cart_json(&self.other_cart, &self.other_token).await
    }

    /// A checkout request with the cart's token, a key and `body` as JSON.
    fn checkout(&self, key: &str, body: &Value) -> RequestBuilder {
        self.app.client.post(self.checkout_url()).bearer_auth(&self.token).header("Idempotency-Key", key).json(body)
    }
}

fn pay(token: &str) -> Value {
    json!({ "payment": { "token": token }, "email": "buyer@example.com" })
}

/// Like [`assert_problem`], with `case` named in every failure message.
async fn expect_problem(case: &str, res: Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{case}: status; body: {body}");
    assert_eq!(ctype, "application/problem+json", "{case}: content type; body: {body}");
    assert_eq!(body["code"], code, "{case}: code; body: {body}");
    assert_eq!(body["type"], format!("urn:flashcore:problem:{code}"), "{case}: type");
    assert_eq!(body["status"], status, "{case}: status member");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{case}: title/detail; body: {body}");
    body
}

fn www_authenticate(res: &Response) -> String {
    res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Authorization headers that must all be refused with 401.
fn bad_authorizations(cart: &str, token: &str) -> Vec<(&'static str, String)> {
    let sig = token.split_once('.').map(|(_, s)| s.to_owned()).unwrap_or_default();
    vec![
        ("garbage bearer token", "Bearer garbage".to_owned()),
        ("empty bearer token", "Bearer ".to_owned()),
        ("basic scheme", "Basic dXNlcjpwYXNz".to_owned()),
        ("token without the scheme", token.to_owned()),
        ("token without a signature", format!("Bearer {cart}")),
        ("tampered signature", format!("Bearer {cart}.AAAA{sig}")),
        ("signature moved to another cart id", format!("Bearer {STRANGER_CART}.{sig}")),
    ]
}

// ---------------------------------------------------------------- products

#[tokio::test]
async fn listing_products_with_a_bad_query_is_a_400_invalid_query_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let long_cursor = "A".repeat(65);
    let queries = [
        "limit=0".to_owned(),
        "limit=101".to_owned(),
        "limit=abc".to_owned(),
        "limit=-1".to_owned(),
        "limit=1.5".to_owned(),
        "limit=99999999999999999999999".to_owned(),
        "cursor=a%20b".to_owned(),
        "cursor=%3Cscript%3E".to_owned(),
        "cursor=TSHIRT%2FBLACK".to_owned(),
        "cursor=".to_owned(),
        format!("cursor={long_cursor}"),
        "foo=1".to_owned(),
        "limit=5&offset=10".to_owned(),
        "limit=1&limit=2".to_owned(),
    ];

    for q in &queries {
        // Act
        let res = shop.app.client.get(shop.url(&format!("/v1/products?{q}"))).send().await.unwrap();

        // Assert
        expect_problem(&format!("GET /v1/products?{q}"), res, 400, "invalid-query").await;
    }
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn getting_an_unknown_or_malformed_sku_is_a_404_product_not_found_problem() {
    // Arrange
    let app = TestApp::spawn().await;
    let long = "A".repeat(65);
    let skus =
        ["NO-SUCH-SKU", "tshirt-black", "a%20b", "%3Cscript%3E", "TSHIRT-BLACK%00", "a%2Fb", "%20", long.as_str()];

    for sku in skus {
        // Act
        let res = app.client.get(app.url(&format!("/v1/products/{sku}"))).send().await.unwrap();

        // Assert
        expect_problem(&format!("GET /v1/products/{sku}"), res, 404, "product-not-found").await;
    }
}

#[tokio::test]
async fn getting_a_sku_that_is_not_utf8_is_a_4xx_problem() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let res = app.client.get(app.url("/v1/products/%FF%FE")).send().await.unwrap();

    // Assert: the path cannot even be decoded, so it is refused before any lookup.
    expect_problem("GET /v1/products/%FF%FE", res, 400, "invalid-path").await;
}

#[tokio::test]
async fn the_availability_stream_of_an_unknown_or_malformed_sku_is_a_404_problem_not_a_stream() {
    // Arrange
    let app = TestApp::spawn().await;
    let long = "A".repeat(65);

    for sku in ["NO-SUCH-SKU", "a%20b", long.as_str()] {
        // Act
        let res = app.client.get(app.url(&format!("/v1/products/{sku}/availability"))).send().await.unwrap();

        // Assert
        expect_problem(&format!("GET /v1/products/{sku}/availability"), res, 404, "product-not-found").await;
    }
}

// ------------------------------------------------------- routing and methods

#[tokio::test]
async fn a_wrong_method_is_a_405_method_not_allowed_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let cart = &shop.cart;
    let cases = [
        (Method::GET, "/v1/carts".to_owned()),
        (Method::PUT, "/v1/carts".to_owned()),
        (Method::DELETE, "/v1/products".to_owned()),
        (Method::POST, format!("/v1/products/{TSHIRT}")),
        (Method::DELETE, format!("/v1/carts/{cart}")),
        (Method::PATCH, format!("/v1/carts/{cart}/items/{TSHIRT}")),
        (Method::POST, format!("/v1/carts/{cart}/items/{TSHIRT}")),
        (Method::GET, format!("/v1/carts/{cart}/checkout")),
        (Method::PUT, format!("/v1/carts/{cart}/checkout")),
        (Method::DELETE, format!("/v1/orders/{STRANGER_ORDER}")),
    ];

    for (method, path) in &cases {
        // Act
        let res = shop
            .app
            .client
            .request(method.clone(), shop.url(path))
            .bearer_auth(&shop.token)
            .header("Idempotency-Key", "wrong-method")
            .json(&json!({ "quantity": 1, "payment": { "token": "tok_visa" } }))
            .send()
            .await
            .unwrap();

        // Assert
        expect_problem(&format!("{method} {path}"), res, 405, "method-not-allowed").await;
    }
    let res = shop.app.client.get(shop.url("/v1/carts")).send().await.unwrap();
    assert_eq!(res.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"), "405 names what is allowed");
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn an_unknown_path_is_a_404_not_found_problem() {
    // Arrange
    let app = TestApp::spawn().await;
    let paths = [
        "/nope",
        "/v1",
        "/v2/products",
        "/v1/product",
        "/v1/products/TSHIRT-BLACK/nope",
        "/v1/carts/x/items",
        "/v1/orders",
        "/V1/PRODUCTS",
    ];

    for path in paths {
        // Act
        let res = app.client.get(app.url(path)).send().await.unwrap();

        // Assert
        expect_problem(&format!("GET {path}"), res, 404, "not-found").await;
    }
}

// ------------------------------------------------------------- cart access

#[tokio::test]
async fn reading_a_cart_without_a_token_is_a_401_unauthorized_problem_with_a_bearer_challenge() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let res = shop.app.client.get(shop.url(&format!("/v1/carts/{}", shop.cart))).send().await.unwrap();

    // Assert
    assert_eq!(www_authenticate(&res), "Bearer realm=\"flashcore\"");
    assert_problem(res, 401, "unauthorized").await;
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn reading_a_cart_with_a_bad_token_is_a_401_unauthorized_problem() {
    // Arrange
    let shop = Shop::open().await;

    for (case, auth) in bad_authorizations(&shop.cart, &shop.token) {
        // Act
        let res = shop
            .app
            .client
            .get(shop.url(&format!("/v1/carts/{}", shop.cart)))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(www_authenticate(&res), "Bearer realm=\"flashcore\"", "{case}");
        expect_problem(case, res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn reading_a_cart_with_another_carts_token_is_a_403_forbidden_problem() {
    // Arrange
    let shop = Shop::open().await;

    // Act
    let res = shop
        .app
        .client
        .get(shop.url(&format!("/v1/carts/{}", shop.cart)))
        .bearer_auth(&shop.other_token)
        .send()
        .await
        .unwrap();

    // Assert: no challenge — the token is fine, it is just for another cart.
    assert!(www_authenticate(&res).is_empty());
    let body = assert_problem(res, 403, "forbidden").await;
    assert!(body.get("lines").is_none(), "a refusal leaks no cart: {body}");
}

#[tokio::test]
async fn a_malformed_cart_id_is_401_without_a_token_and_404_cart_not_found_with_one() {
    // Arrange
    let shop = Shop::open().await;
    let ids = ["not-a-uuid", "123", "0190a6f4-1b2c-7d3e-8f40-123456789abcd", "%20"];

    for id in ids {
        // Act: the token is checked before the path is parsed.
        let anonymous = shop.app.client.get(shop.url(&format!("/v1/carts/{id}"))).send().await.unwrap();
        let with_token =
            shop.app.client.get(shop.url(&format!("/v1/carts/{id}"))).bearer_auth(&shop.token).send().await.unwrap();

        // Assert
        expect_problem(&format!("GET /v1/carts/{id} anonymous"), anonymous, 401, "unauthorized").await;
        expect_problem(&format!("GET /v1/carts/{id} with token"), with_token, 404, "cart-not-found").await;
    }
}

// ---------------------------------------------------------------- cart lines

#[tokio::test]
async fn setting_an_item_without_a_json_content_type_is_a_415_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let content_types = [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/xml")];

    for ctype in content_types {
        let mut req = shop.app.client.put(shop.items(MUG)).bearer_auth(&shop.token).body(r#"{"quantity": 1}"#);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }

        // Act
        let res = req.send().await.unwrap();

        // Assert
        expect_problem(&format!("content type {ctype:?}"), res, 415, "unsupported-media-type").await;
    }
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_an_item_with_malformed_json_is_a_400_malformed_json_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let bodies = [r#"{"quantity":"#, "not json", r#"{"quantity": 1,}"#, "", r#"{quantity: 1}"#, r#"{"quantity": 1}}"#];

    for body in bodies {
        // Act
        let res = shop
            .app
            .client
            .put(shop.items(TSHIRT))
            .bearer_auth(&shop.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        // Assert
        expect_problem(&format!("body {body:?}"), res, 400, "malformed-json").await;
    }
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_an_item_with_a_body_off_the_schema_is_a_422_invalid_body_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let bodies = [
        json!({ "quantity": -1 }),
        json!({ "quantity": 1.5 }),
        json!({ "quantity": "2" }),
        json!({ "quantity": null }),
        json!({ "quantity": true }),
        json!({ "quantity": 4_294_967_296_u64 }),
        json!({}),
        json!({ "quantity": 1, "extra": true }),
        json!({ "qty": 1 }),
        json!([]),
        json!(["1"]),
        json!(1),
        json!(null),
    ];

    for body in &bodies {
        // Act
        let res = shop.app.client.put(shop.items(TSHIRT)).bearer_auth(&shop.token).json(body).send().await.unwrap();

        // Assert
        expect_problem(&format!("body {body}"), res, 422, "invalid-body").await;
    }
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn a_json_array_in_place_of_the_body_object_is_a_422_invalid_body_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let set = shop.app.client.put(shop.items(MUG)).bearer_auth(&shop.token).json(&json!([1])).send().await.unwrap();
    let checkout =
        shop.checkout("array-body", &json!([{ "token": "tok_visa" }, "buyer@example.com"])).send().await.unwrap();

    // Assert
    expect_problem("checkout [payment, email]", checkout, 422, "invalid-body").await;
    expect_problem("PUT [1]", set, 422, "invalid-body").await;
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_more_than_the_line_bound_is_a_422_invalid_quantity_problem_naming_the_max() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    for qty in [1_001, u64::from(u32::MAX)] {
        // Act
        let res = shop.app.set_item(&shop.cart, &shop.token, TSHIRT, qty).await;

        // Assert
        let body = expect_problem(&format!("quantity {qty}"), res, 422, "invalid-quantity").await;
        assert_eq!(body["max"], 1_000);
    }
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_more_than_max_per_order_is_a_409_limit_exceeded_problem_and_holds_nothing_more() {
    // Arrange: the cart already holds 1 of the flash product (limit 2).
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let res = shop.app.set_item(&shop.cart, &shop.token, FLASH, 3).await;

    // Assert
    let body = assert_problem(res, 409, "limit-exceeded").await;
    assert_eq!(body["max_per_order"], 2);
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_an_unknown_or_malformed_sku_is_a_404_product_not_found_problem_and_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let long = "A".repeat(65);

    for sku in ["NO-SUCH-SKU", "a%20b", "%3Cscript%3E", long.as_str()] {
        // Act
        let res = shop.app.set_item(&shop.cart, &shop.token, sku, 1).await;

        // Assert
        expect_problem(&format!("PUT items/{sku}"), res, 404, "product-not-found").await;
    }
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_a_product_whose_sale_has_not_started_is_a_409_sale_not_started_problem() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let res = shop.app.set_item(&shop.cart, &shop.token, UPCOMING, 1).await;

    // Assert
    let body = assert_problem(res, 409, "sale-not-started").await;
    assert!(body["sale_starts_at"].as_str().is_some_and(|s| s.ends_with('Z')), "sale_starts_at: {body}");
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_more_than_the_stock_is_a_409_out_of_stock_problem_saying_what_can_be_had() {
    // Arrange: the cart holds 2 of a product with far fewer than 1000 units.
    let shop = Shop::open().await;
    let before = shop.state().await;
    let free = shop.app.available(TSHIRT).await;
    assert!(free + 2 < 1_000, "the demo product must have fewer than 1000 units");

    // Act
    let res = shop.app.set_item(&shop.cart, &shop.token, TSHIRT, 1_000).await;

    // Assert: what can be had counts the free units plus the line's own 2.
    let body = assert_problem(res, 409, "out-of-stock").await;
    assert_eq!(body["available"], free + 2);
    assert_eq!(body["sku"], TSHIRT);
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_payload_too_large_problem_and_changes_nothing() {
    // Arrange: valid JSON, right content type, just too big.
    let shop = Shop::open().await;
    let before = shop.state().await;
    let body = json!({ "quantity": 1, "padding": "x".repeat(70 * 1024) });

    // Act
    let res = shop.app.client.put(shop.items(MUG)).bearer_auth(&shop.token).json(&body).send().await.unwrap();

    // Assert
    assert_problem(res, 413, "payload-too-large").await;
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn setting_an_item_without_a_valid_token_is_401_and_with_another_carts_token_is_403() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let other_before = shop.other_state().await;
    let body = json!({ "quantity": 1 });

    // Act / Assert: no token at all.
    let res = shop.app.client.put(shop.items(MUG)).json(&body).send().await.unwrap();
    assert_eq!(www_authenticate(&res), "Bearer realm=\"flashcore\"");
    assert_problem(res, 401, "unauthorized").await;

    // Act / Assert: a bad token.
    for (case, auth) in bad_authorizations(&shop.cart, &shop.token) {
        let res = shop.app.client.put(shop.items(MUG)).header("Authorization", auth).json(&body).send().await.unwrap();
        expect_problem(case, res, 401, "unauthorized").await;
    }

    // Act / Assert: the other cart's token on this cart, also with a bad body.
    let res = shop.app.client.put(shop.items(MUG)).bearer_auth(&shop.other_token).json(&body).send().await.unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = shop.app.set_item(&shop.cart, &shop.other_token, TSHIRT, 0).await;
    assert_problem(res, 403, "forbidden").await;

    assert_eq!(shop.state().await, before);
    assert_eq!(shop.other_state().await, other_before);
}

#[tokio::test]
async fn setting_an_item_on_a_malformed_cart_id_is_a_404_cart_not_found_problem() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let res = shop.app.set_item("not-a-uuid", &shop.token, MUG, 1).await;

    // Assert
    assert_problem(res, 404, "cart-not-found").await;
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn removing_an_item_without_a_valid_token_is_401_and_with_another_carts_token_is_403_and_releases_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act / Assert: no token.
    let res = shop.app.client.delete(shop.items(TSHIRT)).send().await.unwrap();
    assert_eq!(www_authenticate(&res), "Bearer realm=\"flashcore\"");
    assert_problem(res, 401, "unauthorized").await;

    // Act / Assert: bad tokens.
    for (case, auth) in bad_authorizations(&shop.cart, &shop.token) {
        let res = shop.app.client.delete(shop.items(TSHIRT)).header("Authorization", auth).send().await.unwrap();
        expect_problem(case, res, 401, "unauthorized").await;
    }

    // Act / Assert: someone else's token.
    let res = shop.app.client.delete(shop.items(TSHIRT)).bearer_auth(&shop.other_token).send().await.unwrap();
    assert_problem(res, 403, "forbidden").await;

    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn removing_an_item_with_a_malformed_cart_id_or_sku_is_a_404_problem_and_releases_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let long = "A".repeat(65);

    // Act
    let bad_cart = shop
        .app
        .client
        .delete(shop.url(&format!("/v1/carts/not-a-uuid/items/{TSHIRT}")))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    let bad_skus = [
        shop.app.client.delete(shop.items("a%20b")).bearer_auth(&shop.token).send().await.unwrap(),
        shop.app.client.delete(shop.items(&long)).bearer_auth(&shop.token).send().await.unwrap(),
    ];

    // Assert
    assert_problem(bad_cart, 404, "cart-not-found").await;
    for res in bad_skus {
        assert_problem(res, 404, "product-not-found").await;
    }
    assert_eq!(shop.state().await, before);
}

// ------------------------------------------------------------------ checkout

#[tokio::test]
async fn checking_out_without_a_usable_idempotency_key_is_a_400_problem_and_places_no_order() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act / Assert: no key.
    let res =
        shop.app.client.post(shop.checkout_url()).bearer_auth(&shop.token).json(&pay("tok_visa")).send().await.unwrap();
    assert_problem(res, 400, "idempotency-key-missing").await;

    // Act / Assert: keys that are there but unusable.
    for key in ["k".repeat(256), String::new(), "   ".to_owned(), "two words".to_owned()] {
        let res = shop.checkout(&key, &pay("tok_visa")).send().await.unwrap();
        expect_problem(&format!("key {key:?} ({} chars)", key.len()), res, 400, "idempotency-key-invalid").await;
    }
    let non_ascii = reqwest::header::HeaderValue::from_bytes(b"cl\xe9").unwrap();
    let res = shop
        .app
        .client
        .post(shop.checkout_url())
        .bearer_auth(&shop.token)
        .header("Idempotency-Key", non_ascii)
        .json(&pay("tok_visa"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "idempotency-key-invalid").await;

    assert_eq!(shop.state().await, before);
    assert_eq!(before.cart["status"], "open");
}

#[tokio::test]
async fn a_255_character_idempotency_key_is_accepted() {
    // Arrange: the boundary of the key rule, so the 256 case above is not vacuous.
    let shop = Shop::open().await;

    // Act
    let res = shop.checkout(&"k".repeat(255), &pay("tok_visa")).send().await.unwrap();

    // Assert
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn checking_out_an_empty_cart_is_a_409_cart_empty_problem() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let other_before = shop.other_state().await;

    // Act
    let res = shop.app.checkout(&shop.other_cart, &shop.other_token, "empty-cart", "tok_visa").await;

    // Assert
    assert_problem(res, 409, "cart-empty").await;
    assert_eq!(shop.other_state().await, other_before);
    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn checking_out_with_a_blank_or_unknown_payment_token_is_a_422_invalid_payment_token_problem() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let too_long = format!("tok_{}", "x".repeat(125));
    let tokens = ["", "   ", "card_4242", "TOK_visa", too_long.as_str()];

    for (i, token) in tokens.into_iter().enumerate() {
        // Act
        let res = shop.checkout(&format!("bad-payment-{i}"), &pay(token)).send().await.unwrap();

        // Assert
        expect_problem(&format!("payment token {token:?}"), res, 422, "invalid-payment-token").await;
    }
    let after = shop.state().await;
    assert_eq!(after, before);
    assert_eq!(after.cart["status"], "open");
    assert!(after.cart["order_id"].is_null());
}

#[tokio::test]
async fn checking_out_with_an_invalid_email_is_a_422_invalid_email_problem_and_places_no_order() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let long = format!("{}@example.com", "a".repeat(250));
    let emails = ["", "buyer", "buyer@example", "@example.com", "a b@example.com", "a@b@example.com", long.as_str()];

    for (i, email) in emails.into_iter().enumerate() {
        // Act
        let body = json!({ "payment": { "token": "tok_visa" }, "email": email });
        let res = shop.checkout(&format!("bad-email-{i}"), &body).send().await.unwrap();

        // Assert
        expect_problem(&format!("email {email:?}"), res, 422, "invalid-email").await;
    }
    let after = shop.state().await;
    assert_eq!(after, before);
    assert_eq!(after.cart["status"], "open");
}

#[tokio::test]
async fn checking_out_with_a_body_off_the_schema_is_a_4xx_problem_and_places_no_order() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;
    let invalid = [
        json!({}),
        json!({ "email": "buyer@example.com" }),
        json!({ "payment": "tok_visa" }),
        json!({ "payment": {} }),
        json!({ "payment": { "token": 4242 } }),
        json!({ "payment": { "token": "tok_visa", "cvc": "123" } }),
        json!({ "payment": { "token": "tok_visa" }, "coupon": "FREE" }),
        json!({ "payment": { "token": "tok_visa" }, "email": 7 }),
    ];

    for (i, body) in invalid.iter().enumerate() {
        // Act
        let res = shop.checkout(&format!("off-schema-{i}"), body).send().await.unwrap();

        // Assert
        expect_problem(&format!("body {body}"), res, 422, "invalid-body").await;
    }
    let res = shop
        .app
        .client
        .post(shop.checkout_url())
        .bearer_auth(&shop.token)
        .header("Idempotency-Key", "malformed")
        .header("content-type", "application/json")
        .body(r#"{"payment": {"token": "tok_visa"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed-json").await;
    let res = shop
        .app
        .client
        .post(shop.checkout_url())
        .bearer_auth(&shop.token)
        .header("Idempotency-Key", "no-content-type")
        .body(pay("tok_visa").to_string())
        .send()
        .await
        .unwrap();
    assert_problem(res, 415, "unsupported-media-type").await;

    assert_eq!(shop.state().await, before);
}

#[tokio::test]
async fn a_declined_payment_is_a_402_problem_that_keeps_the_cart_and_its_stock_for_a_retry() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let declined = shop.app.checkout(&shop.cart, &shop.token, "attempt-1", "tok_decline").await;

    // Assert: refused, and the cart still holds its stock.
    assert_problem(declined, 402, "payment-declined").await;
    let after = shop.state().await;
    assert_eq!(after, before);
    assert_eq!(after.cart["status"], "open");
    assert!(after.cart["order_id"].is_null());

    // Act: retry with a good card and a new key.
    let paid = shop.app.checkout(&shop.cart, &shop.token, "attempt-2", "tok_visa").await;

    // Assert: the held stock is sold, nothing more is taken.
    assert_eq!(paid.status(), StatusCode::CREATED);
    let order: Value = paid.json().await.unwrap();
    assert_eq!(order["status"], "paid");
    let cart = shop.cart_json(&shop.cart, &shop.token).await;
    assert_eq!(cart["status"], "checked_out");
    assert_eq!(cart["order_id"], order["order_id"]);
    assert_eq!(shop.state().await.available, before.available);
}

#[tokio::test]
async fn a_payment_provider_failure_is_a_502_problem_that_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act
    let res = shop.app.checkout(&shop.cart, &shop.token, "provider-down", "tok_error").await;

    // Assert: an upstream failure, said plainly without internals, and nothing moved.
    let body = assert_problem(res, 502, "payment-provider-error").await;
    assert!(!body["detail"].as_str().unwrap_or_default().contains("tok_error"), "no internals: {body}");
    let after = shop.state().await;
    assert_eq!(after, before);
    assert_eq!(after.cart["status"], "open");

    // Act / Assert: the same key can be retried once the provider is back.
    let retry = shop.app.checkout(&shop.cart, &shop.token, "provider-down", "tok_visa").await;
    assert_eq!(retry.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn checking_out_without_a_valid_token_is_401_and_with_another_carts_token_is_403() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.state().await;

    // Act / Assert: no token.
    let res = shop
        .app
        .client
        .post(shop.checkout_url())
        .header("Idempotency-Key", "anonymous")
        .json(&pay("tok_visa"))
        .send()
        .await
        .unwrap();
    assert_eq!(www_authenticate(&res), "Bearer realm=\"flashcore\"");
    assert_problem(res, 401, "unauthorized").await;

    // Act / Assert: bad tokens.
    for (i, (case, auth)) in bad_authorizations(&shop.cart, &shop.token).into_iter().enumerate() {
        let res = shop
            .app
            .client
            .post(shop.checkout_url())
            .header("Authorization", auth)
            .header("Idempotency-Key", format!("bad-token-{i}"))
            .json(&pay("tok_visa"))
            .send()
            .await
            .unwrap();
        expect_problem(case, res, 401, "unauthorized").await;
    }

    // Act / Assert: someone else's token.
    let res = shop.app.checkout(&shop.cart, &shop.other_token, "foreign", "tok_visa").await;
    assert_problem(res, 403, "forbidden").await;

    let after = shop.state().await;
    assert_eq!(after, before);
    assert_eq!(after.cart["status"], "open");
}

#[tokio::test]
async fn a_checked_out_cart_refuses_changes_and_new_checkouts_with_a_409_cart_checked_out_problem() {
    // Arrange
    let shop = Shop::open().await;
    let paid = shop.app.checkout(&shop.cart, &shop.token, "first", "tok_visa").await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let order: Value = paid.json().await.unwrap();
    let before = shop.state().await;

    // Act
    let set = shop.app.set_item(&shop.cart, &shop.token, MUG, 1).await;
    let removed = shop.app.client.delete(shop.items(TSHIRT)).bearer_auth(&shop.token).send().await.unwrap();
    let again = shop.app.checkout(&shop.cart, &shop.token, "second", "tok_visa").await;

    // Assert
    for (case, res) in [("set item", set), ("remove item", removed), ("checkout again", again)] {
        let body = expect_problem(case, res, 409, "cart-checked-out").await;
        assert_eq!(body["order_id"], order["order_id"], "{case}");
    }
    assert_eq!(shop.state().await, before);
}

// -------------------------------------------------------------------- orders

/// A shop whose first cart has been checked out; returns the order id.
async fn placed_order(shop: &Shop) -> String {
    let res = shop.app.checkout(&shop.cart, &shop.token, "place-order", "tok_visa").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let order: Value = res.json().await.unwrap();
    order["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn reading_an_order_without_a_valid_token_is_a_401_unauthorized_problem() {
    // Arrange
    let shop = Shop::open().await;
    let order = placed_order(&shop).await;
    let url = shop.url(&format!("/v1/orders/{order}"));

    // Act / Assert: no token.
    let res = shop.app.client.get(&url).send().await.unwrap();
    assert_eq!(www_authenticate(&res), "Bearer realm=\"flashcore\"");
    assert_problem(res, 401, "unauthorized").await;

    // Act / Assert: bad tokens.
    for (case, auth) in bad_authorizations(&shop.cart, &shop.token) {
        let res = shop.app.client.get(&url).header("Authorization", auth).send().await.unwrap();
        expect_problem(case, res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn reading_a_malformed_order_id_is_a_404_order_not_found_problem() {
    // Arrange
    let shop = Shop::open().await;

    for id in ["not-a-uuid", "123", "%20", &"0".repeat(200)] {
        // Act
        let res =
            shop.app.client.get(shop.url(&format!("/v1/orders/{id}"))).bearer_auth(&shop.token).send().await.unwrap();

        // Assert
        expect_problem(&format!("GET /v1/orders/{id}"), res, 404, "order-not-found").await;
    }
}

#[tokio::test]
async fn reading_another_carts_order_is_a_404_indistinguishable_from_a_missing_one() {
    // Arrange
    let shop = Shop::open().await;
    let order = placed_order(&shop).await;

    // Act
    let foreign = shop
        .app
        .client
        .get(shop.url(&format!("/v1/orders/{order}")))
        .bearer_auth(&shop.other_token)
        .send()
        .await
        .unwrap();
    let missing = shop
        .app
        .client
        .get(shop.url(&format!("/v1/orders/{STRANGER_ORDER}")))
        .bearer_auth(&shop.other_token)
        .send()
        .await
        .unwrap();

    // Assert: same status, same body — order ids cannot be probed.
    let foreign = assert_problem(foreign, 404, "order-not-found").await;
    let missing = assert_problem(missing, 404, "order-not-found").await;
    assert_eq!(foreign, missing);

    // And the owner still sees it.
    let own =
        shop.app.client.get(shop.url(&format!("/v1/orders/{order}"))).bearer_auth(&shop.token).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
}

// ------------------------------------------------------------------ no 5xx

#[tokio::test]
async fn no_bad_request_on_any_route_is_answered_with_a_5xx() {
    // Arrange: one of every kind of bad request above, on every route.
    let shop = Shop::open().await;
    let before = shop.state().await;
    let (cart, token, other) = (shop.cart.clone(), shop.token.clone(), shop.other_token.clone());
    let big = "x".repeat(70 * 1024);
    let long = "A".repeat(300);
    type Case = (Method, String, Option<String>, Option<String>, Option<(&'static str, String)>);
    let json_body = |v: Value| Some(("application/json", v.to_string()));
    let mut cases: Vec<Case> = Vec::new();
    for q in ["limit=0", "limit=101", "limit=abc", "cursor=%25%25", "nope=1", "limit=", "cursor=a%20b"] {
        cases.push((Method::GET, format!("/v1/products?{q}"), None, None, None));
    }
    for sku in ["NOPE", "a%20b", long.as_str(), "%FF", "%00", ".."] {
        cases.push((Method::GET, format!("/v1/products/{sku}"), None, None, None));
        cases.push((Method::GET, format!("/v1/products/{sku}/availability"), None, None, None));
        cases.push((
            Method::PUT,
            format!("/v1/carts/{cart}/items/{sku}"),
            Some(token.clone()),
            None,
            json_body(json!({ "quantity": 1 })),
        ));
        cases.push((Method::DELETE, format!("/v1/carts/{cart}/items/{sku}"), Some(token.clone()), None, None));
    }
    for id in ["not-a-uuid", long.as_str(), "%FF", STRANGER_CART] {
        for t in [None, Some("garbage".to_owned()), Some(token.clone())] {
            cases.push((Method::GET, format!("/v1/carts/{id}"), t.clone(), None, None));
            cases.push((
                Method::PUT,
                format!("/v1/carts/{id}/items/{MUG}"),
                t.clone(),
                None,
                json_body(json!({ "quantity": 1 })),
            ));
            cases.push((Method::DELETE, format!("/v1/carts/{id}/items/{TSHIRT}"), t.clone(), None, None));
            cases.push((
                Method::POST,
                format!("/v1/carts/{id}/checkout"),
                t.clone(),
                Some("k".into()),
                json_body(pay("tok_visa")),
            ));
            cases.push((Method::GET, format!("/v1/orders/{id}"), t, None, None));
        }
    }
    let items = format!("/v1/carts/{cart}/items/{MUG}");
    for body in [
        None,
        Some(("text/plain", "1".to_owned())),
        Some(("application/json", "{".to_owned())),
        Some(("application/json", String::new())),
        json_body(json!({ "quantity": -1 })),
        json_body(json!({ "quantity": 1001 })),
        json_body(json!({ "quantity": 1, "padding": big })),
        json_body(json!({ "quantity": 1, "extra": 1 })),
    ] {
        cases.push((Method::PUT, items.clone(), Some(token.clone()), None, body));
    }
    cases.push((
        Method::PUT,
        format!("/v1/carts/{cart}/items/{FLASH}"),
        Some(token.clone()),
        None,
        json_body(json!({ "quantity": 3 })),
    ));
    cases.push((
        Method::PUT,
        format!("/v1/carts/{cart}/items/{UPCOMING}"),
        Some(token.clone()),
        None,
        json_body(json!({ "quantity": 1 })),
    ));
    cases.push((
        Method::PUT,
        format!("/v1/carts/{cart}/items/{TSHIRT}"),
        Some(token.clone()),
        None,
        json_body(json!({ "quantity": 1000 })),
    ));
    cases.push((Method::PUT, items.clone(), Some(other.clone()), None, json_body(json!({ "quantity": 1 }))));
    let checkout = format!("/v1/carts/{cart}/checkout");
    for (key, body) in [
        (None, json_body(pay("tok_visa"))),
        (Some("k".repeat(256)), json_body(pay("tok_visa"))),
        (Some("nbk-1".into()), json_body(pay(""))),
        (Some("nbk-2".into()), json_body(pay("card_4242"))),
        (Some("nbk-3".into()), json_body(json!({ "payment": { "token": "tok_visa" }, "email": "nope" }))),
        (Some("nbk-4".into()), json_body(json!({}))),
        (Some("nbk-5".into()), Some(("application/json", "{".to_owned()))),
        (Some("nbk-6".into()), None),
        (Some("nbk-7".into()), json_body(json!({ "payment": { "token": "tok_visa" }, "padding": big }))),
        (Some("nbk-8".into()), json_body(pay("tok_decline"))),
    ] {
        cases.push((Method::POST, checkout.clone(), Some(token.clone()), key, body));
    }
    cases.push((Method::POST, checkout.clone(), Some(other.clone()), Some("nbk-9".into()), json_body(pay("tok_visa"))));
    cases.push((Method::GET, "/v1/carts".into(), None, None, None));
    cases.push((Method::GET, "/nope".into(), None, None, None));
    cases.push((Method::POST, "/v1/orders".into(), None, None, None));

    // Act
    let mut failures = Vec::new();
    for (method, path, auth, key, body) in cases {
        let mut req = shop.app.client.request(method.clone(), shop.url(&path));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some((ctype, b)) = body {
            req = req.header("content-type", ctype).body(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let code = res.json::<Value>().await.ok().map(|b| b["code"].clone()).unwrap_or(Value::Null);
        if !status.is_client_error() || ctype != "application/problem+json" || !code.is_string() {
            failures.push(format!("{method} {path} -> {status} {ctype} code={code}"));
        }
    }

    // Assert
    assert!(failures.is_empty(), "not a 4xx problem:\n{}", failures.join("\n"));
    let after = shop.state().await;
    assert_eq!(after, before);
    assert_eq!(after.cart["status"], "open");
}
