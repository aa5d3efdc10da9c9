//! Helpers for the black-box tests: spawn a real flashcore on port 0 (in this
//! process, [`TestApp`], or as the release binary, [`Process`]) and talk to it
//! over HTTP like any client would, through one vocabulary, [`Api`]: a cart
//! handle ([`TestCart`]), product reads, a [`Snapshot`] for "this request
//! changed nothing" and one problem matcher ([`assert_problem`]).

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcore_actors::Engine;
use flashcore_http::{Application, Config};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use flashcore_test_support::{TestDatabase, eventually, test_redis_url, test_server_url};

pub mod scale;

/// The bootstrap admin key of [`test_config`].
pub const TEST_ADMIN_KEY: &str = "fck_test-admin-key-test-admin-key-test-admin";

/// The email every checkout of a [`TestCart`] sends.
pub const BUYER_EMAIL: &str = "buyer@example.com";

/// A config for tests: port 0, memory store, demo catalog, [`TEST_ADMIN_KEY`].
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.store = flashcore_http::config::StoreKind::Memory;
    c.addr = "127.0.0.1:0".parse().unwrap_or(c.addr);
    c.token_secret = Some(flashcore_http::config::Secret::new("test-secret-test-secret-test-secret"));
    // One address drives every simulated buyer; tests of the limits turn them on.
    c.http.client_quota = None;
    c.http.sku_quota = None;
    c.http.admin_key = Some(flashcore_http::config::Secret::new(TEST_ADMIN_KEY));
    c
}

// ---------------------------------------------------------------------- Api

/// The HTTP face of a running flashcore, in process or a [`Process`]: every call
/// the tests make over the API, each with one body. [`TestApp`] and [`Process`]
/// dereference to it.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP client (no pooling limits, a 30 s timeout).
    pub client: Client,
    /// The admin key [`Api::admin_get`] and [`Api::snapshot`] read with.
    admin_key: String,
    /// `(id, token)` of every cart [`Api::new_cart`] opened, for [`Api::snapshot`].
    carts: Arc<Mutex<Vec<(String, String)>>>,
}

impl Api {
    /// The API at `base`, read as an operator with [`TEST_ADMIN_KEY`].
    pub fn new(base: impl Into<String>) -> Api {
        let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Api { base: base.into(), client, admin_key: TEST_ADMIN_KEY.to_owned(), carts: Arc::default() }
    }

    /// This API, read with `key` instead of [`TEST_ADMIN_KEY`].
    pub fn with_admin_key(mut self, key: &str) -> Api {
        key.clone_into(&mut self.admin_key);
        self
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/carts`: a new, empty cart (asserted 201), remembered for [`Api::snapshot`].
    pub async fn new_cart(&self) -> TestCart {
        let res = self.client.post(self.url("/v1/carts")).send().await.expect("create cart");
        assert_eq!(res.status(), StatusCode::CREATED, "creating a cart");
        let body: Value = res.json().await.expect("cart json");
        let cart = self.cart(body["cart_id"].as_str().expect("cart_id"), body["token"].as_str().expect("token"));
        self.carts.lock().expect("carts").push((cart.id.clone(), cart.token.clone()));
        cart
    }

    /// A handle on cart `id` that authenticates with `token` (which may be
    /// another cart's, or made up); not remembered for [`Api::snapshot`].
    pub fn cart(&self, id: &str, token: &str) -> TestCart {
        TestCart { api: self.clone(), id: id.to_owned(), token: token.to_owned() }
    }

    /// `GET /v1/products/{sku}` as JSON (asserted 200).
    pub async fn product(&self, sku: &str) -> Value {
        let res = self.client.get(self.url(&format!("/v1/products/{sku}"))).send().await.expect("product");
        assert_eq!(res.status(), StatusCode::OK, "GET /v1/products/{sku}");
        res.json().await.expect("product json")
    }

    /// `available` of a product.
    pub async fn available(&self, sku: &str) -> u64 {
        self.product(sku).await["available"].as_u64().expect("available")
    }

    /// `GET path` with the admin key, as JSON (asserted 200).
    pub async fn admin_get(&self, path: &str) -> Value {
        let res = self.client.get(self.url(path)).bearer_auth(&self.admin_key).send().await.expect("admin read");
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.expect("json")
    }

    /// A new API key named `name` with `role` (`operator` or `admin`), made with
    /// the admin key; returns `(id, secret)`.
    pub async fn create_key(&self, name: &str, role: &str) -> (String, String) {
        let res = self
            .client
            .post(self.url("/v1/admin/keys"))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "name": name, "role": role }))
            .send()
            .await
            .expect("create key");
        assert_eq!(res.status(), StatusCode::CREATED, "creating a {role} key");
        let body: Value = res.json().await.expect("key json");
        (body["id"].as_str().expect("id").to_owned(), body["secret"].as_str().expect("secret").to_owned())
    }

    /// Everything the API shows that a request could change: every product
    /// (stock included), every cart [`Api::new_cart`] opened, every order and
    /// every API key. Two equal snapshots around a request mean it changed nothing.
    pub async fn snapshot(&self) -> Snapshot {
        let mut products = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/products?limit=100&cursor={c}"),
                None => "/v1/products?limit=100".to_owned(),
            };
            let res = self.client.get(self.url(&path)).send().await.expect("product page");
            assert_eq!(res.status(), StatusCode::OK, "GET {path}");
            let page: Value = res.json().await.expect("product page json");
            products.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let opened = self.carts.lock().expect("carts").clone();
        let mut carts = Vec::new();
        for (id, token) in opened {
            carts.push(self.cart(&id, &token).get().await);
        }
        Snapshot {
            products,
            carts,
            orders: self.admin_get("/v1/admin/orders?limit=500").await,
            keys: self.admin_get("/v1/admin/keys").await,
            rooms: self.admin_get("/v1/admin/queues").await,
        }
    }

    /// The text of `/metrics` (asserted 200).
    pub async fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.expect("metrics");
        assert_eq!(res.status(), StatusCode::OK, "GET /metrics");
        res.text().await.expect("metrics text")
    }

    /// The metric `name` summed over its series whose labels include every one
    /// of `labels` (none: all of them).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics().await, name, labels)
    }
}

/// The metric `name` in Prometheus `text`, summed over the series whose labels
/// include every one of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| {
            if let Some(rest) = rest.strip_prefix('{') {
                // Route templates contain braces: the labels end at the last one.
                let (series, value) = rest.rsplit_once('}')?;
                Some((series, value))
            } else {
                rest.starts_with(' ').then_some(("", rest))
            }
        })
        .filter(|(series, _)| labels.iter().all(|(k, v)| series.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

/// What [`Api::snapshot`] saw.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    /// Every product as the listing shows it (`available` and `total` included).
    pub products: Vec<Value>,
    /// Every cart opened through the [`Api`], in the order they were opened.
    pub carts: Vec<Value>,
    /// `GET /v1/admin/orders?limit=500`.
    pub orders: Value,
    /// `GET /v1/admin/keys`.
    pub keys: Value,
    /// `GET /v1/admin/queues`: every waiting room's figures.
    pub rooms: Value,
}

/// One cart, addressed with one token, on one [`Api`].
#[derive(Debug, Clone)]
pub struct TestCart {
    api: Api,
    /// The cart's id.
    pub id: String,
    /// The token it authenticates with.
    pub token: String,
}

impl TestCart {
    /// `/v1/carts/{id}` + `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/carts/{}{rest}", self.id)
    }

    /// The same cart, addressed through `api` (another node, or a restarted one).
    pub fn on(&self, api: &Api) -> TestCart {
        api.cart(&self.id, &self.token)
    }

    /// The same cart, addressed with `token`.
    pub fn with_token(&self, token: &str) -> TestCart {
        self.api.cart(&self.id, token)
    }

    /// `PUT /v1/carts/{id}/items/{sku}` with `{quantity}`.
    pub async fn set(&self, sku: &str, qty: u64) -> Response {
        self.put_item(sku, qty, None).await
    }

    /// [`TestCart::set`] with an `Idempotency-Key`.
    pub async fn set_with_key(&self, sku: &str, qty: u64, key: &str) -> Response {
        self.put_item(sku, qty, Some(key)).await
    }

    async fn put_item(&self, sku: &str, qty: u64, key: Option<&str>) -> Response {
        let mut req = self
            .api
            .client
            .put(self.api.url(&self.path(&format!("/items/{sku}"))))
            .bearer_auth(&self.token)
            .json(&json!({ "quantity": qty }));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("set item")
    }

    /// `DELETE /v1/carts/{id}/items/{sku}`.
    pub async fn remove(&self, sku: &str) -> Response {
        let url = self.api.url(&self.path(&format!("/items/{sku}")));
        self.api.client.delete(url).bearer_auth(&self.token).send().await.expect("remove item")
    }

    /// Checks out with `tok_visa` under idempotency `key`.
    pub async fn checkout(&self, key: &str) -> Response {
        self.checkout_with(key, "tok_visa").await
    }

    /// Checks out with the `payment` token under idempotency `key`.
    pub async fn checkout_with(&self, key: &str, payment: &str) -> Response {
        self.api
            .client
            .post(self.api.url(&self.path("/checkout")))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "payment": { "token": payment }, "email": BUYER_EMAIL }))
            .send()
            .await
            .expect("checkout")
    }

    /// `GET /v1/carts/{id}` as JSON (asserted 200).
    pub async fn get(&self) -> Value {
        let res =
            self.api.client.get(self.api.url(&self.path(""))).bearer_auth(&self.token).send().await.expect("cart");
        assert_eq!(res.status(), StatusCode::OK, "GET {}", self.path(""));
        res.json().await.expect("cart json")
    }
}

// ------------------------------------------------------------------ problems

/// The challenge every 401 carries.
pub const CHALLENGE: &str = "Bearer realm=\"flashcore\"";

/// Checks that `res` is an RFC 9457 problem with `status` and `code`: the
/// status, `content-type: application/problem+json`, `type` `urn:flashcore:problem:<code>`,
/// `code`, `status`, a `title` and a `detail`, and a Bearer challenge exactly
/// when it is a 401. Returns the body, or what is wrong (for tables that collect).
pub async fn problem(res: Response, status: u16, code: &str) -> Result<Value, String> {
    let got = res.status().as_u16();
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (ctype, challenge) = (header("content-type").unwrap_or_default(), header("www-authenticate"));
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let mut wrong = Vec::new();
    if got != status {
        wrong.push(format!("status {got} (expected {status})"));
    }
    if ctype != "application/problem+json" {
        wrong.push(format!("content type {ctype:?}"));
    }
    if body["code"] != code || body["type"] != format!("urn:flashcore:problem:{code}") {
        wrong.push(format!("not a `{code}` problem"));
    }
    if body["status"] != status {
        wrong.push("the `status` member differs".to_owned());
    }
    if !body["title"].is_string() || !body["detail"].is_string() {
        wrong.push("no title or detail".to_owned());
    }
    match (status == 401, challenge.as_deref()) {
        (true, Some(CHALLENGE)) | (false, None) => {}
        (true, c) => wrong.push(format!("WWW-Authenticate {c:?} on a 401")),
        (false, Some(c)) => wrong.push(format!("a challenge ({c:?}) on a {status}")),
    }
    if wrong.is_empty() { Ok(body) } else { Err(format!("{}; body: {body}", wrong.join(", "))) }
}

/// Asserts [`problem`]: `res` is a problem document with `status` and `code`; returns its body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    problem(res, status, code).await.unwrap_or_else(|e| panic!("{e}"))
}

// ------------------------------------------------------------------- TestApp

/// A flashcore running in this process, and the [`Api`] to it (it dereferences to it).
#[derive(Debug)]
pub struct TestApp {
    api: Api,
    /// The engine behind the API: for arranging what the API would do slowly
    /// ([`TestApp::add_product`]), for reading what the API does not show (the
    /// journal's orders, actor and flush statistics), and for fault injection.
    pub engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
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
        TestApp { api: Api::new(base), engine, stop: Some(stop), task: Some(task) }
    }

    /// Spawns flashcore with `config`, its shared state in Redis under a fresh
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

/// A `flashcore` process started from the real binary, on a free port, and the
/// [`Api`] to it (it dereferences to it).
#[derive(Debug)]
pub struct Process {
    /// The child process.
    pub child: tokio::process::Child,
    api: Api,
    /// Every line it logged so far (JSON).
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Deref for Process {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
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
    /// the bound address: a standby never becomes ready on its own. Its [`Api`]
    /// reads as an operator with `FLASHCORE_ADMIN_KEY` from `env`, if set.
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
        let logs = Arc::new(Mutex::new(Vec::new()));
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
        let kept = Arc::clone(&logs);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().expect("logs").push(line);
            }
        });
        let mut api = Api::new(format!("http://{addr}"));
        if let Some((_, key)) = env.iter().rev().find(|(k, _)| *k == "FLASHCORE_ADMIN_KEY") {
            api = api.with_admin_key(key);
        }
        Process { child, api, logs }
    }

    /// Waits until `/ready` answers 200, at most `deadline`.
    pub async fn wait_ready(&self, deadline: Duration) {
        eventually(deadline, "the process to become ready", || async {
            let res = self.client.get(self.url("/ready")).send().await.ok()?;
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

/// Starts the binary with `env` (on a free port, in a fresh data directory)
/// expecting it to refuse to start: asserts it exits unsuccessfully within
/// 30 s and returns what it printed (stdout and stderr).
pub async fn refused_start(env: &[(&str, &str)]) -> String {
    let data = data_dir();
    let out = tokio::process::Command::new(flashcore_binary())
        .env("FLASHCORE_DATA_DIR", data.path())
        .env("FLASHCORE_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out).await.expect("exits at once").expect("runs");
    assert!(!out.status.success(), "{env:?} started");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
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
                    let stopped = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                        r = changes.wait_for(|m| *m != Mode::Up) => r.is_ok(),
                    };
                    // Cut: dropping both ends cuts the link. Hang: both stay open,
                    // forwarding nothing, until cut.
                    if stopped {
                        let _ = changes.wait_for(|m| *m == Mode::Cut).await.map(|_| ());
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

    /// Accepts new connections but forwards nothing, and stops forwarding on
    /// the open ones: the service hangs.
    pub fn hang(&self) {
        self.up.send_replace(Mode::Hang);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.send_replace(Mode::Up);
    }
}

/// A fresh key prefix on the test Redis; every key under it is deleted on drop.
#[derive(Debug)]
pub struct RedisPrefix {
    /// `fc-test-<uuid>:`.
    pub prefix: String,
    redis: flashcore_persistence::redis::Redis,
}

impl RedisPrefix {
    /// A new prefix; panics (never skips) if Redis does not answer.
    pub async fn new() -> RedisPrefix {
        let prefix = format!("fc-test-{}:", uuid::Uuid::new_v4().simple());
        let url = test_redis_url();
        let redis = flashcore_persistence::redis::Redis::new(&url, &prefix, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("bad FLASHCORE_TEST_REDIS {url}: {e}"));
        redis.ping().await.unwrap_or_else(|e| panic!("the test Redis at {url} does not answer (is it running?): {e}"));
        RedisPrefix { prefix, redis }
    }

    /// The Redis connection on this prefix (to look at what flashcore wrote).
    pub fn redis(&self) -> &flashcore_persistence::redis::Redis {
        &self.redis
    }

    /// `config` pointed at this prefix through `url` (the test Redis, or a proxy to it).
    pub fn configure(&self, config: &mut Config, url: &str) {
        config.http.redis_url = Some(flashcore_http::config::Secret::new(url));
        config.http.redis_prefix = self.prefix.clone();
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let redis = self.redis.clone();
        // Drop can't await; clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(redis.delete_prefix());
            }
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn metric_sum_adds_the_series_whose_labels_match_even_with_braces_in_a_route() {
        let text = "\
# TYPE flashcore_auth_denied_total counter
flashcore_auth_denied_total{reason=\"malformed\",route=\"/v1/carts/{cart_id}\"} 3
flashcore_auth_denied_total{reason=\"wrong-cart\",route=\"/v1/carts/{cart_id}\"} 2
flashcore_auth_denied_total{reason=\"malformed\",route=\"/v1/admin/keys/{key_id}\"} 7
flashcore_auth_denied_total{reason=\"malformed\",route=\"/v1/admin/keys\"} 1
flashcore_auth_denied_total_other 100
flashcore_orders_total 5
";
        let denied = |labels: &[(&str, &str)]| metric_sum(text, "flashcore_auth_denied_total", labels);
        assert_eq!(denied(&[("route", "/v1/carts/{cart_id}")]), 5.0);
        assert_eq!(denied(&[("route", "/v1/carts/{cart_id}"), ("reason", "malformed")]), 3.0);
        assert_eq!(denied(&[("route", "/v1/admin/keys")]), 1.0, "a longer route is another series");
        assert_eq!(denied(&[]), 13.0, "a metric whose name only starts the same is another metric");
        assert_eq!(metric_sum(text, "flashcore_orders_total", &[]), 5.0);
        assert_eq!(denied(&[("route", "/nope")]), 0.0);
    }
}
