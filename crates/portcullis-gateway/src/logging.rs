//! Log output: JSON lines on stdout, one event per line. Filter with
//! `RUST_LOG` (default `info`). Redaction happens where values are logged
//! (see `portcullis_layers::redact`); headers are never logged.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber (once; later calls are ignored).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
