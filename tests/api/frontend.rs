//! The built frontend served by the binary: its pages at every app route, its
//! hashed files cached for good, a strict content security policy, and the API
//! and its problems untouched.

use flashcore_tests::{TestApp, assert_problem, test_config};
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};

const INDEX: &str =
    "<!doctype html><title>flashcore</title><script type=\"module\" src=\"/assets/app-1a2b3c.js\"></script>";
const SCRIPT: &str = "console.log('flashcore');";

/// A build as `npm run build` leaves it: `index.html`, hashed `assets/`, and a
/// file at the root.
fn build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app-1a2b3c.js"), SCRIPT).unwrap();
    std::fs::write(dir.path().join("favicon.svg"), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    dir
}

async fn spawn(dir: &tempfile::TempDir) -> TestApp {
    let mut config = test_config();
    config.http.frontend_dir = Some(dir.path().to_path_buf());
    TestApp::spawn_with(config).await
}

fn header<'a>(res: &'a reqwest::Response, name: &reqwest::header::HeaderName) -> &'a str {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn the_storefront_and_the_console_are_the_app_page_with_a_strict_policy() {
    let dir = build();
    let app = spawn(&dir).await;
    for path in ["/", "/ops", "/ops/stock", "/products/MUG-WHITE", "/cart"] {
        let res = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(header(&res, &CONTENT_TYPE).starts_with("text/html"), "{path}: {}", header(&res, &CONTENT_TYPE));
        assert_eq!(header(&res, &CACHE_CONTROL), "no-cache", "{path}: the page is revalidated");
        let csp = header(&res, &CONTENT_SECURITY_POLICY).to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{path}: own origin only: {csp}");
        assert_eq!(res.text().await.unwrap(), INDEX, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn hashed_files_are_cached_for_good_and_a_missing_one_is_a_404_problem() {
    let dir = build();
    let app = spawn(&dir).await;

    let res = reqwest::get(app.url("/assets/app-1a2b3c.js")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, &CONTENT_TYPE).contains("javascript"), "{}", header(&res, &CONTENT_TYPE));
    assert_eq!(header(&res, &CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert_eq!(res.text().await.unwrap(), SCRIPT);

    let res = reqwest::get(app.url("/favicon.svg")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, &CACHE_CONTROL), "no-cache", "an unhashed file is revalidated");

    // A missing file is not the app page (a stale page asking for an old hash
    // must see the failure), and nothing outside the build is reachable.
    for path in ["/assets/app-000000.js", "/assets/../../etc/ld.so.conf", "/assets/%2e%2e/%2e%2e/etc/ld.so.conf"] {
        let res = reqwest::get(app.url(path)).await.unwrap();
        assert_problem(res, 404, "not-found").await;
    }
    let res = reqwest::get(app.url("/etc/passwd")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), INDEX, "a path without an extension is an app route, never a file");
    app.stop().await;
}

#[tokio::test]
async fn the_api_keeps_its_answers_beside_the_frontend() {
    let dir = build();
    let app = spawn(&dir).await;
    let res = reqwest::get(app.url("/v1/nothing-here")).await.unwrap();
    let res_csp = header(&res, &CONTENT_SECURITY_POLICY).to_owned();
    assert_problem(res, 404, "not-found").await;
    assert_eq!(res_csp, "default-src 'none'; frame-ancestors 'none'", "API answers keep the API policy");
    let res = reqwest::get(app.url("/v1/products")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Only reads are pages: anything else at an app route is the API's 404.
    let res = reqwest::Client::new().post(app.url("/ops")).send().await.unwrap();
    assert_problem(res, 404, "not-found").await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_build_the_root_is_a_404_problem_and_a_missing_build_is_refused_at_start() {
    let app = TestApp::spawn().await;
    assert_problem(reqwest::get(app.url("/")).await.unwrap(), 404, "not-found").await;
    app.stop().await;

    let empty = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.http.frontend_dir = Some(empty.path().to_path_buf());
    let Err(err) = flashcore_http::Application::build(config).await else {
        panic!("a directory without index.html was accepted");
    };
    assert!(format!("{err:#}").contains("index.html"), "{err:#}");
}

/// `flashcore_http_requests_total` for GET on `route` with `status`, 0 when not yet seen.
fn served(metrics: &str, route: &str, status: u16) -> u64 {
    let labels = format!("{{method=\"GET\",route=\"{route}\",status=\"{status}\"}}");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("flashcore_http_requests_total")?.strip_prefix(labels.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_metrics_count_the_frontend_as_its_own_route() {
    let dir = build();
    let app = spawn(&dir).await;
    let metrics = || async { reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap() };
    let before = served(&metrics().await, "frontend", 200);
    for path in ["/", "/ops", "/assets/app-1a2b3c.js"] {
        assert_eq!(reqwest::get(app.url(path)).await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let after = metrics().await;
    assert!(served(&after, "frontend", 200) >= before + 3, "{after}");
    // A page is never counted with the paths nothing answers.
    assert_eq!(served(&after, "unmatched", 200), 0, "{after}");
    app.stop().await;
}
