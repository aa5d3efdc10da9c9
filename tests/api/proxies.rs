//! Behind a load balancer: only a trusted proxy's `Forwarded` /
//! `X-Forwarded-For` name the client that rate limits, idempotency scopes and
//! security events use; anyone else's are ignored; malformed ones never hurt.

use std::time::Duration;

use flashcore_http::client::TrustedProxies;
use flashcore_http_ports::Quota;
use flashcore_tests::{Process, TestApp, assert_problem, data_dir, eventually, test_config};
use reqwest::StatusCode;

/// Three requests a client may make at once, none more this second.
const TIGHT: Quota = Quota { per_second: 1, burst: 3 };

async fn spawn(trusted: &str) -> TestApp {
    let mut config = test_config();
    config.http.client_quota = Some(TIGHT);
    config.http.trusted_proxies = TrustedProxies::parse(trusted).unwrap();
    TestApp::spawn_with(config).await
}

/// `GET /v1/products` with the headers `with` adds.
async fn products(app: &TestApp, with: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url("/v1/products"));
    for (name, value) in with {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let app = spawn("").await;
    let spoofs =
        [("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.2"), ("x-forwarded-for", "10.0.0.3")];
    for (name, value) in spoofs {
        assert_eq!(products(&app, &[(name, value)]).await.status(), StatusCode::OK, "{name}: {value}");
    }
    // Every one of them was this peer: its burst is spent whatever it claims next.
    let res = products(&app, &[("x-forwarded-for", "203.0.113.50")]).await;
    let body = assert_problem(res, 429, "rate-limited").await;
    assert_eq!(body["limit"], "client");
    let res = products(&app, &[("x-forwarded-proto", "https")]).await;
    assert!(res.headers().get("strict-transport-security").is_none(), "no HSTS on an untrusted word");
}

#[tokio::test]
async fn through_a_trusted_proxy_two_buyers_get_limits_of_their_own() {
    let app = spawn("127.0.0.1/32").await;
    let alice = [("x-forwarded-for", "198.51.100.1")];
    // What a client wrote left of the proxy's entry is not believed: still Alice.
    let alice_spoofing = [("x-forwarded-for", "203.0.113.9, 198.51.100.1")];
    let bob = [("forwarded", "for=198.51.100.2;proto=https")];
    for with in [&alice[..], &alice_spoofing[..], &alice[..]] {
        assert_eq!(products(&app, with).await.status(), StatusCode::OK);
    }
    assert_problem(products(&app, &alice).await, 429, "rate-limited").await;
    // Bob is another client, and his proxy says he came over HTTPS.
    let res = products(&app, &bob).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
    // Without forwarding headers the proxy itself is the client, apart from both.
    assert_eq!(products(&app, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_forwarding_headers_are_ignored_and_never_fail_a_request() {
    let app = spawn("127.0.0.1").await;
    let bad: [(&str, &str); 9] = [
        ("forwarded", "for=unknown"),
        ("forwarded", "for=_hidden;by=_lb"),
        ("forwarded", "for=\"[2001:db8::1\""),
        ("forwarded", ";;;==,,,"),
        ("forwarded", "for=999.1.1.1"),
        ("x-forwarded-for", "not-an-address"),
        ("x-forwarded-for", ",,,"),
        ("x-forwarded-for", "1.2.3.4.5, ::::::"),
        ("x-forwarded-proto", "gopher"),
    ];
    let mut limited = 0;
    for (name, value) in bad {
        let status = products(&app, &[(name, value)]).await.status();
        assert!(status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS, "{name}: {value} -> {status}");
        limited += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    // Each was taken for the proxy, one client: its burst of three, then refusals.
    assert_eq!(limited, bad.len() - 3);
}

#[tokio::test]
async fn a_denial_through_a_trusted_proxy_names_the_forwarded_client() {
    let dir = data_dir();
    let fc = Process::start(&[
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap()),
        ("FLASHCORE_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
    ])
    .await;
    let res = fc
        .client
        .get(fc.url("/v1/admin/orders"))
        .bearer_auth("fck_not-a-real-key")
        .header("x-forwarded-for", "198.51.100.77")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let logged = eventually(Duration::from_secs(10), "the denial logged", || async {
        fc.logged("event", "auth.denied").into_iter().next()
    })
    .await;
    assert_eq!(logged["client"], "198.51.100.77", "{logged}");
}

#[tokio::test]
async fn a_trusted_proxy_list_that_does_not_parse_stops_the_start() {
    let dir = data_dir();
    let out = std::process::Command::new(flashcore_tests::flashcore_binary())
        .env("FLASHCORE_DATA_DIR", dir.path())
        .env("FLASHCORE_ADDR", "127.0.0.1:0")
        .env("FLASHCORE_TRUSTED_PROXIES", "10.0.0.0/8, the-load-balancer")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FLASHCORE_TRUSTED_PROXIES"), "{stderr}");
}
