//! The node-to-node port (DESIGN §9): `FLASHCORE_CLUSTER_ADDR`, never the
//! public port, and only for callers that prove they are nodes of this cluster.
//!
//! Two kinds of proof, either or both:
//!
//! - **Mutual TLS** with a cluster CA (`FLASHCORE_CLUSTER_CA`, and this node's
//!   `FLASHCORE_CLUSTER_CERT` / `FLASHCORE_CLUSTER_KEY`): the handshake requires a
//!   client certificate issued by that CA; a caller without one never gets to
//!   HTTP.
//! - **Signed short-lived tokens** from `FLASHCORE_CLUSTER_SECRET` (at least 32
//!   characters): `Authorization: FlashcoreNode <from>/<to>/<expires_ms>/<sig>`,
//!   where `sig` is base64url HMAC-SHA256 of the other three under the secret.
//!   A token names the node it is for (a token for another node is refused, so a
//!   node cannot replay what it was sent), lives at most [`MAX_TOKEN_LIFETIME`],
//!   and is checked in constant time without a lookup.
//!
//! With a CA, TLS is required and a secret, if also given, is checked as well;
//! without one, the secret is. Every refusal (a failed handshake, a missing,
//! forged, expired or misaddressed token) is a security event
//! (`flashcore::security`, `event = "cluster.denied"`) and is counted in
//! `flashcore_cluster_denied_total{reason}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::accept::Accept;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use flashcore_actors::EngineError;
use flashcore_actors::node::Node;
use flashcore_actors::peers::{PeerAnswer, PeerCall, Peers};
use flashcore_actors::ports::Route;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The scheme of a node token in `Authorization`.
pub const SCHEME: &str = "FlashcoreNode";
/// The longest a token may be valid for: one minted further ahead is refused.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// How long the tokens this node mints are valid for.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(30);
/// The route a caller checks a node's identity with (and the port's health).
pub const IDENTITY: &str = "/internal/v1/identity";
/// The route of calls about a shard this node holds ([`flashcore_actors::peers`]).
pub const PEER: &str = "/internal/v1/peer";
/// The caller's deadline for a [`PEER`] call, in milliseconds.
pub const DEADLINE_HEADER: &str = "x-flashcore-deadline-ms";
/// The longest a [`PEER`] call may run, whatever its caller asks.
const MAX_PEER_DEADLINE: Duration = Duration::from_secs(30);

/// The files of mutual TLS on the node-to-node port (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsFiles {
    /// `FLASHCORE_CLUSTER_CA`: the CA every node's certificate is issued by.
    pub ca: PathBuf,
    /// `FLASHCORE_CLUSTER_CERT`: this node's certificate chain, leaf first.
    pub cert: PathBuf,
    /// `FLASHCORE_CLUSTER_KEY`: its private key.
    pub key: PathBuf,
}

/// The node-to-node port's settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `FLASHCORE_CLUSTER_ADDR`: where the port listens (port 0 picks one).
    pub addr: SocketAddr,
    /// This node's id (`FLASHCORE_NODE_ID`; default host name and process id).
    pub node_id: String,
    /// `FLASHCORE_CLUSTER_SECRET`: the token key, if tokens are used.
    pub secret: Option<Secret>,
    /// Mutual TLS, if a CA is given.
    pub mtls: Option<MtlsFiles>,
}

/// True for an id a node may have: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ClusterConfig {
    /// Reads the port's variables through `var`; `None` when
    /// `FLASHCORE_CLUSTER_ADDR` is unset (and nothing else of it is set).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        default_node_id: impl FnOnce() -> String,
        public: SocketAddr,
    ) -> anyhow::Result<Option<ClusterConfig>> {
        let secret = var("FLASHCORE_CLUSTER_SECRET");
        let files = (var("FLASHCORE_CLUSTER_CA"), var("FLASHCORE_CLUSTER_CERT"), var("FLASHCORE_CLUSTER_KEY"));
        let Some(addr) = var("FLASHCORE_CLUSTER_ADDR") else {
            if secret.is_some() || files != (None, None, None) {
                bail!("FLASHCORE_CLUSTER_SECRET / FLASHCORE_CLUSTER_CA are set but FLASHCORE_CLUSTER_ADDR is not");
            }
            return Ok(None);
        };
        let addr: SocketAddr =
            addr.trim().parse().with_context(|| format!("FLASHCORE_CLUSTER_ADDR {addr:?}: not a socket address"))?;
        if addr.port() != 0 && addr.port() == public.port() && (addr.ip() == public.ip() || addr.ip().is_unspecified())
        {
            bail!("FLASHCORE_CLUSTER_ADDR must not be the public port ({public})");
        }
        let node_id = var("FLASHCORE_NODE_ID").map(|s| s.trim().to_owned()).unwrap_or_else(default_node_id);
        if !valid_node_id(&node_id) {
            bail!("FLASHCORE_NODE_ID {node_id:?}: 1 to 64 of A-Z a-z 0-9 . _ -");
        }
        let secret = match secret {
            Some(s) if s.trim().len() < 32 => bail!("FLASHCORE_CLUSTER_SECRET must be at least 32 characters"),
            Some(s) => Some(Secret::new(s.trim())),
            None => None,
        };
        let mtls = match files {
            (Some(ca), Some(cert), Some(key)) => {
                Some(MtlsFiles { ca: ca.trim().into(), cert: cert.trim().into(), key: key.trim().into() })
            }
            (None, None, None) => None,
            _ => bail!("FLASHCORE_CLUSTER_CA, FLASHCORE_CLUSTER_CERT and FLASHCORE_CLUSTER_KEY go together"),
        };
        if secret.is_none() && mtls.is_none() {
            bail!(
                "the node-to-node port needs an identity: FLASHCORE_CLUSTER_SECRET, or FLASHCORE_CLUSTER_CA with \
                 FLASHCORE_CLUSTER_CERT and FLASHCORE_CLUSTER_KEY"
            );
        }
        Ok(Some(ClusterConfig { addr, node_id, secret, mtls }))
    }
}

/// Mints and checks node tokens under one secret.
#[derive(Clone)]
pub struct NodeTokens {
    keyed: HmacSha256,
}

impl std::fmt::Debug for NodeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTokens(..)")
    }
}

/// Why a token was refused (the security event's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: FlashcoreNode …`.
    Missing,
    /// Not four fields, a bad node id or time, or a bad signature.
    Forged,
    /// Past its expiry, or valid for longer than [`MAX_TOKEN_LIFETIME`].
    Expired,
    /// Minted for another node.
    Misaddressed,
}

impl Refusal {
    /// The stable name logged and counted.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "token-missing",
            Refusal::Forged => "token-invalid",
            Refusal::Expired => "token-expired",
            Refusal::Misaddressed => "token-misaddressed",
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl NodeTokens {
    /// Tokens under `secret`.
    pub fn new(secret: &Secret) -> Self {
        // HMAC accepts keys of any length; this cannot fail.
        let keyed = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes()).unwrap_or_else(|_| unreachable!());
        NodeTokens { keyed }
    }

    fn mac(&self, from: &str, to: &str, expires_ms: u64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"flashcore-node-v1\n");
        mac.update(from.as_bytes());
        mac.update(b"\n");
        mac.update(to.as_bytes());
        mac.update(b"\n");
        mac.update(expires_ms.to_string().as_bytes());
        mac
    }

    /// A token for a call from node `from` to node `to`, valid until `expires_ms`
    /// (Unix milliseconds).
    pub fn mint_until(&self, from: &str, to: &str, expires_ms: u64) -> String {
        let sig = self.mac(from, to, expires_ms).finalize().into_bytes();
        format!("{from}/{to}/{expires_ms}/{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The `Authorization` value of a call from `from` to `to`, valid for [`TOKEN_LIFETIME`].
    pub fn authorization(&self, from: &str, to: &str) -> String {
        format!("{SCHEME} {}", self.mint_until(from, to, now_ms() + TOKEN_LIFETIME.as_millis() as u64))
    }

    /// The calling node, if `token` is valid for node `me` at `now_ms`.
    pub fn verify<'t>(&self, token: &'t str, me: &str, now_ms: u64) -> Result<&'t str, Refusal> {
        let mut fields = token.splitn(4, '/');
        let (Some(from), Some(to), Some(expires), Some(sig)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Refusal::Forged);
        };
        let expires_ms: u64 = expires.parse().map_err(|_| Refusal::Forged)?;
        if !valid_node_id(from) || !valid_node_id(to) || expires != expires_ms.to_string() {
            return Err(Refusal::Forged);
        }
        // One SHA-256 output; anything much longer fails to decode here.
        let mut raw = [0u8; 48];
        let n = URL_SAFE_NO_PAD.decode_slice(sig, &mut raw).map_err(|_| Refusal::Forged)?;
        self.mac(from, to, expires_ms).verify_slice(&raw[..n]).map_err(|_| Refusal::Forged)?;
        if to != me {
            return Err(Refusal::Misaddressed);
        }
        if expires_ms <= now_ms || expires_ms > now_ms + MAX_TOKEN_LIFETIME.as_millis() as u64 {
            return Err(Refusal::Expired);
        }
        Ok(from)
    }
}

/// Logs a refused caller once, as a structured security event, and counts it.
pub fn report_denial(reason: &'static str, peer: Option<SocketAddr>, detail: &str) {
    tracing::warn!(
        target: "flashcore::security",
        event = "cluster.denied",
        reason,
        client = %peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        detail,
        "node-to-node call refused"
    );
    metrics::counter!("flashcore_cluster_denied_total", "reason" => reason).increment(1);
}

/// What the port's handlers share.
#[derive(Clone)]
struct Port {
    node_id: Arc<str>,
    tokens: Option<NodeTokens>,
    /// This process: its engine serves the calls.
    node: Arc<Node>,
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("urn:flashcore:problem:{code}"),
        "title": "Node identity required",
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(SCHEME));
    res
}

/// Refuses a call without a valid token for this node (when tokens are used).
async fn authenticate(State(port): State<Port>, req: Request, next: Next) -> Response {
    let Some(tokens) = &port.tokens else {
        return next.run(req).await;
    };
    let peer = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(SCHEME))
        .and_then(|v| v.strip_prefix(' '));
    let verdict = match token {
        None => Err(Refusal::Missing),
        Some(t) => tokens.verify(t.trim(), &port.node_id, now_ms()).map(str::to_owned),
    };
    match verdict {
        Ok(caller) => {
            let mut req = req;
            req.extensions_mut().insert(Caller(caller));
            next.run(req).await
        }
        Err(refusal) => {
            report_denial(refusal.reason(), peer, req.uri().path());
            problem(
                StatusCode::UNAUTHORIZED,
                "node-identity-required",
                "this port serves the nodes of this cluster only: a valid FlashcoreNode token for this node is required",
            )
        }
    }
}

/// The calling node, as its token names it.
#[derive(Clone, Debug)]
struct Caller(String);

async fn identity(State(port): State<Port>, caller: Option<axum::Extension<Caller>>) -> Response {
    let caller = caller.map(|c| c.0.0);
    axum::Json(json!({ "node": &*port.node_id, "caller": caller })).into_response()
}

/// A call from another node about a shard this one holds: answered with the
/// engine's verdict as JSON (`{"Ok": answer}` or `{"Err": engine error}`),
/// `Elsewhere` when this node does not serve now.
async fn peer(State(port): State<Port>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    let call: PeerCall = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => {
            let mut res = problem(StatusCode::BAD_REQUEST, "invalid-body", &format!("not a peer call: {e}"));
            res.headers_mut().remove(header::WWW_AUTHENTICATE);
            return res;
        }
    };
    let elsewhere = EngineError::Elsewhere { shard: call.shard };
    let deadline = headers
        .get(DEADLINE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(MAX_PEER_DEADLINE, Duration::from_millis)
        .min(MAX_PEER_DEADLINE);
    // During a move, a call about a shard that stays here is still served.
    let admitted = match port.node.ownership().config().shards.shard(call.shard) {
        Some(shard) => port.node.ownership().admit_peer(shard),
        None => port.node.ownership().admit(),
    };
    let result: Result<PeerAnswer, EngineError> = match (admitted, port.node.engine()) {
        (Ok(admission), Some(engine)) => {
            let answer = tokio::time::timeout(deadline, engine.serve_peer(call)).await.unwrap_or_else(|_| {
                Err(EngineError::Unavailable { retry_after_secs: 1, reason: "peer call past its deadline".into() })
            });
            // An answer computed while the lease was lost never leaves.
            if admission.still_valid() { answer } else { Err(elsewhere) }
        }
        _ => Err(elsewhere),
    };
    axum::Json(result).into_response()
}

/// The other nodes, as this one calls them: the node port's client, with a
/// token per call (and the node's certificate under mutual TLS).
pub struct NodeClient {
    http: reqwest::Client,
    scheme: &'static str,
    node_id: String,
    tokens: Option<NodeTokens>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient").field("node_id", &self.node_id).field("scheme", &self.scheme).finish()
    }
}

impl NodeClient {
    /// The client of a node configured with `config`.
    pub fn new(config: &ClusterConfig) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let mut scheme = "http";
        if let Some(files) = &config.mtls {
            let ca = std::fs::read(&files.ca).with_context(|| format!("{}", files.ca.display()))?;
            let mut identity = std::fs::read(&files.cert).with_context(|| format!("{}", files.cert.display()))?;
            identity.extend(std::fs::read(&files.key).with_context(|| format!("{}", files.key.display()))?);
            http = http
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).context("FLASHCORE_CLUSTER_CA")?)
                .identity(reqwest::Identity::from_pem(&identity).context("FLASHCORE_CLUSTER_CERT / _KEY")?);
            scheme = "https";
        }
        Ok(NodeClient {
            http: http.build().context("the node-to-node client")?,
            scheme,
            node_id: config.node_id.clone(),
            tokens: config.secret.as_ref().map(NodeTokens::new),
        })
    }
}

#[async_trait::async_trait]
impl Peers for NodeClient {
    async fn call(&self, route: &Route, call: PeerCall, deadline: Duration) -> Result<PeerAnswer, EngineError> {
        let failed = |why: String| EngineError::Unavailable { retry_after_secs: 1, reason: why };
        let mut req = self
            .http
            .post(format!("{}://{}{PEER}", self.scheme, route.address))
            .timeout(deadline)
            .header(DEADLINE_HEADER, deadline.as_millis().to_string())
            .json(&call);
        if let Some(tokens) = &self.tokens {
            req = req.header(header::AUTHORIZATION, tokens.authorization(&self.node_id, &route.owner.node));
        }
        let res = match req.send().await {
            Ok(res) => res,
            // Nothing reached it (stopped, or gone since the route was read):
            // as if it no longer held the shard, so the caller looks again.
            Err(e) if e.is_connect() => return Err(EngineError::Elsewhere { shard: route.shard.get() }),
            Err(e) => return Err(failed(format!("node {}: {e}", route.owner))),
        };
        if !res.status().is_success() {
            return Err(failed(format!("node {} answered {}", route.owner, res.status())));
        }
        res.json::<Result<PeerAnswer, EngineError>>()
            .await
            .map_err(|e| failed(format!("node {}: unreadable answer: {e}", route.owner)))?
    }
}

/// The node-to-node port, bound: [`InternalPort::serve`] serves it.
pub struct InternalPort {
    listener: tokio::net::TcpListener,
    node_id: Arc<str>,
    tokens: Option<NodeTokens>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
}

impl std::fmt::Debug for InternalPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalPort")
            .field("addr", &self.listener.local_addr().ok())
            .field("mtls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl InternalPort {
    /// Binds `config.addr` and loads the TLS files; any failure stops the start.
    pub async fn bind(config: &ClusterConfig) -> anyhow::Result<InternalPort> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("FLASHCORE_CLUSTER_ADDR {}: cannot listen", config.addr))?;
        let tls = match &config.mtls {
            Some(files) => Some(mtls_config(files)?),
            None => None,
        };
        let tokens = config.secret.as_ref().map(NodeTokens::new);
        Ok(InternalPort { listener, node_id: config.node_id.as_str().into(), tokens, tls })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `node`'s calls until `stop` resolves.
    pub async fn serve(self, node: Arc<Node>, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let InternalPort { listener, node_id, tokens, tls } = self;
        let port = Port { node_id, tokens, node };
        let router = Router::new()
            .route(IDENTITY, get(identity))
            .route(PEER, axum::routing::post(peer))
            .layer(axum::middleware::from_fn_with_state(port.clone(), authenticate))
            .fallback(|| async { problem(StatusCode::NOT_FOUND, "not-found", "no such node-to-node route") })
            .with_state(port);
        match tls {
            None => {
                let svc = router.into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, svc).with_graceful_shutdown(stop).await?;
            }
            Some(rustls) => {
                let handle = axum_server::Handle::new();
                let graceful = handle.clone();
                tokio::spawn(async move {
                    stop.await;
                    graceful.graceful_shutdown(Some(Duration::from_secs(5)));
                });
                let acceptor = Refusals(axum_server::tls_rustls::RustlsAcceptor::new(rustls));
                axum_server::from_tcp(listener.into_std()?)?
                    .acceptor(acceptor)
                    .handle(handle)
                    .serve(router.into_make_service_with_connect_info::<SocketAddr>())
                    .await?;
            }
        }
        Ok(())
    }
}

/// rustls that requires a client certificate issued by the cluster CA.
fn mtls_config(files: &MtlsFiles) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let what = |p: &PathBuf, name: &str| format!("{name} ({})", p.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&files.ca).with_context(|| what(&files.ca, "FLASHCORE_CLUSTER_CA"))? {
        roots.add(cert.with_context(|| what(&files.ca, "FLASHCORE_CLUSTER_CA"))?)?;
    }
    if roots.is_empty() {
        bail!("{}: no certificate", what(&files.ca, "FLASHCORE_CLUSTER_CA"));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .with_context(|| what(&files.cert, "FLASHCORE_CLUSTER_CERT"))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| what(&files.key, "FLASHCORE_CLUSTER_KEY"))?;
    // The process's provider (ring: the only one built in), as axum-server uses.
    let verifier =
        rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().context("FLASHCORE_CLUSTER_CA")?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("FLASHCORE_CLUSTER_CERT / FLASHCORE_CLUSTER_KEY")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)))
}

/// The TLS acceptor, reporting each failed handshake (no or a foreign client
/// certificate) as a security event.
#[derive(Clone)]
struct Refusals(Rustls);

type Rustls = axum_server::tls_rustls::RustlsAcceptor;

impl<S: Send + 'static> Accept<tokio::net::TcpStream, S> for Refusals {
    type Stream = <Rustls as Accept<tokio::net::TcpStream, S>>::Stream;
    type Service = <Rustls as Accept<tokio::net::TcpStream, S>>::Service;
    type Future = futures::future::BoxFuture<'static, std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let peer = stream.peer_addr().ok();
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let accepted = inner.await;
            if let Err(e) = &accepted {
                report_denial("tls-handshake", peer, &e.to_string());
            }
            accepted
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> NodeTokens {
        NodeTokens::new(&Secret::new("s".repeat(32)))
    }

    #[test]
    fn a_token_names_its_caller_for_its_node_only() {
        let t = tokens();
        let now = 1_000_000;
        let token = t.mint_until("node-a", "node-b", now + 10_000);
        assert_eq!(t.verify(&token, "node-b", now), Ok("node-a"));
        assert_eq!(t.verify(&token, "node-c", now), Err(Refusal::Misaddressed));
        assert_eq!(t.verify(&token, "node-b", now + 10_000), Err(Refusal::Expired));
        let far = t.mint_until("node-a", "node-b", now + 61_000);
        assert_eq!(t.verify(&far, "node-b", now), Err(Refusal::Expired), "longer than the longest lifetime");
        let other = NodeTokens::new(&Secret::new("t".repeat(32))).mint_until("node-a", "node-b", now + 10_000);
        assert_eq!(t.verify(&other, "node-b", now), Err(Refusal::Forged), "another secret");
    }

    #[test]
    fn a_tampered_token_is_forged() {
        let t = tokens();
        let now = 5_000;
        let token = t.mint_until("a", "b", now + 1_000);
        let cases = [
            token.replacen("a/", "x/", 1),
            token.replace(&(now + 1_000).to_string(), &(now + 2_000).to_string()),
            format!("{token}A"),
            token.rsplit_once('/').map(|(head, _)| head.to_owned()).unwrap_or_default(),
            "a/b/+6000/AAAA".into(),
            "a/b/c/d/e".into(),
            String::new(),
            "../b/6000/x".into(),
        ];
        for case in cases {
            assert_eq!(t.verify(&case, "b", now), Err(Refusal::Forged), "{case:?}");
        }
    }

    #[test]
    fn the_port_needs_an_address_an_identity_and_not_the_public_port() {
        let public: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!());
        let from = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            ClusterConfig::from_vars(
                move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
                || "host-1".into(),
                public,
            )
        };
        let secret = "x".repeat(32);
        assert!(from(&[]).unwrap_or_else(|e| panic!("{e}")).is_none());
        assert!(from(&[("FLASHCORE_CLUSTER_SECRET", &secret)]).is_err(), "a secret without an address");
        assert!(from(&[("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:9090")]).is_err(), "no identity");
        let short = [("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:9090"), ("FLASHCORE_CLUSTER_SECRET", "short")];
        assert!(from(&short).is_err());
        let same = [("FLASHCORE_CLUSTER_ADDR", "0.0.0.0:8080"), ("FLASHCORE_CLUSTER_SECRET", &secret)];
        assert!(from(&same).is_err(), "the public port");
        let half = [("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:9090"), ("FLASHCORE_CLUSTER_CA", "ca.pem")];
        assert!(from(&half).is_err(), "a CA without the node's pair");
        let bad_id = [
            ("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:9090"),
            ("FLASHCORE_CLUSTER_SECRET", &secret),
            ("FLASHCORE_NODE_ID", "a/b"),
        ];
        assert!(from(&bad_id).is_err());
        let ok = from(&[("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:9090"), ("FLASHCORE_CLUSTER_SECRET", &secret)])
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("configured"));
        assert_eq!(ok.node_id, "host-1");
        assert!(ok.mtls.is_none() && ok.secret.is_some());
    }
}
