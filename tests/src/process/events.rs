//! What a test asks a running weir: log events, bound addresses, admin endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::Weir;
use crate::client::{self, Response};

/// How often log waits look at the collected lines.
const LOG_POLL: Duration = Duration::from_millis(10);
/// How long a discovery change may take to reach the table (a lookup or watch event,
/// then the swap).
const DISCOVERY_WAIT: Duration = Duration::from_secs(20);

/// The string field `name` of a JSON log line; `""` when absent or not a string.
pub fn log_str<'a>(line: &'a Value, name: &str) -> &'a str {
    line[name].as_str().unwrap_or_default()
}

impl Weir {
    /// A mark (the number of stderr lines so far) for [`Weir::wait_for_log_after`].
    pub fn log_mark(&self) -> usize {
        self.logs.stderr_len()
    }

    /// Rewrites the config file to `yaml`, sends SIGHUP and waits for weir's `config
    /// reloaded` line: that line, and the `generation` it reports.
    ///
    /// # Panics
    /// When no such line appears within `timeout`, or it carries no numeric generation.
    pub async fn reload(&mut self, yaml: &str, timeout: Duration) -> (Value, u64) {
        let mark = self.log_mark();
        self.rewrite_config(yaml);
        self.sighup().await;
        let line = self
            .wait_for_log_after(mark, "config reloaded", timeout)
            .await;
        let generation = line
            .get("generation")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no numeric generation in {line}"));
        (line, generation)
    }

    /// Rewrites the config file to `yaml`, sends SIGHUP and waits for weir's `config
    /// reload rejected` line, which it returns.
    ///
    /// # Panics
    /// When no such line appears within `timeout`.
    pub async fn reload_rejected(&mut self, yaml: &str, timeout: Duration) -> Value {
        let mark = self.log_mark();
        self.rewrite_config(yaml);
        self.sighup().await;
        self.wait_for_log_after(mark, "config reload rejected", timeout)
            .await
    }

    /// Sends SIGHUP with the config file as it is and waits for weir's `config reloaded`
    /// line, which it returns.
    ///
    /// # Panics
    /// When no such line appears within `timeout`.
    pub async fn sighup_reloaded(&mut self, timeout: Duration) -> Value {
        let mark = self.log_mark();
        self.sighup().await;
        self.wait_for_log_after(mark, "config reloaded", timeout)
            .await
    }

    /// The first JSON log line whose `message` equals `message`.
    ///
    /// # Panics
    /// When none appears within `timeout`, or weir exits first; shows the log tail.
    pub async fn wait_for_log(&self, message: &str, timeout: Duration) -> Value {
        self.wait_for_log_after(0, message, timeout).await
    }

    /// As [`Weir::wait_for_log`], among the lines from index `mark` on.
    ///
    /// # Panics
    /// As [`Weir::wait_for_log`].
    pub async fn wait_for_log_after(&self, mark: usize, message: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Read "closed" before searching so the last lines are searched after EOF.
            let closed = self.logs.is_closed();
            if let Some(v) = self.logs.find_after(mark, message) {
                return v;
            }
            if closed {
                panic!(
                    "weir {} exited before logging {message:?}\n{}",
                    self.pid,
                    self.logs.tail(60)
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "weir {} did not log {message:?} within {timeout:?}\n{}",
                    self.pid,
                    self.logs.tail(60)
                );
            }
            tokio::time::sleep(LOG_POLL).await;
        }
    }

    /// Takes a log mark, runs `change` (a lazy future, so the mark comes first) and waits
    /// up to 20 s for the `discovery updated` line it causes.
    ///
    /// # Panics
    /// As [`Weir::wait_for_log`].
    pub async fn discovery_updated(&self, change: impl std::future::Future<Output = ()>) -> Value {
        let mark = self.log_mark();
        change.await;
        self.wait_for_log_after(mark, "discovery updated", DISCOVERY_WAIT)
            .await
    }

    /// Every JSON log line so far whose `message` equals `message`.
    pub fn logs_with(&self, message: &str) -> Vec<Value> {
        self.logs.all_with(0, message)
    }

    /// Every JSON log line from index `mark` on whose `message` equals `message`.
    pub fn logs_after(&self, mark: usize, message: &str) -> Vec<Value> {
        self.logs.all_with(mark, message)
    }

    /// The first line from `mark` on with `message` whose `field` ends with `suffix` (e.g.
    /// `backend` ending in `:41234`: weir names backends as written, tests know the port).
    ///
    /// # Panics
    /// When none appears within `timeout`; shows the log tail.
    pub async fn wait_for_log_field(
        &self,
        mark: usize,
        message: &str,
        field: &str,
        suffix: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.logs_after(mark, message).into_iter().find(|v| {
                v.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.ends_with(suffix))
            });
            if let Some(v) = found {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "weir {} did not log {message:?} with {field} ending in {suffix:?} \
                     within {timeout:?}\n{}",
                    self.pid,
                    self.logs.tail(60)
                );
            }
            tokio::time::sleep(LOG_POLL).await;
        }
    }

    /// The first `message` line (`backend down`, `backend up`) from `mark` on whose
    /// `backend` field names `backend` (matched by its port: weir names a backend as
    /// written in the config, and tests write `127.0.0.1:port`).
    ///
    /// # Panics
    /// When none appears within `timeout`; shows the log tail.
    pub async fn wait_for_backend_log(
        &self,
        mark: usize,
        message: &str,
        backend: SocketAddr,
        timeout: Duration,
    ) -> Value {
        let port = format!(":{}", backend.port());
        self.wait_for_log_field(mark, message, "backend", &port, timeout)
            .await
    }

    /// Every `message` line from `mark` on whose `backend` field names `backend`.
    pub fn backend_logs_after(
        &self,
        mark: usize,
        message: &str,
        backend: SocketAddr,
    ) -> Vec<Value> {
        let port = format!(":{}", backend.port());
        self.logs_after(mark, message)
            .into_iter()
            .filter(|v| {
                v.get("backend")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.ends_with(&port))
            })
            .collect()
    }

    /// The last `n` stderr lines, formatted for a panic message.
    pub fn log_tail(&self, n: usize) -> String {
        self.logs.tail(n)
    }

    /// Lines weir printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.logs.stdout()
    }

    /// The first stdout line containing `needle`.
    ///
    /// # Panics
    /// When none appears within `timeout`.
    pub async fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.stdout_lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "weir {} printed no stdout line containing {needle:?} within {timeout:?}; \
                     stdout: {:?}\n{}",
                    self.pid,
                    self.stdout_lines(),
                    self.logs.tail(40)
                );
            }
            tokio::time::sleep(LOG_POLL).await;
        }
    }

    /// The address listener `name` actually bound (latest `listener bound` line for it).
    ///
    /// # Panics
    /// When weir logged no such line, or its `addr` is not a socket address.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        let line = self
            .logs_with("listener bound")
            .into_iter()
            .rev()
            .find(|v| v.get("listener").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| {
                panic!(
                    "weir logged no `listener bound` for {name:?}\n{}",
                    self.logs.tail(40)
                )
            });
        parse_addr(&line, "listener bound")
    }

    /// An HTTP/1.1 client connected to listener `name`.
    ///
    /// # Panics
    /// As [`Weir::listener_addr`], and when the connection fails.
    pub async fn h1_client(&self, name: &str) -> client::H1Client {
        let addr = self.listener_addr(name);
        client::H1Client::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to listener {name} at {addr}: {e}"))
    }

    /// A plain TCP connection to listener `name`.
    ///
    /// # Panics
    /// As [`Weir::h1_client`].
    pub async fn connect(&self, name: &str) -> tokio::net::TcpStream {
        let addr = self.listener_addr(name);
        tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to listener {name} at {addr}: {e}"))
    }

    /// The address the admin server bound (latest `admin listening` line).
    ///
    /// # Panics
    /// When weir logged no such line.
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self
            .logs_with("admin listening")
            .pop()
            .unwrap_or_else(|| panic!("weir logged no `admin listening`\n{}", self.logs.tail(40)));
        parse_addr(&line, "admin listening")
    }

    /// `GET /status` on the admin server, parsed.
    ///
    /// # Panics
    /// When the request fails, the status is not 200, or the body is not JSON.
    pub async fn status(&self) -> Value {
        let resp = client::get(self.admin_addr(), "/status").await;
        assert_eq!(resp.status, 200, "/status answered {}", resp.text());
        serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("/status is not JSON ({e}): {}", resp.text()))
    }

    /// `GET /healthz` on the admin server.
    ///
    /// # Errors
    /// When the admin server cannot be reached.
    pub async fn healthz(&self) -> Result<Response, client::BoxError> {
        let req =
            http::Request::get("/healthz").body(http_body_util::Full::new(bytes::Bytes::new()))?;
        client::request(self.admin_addr(), req).await
    }
}

fn parse_addr(line: &Value, what: &str) -> SocketAddr {
    line.get("addr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("`{what}` line has no socket address in `addr`: {line}"))
}
