//! Why a request could not be answered by a backend, and what weir says instead.
//!
//! [`UpstreamError`] carries what the caller has to decide on: the status the client
//! gets, the metric label, and whether another backend may be tried. Its `Display`
//! names the backend and the OS error: that is for the log and the access log. A
//! client only gets [`UpstreamError::reason`], which names at most the pool: a backend's
//! address or a socket error tells an attacker about the network behind weir, and the
//! request id the client also gets is what finds the detailed log line.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use weir_config::RetryOn;

/// A failed attempt to get a response from a backend, or no backend to ask.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection was refused or failed; nothing was sent.
    #[error("connect to {backend} failed: {source}")]
    Connect {
        /// The backend's address as written in the config.
        backend: Arc<str>,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The TCP connection did not complete within the pool's connect timeout.
    #[error("connect to {backend} timed out after {}", HumanDuration(*timeout))]
    ConnectTimeout {
        /// The backend's address as written in the config.
        backend: Arc<str>,
        /// The pool's connect timeout.
        timeout: Duration,
    },
    /// The connection closed or was reset before any response byte arrived.
    #[error("connection to {backend} reset before a response: {source}")]
    Reset {
        /// The backend's address as written in the config.
        backend: Arc<str>,
        /// hyper's view of the failure.
        #[source]
        source: ResetCause,
        /// Whether the request head had left weir (a replay needs an idempotent method).
        request_sent: bool,
    },
    /// Response headers did not arrive within the pool's response timeout.
    #[error("backend {backend} did not respond within {}", HumanDuration(*timeout))]
    ResponseTimeout {
        /// The backend's address as written in the config.
        backend: Arc<str>,
        /// The pool's response timeout.
        timeout: Duration,
    },
    /// The backend answered with framing weir cannot pass on faithfully (see
    /// `headers::check_response_framing`); its connection is closed.
    #[error("backend {backend} sent an unforwardable response: {reason}")]
    InvalidResponse {
        /// The backend's address as written in the config.
        backend: Arc<str>,
        /// What was wrong with the response head.
        reason: &'static str,
    },
    /// Every backend of the pool is down.
    #[error("no backend available in pool \"{pool}\"")]
    NoBackend {
        /// The pool's name.
        pool: Arc<str>,
    },
    /// Every backend that is up is at its `max_in_flight`, and the pool's queue was
    /// full, or the request waited its `queue.timeout`, or the pool was removed.
    #[error("every backend of pool \"{pool}\" is at max_in_flight ({})", why.as_str())]
    Busy {
        /// The pool's name.
        pool: Arc<str>,
        /// Why the queue did not give it a slot.
        why: weir_balance::Refused,
    },
}

/// What broke a backend connection before its response head was read.
#[derive(Debug, thiserror::Error)]
pub enum ResetCause {
    /// hyper's (HTTP/2 backends, and HTTP/1 for HTTP/2 clients).
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// A socket error on weir's own HTTP/1 backend connection.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The backend closed the connection before a complete response head.
    #[error("connection closed before a complete response head")]
    Closed,
    /// The client's own request body failed (bad chunk, early close): not the backend's
    /// fault.
    #[error("the client's request body failed")]
    Client,
}

impl ResetCause {
    /// Whether weir's side caused it (the client's body), not the backend.
    pub fn is_user(&self) -> bool {
        match self {
            ResetCause::Hyper(e) => e.is_user(),
            ResetCause::Client => true,
            ResetCause::Io(_) | ResetCause::Closed => false,
        }
    }
}

// === impl UpstreamError ===

impl UpstreamError {
    /// The status the client gets: 502 unreachable, 504 too slow, 503 nothing up.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Connect { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::Reset { .. } => StatusCode::BAD_GATEWAY,
            UpstreamError::ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::InvalidResponse { .. } => StatusCode::BAD_GATEWAY,
            UpstreamError::NoBackend { .. } | UpstreamError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `kind` label of `weir_upstream_errors_total`: `connect`, `timeout` or `reset`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. } => "connect",
            UpstreamError::ResponseTimeout { .. } => "timeout",
            UpstreamError::Reset { .. }
            | UpstreamError::NoBackend { .. }
            | UpstreamError::Busy { .. } => "reset",
            // A malformed response is counted with the connection failures it resembles.
            UpstreamError::InvalidResponse { .. } => "reset",
        }
    }

    /// Whether the request may be tried again on another backend.
    ///
    /// A connect failure always may: the request never left weir. A reset may only when
    /// the request was not sent yet, or when `replayable` (idempotent method, and a body
    /// that is absent or fully buffered). A timeout never is: the backend may be working
    /// on it, and waiting again would double the client's wait.
    pub fn is_retryable(&self, replayable: bool) -> bool {
        self.is_retryable_on(replayable, &RetryOn::default())
    }

    /// Like [`UpstreamError::is_retryable`], for the pool's `retry_on`: a connect failure
    /// only with `connect_failure`, a reset only with `reset`.
    pub fn is_retryable_on(&self, replayable: bool, on: &RetryOn) -> bool {
        match self {
            UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. } => {
                on.connect_failure
            }
            UpstreamError::Reset { request_sent, .. } => on.reset && (!request_sent || replayable),
            UpstreamError::ResponseTimeout { .. }
            | UpstreamError::NoBackend { .. }
            | UpstreamError::Busy { .. } => false,
            // The backend answered: asking again would replay the request for an answer
            // of the same kind.
            UpstreamError::InvalidResponse { .. } => false,
        }
    }

    /// Whether this failure counts against the backend for passive health checking:
    /// connect failures, resets and timeouts do; a failure of the client's own request
    /// body does not.
    pub fn counts_against_backend(&self) -> bool {
        match self {
            UpstreamError::Connect { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::ResponseTimeout { .. } => true,
            UpstreamError::InvalidResponse { .. } => true,
            UpstreamError::Reset { source, .. } => !source.is_user(),
            UpstreamError::NoBackend { .. } | UpstreamError::Busy { .. } => false,
        }
    }

    /// The backend involved, if any.
    pub fn backend(&self) -> Option<&str> {
        match self {
            UpstreamError::Connect { backend, .. }
            | UpstreamError::ConnectTimeout { backend, .. }
            | UpstreamError::Reset { backend, .. }
            | UpstreamError::ResponseTimeout { backend, .. } => Some(backend),
            UpstreamError::InvalidResponse { backend, .. } => Some(backend),
            UpstreamError::NoBackend { .. } | UpstreamError::Busy { .. } => None,
        }
    }

    /// The generic reason the client is told; `pool` is the pool's name.
    pub fn reason(&self, pool: &str) -> String {
        match self {
            UpstreamError::Connect { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::Reset { .. } => {
                format!("no backend could be reached in pool \"{pool}\"")
            }
            UpstreamError::ResponseTimeout { .. } => {
                format!("no response in time from pool \"{pool}\"")
            }
            UpstreamError::InvalidResponse { .. } => {
                format!("invalid response from a backend in pool \"{pool}\"")
            }
            UpstreamError::NoBackend { .. } => format!("no backend available in pool \"{pool}\""),
            UpstreamError::Busy { why, .. } => {
                format!(
                    "every backend of pool \"{pool}\" is busy ({})",
                    busy_reason(*why)
                )
            }
        }
    }

    /// The error for a reservation the pool refused, `None` when the client left (no
    /// one to answer).
    pub fn refused(pool: &weir_balance::Pool, why: weir_balance::Refused) -> Option<Self> {
        let pool = Arc::clone(pool.name_arc());
        match why {
            weir_balance::Refused::Gone => None,
            weir_balance::Refused::NoBackend => Some(UpstreamError::NoBackend { pool }),
            why => Some(UpstreamError::Busy { pool, why }),
        }
    }
}

/// What a client is told of a queue's refusal.
fn busy_reason(why: weir_balance::Refused) -> &'static str {
    match why {
        weir_balance::Refused::Timeout => "waited too long in the queue",
        weir_balance::Refused::Closed => "the pool was removed",
        _ => "queue full",
    }
}

/// Formats a duration as written in the config (`30s`, `250ms`, `1m`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let ms = d.as_millis();
        if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) && ms > 0 {
            write!(f, "{}s", ms / 1000)
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{d:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_config() {
        let s = |d| HumanDuration(d).to_string();
        assert_eq!(s(Duration::from_secs(30)), "30s");
        assert_eq!(s(Duration::from_millis(250)), "250ms");
        assert_eq!(s(Duration::from_secs(120)), "2m");
        assert_eq!(s(Duration::ZERO), "0ms");
    }

    #[test]
    fn statuses_and_retry_rules_follow_the_cause() {
        let backend: Arc<str> = Arc::from("127.0.0.1:1");
        let connect = UpstreamError::Connect {
            backend: Arc::clone(&backend),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(connect.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(connect.kind(), "connect");
        assert!(connect.is_retryable(false));
        assert!(connect.counts_against_backend());
        let no_connect = RetryOn {
            connect_failure: false,
            ..RetryOn::default()
        };
        assert!(!connect.is_retryable_on(false, &no_connect));
        let timeout = UpstreamError::ResponseTimeout {
            backend,
            timeout: Duration::from_secs(30),
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(!timeout.is_retryable(true));
        assert_eq!(
            timeout.reason("web"),
            "no response in time from pool \"web\""
        );
        assert!(!connect.reason("web").contains("127.0.0.1"));
        let none = UpstreamError::NoBackend {
            pool: Arc::from("web"),
        };
        assert_eq!(none.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(none.reason("web"), "no backend available in pool \"web\"");
    }
}
