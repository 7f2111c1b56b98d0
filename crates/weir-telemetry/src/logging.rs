//! Log setup: `tracing` to stderr, level from `WEIR_LOG`, pretty or JSON.
//!
//! JSON lines put the event's fields at the top level (`{"level":"INFO","message":
//! "listener bound","listener":"web","addr":"127.0.0.1:8080",...}`) so log shippers and
//! tests read them without knowing tracing's nesting.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable, coloured when stderr is a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The log filter in `WEIR_LOG` could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid WEIR_LOG filter {filter:?}: {message}")]
pub struct LoggingError {
    filter: String,
    message: String,
}

/// Installs the global subscriber. Level and targets come from `WEIR_LOG` (env-filter
/// syntax, default `info`).
///
/// # Errors
/// When `WEIR_LOG` is not a valid filter; a subscriber already installed is not an
/// error (tests may call this more than once).
pub fn init_logging(format: LogFormat) -> Result<(), LoggingError> {
    let filter = match std::env::var("WEIR_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| LoggingError {
                filter: spec.clone(),
                message: e.to_string(),
            })?
        }
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Already installed (a second call in one process) is fine: keep the first.
    drop(result);
    Ok(())
}
