//! The hot routes (a cart's read, setting and removing its lines) are answered
//! before the router (`flashcore_http::hot`), and must answer exactly as the
//! router would. The router still answers the same routes when the path has a
//! percent-escape (it decodes them; the hot routes leave those to it), so every
//! request here goes both ways, plain and escaped, and the two answers must
//! be the same: status, headers, body (problem documents included), and the
//! route label they are counted under.

use std::collections::BTreeSet;

use flashcore_tests::{TEST_ADMIN_KEY, TestApp};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response};
use serde_json::{Value, json};

const SKU: &str = "HOT-TEE";
const ITEM: &str = "/v1/carts/{cart_id}/items/{sku}";

/// One request: a method, a path (escaped for the router's twin by `escape`),
/// a bearer and a body with its content type.
struct Ask<'a> {
    method: Method,
    path: String,
    bearer: Option<&'a str>,
    body: Option<(&'a str, String)>,
}

fn ask(method: Method, path: String) -> Ask<'static> {
    Ask { method, path, bearer: None, body: None }
}

impl<'a> Ask<'a> {
    fn bearer(mut self, token: &'a str) -> Self {
        self.bearer = Some(token);
        self
    }

    fn body(mut self, content_type: &'a str, body: impl Into<String>) -> Self {
        self.body = Some((content_type, body.into()));
        self
    }

    fn json(self, body: &Value) -> Self {
        self.body("application/json", body.to_string())
    }
}

/// The answer's status, its headers but the per-request ones (date, request
/// id, and the length, which the id's changes), and its body as JSON (but the
/// request id of a problem and when the lines' holds expire).
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: BTreeSet<(String, String)>,
    body: Value,
}

async fn answer(res: Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id" | "content-length"))
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("?").to_owned()))
        .collect();
    let mut body: Value = res.json().await.unwrap_or(Value::Null);
    // A set renews its line's hold, so the twin's expiry is a moment later.
    for line in body.get_mut("lines").and_then(Value::as_array_mut).into_iter().flatten() {
        assert!(line["hold_expires_at"].is_string(), "a line without its hold's expiry: {line}");
        line["hold_expires_at"] = Value::Null;
    }
    // A problem names its request.
    if let Some(id) = body.as_object_mut().and_then(|problem| problem.remove("request_id")) {
        assert!(id.is_string(), "request_id {id}");
    }
    Answer { status, headers, body }
}

async fn send(app: &TestApp, a: &Ask<'_>, path: &str) -> Answer {
    let mut req = app.client.request(a.method.clone(), app.url(path));
    if let Some(token) = a.bearer {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some((ctype, body)) = &a.body {
        req = req.header(CONTENT_TYPE, *ctype).body(body.clone());
    }
    answer(req.send().await.expect("request")).await
}

/// The path with its first `-` percent-escaped: the same route to the router,
/// never a hot one.
fn escape(path: &str) -> String {
    path.replacen('-', "%2D", 1)
}

#[tokio::test]
async fn hot_routes_answer_as_the_router_does() {
    let app = TestApp::spawn().await;
    app.add_product(SKU, 1500, None, 100).await;
    let cart = app.new_cart().await;
    let other = app.new_cart().await;
    let item = |sku: &str| cart.path(&format!("/items/{sku}"));
    let too_big = json!({ "quantity": 1, "pad": "x".repeat(2 * 1024 * 1024) });

    let asks = [
        // Answered carts: a set is idempotent, so the twin finds the cart as
        // the first left it and answers the same cart.
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": 2 })),
        ask(Method::GET, cart.path("")).bearer(&cart.token),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": 3.0 })),
        ask(Method::PUT, item(SKU))
            .bearer(&cart.token)
            .body("application/vnd.api+json; charset=utf-8", "{\"quantity\":1}"),
        ask(Method::DELETE, item(SKU)).bearer(&cart.token),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": 0 })),
        // Refusals, in the router's order of extraction: caller, path, body.
        ask(Method::PUT, item(SKU)).json(&json!({ "quantity": 1 })),
        ask(Method::PUT, item(SKU)).bearer(&other.token).json(&json!({ "quantity": 1 })),
        ask(Method::PUT, item(SKU)).bearer(TEST_ADMIN_KEY).json(&json!({ "quantity": 1 })),
        ask(Method::PUT, item(SKU)).bearer("not-a-token").json(&json!({ "quantity": 1 })),
        ask(Method::PUT, item(SKU)).bearer(&other.token).body("text/plain", "{\"quantity\":1}"),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).body("text/plain", "{\"quantity\":1}"),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).body("application/json", "{\"quantity\":"),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!([1])),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": -1 })),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": 1_000_000 })),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": 1, "extra": true })),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&too_big),
        ask(Method::PUT, item("NO-SUCH-SKU")).bearer(&cart.token).json(&json!({ "quantity": 1 })),
        ask(Method::PUT, item(SKU)).bearer(&cart.token).json(&json!({ "quantity": 101 })),
        ask(Method::PUT, format!("/v1/carts/not-a-uuid/items/{SKU}"))
            .bearer(&cart.token)
            .json(&json!({ "quantity": 1 })),
        ask(Method::DELETE, item(SKU)),
        ask(Method::DELETE, item(SKU)).bearer(&other.token),
        ask(Method::DELETE, item("NO-SUCH-SKU")).bearer(&cart.token),
        ask(Method::GET, cart.path("")),
        ask(Method::GET, cart.path("")).bearer(&other.token),
        ask(Method::GET, "/v1/carts/not-a-uuid".to_owned()).bearer(&cart.token),
    ];
    let before =
        app.metric("flashcore_http_requests_total", &[("method", "PUT"), ("route", ITEM), ("status", "200")]).await;
    let mut put_ok = 0;
    for a in &asks {
        let hot = send(&app, a, &a.path).await;
        let routed = send(&app, a, &escape(&a.path)).await;
        assert_eq!(hot, routed, "{} {} (hot) and {} (router) differ", a.method, a.path, escape(&a.path));
        assert!(hot.status < 500, "{} {}: {hot:?}", a.method, a.path);
        if a.method == Method::PUT && hot.status == 200 {
            put_ok += 2;
        }
    }
    // The answers were real ones: a cart with the line, then without it, and
    // the stock back where it started.
    assert_eq!(put_ok, 8, "the four answered sets, both ways");
    assert_eq!(app.available(SKU).await, 100);
    // Counted under the router's labels, whichever way they came. (The
    // recorder is the process's, shared with the other tests running: their
    // requests only add, and they are counted under the router's labels too.)
    let counted = app.metric("flashcore_http_requests_total", &[("method", "PUT"), ("route", ITEM), ("status", "200")]);
    assert!(counted.await - before >= f64::from(put_ok), "the sets were not all counted as {ITEM}");
    let doc: Value =
        app.client.get(app.url("/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    let routes = doc["paths"].as_object().expect("paths");
    let metrics = app.metrics().await;
    for series in
        metrics.lines().filter(|l| l.starts_with("flashcore_http_requests_total{") && l.contains("/v1/carts/"))
    {
        let route = series.split("route=\"").nth(1).and_then(|r| r.split('"').next()).expect("a route label");
        assert!(routes.contains_key(route), "counted under {route}, which is no route of the API: {series}");
    }
    app.stop().await;
}
