//! Bad input on every route: each gets a 4xx `application/problem+json` with a
//! stable `code`, never a 5xx, and changes nothing — stock stays where it was,
//! carts keep their lines, and no order is placed.
//!
//! The cases are tables, one app per group of routes: every row is a request and
//! the problem it must get, and every row also checks that the app's
//! [`flashcore_tests::Snapshot`] did not move.

use flashcore_tests::{TestApp, TestCart, assert_problem, problem};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const FLASH: &str = "FLASH-SNEAKER-01";
const UPCOMING: &str = "UPCOMING-CONSOLE-01";
const TSHIRT: &str = "TSHIRT-BLACK";
const MUG: &str = "MUG-WHITE";

/// A well-formed cart id no cart token was ever issued for.
const STRANGER_CART: &str = "0190a6f4-1b2c-7d3e-8f40-123456789abc";
/// A well-formed order id no order has.
const STRANGER_ORDER: &str = "0190a6f4-1b2c-7d3e-8f40-cba987654321";

/// A running app with a cart holding 2 × TSHIRT-BLACK and 1 × FLASH-SNEAKER-01,
/// plus a second, empty cart (the "someone else").
struct Shop {
    app: TestApp,
    cart: TestCart,
    other: TestCart,
}

/// Who a request says it is.
#[derive(Debug, Clone)]
enum Auth {
    /// No `Authorization` header.
    Anonymous,
    /// The token of [`Shop::cart`] (which also placed any order).
    Own,
    /// The token of [`Shop::other`].
    Other,
    /// This `Authorization` header, verbatim.
    Header(HeaderValue),
}

/// The `Idempotency-Key` a request sends.
#[derive(Debug, Clone)]
enum Key {
    None,
    /// One no other row of the table uses.
    Fresh,
    Value(HeaderValue),
}

/// What a request carries.
#[derive(Debug, Clone)]
enum Body {
    Empty,
    /// JSON, with `content-type: application/json`.
    Json(Value),
    /// These bytes, with this content type if any.
    Raw(Option<&'static str>, String),
}

/// What a member of the problem must be.
#[derive(Debug, Clone)]
enum Member {
    Is(Value),
    Absent,
    Satisfies(fn(&Value) -> bool),
}

/// One row: a request and the problem it must get.
#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    auth: Auth,
    key: Key,
    body: Body,
    status: u16,
    code: &'static str,
    /// Members of the problem beyond the standard ones.
    members: Vec<(&'static str, Member)>,
    /// Response headers the row expects.
    headers: Vec<(&'static str, &'static str)>,
}

/// A row for `method path`, anonymous, no key, no body; [`Case::is`] says what it must get.
fn case(method: Method, path: impl Into<String>) -> Case {
    Case {
        method,
        path: path.into(),
        auth: Auth::Anonymous,
        key: Key::None,
        body: Body::Empty,
        status: 0,
        code: "",
        members: Vec::new(),
        headers: Vec::new(),
    }
}

impl Case {
    fn auth(mut self, auth: Auth) -> Case {
        self.auth = auth;
        self
    }
    fn own(self) -> Case {
        self.auth(Auth::Own)
    }
    fn fresh_key(mut self) -> Case {
        self.key = Key::Fresh;
        self
    }
    fn key(mut self, key: HeaderValue) -> Case {
        self.key = Key::Value(key);
        self
    }
    fn json(mut self, body: Value) -> Case {
        self.body = Body::Json(body);
        self
    }
    fn raw(mut self, content_type: Option<&'static str>, body: impl Into<String>) -> Case {
        self.body = Body::Raw(content_type, body.into());
        self
    }
    fn is(mut self, status: u16, code: &'static str) -> Case {
        (self.status, self.code) = (status, code);
        self
    }
    fn member(mut self, name: &'static str, expect: Member) -> Case {
        self.members.push((name, expect));
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Case {
        self.headers.push((name, value));
        self
    }

    /// The row in one line, long parts cut.
    fn describe(&self) -> String {
        let cut = |s: &str| if s.len() > 80 { format!("{}…({} bytes)", &s[..80], s.len()) } else { s.to_owned() };
        let body = match &self.body {
            Body::Empty => String::new(),
            Body::Json(v) => format!(" json {}", cut(&v.to_string())),
            Body::Raw(t, b) => format!(" {t:?} {:?}", cut(b)),
        };
        format!("{} {} as {:?}, key {:?}{body}", self.method, cut(&self.path), self.auth, self.key)
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

/// `Authorization` headers that must all be refused with 401.
fn bad_authorizations(cart: &TestCart) -> Vec<HeaderValue> {
    let sig = cart.token.split_once('.').map(|(_, s)| s.to_owned()).unwrap_or_default();
    [
        "Bearer garbage".to_owned(),
        "Bearer ".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        cart.token.clone(),
        format!("Bearer {}", cart.id),
        format!("Bearer {}.AAAA{sig}", cart.id),
        format!("Bearer {STRANGER_CART}.{sig}"),
    ]
    .iter()
    .map(|s| header_value(s))
    .collect()
}

fn pay(token: &str) -> Value {
    json!({ "payment": { "token": token }, "email": "buyer@example.com" })
}

impl Shop {
    async fn open() -> Shop {
        let app = TestApp::spawn().await;
        let cart = app.new_cart().await;
        for (sku, qty) in [(TSHIRT, 2), (FLASH, 1)] {
            let res = cart.set(sku, qty).await;
            assert_eq!(res.status(), StatusCode::OK, "arranging {sku}: {}", res.text().await.unwrap_or_default());
        }
        let other = app.new_cart().await;
        Shop { app, cart, other }
    }

    /// `/v1/carts/{cart}/items/{sku}`.
    fn items(&self, sku: &str) -> String {
        self.cart.path(&format!("/items/{sku}"))
    }

    /// Checks out the cart; returns the order id.
    async fn place_order(&self) -> String {
        let res = self.cart.checkout("place-order").await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let order: Value = res.json().await.unwrap();
        order["order_id"].as_str().unwrap().to_owned()
    }

    async fn send(&self, row: usize, c: &Case) -> Response {
        let mut req = self.app.client.request(c.method.clone(), self.app.url(&c.path));
        req = match &c.auth {
            Auth::Anonymous => req,
            Auth::Own => req.bearer_auth(&self.cart.token),
            Auth::Other => req.bearer_auth(&self.other.token),
            Auth::Header(v) => req.header(AUTHORIZATION, v.clone()),
        };
        req = match &c.key {
            Key::None => req,
            Key::Fresh => req.header("Idempotency-Key", format!("row-{row}")),
            Key::Value(v) => req.header("Idempotency-Key", v.clone()),
        };
        req = match &c.body {
            Body::Empty => req,
            Body::Json(v) => req.json(v),
            Body::Raw(Some(t), b) => req.header(CONTENT_TYPE, *t).body(b.clone()),
            Body::Raw(None, b) => req.body(b.clone()),
        };
        req.send().await.unwrap()
    }

    /// Sends every row; each must get its problem and leave the snapshot as it was.
    async fn run(&self, cases: &[Case]) {
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for (row, c) in cases.iter().enumerate() {
            assert!(c.status >= 400, "row {row} says what it must get");
            let before = self.app.snapshot().await;
            let res = self.send(row, c).await;
            for (name, want) in &c.headers {
                let got = res.headers().get(*name).and_then(|v| v.to_str().ok());
                if got != Some(*want) {
                    failures.push(format!("{}: header {name} is {got:?}, expected {want:?}", c.describe()));
                }
            }
            match problem(res, c.status, c.code).await {
                Ok(body) => {
                    for (name, want) in &c.members {
                        let got = body.get(*name);
                        let ok = match want {
                            Member::Is(v) => got == Some(v),
                            Member::Absent => got.is_none(),
                            Member::Satisfies(f) => got.is_some_and(f),
                        };
                        if !ok {
                            failures.push(format!("{}: member {name} is {got:?}, expected {want:?}", c.describe()));
                        }
                    }
                }
                Err(e) => failures.push(format!("{}: {e}", c.describe())),
            }
            let after = self.app.snapshot().await;
            if after != before {
                failures.push(format!("{}: changed state\nbefore: {before:?}\nafter:  {after:?}", c.describe()));
            }
        }
        assert!(failures.is_empty(), "{} of {} row(s) failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }
}

// ---------------------------------------------------------------- products

#[tokio::test]
async fn listing_products_with_a_bad_query_is_a_400_invalid_query_problem() {
    // Arrange
    let shop = Shop::open().await;
    let long = "A".repeat(65);
    let mut cases = Vec::new();
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=99999999999999999999999",
        "cursor=a%20b",
        "cursor=%3Cscript%3E",
        "cursor=TSHIRT%2FBLACK",
        "cursor=",
        &format!("cursor={long}"),
        "foo=1",
        "limit=5&offset=10",
        "limit=1&limit=2",
    ] {
        cases.push(case(Method::GET, format!("/v1/products?{q}")).is(400, "invalid-query"));
    }

    // Act / Assert
    shop.run(&cases).await;
}

#[tokio::test]
async fn reading_an_unknown_or_malformed_sku_or_its_availability_stream_is_a_404_or_400_problem() {
    // Arrange
    let shop = Shop::open().await;
    let long = "A".repeat(65);
    let mut cases = Vec::new();
    for sku in ["NO-SUCH-SKU", "tshirt-black", "a%20b", "%3Cscript%3E", "TSHIRT-BLACK%00", "a%2Fb", "%20", &long] {
        cases.push(case(Method::GET, format!("/v1/products/{sku}")).is(404, "product-not-found"));
    }
    // A path that cannot even be decoded is refused before any lookup.
    cases.push(case(Method::GET, "/v1/products/%FF%FE").is(400, "invalid-path"));
    // The availability stream answers a problem, not a stream.
    for sku in ["NO-SUCH-SKU", "a%20b", &long] {
        cases.push(case(Method::GET, format!("/v1/products/{sku}/availability")).is(404, "product-not-found"));
    }

    // Act / Assert
    shop.run(&cases).await;
}

// ------------------------------------------------------- routing and methods

#[tokio::test]
async fn a_wrong_method_is_a_405_method_not_allowed_problem_naming_the_allowed_ones() {
    // Arrange
    let shop = Shop::open().await;
    let wrong_method = |method: Method, path: String| {
        case(method, path)
            .own()
            .key(header_value("wrong-method"))
            .json(json!({ "quantity": 1, "payment": { "token": "tok_visa" } }))
            .is(405, "method-not-allowed")
    };
    let cases = vec![
        wrong_method(Method::GET, "/v1/carts".into()).header("allow", "POST"),
        wrong_method(Method::PUT, "/v1/carts".into()).header("allow", "POST"),
        case(Method::GET, "/v1/carts").is(405, "method-not-allowed").header("allow", "POST"),
        wrong_method(Method::DELETE, "/v1/products".into()),
        wrong_method(Method::POST, format!("/v1/products/{TSHIRT}")),
        wrong_method(Method::DELETE, shop.cart.path("")),
        wrong_method(Method::PATCH, shop.items(TSHIRT)),
        wrong_method(Method::POST, shop.items(TSHIRT)),
        wrong_method(Method::GET, shop.cart.path("/checkout")),
        wrong_method(Method::PUT, shop.cart.path("/checkout")),
        wrong_method(Method::DELETE, format!("/v1/orders/{STRANGER_ORDER}")),
    ];

    // Act / Assert
    shop.run(&cases).await;
}

#[tokio::test]
async fn an_unknown_path_is_a_404_not_found_problem() {
    // Arrange
    let shop = Shop::open().await;
    let mut cases = Vec::new();
    for path in [
        "/nope",
        "/v1",
        "/v2/products",
        "/v1/product",
        "/v1/products/TSHIRT-BLACK/nope",
        "/v1/carts/x/items",
        "/v1/orders",
        "/V1/PRODUCTS",
    ] {
        cases.push(case(Method::GET, path).is(404, "not-found"));
    }

    // Act / Assert
    shop.run(&cases).await;
}

// ------------------------------------------------------------- cart access

#[tokio::test]
async fn reading_a_cart_without_a_valid_token_is_401_with_another_carts_403_and_with_a_malformed_id_404() {
    // Arrange
    let shop = Shop::open().await;
    let cart = shop.cart.path("");
    let mut cases = vec![case(Method::GET, &cart).is(401, "unauthorized")];
    for auth in bad_authorizations(&shop.cart) {
        cases.push(case(Method::GET, &cart).auth(Auth::Header(auth)).is(401, "unauthorized"));
    }
    // The token is fine, just for another cart: no challenge, and no cart leaks.
    cases.push(case(Method::GET, &cart).auth(Auth::Other).is(403, "forbidden").member("lines", Member::Absent));
    // The token is checked before the path is parsed.
    for id in ["not-a-uuid", "123", "0190a6f4-1b2c-7d3e-8f40-123456789abcd", "%20"] {
        cases.push(case(Method::GET, format!("/v1/carts/{id}")).is(401, "unauthorized"));
        cases.push(case(Method::GET, format!("/v1/carts/{id}")).own().is(404, "cart-not-found"));
    }

    // Act / Assert
    shop.run(&cases).await;
}

// ---------------------------------------------------------------- cart lines

#[tokio::test]
async fn setting_an_item_with_a_body_that_is_not_json_is_a_415_or_400_problem() {
    // Arrange
    let shop = Shop::open().await;
    let mut cases = Vec::new();
    for ctype in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/xml")] {
        cases.push(
            case(Method::PUT, shop.items(MUG)).own().raw(ctype, r#"{"quantity": 1}"#).is(415, "unsupported-media-type"),
        );
    }
    for body in [r#"{"quantity":"#, "not json", r#"{"quantity": 1,}"#, "", r#"{quantity: 1}"#, r#"{"quantity": 1}}"#] {
        cases.push(
            case(Method::PUT, shop.items(TSHIRT)).own().raw(Some("application/json"), body).is(400, "malformed-json"),
        );
    }

    // Act / Assert
    shop.run(&cases).await;
}

#[tokio::test]
async fn setting_an_item_with_json_off_the_schema_or_over_64_kib_is_a_422_or_413_problem() {
    // Arrange
    let shop = Shop::open().await;
    let mut cases = Vec::new();
    for body in [
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
    ] {
        cases.push(case(Method::PUT, shop.items(TSHIRT)).own().json(body).is(422, "invalid-body"));
    }
    cases.push(case(Method::PUT, shop.items(MUG)).own().json(json!([1])).is(422, "invalid-body"));
    // Valid JSON, right content type, just over 64 KiB.
    let padded = json!({ "quantity": 1, "padding": "x".repeat(70 * 1024) });
    cases.push(case(Method::PUT, shop.items(MUG)).own().json(padded).is(413, "payload-too-large"));

    // Act / Assert
    shop.run(&cases).await;
}

#[tokio::test]
async fn setting_or_removing_an_item_the_shop_cannot_sell_is_a_problem_saying_why_and_holds_nothing_more() {
    // Arrange: the cart holds 2 × TSHIRT-BLACK, which has far fewer than 1000 units,
    // and 1 of the flash product (limit 2).
    let shop = Shop::open().await;
    let free = shop.app.available(TSHIRT).await;
    assert!(free + 2 < 1_000, "the demo product must have fewer than 1000 units");
    let set = |sku: &str, qty: u64| case(Method::PUT, shop.items(sku)).own().json(json!({ "quantity": qty }));
    let long = "A".repeat(65);
    let mut cases = vec![
        set(TSHIRT, 1_001).is(422, "invalid-quantity").member("max", Member::Is(json!(1_000))),
        set(TSHIRT, u64::from(u32::MAX)).is(422, "invalid-quantity").member("max", Member::Is(json!(1_000))),
        set(FLASH, 3).is(409, "limit-exceeded").member("max_per_order", Member::Is(json!(2))),
        set(UPCOMING, 1)
            .is(409, "sale-not-started")
            .member("sale_starts_at", Member::Satisfies(|v| v.as_str().is_some_and(|s| s.ends_with('Z')))),
        // What can be had counts the free units plus the line's own 2.
        set(TSHIRT, 1_000)
            .is(409, "out-of-stock")
            .member("available", Member::Is(json!(free + 2)))
            .member("sku", Member::Is(json!(TSHIRT))),
        case(Method::PUT, format!("/v1/carts/not-a-uuid/items/{MUG}"))
            .own()
            .json(json!({ "quantity": 1 }))
            .is(404, "cart-not-found"),
        case(Method::DELETE, format!("/v1/carts/not-a-uuid/items/{TSHIRT}")).own().is(404, "cart-not-found"),
    ];
    for sku in ["NO-SUCH-SKU", "a%20b", "%3Cscript%3E", &long] {
        cases.push(set(sku, 1).is(404, "product-not-found"));
    }
    for sku in ["a%20b", &long] {
        cases.push(case(Method::DELETE, shop.items(sku)).own().is(404, "product-not-found"));
    }

    // Act / Assert
    shop.run(&cases).await;
}

#[tokio::test]
async fn changing_a_line_without_a_valid_token_is_401_and_with_another_carts_token_403() {
    // Arrange
    let shop = Shop::open().await;
    let qty = json!({ "quantity": 1 });
    let mut cases = vec![
        case(Method::PUT, shop.items(MUG)).json(qty.clone()).is(401, "unauthorized"),
        case(Method::PUT, shop.items(MUG)).auth(Auth::Other).json(qty.clone()).is(403, "forbidden"),
        case(Method::PUT, shop.items(TSHIRT)).auth(Auth::Other).json(json!({ "quantity": 0 })).is(403, "forbidden"),
        case(Method::DELETE, shop.items(TSHIRT)).is(401, "unauthorized"),
        case(Method::DELETE, shop.items(TSHIRT)).auth(Auth::Other).is(403, "forbidden"),
    ];
    for auth in bad_authorizations(&shop.cart) {
        cases.push(
            case(Method::PUT, shop.items(MUG))
                .auth(Auth::Header(auth.clone()))
                .json(qty.clone())
                .is(401, "unauthorized"),
        );
        cases.push(case(Method::DELETE, shop.items(TSHIRT)).auth(Auth::Header(auth)).is(401, "unauthorized"));
    }

    // Act / Assert
    shop.run(&cases).await;
}

// ------------------------------------------------------------------ checkout

#[tokio::test]
async fn checking_out_without_a_usable_idempotency_key_is_a_400_problem_and_places_no_order() {
    // Arrange
    let shop = Shop::open().await;
    let checkout = shop.cart.path("/checkout");
    let post = || case(Method::POST, &checkout).own();
    let mut cases = vec![post().json(pay("tok_visa")).is(400, "idempotency-key-missing")];
    for key in ["k".repeat(256), String::new(), "   ".to_owned(), "two words".to_owned()] {
        cases.push(post().key(header_value(&key)).json(pay("tok_visa")).is(400, "idempotency-key-invalid"));
    }
    let non_ascii = HeaderValue::from_bytes(b"cl\xe9").unwrap();
    cases.push(post().key(non_ascii).json(pay("tok_visa")).is(400, "idempotency-key-invalid"));

    // Act / Assert
    shop.run(&cases).await;
    assert_eq!(shop.cart.get().await["status"], "open");
}

#[tokio::test]
async fn checking_out_with_a_bad_payment_token_or_email_is_a_422_problem_and_places_no_order() {
    // Arrange
    let shop = Shop::open().await;
    let checkout = shop.cart.path("/checkout");
    let post = || case(Method::POST, &checkout).own();
    let mut cases = Vec::new();
    for token in ["", "   ", "card_4242", "TOK_visa", &format!("tok_{}", "x".repeat(125))] {
        cases.push(post().fresh_key().json(pay(token)).is(422, "invalid-payment-token"));
    }
    let long = format!("{}@example.com", "a".repeat(250));
    for email in ["", "buyer", "buyer@example", "@example.com", "a b@example.com", "a@b@example.com", &long] {
        let body = json!({ "payment": { "token": "tok_visa" }, "email": email });
        cases.push(post().fresh_key().json(body).is(422, "invalid-email"));
    }

    // Act / Assert
    shop.run(&cases).await;
    assert_eq!(shop.cart.get().await["status"], "open");
}

#[tokio::test]
async fn checking_out_with_a_body_off_the_schema_or_an_empty_cart_is_a_problem_and_places_no_order() {
    // Arrange
    let shop = Shop::open().await;
    let checkout = shop.cart.path("/checkout");
    let post = || case(Method::POST, &checkout).own();
    let mut cases = Vec::new();
    for body in [
        json!({}),
        json!({ "email": "buyer@example.com" }),
        json!({ "payment": "tok_visa" }),
        json!({ "payment": {} }),
        json!({ "payment": { "token": 4242 } }),
        json!({ "payment": { "token": "tok_visa", "cvc": "123" } }),
        json!({ "payment": { "token": "tok_visa" }, "coupon": "FREE" }),
        json!({ "payment": { "token": "tok_visa" }, "email": 7 }),
        json!([{ "token": "tok_visa" }, "buyer@example.com"]),
    ] {
        cases.push(post().fresh_key().json(body).is(422, "invalid-body"));
    }
    cases.push(
        post()
            .fresh_key()
            .raw(Some("application/json"), r#"{"payment": {"token": "tok_visa"}"#)
            .is(400, "malformed-json"),
    );
    cases.push(post().fresh_key().raw(None, pay("tok_visa").to_string()).is(415, "unsupported-media-type"));
    // The other cart is empty: nothing to check out.
    cases.push(
        case(Method::POST, shop.other.path("/checkout"))
            .auth(Auth::Other)
            .fresh_key()
            .json(pay("tok_visa"))
            .is(409, "cart-empty"),
    );

    // Act / Assert
    shop.run(&cases).await;
    assert_eq!(shop.cart.get().await["status"], "open");
}

#[tokio::test]
async fn checking_out_without_a_valid_token_is_401_and_with_another_carts_token_is_403() {
    // Arrange
    let shop = Shop::open().await;
    let checkout = shop.cart.path("/checkout");
    let post = |auth: Auth| case(Method::POST, &checkout).auth(auth).fresh_key().json(pay("tok_visa"));
    let mut cases = vec![post(Auth::Anonymous).is(401, "unauthorized"), post(Auth::Other).is(403, "forbidden")];
    for auth in bad_authorizations(&shop.cart) {
        cases.push(post(Auth::Header(auth)).is(401, "unauthorized"));
    }

    // Act / Assert
    shop.run(&cases).await;
    assert_eq!(shop.cart.get().await["status"], "open");
}

#[tokio::test]
async fn a_checked_out_cart_refuses_changes_and_new_checkouts_with_a_409_naming_its_order() {
    // Arrange
    let shop = Shop::open().await;
    let order = Member::Is(json!(shop.place_order().await));
    let cases = [
        case(Method::PUT, shop.items(MUG)).own().json(json!({ "quantity": 1 })),
        case(Method::DELETE, shop.items(TSHIRT)).own(),
        case(Method::POST, shop.cart.path("/checkout")).own().fresh_key().json(pay("tok_visa")),
    ]
    .map(|c| c.is(409, "cart-checked-out").member("order_id", order.clone()));

    // Act / Assert
    shop.run(&cases).await;
}

#[tokio::test]
async fn a_255_character_idempotency_key_is_accepted() {
    // Arrange: the boundary of the key rule, so the 256 case above is not vacuous.
    let shop = Shop::open().await;

    // Act
    let res = shop.cart.checkout(&"k".repeat(255)).await;

    // Assert
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_declined_payment_is_a_402_problem_that_keeps_the_cart_and_its_stock_for_a_retry() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.app.snapshot().await;

    // Act
    let declined = shop.cart.checkout_with("attempt-1", "tok_decline").await;

    // Assert: refused, and the cart still holds its stock.
    assert_problem(declined, 402, "payment-declined").await;
    assert_eq!(shop.app.snapshot().await, before);
    let cart = shop.cart.get().await;
    assert_eq!(cart["status"], "open");
    assert!(cart["order_id"].is_null());

    // Act: retry with a good card and a new key.
    let paid = shop.cart.checkout("attempt-2").await;

    // Assert: the held stock is sold, nothing more is taken.
    assert_eq!(paid.status(), StatusCode::CREATED);
    let order: Value = paid.json().await.unwrap();
    assert_eq!(order["status"], "paid");
    let cart = shop.cart.get().await;
    assert_eq!(cart["status"], "checked_out");
    assert_eq!(cart["order_id"], order["order_id"]);
    let after = shop.app.snapshot().await;
    assert_eq!(after.products, before.products, "held units became sold ones: available is unchanged");
    assert_eq!(after.orders["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_payment_provider_failure_is_a_502_problem_that_changes_nothing() {
    // Arrange
    let shop = Shop::open().await;
    let before = shop.app.snapshot().await;

    // Act
    let res = shop.cart.checkout_with("provider-down", "tok_error").await;

    // Assert: an upstream failure, said plainly without internals, and nothing moved.
    let body = assert_problem(res, 502, "payment-provider-error").await;
    assert!(!body["detail"].as_str().unwrap_or_default().contains("tok_error"), "no internals: {body}");
    assert_eq!(shop.app.snapshot().await, before);
    assert_eq!(shop.cart.get().await["status"], "open");

    // Act / Assert: the same key can be retried once the provider is back.
    let retry = shop.cart.checkout_with("provider-down", "tok_visa").await;
    assert_eq!(retry.status(), StatusCode::CREATED);
}

// -------------------------------------------------------------------- orders

#[tokio::test]
async fn reading_an_order_without_a_valid_token_is_401_and_a_malformed_or_foreign_one_404() {
    // Arrange
    let shop = Shop::open().await;
    let order = shop.place_order().await;
    let path = format!("/v1/orders/{order}");
    let mut cases = vec![
        case(Method::GET, &path).is(401, "unauthorized"),
        // Another cart's order answers like a missing one, so ids can't be probed.
        case(Method::GET, &path).auth(Auth::Other).is(404, "order-not-found"),
        case(Method::GET, format!("/v1/orders/{STRANGER_ORDER}")).auth(Auth::Other).is(404, "order-not-found"),
    ];
    for auth in bad_authorizations(&shop.cart) {
        cases.push(case(Method::GET, &path).auth(Auth::Header(auth)).is(401, "unauthorized"));
    }
    for id in ["not-a-uuid", "123", "%20", &"0".repeat(200)] {
        cases.push(case(Method::GET, format!("/v1/orders/{id}")).own().is(404, "order-not-found"));
    }

    // Act / Assert
    shop.run(&cases).await;

    // Assert: the foreign order and the missing one get the very same body, and
    // the owner still sees it.
    let get = |path: String| shop.app.client.get(shop.app.url(&path)).bearer_auth(&shop.other.token).send();
    let mut foreign = assert_problem(get(path.clone()).await.unwrap(), 404, "order-not-found").await;
    let mut missing =
        assert_problem(get(format!("/v1/orders/{STRANGER_ORDER}")).await.unwrap(), 404, "order-not-found").await;
    // Each names its own request; all else is the same.
    for body in [&mut foreign, &mut missing] {
        assert!(body.as_object_mut().and_then(|b| b.remove("request_id")).is_some(), "{body}");
    }
    assert_eq!(foreign, missing);
    let own = shop.app.client.get(shop.app.url(&path)).bearer_auth(&shop.cart.token).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
}

// ------------------------------------------------------------------ no 5xx

#[tokio::test]
async fn no_bad_request_on_any_route_is_answered_with_a_5xx() {
    // Arrange: one of every kind of bad request above, on every route.
    let shop = Shop::open().await;
    let before = shop.app.snapshot().await;
    let (cart, token, other) = (shop.cart.id.clone(), shop.cart.token.clone(), shop.other.token.clone());
    let big = "x".repeat(70 * 1024);
    let long = "A".repeat(300);
    type Sweep = (Method, String, Option<String>, Option<String>, Option<(&'static str, String)>);
    let json_body = |v: Value| Some(("application/json", v.to_string()));
    let mut cases: Vec<Sweep> = Vec::new();
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
        let mut req = shop.app.client.request(method.clone(), shop.app.url(&path));
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
    assert_eq!(shop.app.snapshot().await, before);
    assert_eq!(shop.cart.get().await["status"], "open");
}
