//! Logging set-up: JSON lines in production, human-readable with `pretty`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once (later calls, e.g. from tests, are no-ops).
/// `RUST_LOG` filters (default `info`); `format` is `json` or `pretty`.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "pretty" { builder.try_init() } else { builder.json().flatten_event(true).try_init() };
}

/// Logging for command-line tools: warnings and errors only, on stderr, so stdout
/// carries just the command's output (e.g. a new key's secret).
pub fn init_for_cli() {
    let _ = tracing_subscriber::fmt().with_env_filter(EnvFilter::new("warn")).with_writer(std::io::stderr).try_init();
}
