//! Logs and traces. Logs are JSON lines in production (human-readable with
//! `pretty`). Traces go out over OTLP/HTTP when the standard variables ask for
//! them (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! or `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_BSP_*` and the rest are read by the OpenTelemetry SDK itself). Without
//! them every span of ours ([`SPANS`]) is switched off at its callsite, so a
//! request pays nothing for tracing.
//!
//! A request's span ([`request_span`]) continues the caller's W3C
//! `traceparent` and is answered back in the response's own `traceparent`
//! ([`answer`]); its `trace_id` and `request_id` fields are on every log line
//! written inside it.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use flashcore_actors::trace::SPANS;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::request_id::RequestId;

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when traces are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the trace exporter (call once the server has stopped).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber once (later calls, e.g. from tests, are
/// no-ops) and, when asked for, the trace exporter. `RUST_LOG` filters
/// (default `info`); `format` is `json` or `pretty`.
pub fn init(format: &str) -> Telemetry {
    let provider = if traces_wanted(|name| std::env::var(name).ok()) {
        match tracer_provider() {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("flashcore: traces are off, the OTLP exporter could not be built: {e}");
                None
            }
        }
    } else {
        None
    };
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = EnvFilter::try_new(directives(&spec, provider.is_some()))
        .unwrap_or_else(|_| EnvFilter::new(directives("info", provider.is_some())));
    let traces = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("flashcore")));
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let _ = if format == "pretty" {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().json().flatten_event(true)).try_init()
    };
    Telemetry { provider }
}

/// Logging for command-line tools: warnings and errors only, on stderr, so stdout
/// carries just the command's output (e.g. a new key's secret).
pub fn init_for_cli() {
    let _ = tracing_subscriber::fmt().with_env_filter(EnvFilter::new("warn")).with_writer(std::io::stderr).try_init();
}

/// Whether the OpenTelemetry variables (read through `var`) ask for traces.
fn traces_wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    match var("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
        Some(e) if e == "none" => false,
        Some(e) if e == "otlp" => true,
        _ => set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    }
}

/// The SDK's provider with a batching OTLP/HTTP exporter, both configured from
/// the environment; the service is `flashcore` unless named there.
fn tracer_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name("flashcore");
    }
    let provider = SdkTracerProvider::builder().with_resource(resource.build()).with_batch_exporter(exporter).build();
    Ok(provider)
}

/// `spec` (a `RUST_LOG` filter, `info` when empty) with:
/// - ractor at `warn` unless it names ractor itself. ractor wraps every
///   actor's message loop in an INFO span; enabled, each poll of a hot SKU
///   actor enters and leaves it for a span no log line of ours needs;
/// - our trace spans ([`SPANS`]) on at `info` when traces are exported and off
///   otherwise, unless it names them.
fn directives(spec: &str, exporting: bool) -> String {
    let spec = if spec.trim().is_empty() { "info" } else { spec.trim() };
    let names = |target: &str| spec.split(',').any(|d| d.trim_start().starts_with(target));
    let mut out = spec.to_owned();
    if !names("ractor") {
        out.push_str(",ractor=warn");
    }
    if !names(SPANS) {
        out.push_str(if exporting { ",flashcore::trace=info" } else { ",flashcore::trace=off" });
    }
    out
}

/// The span of one HTTP request: a server span named `<method> <route>` that
/// continues the caller's `traceparent`, if any. Disabled (and free) when
/// traces are off.
pub fn request_span(req: &Request, route: &str, request_id: &RequestId) -> Span {
    let method = req.method().as_str();
    let span = tracing::info_span!(
        target: SPANS,
        "http.request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.path = req.uri().path(),
        http.response.status_code = Empty,
        request_id = request_id.as_str(),
        trace_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    span.record("otel.name", format!("{method} {route}"));
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
    span
}

/// Records the answer's status on `span` and writes its context into the
/// response's `traceparent`, so a caller can find the trace.
pub fn answer(span: &Span, res: &mut Response) {
    if span.is_disabled() {
        return;
    }
    let status = res.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    inject(span, res.headers_mut());
}

fn inject(span: &Span, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ractor_spans_are_off_and_ours_follow_the_exporter_unless_named() {
        assert_eq!(directives("", false), "info,ractor=warn,flashcore::trace=off");
        assert_eq!(directives("", true), "info,ractor=warn,flashcore::trace=info");
        assert_eq!(
            directives("debug,flashcore::security=info", false),
            "debug,flashcore::security=info,ractor=warn,flashcore::trace=off"
        );
        assert_eq!(
            directives("info,ractor=debug,flashcore::trace=debug", false),
            "info,ractor=debug,flashcore::trace=debug"
        );
    }

    #[test]
    fn traces_follow_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(!traces_wanted(env(&[])));
        assert!(traces_wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")])));
        assert!(traces_wanted(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])));
        assert!(traces_wanted(env(&[("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!traces_wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(!traces_wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
        assert!(!traces_wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true")
        ])));
    }
}
