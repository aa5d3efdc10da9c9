//! Logging set-up: JSON lines in production, human-readable with `pretty`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once (later calls, e.g. from tests, are no-ops).
/// `RUST_LOG` filters (default `info`); `format` is `json` or `pretty`.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "pretty" { builder.try_init() } else { builder.json().flatten_event(true).try_init() };
}
