//! HTTPS on the public port: real TLS with a certificate this test makes,
//! HSTS on every answer, plain HTTP refused, and a renewed certificate served
//! without a restart.

use std::path::Path;
use std::time::Duration;

use flashcore_tests::{Process, data_dir, eventually};
use reqwest::{Certificate, Client, StatusCode};

/// A self-signed certificate for 127.0.0.1, written to `dir` as
/// `cert.pem` / `key.pem`; returns the certificate's PEM (a client trusts it).
fn write_certificate(dir: &Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = made.cert.pem();
    // Written side by side, then renamed in, so the watcher never sees half a pair.
    std::fs::write(dir.join("cert.pem.new"), &cert).unwrap();
    std::fs::write(dir.join("key.pem.new"), made.signing_key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    cert
}

/// A client that trusts only `cert`.
fn trusting(cert: &str) -> Client {
    Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(cert.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_is_served_with_hsts_and_a_renewed_certificate_is_picked_up_without_a_restart() {
    let data = data_dir();
    let tls = tempfile::tempdir().unwrap();
    let first = write_certificate(tls.path());
    let (cert, key) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    let fc = Process::launch(&[
        ("FLASHCORE_DATA_DIR", data.path().to_str().unwrap()),
        ("FLASHCORE_TLS_CERT", cert.to_str().unwrap()),
        ("FLASHCORE_TLS_KEY", key.to_str().unwrap()),
    ])
    .await;
    let https = fc.base.replace("http://", "https://");
    let client = trusting(&first);
    eventually(Duration::from_secs(60), "ready over HTTPS", || async {
        let res = client.get(format!("{https}/ready")).send().await.ok()?;
        (res.status() == StatusCode::OK).then_some(())
    })
    .await;

    // Real TLS: a buyer's request works, and every answer says "HTTPS only".
    let res = client.get(format!("{https}/v1/products/FLASH-SNEAKER-01")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
    let res = client.post(format!("{https}/v1/carts")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // Plain HTTP on the same port gets no answer, and no client trusts what it never saw.
    assert!(reqwest::get(format!("{}/health", fc.base)).await.is_err(), "plain HTTP is not spoken");
    let stranger = trusting(&rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap().cert.pem());
    assert!(stranger.get(format!("{https}/health")).send().await.is_err(), "the certificate is verified");

    // Act: the certificate is renewed on disk.
    let second = write_certificate(tls.path());
    let renewed = trusting(&second);

    // Assert: new connections get the new one, with no restart.
    eventually(Duration::from_secs(20), "the renewed certificate served", || async {
        let res = renewed.get(format!("{https}/health")).send().await.ok()?;
        (res.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(trusting(&first).get(format!("{https}/health")).send().await.is_err(), "the old one is no longer served");
    assert!(!fc.logged("message", "TLS certificate reloaded").is_empty());
}

#[tokio::test]
async fn a_half_given_or_unreadable_certificate_stops_the_start() {
    let data = data_dir();
    let tls = tempfile::tempdir().unwrap();
    let missing = tls.path().join("missing.pem");
    for env in [
        vec![("FLASHCORE_TLS_CERT", missing.to_str().unwrap())],
        vec![("FLASHCORE_TLS_CERT", missing.to_str().unwrap()), ("FLASHCORE_TLS_KEY", missing.to_str().unwrap())],
    ] {
        let out = std::process::Command::new(flashcore_tests::flashcore_binary())
            .env("FLASHCORE_DATA_DIR", data.path())
            .env("FLASHCORE_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?}");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
        assert!(said.contains("FLASHCORE_TLS_CERT"), "{env:?}: {said}");
    }
}
