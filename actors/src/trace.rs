//! The spans a checkout is traced with (exported over OpenTelemetry by the
//! binary when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//!
//! Every span of ours is created under one target, [`SPANS`], which the binary
//! switches off entirely when nothing exports traces: a disabled callsite costs
//! one load, so the hot path pays nothing for spans nobody reads. Spans cross
//! tasks as values (a message carries the caller's `tracing::Span`), and a
//! journal batch links the appends it carries with `follows_from`, which the
//! OpenTelemetry layer turns into span links; nothing here names OpenTelemetry.

/// The target of every span flashcore creates for tracing.
pub const SPANS: &str = "flashcore::trace";
