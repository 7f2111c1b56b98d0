//! Active health checks: one probe task per backend, writing only `Backend` state.
//!
//! ```text
//! Table --HealthChecker::reconcile--> { task per backend of every pool with health_check }
//! task: probe at once, then every `interval` (jittered) --observe--> Backend (atomics)
//! ```
//! The checker never rebuilds the routing table: a probe result goes through
//! [`Backend::observe`](weir_balance::Backend::observe), whose `rise`/`fall` hysteresis
//! flips the backend's up/down atomic, and the proxy sees it on its next pick.
//!
//! * [`checker`] owns the tasks: which backends have one, when a task is kept, restarted
//!   or stopped on reload, and the probe schedule.
//! * [`probe`] owns the probes themselves: TCP connect, or `GET path` over a fresh
//!   HTTP/1.1 connection, over TLS for a pool with `tls`. A probe connects with its
//!   pool's transport (`weir_upstream::Transport`, from the table), the connector the
//!   proxy's traffic uses, so it reaches and verifies a backend as requests do.
//!
//! **Passive ejection.** Live traffic can also take a backend down (passive checking, in
//! `weir_balance::Pool::report_failure`); in a pool with a `health_check` it is these
//! probes that bring it back, after `rise` passing ones, like any other down backend.
//!
//! **Initial state.** A new backend starts up but "fragile" (HAProxy's default
//! `init-state`): it takes traffic at once, is probed at once, and its first failed probe
//! pulls it, instead of the `fall` failures a backend that has passed a probe needs. A
//! dead backend added by a reload therefore costs at most the requests the proxy retries
//! on another backend before the first probe answers.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod checker;
pub mod probe;

pub use checker::HealthChecker;
pub use probe::{probe, ProbeError};
