//! Helpers for the black-box tests: spawn a real flashcore on port 0 and talk
//! to it over HTTP like any client would.

use std::time::Duration;

use flashcore_actors::Engine;
use flashcore_http::{Application, Config};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use flashcore_test_support::{TestDatabase, eventually, test_redis_url, test_server_url};

/// A running flashcore and a client for it.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP client (no pooling limits).
    pub client: Client,
    /// The engine, for fault injection only.
    pub engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The bootstrap admin key of [`test_config`].
pub const TEST_ADMIN_KEY: &str = "fck_test-admin-key-test-admin-key-test-admin";

/// A config for tests: port 0, memory store, demo catalog, [`TEST_ADMIN_KEY`].
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.store = flashcore_http::config::StoreKind::Memory;
    c.addr = "127.0.0.1:0".parse().unwrap_or(c.addr);
    c.token_secret = Some(flashcore_http::config::Secret::new("test-secret-test-secret-test-secret"));
    // One address drives every simulated buyer; tests of the limits turn them on.
    c.edge.client_quota = None;
    c.edge.sku_quota = None;
    c.edge.admin_key = Some(flashcore_http::config::Secret::new(TEST_ADMIN_KEY));
    c
}

impl TestApp {
    /// Spawns flashcore with the default test config.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(test_config()).await
    }

    /// Spawns flashcore with `config` (port forced to 0).
    pub async fn spawn_with(mut config: Config) -> TestApp {
        config.addr = "127.0.0.1:0".parse().unwrap_or(config.addr);
        let app = Application::build(config).await.unwrap_or_else(|e| panic!("app failed to start: {e:#}"));
        let base = format!("http://127.0.0.1:{}", app.port());
        let node = app.node();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let engine = eventually(Duration::from_secs(30), "recovery to finish", || async {
            let serving = node.ownership().phase() == flashcore_actors::ownership::Phase::Serving;
            node.engine().filter(|_| serving).map(|e| (*e).clone())
        })
        .await;
        let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        TestApp { base, client, engine, stop: Some(stop), task: Some(task) }
    }

    /// Spawns flashcore with `config`, its shared edge state in Redis under a fresh
    /// prefix (returned: the keys go when it drops) when `redis`, else in process.
    pub async fn spawn_shared(mut config: Config, redis: bool) -> (TestApp, Option<RedisPrefix>) {
        let prefix = if redis { Some(RedisPrefix::new().await) } else { None };
        if let Some(p) = &prefix {
            p.configure(&mut config, &test_redis_url());
        }
        (Self::spawn_with(config).await, prefix)
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a cart; returns (cart_id, token).
    pub async fn new_cart(&self) -> (String, String) {
        let res = self.client.post(self.url("/v1/carts")).send().await.expect("create cart");
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.expect("cart json");
        (body["cart_id"].as_str().unwrap_or_default().to_owned(), body["token"].as_str().unwrap_or_default().to_owned())
    }

    /// `PUT /v1/carts/{cart}/items/{sku}` with `{quantity}`.
    pub async fn set_item(&self, cart: &str, token: &str, sku: &str, qty: u64) -> Response {
        self.client
            .put(self.url(&format!("/v1/carts/{cart}/items/{sku}")))
            .bearer_auth(token)
            .json(&json!({ "quantity": qty }))
            .send()
            .await
            .expect("set item")
    }

    /// `POST /v1/carts/{cart}/checkout` with a payment token and an idempotency key.
    pub async fn checkout(&self, cart: &str, token: &str, key: &str, payment: &str) -> Response {
        self.client
            .post(self.url(&format!("/v1/carts/{cart}/checkout")))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({ "payment": { "token": payment }, "email": "buyer@example.com" }))
            .send()
            .await
            .expect("checkout")
    }

    /// `GET /v1/carts/{cart}` as JSON.
    pub async fn cart(&self, cart: &str, token: &str) -> Value {
        let res =
            self.client.get(self.url(&format!("/v1/carts/{cart}"))).bearer_auth(token).send().await.expect("cart");
        res.json().await.expect("json")
    }

    /// `GET /v1/products/{sku}` as JSON.
    pub async fn product(&self, sku: &str) -> Value {
        self.client
            .get(self.url(&format!("/v1/products/{sku}")))
            .send()
            .await
            .expect("product")
            .json()
            .await
            .expect("json")
    }

    /// A new API key with `role` (`operator` or `admin`), made with the bootstrap admin key.
    pub async fn api_key(&self, role: &str) -> String {
        let res = self
            .client
            .post(self.url("/v1/admin/keys"))
            .bearer_auth(TEST_ADMIN_KEY)
            .json(&json!({ "name": format!("test-{role}"), "role": role }))
            .send()
            .await
            .expect("create key");
        assert_eq!(res.status(), StatusCode::CREATED, "creating a {role} key");
        let body: Value = res.json().await.expect("key json");
        body["secret"].as_str().expect("a secret").to_owned()
    }

    /// `available` of a product.
    pub async fn available(&self, sku: &str) -> u64 {
        self.product(sku).await["available"].as_u64().unwrap_or(u64::MAX)
    }
}

impl TestApp {
    /// Adds a product with `stock` units straight through the engine (quicker
    /// than the operator API, which has tests of its own); returns its SKU.
    pub async fn add_product(&self, sku: &str, cents: i64, max_per_order: Option<u32>, stock: u64) -> String {
        use flashcore_domain::{Currency, Money, Product, Sku};
        let p = Product::new(
            Sku::parse(sku).expect("sku"),
            format!("Test product {sku}"),
            "",
            Money::new(cents, Currency::EUR).expect("money"),
            max_per_order,
            None,
        )
        .expect("product");
        self.engine.upsert_product(p).await.expect("upsert");
        self.engine
            .adjust_stock(&Sku::parse(sku).expect("sku"), flashcore_actors::sku::StockChange::SetTotal(stock))
            .await
            .expect("stock");
        sku.to_owned()
    }
}

/// Asserts `res` is a problem document with `status` and `code`; returns its body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "status; body: {body}");
    assert_eq!(ctype, "application/problem+json", "content type; body: {body}");
    assert_eq!(body["code"], code, "code; body: {body}");
    assert_eq!(body["type"], format!("urn:flashcore:problem:{code}"));
    assert_eq!(body["status"], status);
    body
}

/// The release `flashcore` binary of this workspace, (re)built once per test run
/// so a test never runs a stale binary (cargo does not rebuild another package's
/// binary for this test target). Process tests run what operators run: the
/// release build, whose take-over and hand-off times are the ones that count
/// (`make test` builds it first, and its k6 smoke suite reuses it).
pub fn flashcore_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/api-xxxx -> target/release/flashcore
            let exe = std::env::current_exe().expect("test executable path");
            let target = exe.parent().and_then(|d| d.parent()).and_then(|d| d.parent()).expect("target dir");
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--release", "--locked", "-p", "flashcore-http", "--bin", "flashcore"])
                .status()
                .expect("cargo build");
            assert!(status.success(), "building the flashcore binary failed");
            target.join("release").join("flashcore")
        })
        .clone()
}

/// A `flashcore` process started from the real binary, on a free port.
#[derive(Debug)]
pub struct Process {
    /// The child process.
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Every line it logged so far (JSON).
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts the binary with `env` (plus `FLASHCORE_ADDR=127.0.0.1:0`) and waits
    /// until it is ready. Set `FLASHCORE_DATA_DIR` (see [`data_dir`]) unless the
    /// test means to use `./data`.
    pub async fn start(env: &[(&str, &str)]) -> Process {
        let p = Process::launch(env).await;
        p.wait_ready(Duration::from_secs(60)).await;
        p
    }

    /// Starts the binary with `env` and waits only for the log line that names
    /// the bound address: a standby never becomes ready on its own.
    pub async fn launch(env: &[(&str, &str)]) -> Process {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut cmd = tokio::process::Command::new(flashcore_binary());
        cmd.env("FLASHCORE_ADDR", "127.0.0.1:0")
            .env("FLASHCORE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // Every simulated buyer comes from one address.
            .env("FLASHCORE_RATE_CLIENT", "off")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn flashcore");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let addr = serde_json::from_str::<Value>(&line)
                    .ok()
                    .filter(|v| v["message"] == "flashcore listening")
                    .and_then(|v| v["addr"].as_str().map(str::to_owned));
                logs.lock().expect("logs").push(line);
                if addr.is_some() {
                    return addr;
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("flashcore logged its address");
        // Keep reading stdout (so the child never blocks on a full pipe), keeping the lines.
        let kept = std::sync::Arc::clone(&logs);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().expect("logs").push(line);
            }
        });
        Process { child, base: format!("http://{addr}"), logs }
    }

    /// Waits until `/ready` answers 200, at most `deadline`.
    pub async fn wait_ready(&self, deadline: Duration) {
        let client = Client::new();
        let base = self.base.clone();
        eventually(deadline, "the process to become ready", || async {
            let res = client.get(format!("{base}/ready")).send().await.ok()?;
            (res.status() == StatusCode::OK).then_some(())
        })
        .await;
    }

    /// The logged lines whose JSON has `field` equal to `value`.
    pub fn logged(&self, field: &str, value: &str) -> Vec<Value> {
        let logs = self.logs.lock().expect("logs");
        logs.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v[field] == value || v["fields"][field] == value)
            .collect()
    }

    /// Sends `signal` (e.g. "TERM", "KILL", "STOP", "CONT") to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }
}

/// A fresh temporary data directory (removed when dropped).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A TCP proxy between flashcore and a service that a test can cut and restore,
/// so outage tests never stop the machine's shared services.
#[derive(Debug)]
pub struct ChaosProxy {
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    up: tokio::sync::watch::Sender<Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Cut,
    Hang,
}

impl ChaosProxy {
    /// Proxies 127.0.0.1:<port> to `target`.
    pub async fn start(target: std::net::SocketAddr) -> ChaosProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (up, _) = tokio::sync::watch::channel(Mode::Up);
        let state = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mode = *state.borrow();
                if mode == Mode::Cut {
                    drop(inbound); // refused while cut
                    continue;
                }
                let mut changes = state.subscribe();
                tokio::spawn(async move {
                    if mode == Mode::Hang {
                        // Hold the connection open, forwarding nothing, until cut.
                        let _ = changes.wait_for(|m| *m == Mode::Cut).await;
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = changes.wait_for(|m| *m == Mode::Cut) => {} // dropping both ends cuts the link
                    }
                });
            }
        });
        ChaosProxy { port, up }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(Mode::Cut);
    }

    /// Accepts new connections but forwards nothing: the service hangs.
    pub fn hang(&self) {
        self.up.send_replace(Mode::Hang);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.send_replace(Mode::Up);
    }
}

/// One buyer with a cart, talking to any flashcore (a [`TestApp`] or a [`Process`]).
#[derive(Debug)]
pub struct Buyer {
    /// HTTP client.
    pub client: Client,
    /// `http://host:port`.
    pub base: String,
    /// The cart's id.
    pub cart: String,
    /// The cart's token.
    pub token: String,
}

impl Buyer {
    /// Opens a cart at `base`.
    pub async fn new(base: &str) -> Buyer {
        let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap_or_default();
        let res = client.post(format!("{base}/v1/carts")).send().await.expect("create cart");
        assert_eq!(res.status(), StatusCode::CREATED, "creating a cart");
        let cart: Value = res.json().await.expect("cart json");
        Buyer {
            client,
            base: base.to_owned(),
            cart: cart["cart_id"].as_str().unwrap_or_default().to_owned(),
            token: cart["token"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Sets a line; returns the status.
    pub async fn set(&self, sku: &str, qty: u32) -> StatusCode {
        self.set_with_key(sku, qty, None).await.status()
    }

    /// Sets a line, with an `Idempotency-Key` if given.
    pub async fn set_with_key(&self, sku: &str, qty: u32, key: Option<&str>) -> Response {
        let mut req = self
            .client
            .put(format!("{}/v1/carts/{}/items/{sku}", self.base, self.cart))
            .bearer_auth(&self.token)
            .json(&json!({ "quantity": qty }));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("set item")
    }

    /// Checks out with `tok_visa`.
    pub async fn checkout(&self, key: &str) -> Response {
        self.checkout_with(key, "tok_visa").await
    }

    /// Checks out with a payment token.
    pub async fn checkout_with(&self, key: &str, payment: &str) -> Response {
        self.client
            .post(format!("{}/v1/carts/{}/checkout", self.base, self.cart))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "payment": { "token": payment } }))
            .send()
            .await
            .expect("checkout")
    }

    /// The cart as JSON.
    pub async fn cart(&self) -> Value {
        let url = format!("{}/v1/carts/{}", self.base, self.cart);
        self.client.get(url).bearer_auth(&self.token).send().await.expect("cart").json().await.expect("json")
    }

    /// `available` of a product.
    pub async fn available(&self, sku: &str) -> u64 {
        let res = self.client.get(format!("{}/v1/products/{sku}", self.base)).send().await.expect("product");
        let p: Value = res.json().await.expect("json");
        p["available"].as_u64().unwrap_or(u64::MAX)
    }
}

/// A fresh key prefix on the test Redis; every key under it is deleted on drop.
#[derive(Debug)]
pub struct RedisPrefix {
    /// `fc-test-<uuid>:`.
    pub prefix: String,
    edge: flashcore_persistence::redis::RedisEdge,
}

impl RedisPrefix {
    /// A new prefix; panics (never skips) if Redis does not answer.
    pub async fn new() -> RedisPrefix {
        let prefix = format!("fc-test-{}:", uuid::Uuid::new_v4().simple());
        let url = test_redis_url();
        let edge = flashcore_persistence::redis::RedisEdge::new(&url, &prefix, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("bad FLASHCORE_TEST_REDIS {url}: {e}"));
        edge.ping().await.unwrap_or_else(|e| panic!("the test Redis at {url} does not answer (is it running?): {e}"));
        RedisPrefix { prefix, edge }
    }

    /// The edge adapter on this prefix (to look at what flashcore wrote).
    pub fn edge(&self) -> &flashcore_persistence::redis::RedisEdge {
        &self.edge
    }

    /// `config` pointed at this prefix through `url` (the test Redis, or a proxy to it).
    pub fn configure(&self, config: &mut Config, url: &str) {
        config.edge.redis_url = Some(flashcore_http::config::Secret::new(url));
        config.edge.redis_prefix = self.prefix.clone();
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let edge = self.edge.clone();
        // Drop can't await; clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(edge.delete_prefix());
            }
        })
        .join();
    }
}
