//! The node-to-node port (`FLASHCORE_CLUSTER_ADDR`): only nodes of the cluster
//! get in, by a signed short-lived token (`FLASHCORE_CLUSTER_SECRET`) or by a
//! client certificate of the cluster CA (mutual TLS), and every refusal is a
//! security event. The public port serves none of it and it serves nothing of
//! the public API.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flashcore_http::cluster::NodeTokens;
use flashcore_http::config::Secret;
use flashcore_tests::{Process, TestDatabase, data_dir, eventually, test_server_url};
use reqwest::{Certificate, Client, Identity, StatusCode};
use serde_json::Value;

const SECRET: &str = "a-cluster-secret-of-at-least-32-chars";

/// The node-to-node address the process logged.
fn cluster_addr(fc: &Process) -> String {
    let line = fc.logged("message", "flashcore listening").pop().expect("the listening line");
    let addr = line["cluster_addr"].as_str().or(line["fields"]["cluster_addr"].as_str()).expect("cluster_addr");
    assert_ne!(addr, "none");
    addr.to_owned()
}

/// Refusals logged as security events, by reason.
fn denials(fc: &Process, reason: &str) -> usize {
    fc.logged("event", "cluster.denied")
        .iter()
        .filter(|v| v["reason"] == reason || v["fields"]["reason"] == reason)
        .count()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn identity(client: &Client, base: &str, authorization: Option<String>) -> reqwest::Response {
    let mut req = client.get(format!("{base}/internal/v1/identity"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_node_port_admits_a_valid_token_only_and_reports_every_refusal() {
    let data = data_dir();
    // A node id is cluster mode, which runs on Postgres.
    let db = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    let fc = Process::start(&[
        ("FLASHCORE_DATA_DIR", data.path().to_str().unwrap()),
        ("DATABASE_URL", &db.url),
        ("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:0"),
        ("FLASHCORE_CLUSTER_SECRET", SECRET),
        ("FLASHCORE_NODE_ID", "node-a"),
    ])
    .await;
    let base = format!("http://{}", cluster_addr(&fc));
    let client = Client::new();
    let ours = NodeTokens::new(&Secret::new(SECRET));
    let theirs = NodeTokens::new(&Secret::new("another-secret-another-secret-another"));

    let ok = identity(&client, &base, Some(ours.authorization("node-b", "node-a"))).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["node"], "node-a");
    assert_eq!(body["caller"], "node-b");

    let refused = [
        (None, "token-missing"),
        (Some("Bearer whatever".to_owned()), "token-missing"),
        (Some(theirs.authorization("node-b", "node-a")), "token-invalid"),
        (Some(format!("FlashcoreNode {}", ours.mint_until("node-b", "node-a", now_ms() - 1))), "token-expired"),
        (Some(format!("FlashcoreNode {}", ours.mint_until("node-b", "node-a", now_ms() + 3_600_000))), "token-expired"),
        (Some(ours.authorization("node-b", "node-c")), "token-misaddressed"),
        (Some("FlashcoreNode node-b/node-a/1/!!!!".to_owned()), "token-invalid"),
    ];
    for (authorization, reason) in refused {
        let res = identity(&client, &base, authorization.clone()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(res.headers()["www-authenticate"], "FlashcoreNode");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["type"], "urn:flashcore:problem:node-identity-required");
        assert_eq!(problem["status"], 401);
        eventually(Duration::from_secs(5), "the refusal logged", || async { (denials(&fc, reason) > 0).then_some(()) })
            .await;
    }
    let denied = fc.metric("flashcore_cluster_denied_total", &[]).await;
    assert_eq!(denied, 7.0, "every refusal counted");

    // The two ports serve different things.
    let public = client.get(fc.url("/internal/v1/identity")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND, "the public port has no node-to-node route");
    let api = client
        .get(format!("{base}/v1/products"))
        .header("authorization", ours.authorization("node-b", "node-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND, "the node port serves no public API");
}

#[tokio::test]
async fn a_node_port_without_an_identity_or_on_the_public_port_does_not_start() {
    for env in [
        vec![("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:0")],
        vec![("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:0"), ("FLASHCORE_CLUSTER_SECRET", "too-short")],
        vec![("FLASHCORE_CLUSTER_SECRET", SECRET)],
        vec![
            ("FLASHCORE_ADDR", "127.0.0.1:18555"),
            ("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:18555"),
            ("FLASHCORE_CLUSTER_SECRET", SECRET),
        ],
    ] {
        let said = flashcore_tests::refused_start(&env).await;
        assert!(said.contains("FLASHCORE_CLUSTER"), "{env:?}: {said}");
    }
}

/// A cluster CA, a node certificate it issued (server and client use), a second
/// node's client certificate it issued, and a rogue client certificate that it
/// did not; PEM files in `dir`.
struct Pki {
    ca: String,
    peer_identity: Vec<u8>,
    rogue_identity: Vec<u8>,
}

fn write_pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "flashcore test cluster CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let node = |name: &str, issuer: &Issuer<'_, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = node("node-a", &issuer);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("node.pem"), &cert).unwrap();
    std::fs::write(dir.join("node.key"), &key).unwrap();
    let (peer_cert, peer_key) = node("node-b", &issuer);
    // The rogue's "CA" has the same name, but not the same key.
    let rogue_key = KeyPair::generate().unwrap();
    let mut rogue_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    rogue_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    rogue_params.distinguished_name.push(DnType::CommonName, "flashcore test cluster CA");
    let rogue_issuer = Issuer::new(rogue_params, rogue_key);
    let (rogue_cert, rogue_key) = node("node-b", &rogue_issuer);
    Pki {
        ca: ca.pem(),
        peer_identity: format!("{peer_key}{peer_cert}").into_bytes(),
        rogue_identity: format!("{rogue_key}{rogue_cert}").into_bytes(),
    }
}

fn mtls_client(ca: &str, identity: Option<&[u8]>) -> Client {
    let mut b = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(ca.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        b = b.identity(Identity::from_pem(pem).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn with_a_cluster_ca_only_a_certificate_it_issued_gets_in() {
    let data = data_dir();
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = write_pki(pki_dir.path());
    let path = |f: &str| pki_dir.path().join(f).to_str().unwrap().to_owned();
    let db = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    let fc = Process::start(&[
        ("FLASHCORE_DATA_DIR", data.path().to_str().unwrap()),
        ("DATABASE_URL", &db.url),
        ("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:0"),
        ("FLASHCORE_CLUSTER_CA", &path("ca.pem")),
        ("FLASHCORE_CLUSTER_CERT", &path("node.pem")),
        ("FLASHCORE_CLUSTER_KEY", &path("node.key")),
        ("FLASHCORE_NODE_ID", "node-a"),
    ])
    .await;
    let base = format!("https://{}", cluster_addr(&fc));

    let peer = mtls_client(&pki.ca, Some(&pki.peer_identity));
    let ok = identity(&peer, &base, None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.json::<Value>().await.unwrap()["node"], "node-a");

    for (who, client) in [
        ("no certificate", mtls_client(&pki.ca, None)),
        ("a rogue certificate", mtls_client(&pki.ca, Some(&pki.rogue_identity))),
    ] {
        let before = denials(&fc, "tls-handshake");
        let res = client.get(format!("{base}/internal/v1/identity")).send().await;
        assert!(res.is_err(), "{who}: {res:?}");
        eventually(Duration::from_secs(5), "the failed handshake logged", || async {
            (denials(&fc, "tls-handshake") > before).then_some(())
        })
        .await;
    }
    // Plain HTTP is no way in either.
    let plain = Client::new().get(format!("http://{}/internal/v1/identity", cluster_addr(&fc))).send().await;
    assert!(plain.as_ref().map_or(true, |r| !r.status().is_success()), "{plain:?}");
}
