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
