//! `weir demo`: three demo backends on loopback and a balancer in front of them.
//!
//! The demo goes through the same path as `weir run`: it writes an ordinary YAML config
//! naming its backends, validates it with the same loader, and starts the same server,
//! so what a newcomer sees is what production does. Unless `--quiet`, it then sends its
//! own traffic ([`load`]) and kills one backend at a time ([`show`]), printing a line a
//! second, to show the promise: a backend dies under load and no request fails.

mod backend;
mod load;
mod show;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::server::Server;
use backend::DemoBackend;

/// The cadence of the kills.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Show {
    /// A backend is killed this often.
    pub(crate) kill_every: Duration,
    /// And brought back this long after.
    pub(crate) down_for: Duration,
}

/// Runs the demo until SIGTERM/SIGINT (Ctrl-C); `show: None` is `--quiet`.
pub(crate) async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    show: Option<Show>,
) -> anyhow::Result<()> {
    if let Some(s) = show {
        anyhow::ensure!(
            !s.down_for.is_zero() && s.down_for < s.kill_every,
            "--down-for must be more than 0 and less than --kill-every"
        );
    }
    let mut backends = Vec::new();
    for n in 1..=3 {
        backends.push(DemoBackend::start(n).await?);
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(DemoBackend::addr).collect();
    let yaml = demo_yaml(listen, admin, &addrs);
    let config = weir_config::parse(&yaml, "<demo>".as_ref())
        .map_err(|e| anyhow::anyhow!("demo configuration is invalid (a bug):\n{e}"))?;
    let server = Server::start(config, None).await?;
    let web = server
        .listener_addr("demo")
        .context("demo listener did not start")?;
    let admin = server.admin_addr();
    let list = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "weir demo: a round-robin balancer on http://{web}/ in front of 3 demo backends ({list}).\n\
         Dashboard: http://{admin}/\n\
         Try:\n  \
         curl http://{web}/            # repeat it: demo backend 1, 2 and 3 take turns\n  \
         curl http://{admin}/status    # pools, backends, health, in-flight\n  \
         curl http://{admin}/healthz   # what an outer balancer polls\n\
         Stop with Ctrl-C. The configuration behind this demo:\n\n{yaml}"
    );
    let Some(show) = show else {
        // A dropped demo backend stops serving: keep them until weir has stopped.
        let result = server.run().await;
        drop(backends);
        return result;
    };
    println!(
        "Sending {} req/s of its own ({} keep-alive clients); every {} one backend is killed \
         for {}.\nEach line: cumulative requests sent, ok, failed, and answers per backend \
         bN (+ per second, weir's view).",
        load::CLIENTS * load::CLIENT_RATE,
        load::CLIENTS,
        human(show.kill_every),
        human(show.down_for),
    );
    let stop = CancellationToken::new();
    let counters = Arc::new(load::Counters::new(backends.len()));
    let clients = load::start(web, &counters, &stop);
    let stage = show::Stage {
        backends,
        counters,
        table: server.table(),
        show,
    };
    let conductor = tokio::spawn(show::run(stage, stop.clone()));
    let on_signal = tokio::spawn(cancel_on_signal(stop.clone()));
    let result = server.run().await;
    stop.cancel();
    on_signal.abort();
    for task in clients {
        let _ = task.await;
    }
    // The conductor returned the stage (and its backends) on Ctrl-C; it is dropped only
    // now, after weir has drained.
    drop(conductor.await);
    result
}

/// Stops the traffic as soon as weir starts draining, so a drained connection is not
/// counted as a failure.
async fn cancel_on_signal(stop: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    stop.cancel();
}

fn demo_yaml(listen: SocketAddr, admin: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut yaml = format!(
        "admin:\n  listen: {admin}\nshutdown_timeout: 5s\nlisteners:\n  - name: demo\n    listen: {listen}\n    \
         protocol: http\n    routes:\n      - pool: demo\npools:\n  demo:\n    strategy: round_robin\n    backends:\n"
    );
    for b in backends {
        yaml.push_str(&format!("      - address: {b}\n"));
    }
    // What makes a kill invisible to clients: a refused connect or a reset is retried on
    // another backend, live traffic ejects a dead backend at once, and the active checks
    // keep it out until it answers again.
    yaml.push_str(
        "    health_check:\n      type: http\n      path: /healthz\n      interval: 1s\n      timeout: 500ms\n      \
         rise: 2\n      fall: 2\n    passive:\n      consecutive_failures: 1\n    retries: 2\n    \
         retry_on: [connect_failure, reset]\n",
    );
    yaml
}

/// `--kill-every 2s`, `--down-for 500ms`: a number and `ms`, `s` or `m`.
/// At most [`MAX_DURATION`], so no deadline computed from it can overflow.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit: 500ms, 2s, 1m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(format!("{text:?}: the unit is ms, s or m")),
    };
    if d > MAX_DURATION {
        return Err(format!("{text:?}: at most 24h (1440m)"));
    }
    Ok(d)
}

/// The longest `--kill-every` / `--down-for`.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// `10s`, `1.5s`.
fn human(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}
