//! The real binary: configuration from the environment, and graceful shutdown on SIGTERM.

use std::time::Duration;

use flashcore_tests::Process;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn the_binary_serves_the_demo_catalog_and_stops_cleanly_on_sigterm() {
    // Arrange
    let dir = flashcore_tests::data_dir();
    let mut p = Process::start(&[("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap())]).await;
    let client = reqwest::Client::new();
    let product: Value =
        client.get(format!("{}/v1/products/FLASH-SNEAKER-01", p.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(product["total"], 100);
    // An open SSE stream must not hold shutdown up.
    let sse = client.get(format!("{}/v1/products/FLASH-SNEAKER-01/availability", p.base)).send().await.unwrap();
    assert_eq!(sse.status(), StatusCode::OK);

    // Act
    p.signal("TERM");

    // Assert
    let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await.expect("exited in time").unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn the_binary_refuses_a_bad_configuration_with_a_clear_message() {
    let out = tokio::process::Command::new(flashcore_tests::flashcore_binary())
        .env("FLASHCORE_ADDR", "not-an-address")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FLASHCORE_ADDR"), "{stderr}");
}

/// Runs `flashcore keys <args>` on the SQLite store in `dir`; returns stdout.
async fn keys(dir: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(flashcore_tests::flashcore_binary())
        .arg("keys")
        .args(args)
        .env("FLASHCORE_DATA_DIR", dir)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "keys {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn keys_made_on_the_command_line_work_until_revoked_and_are_never_logged() {
    let dir = flashcore_tests::data_dir();
    let secret = keys(dir.path(), &["create", "--role", "admin", "--name", "ci"]).await.trim().to_owned();
    assert!(secret.starts_with("fck_"), "{secret}");
    let listed = keys(dir.path(), &["list"]).await;
    let id = listed.split('\t').next().unwrap().to_owned();
    assert!(listed.contains("\tadmin\tactive\t") && listed.trim_end().ends_with("ci"), "{listed}");
    assert!(!listed.contains(&secret), "list never shows a secret");
    let db = std::fs::read(dir.path().join("flashcore.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "only the hash is stored");

    let p = Process::start(&[("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap())]).await;
    let client = reqwest::Client::new();
    let orders = || client.get(format!("{}/v1/admin/orders", p.base)).bearer_auth(&secret).send();
    assert_eq!(orders().await.unwrap().status(), StatusCode::OK);

    keys(dir.path(), &["revoke", &id]).await;
    assert!(keys(dir.path(), &["list"]).await.contains("\trevoked\t"));
    // Nodes trust a looked-up key for at most the key cache's lifetime (10 s).
    flashcore_tests::eventually(Duration::from_secs(20), "the revoked key to be refused", || async {
        (orders().await.unwrap().status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn keys_need_a_durable_store_and_a_known_role() {
    let run = |args: &'static [&'static str], store: &'static str| {
        tokio::process::Command::new(flashcore_tests::flashcore_binary())
            .args(args)
            .env("FLASHCORE_STORE", store)
            .env("FLASHCORE_DATA_DIR", "/nonexistent-flashcore-test")
            .output()
    };
    let out = run(&["keys", "create", "--role", "admin"], "memory").await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("durable store"));
    let out = run(&["keys", "create", "--role", "root"], "sqlite").await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("operator"), "names the valid roles");
}
