//! Request ids: every response names its request in `x-request-id` (the
//! caller's own id when usable), every problem document repeats it, and the
//! log line about a refused request carries it.

use std::time::Duration;

use flashcore_tests::{Process, TestApp, assert_problem, eventually};
use reqwest::StatusCode;

fn request_id(res: &reqwest::Response) -> String {
    res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_response_has_an_id_and_a_usable_caller_id_is_kept() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/v1/products", "/v1/nothing-here"] {
        let res = client.get(app.url(path)).send().await.unwrap();
        let id = request_id(&res);
        assert!(!id.is_empty() && id.len() <= 128, "{path}: {id:?}");
        assert!(!seen.contains(&id), "{path}: the id {id} was already used");
        seen.push(id);
    }
    let res = client.get(app.url("/v1/products")).header("x-request-id", "lb-4f1c-77").send().await.unwrap();
    assert_eq!(request_id(&res), "lb-4f1c-77");
    // Not usable (too long): replaced, not refused.
    let res = client.get(app.url("/v1/products")).header("x-request-id", "x".repeat(200)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!request_id(&res).is_empty() && request_id(&res).len() <= 128);
}

#[tokio::test]
async fn a_problem_document_names_its_request() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let res =
        client.get(app.url("/v1/products/NO-SUCH-SKU")).header("x-request-id", "buyer-report-1").send().await.unwrap();
    assert_eq!(request_id(&res), "buyer-report-1");
    let body = assert_problem(res, 404, "product-not-found").await;
    assert_eq!(body["request_id"], "buyer-report-1");
    // A made id is the same in the header and the body.
    let res = client
        .put(app.url("/v1/carts/00000000-0000-4000-8000-000000000000/items/X"))
        .header("content-type", "text/plain")
        .body("nope")
        .send()
        .await
        .unwrap();
    let id = request_id(&res);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str(), "{body}");
}

#[tokio::test]
async fn the_log_line_of_a_denied_request_carries_its_id() {
    let dir = flashcore_tests::data_dir();
    let p = Process::start(&[("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap())]).await;
    let res = p
        .client
        .get(p.url("/v1/admin/orders"))
        .bearer_auth("fck_not_a_key")
        .header("x-request-id", "denied-42")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&res), "denied-42");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    eventually(Duration::from_secs(5), "the denial to be logged with its request id", || async {
        (!p.logged("request_id", "denied-42").is_empty()).then_some(())
    })
    .await;
}
