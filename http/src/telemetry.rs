//! Logging set-up: JSON lines in production, human-readable with `pretty`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once (later calls, e.g. from tests, are no-ops).
/// `RUST_LOG` filters (default `info`); `format` is `json` or `pretty`.
pub fn init(format: &str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = EnvFilter::try_new(with_quiet_actors(&spec)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "pretty" { builder.try_init() } else { builder.json().flatten_event(true).try_init() };
}

/// Logging for command-line tools: warnings and errors only, on stderr, so stdout
/// carries just the command's output (e.g. a new key's secret).
pub fn init_for_cli() {
    let _ = tracing_subscriber::fmt().with_env_filter(EnvFilter::new("warn")).with_writer(std::io::stderr).try_init();
}

/// `spec` (a `RUST_LOG` filter, `info` when empty) with ractor at `warn` unless
/// it names ractor itself. ractor wraps every actor's message loop in an
/// INFO span; enabled, each poll of a hot SKU actor enters and leaves it (a few
/// percent of a reserve's CPU) for a span no log line of ours needs: our
/// events carry the entity's id as a field.
fn with_quiet_actors(spec: &str) -> String {
    let spec = if spec.trim().is_empty() { "info" } else { spec.trim() };
    if spec.split(',').any(|d| d.trim_start().starts_with("ractor")) {
        spec.to_owned()
    } else {
        format!("{spec},ractor=warn")
    }
}

#[cfg(test)]
mod tests {
    use super::with_quiet_actors;

    #[test]
    fn ractor_spans_are_off_unless_asked_for() {
        assert_eq!(with_quiet_actors(""), "info,ractor=warn");
        assert_eq!(with_quiet_actors("debug,flashcore::security=info"), "debug,flashcore::security=info,ractor=warn");
        assert_eq!(with_quiet_actors("info,ractor=debug"), "info,ractor=debug");
    }
}
