//! Traces: a checkout's spans reach a real OTLP/HTTP receiver (one this test
//! runs) as one trace, with the right parents, and a journal batch linking the
//! order it carried; `traceparent` goes in and comes back; without the
//! OpenTelemetry variables nothing is traced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::json;

use flashcore_tests::{BUYER_EMAIL, Process, data_dir, eventually};

/// One span as the receiver got it (ids in lower-case hex).
#[derive(Debug, Clone)]
struct Got {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i32,
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf) on a free port.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Got>>> = Arc::default();
        let app = Router::new().route("/v1/traces", post(receive)).with_state(Arc::clone(&spans));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, spans }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<Got>>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut got = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| text(v.value.as_ref()))
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.push(Got {
                service: service.clone(),
                trace: hex(&span.trace_id),
                id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                attributes: span
                    .attributes
                    .iter()
                    .map(|a| (a.key.clone(), text(a.value.as_ref().and_then(|v| v.value.as_ref()))))
                    .collect(),
            });
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// OTLP's `SPAN_KIND_SERVER`.
const SERVER: i32 = 2;

#[tokio::test]
async fn a_checkout_is_one_trace_from_the_request_through_the_cart_the_skus_the_payment_and_the_journal() {
    // Arrange: a receiver, and flashcore exporting to it.
    let receiver = Receiver::start().await;
    let dir = data_dir();
    let fc = Process::start(&[
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("OTEL_SERVICE_NAME", "flashcore-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let cart = fc.new_cart().await;
    assert_eq!(cart.set("FLASH-SNEAKER-01", 1).await.status(), 200);

    // Act: a checkout that continues the caller's trace.
    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let res = fc
        .client
        .post(fc.url(&cart.path("/checkout")))
        .bearer_auth(&cart.token)
        .header("Idempotency-Key", "traced-checkout")
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .json(&json!({ "payment": { "token": "tok_visa" }, "email": BUYER_EMAIL }))
        .send()
        .await
        .unwrap();

    // Assert: the answer names the trace, under a span of flashcore's own.
    assert_eq!(res.status(), 201);
    let answered = res.headers()["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = answered.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace, "01"), "{answered}");
    let server_id = parts[2].to_owned();
    assert_ne!(server_id, caller);
    let order: serde_json::Value = res.json().await.unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();

    // Every span of the checkout arrives, under the right parents.
    let names = ["cart.checkout", "sku.prepare", "payment.authorize", "journal.append", "sku.commit"];
    let spans = eventually(Duration::from_secs(20), "the checkout's spans at the receiver", || async {
        let spans: Vec<Got> = receiver.spans().into_iter().filter(|s| s.trace == trace).collect();
        let batch_linked = receiver.spans().iter().any(|s| s.name == "journal.batch" && !s.links.is_empty());
        (names.iter().all(|n| spans.iter().any(|s| s.name == *n)) && batch_linked).then_some(spans)
    })
    .await;
    let one = |name: &str| {
        let found: Vec<&Got> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
        found[0].clone()
    };
    let server = one("POST /v1/carts/{cart_id}/checkout");
    assert_eq!((server.id.as_str(), server.parent.as_str(), server.kind), (server_id.as_str(), caller, SERVER));
    assert_eq!(server.service, "flashcore-under-test");
    assert_eq!(server.attributes["http.route"], "/v1/carts/{cart_id}/checkout");
    assert_eq!(server.attributes["http.response.status_code"], "201");
    let checkout = one("cart.checkout");
    assert_eq!(checkout.parent, server.id, "the cart's span is the request's child");
    assert_eq!(checkout.attributes["order.id"], order_id);
    for child in ["sku.prepare", "payment.authorize", "journal.append", "sku.commit"] {
        let span = one(child);
        assert_eq!(span.parent, checkout.id, "{child} is the checkout's child");
    }
    assert_eq!(one("sku.prepare").attributes["sku"], "FLASH-SNEAKER-01");

    // The batch that committed the order links to its append.
    let append = one("journal.append");
    let batches: Vec<Got> = receiver.spans().into_iter().filter(|s| s.name == "journal.batch").collect();
    let batch = batches
        .iter()
        .find(|b| b.links.contains(&(trace.to_owned(), append.id.clone())))
        .unwrap_or_else(|| panic!("no journal.batch links to the append {append:?}: {batches:#?}"));
    assert_ne!(batch.trace, trace, "a batch is a trace of its own, linking the orders it carries");
    assert!(batch.parent.is_empty(), "a batch is a root span");
}

#[tokio::test]
async fn log_lines_inside_a_traced_request_carry_its_trace_id_and_request_id() {
    let receiver = Receiver::start().await;
    let dir = data_dir();
    let fc = Process::start(&[
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let cart = fc.new_cart().await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    // A denied request is logged (a security event) from inside its span.
    let res = fc
        .client
        .get(fc.url(&cart.path("")))
        .bearer_auth("not-a-token")
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("x-request-id", "lb-req-7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let line = eventually(Duration::from_secs(10), "the denial logged", || async {
        fc.logged("event", "auth.denied").into_iter().find(|l| l.to_string().contains("lb-req-7"))
    })
    .await;
    let span = &line["span"];
    assert_eq!((span["trace_id"].as_str(), span["request_id"].as_str()), (Some(trace), Some("lb-req-7")), "{line}");
}

#[tokio::test]
async fn without_the_opentelemetry_variables_nothing_is_traced_or_answered() {
    let dir = data_dir();
    let fc = Process::start(&[("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap())]).await;
    let res = fc
        .client
        .get(fc.url("/v1/products/FLASH-SNEAKER-01"))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("traceparent").is_none(), "no trace, no traceparent");
    let logs = fc.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("trace_id"), "no trace ids in the logs: {logs}");
}
