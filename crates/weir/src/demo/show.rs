//! The demo's show: a line a second, and every `kill_every` one backend killed and brought
//! back `down_for` later, each with a line of its own.
//!
//! Every line carries the cumulative counts (`sent= ok= failed=` and `bN=` per backend),
//! so a reader, or a test, can check exactly that a killed backend answered nothing while
//! it was down: the kill line is printed once the backend is gone *and* every request in
//! flight at that moment has finished, and the return line before the backend answers
//! again. Whatever moves a killed backend's count between the two lines would be a
//! request it answered while down.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_balance::SharedTable;

use super::backend::DemoBackend;
use super::load::{Counters, Snapshot};
use super::Show;

/// What the show needs to run.
pub(super) struct Stage {
    pub(super) backends: Vec<DemoBackend>,
    pub(super) counters: Arc<Counters>,
    pub(super) table: SharedTable,
    pub(super) show: Show,
}

/// Runs until `stop` is cancelled, then hands the stage back: the caller drops the
/// backends only once weir has finished draining, so Ctrl-C does not kill them under
/// the requests still in flight.
pub(super) async fn run(mut stage: Stage, stop: CancellationToken) -> Stage {
    let start = Instant::now();
    let mut last = Snapshot::default();
    let mut next_tick = start + Duration::from_secs(1);
    let mut next_kill = start + stage.show.kill_every;
    // The killed backend (index) and when it comes back.
    let mut down: Option<(usize, Instant)> = None;
    let mut victim = 0;
    loop {
        let next_event = down.map_or(next_kill, |(_, back_at)| back_at.min(next_kill));
        let wake = next_tick.min(next_event);
        tokio::select! {
            () = stop.cancelled() => return stage,
            () = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            let snap = stage.counters.snapshot();
            say(&tick_line(now - start, &snap, &last, &stage));
            last = snap;
            next_tick += Duration::from_secs(1);
            continue;
        }
        match down {
            Some((i, back_at)) if now >= back_at => {
                if bring_back(&mut stage, i, now - start).await {
                    down = None;
                } else {
                    down = Some((i, now + Duration::from_secs(1)));
                }
            }
            _ if now >= next_kill => {
                next_kill += stage.show.kill_every;
                if down.is_none() {
                    kill(&mut stage, victim, start).await;
                    down = Some((victim, Instant::now() + stage.show.down_for));
                    victim = (victim + 1) % stage.backends.len();
                }
            }
            _ => {}
        }
    }
}

async fn kill(stage: &mut Stage, i: usize, start: Instant) {
    let Some(backend) = stage.backends.get_mut(i) else {
        return;
    };
    backend.kill().await;
    // Wait out the requests in flight at the kill (they may be retried elsewhere), so
    // every answer the killed backend gave is in these counts.
    let gate = stage.counters.gate.write().await;
    let snap = stage.counters.snapshot();
    drop(gate);
    let (n, addr) = (backend.n(), backend.addr());
    say(&format!(
        "[{}] KILL b{n} {addr}: listener closed, open connections dropped | {}",
        clock(start.elapsed()),
        counts(&snap)
    ));
}

/// Returns whether the backend is back (its port may be taken meanwhile).
async fn bring_back(stage: &mut Stage, i: usize, at: Duration) -> bool {
    let Some(backend) = stage.backends.get_mut(i) else {
        return true;
    };
    let (n, addr) = (backend.n(), backend.addr());
    match backend.bind_again().await {
        Ok(listener) => {
            // Counted before it answers anything: all of it came from before the kill.
            let snap = stage.counters.snapshot();
            say(&format!(
                "[{}] BACK b{n} {addr}: listening again; weir's health checks take it back | {}",
                clock(at),
                counts(&snap)
            ));
            backend.serve(listener);
            true
        }
        Err(e) => {
            say(&format!(
                "[{}] b{n} {addr} cannot listen again ({e}); trying again in 1s",
                clock(at)
            ));
            false
        }
    }
}

fn tick_line(at: Duration, snap: &Snapshot, last: &Snapshot, stage: &Stage) -> String {
    let table = stage.table.load();
    let pool = table.pool("demo");
    let mut line = format!(
        "[{}] sent={} ok={} failed={}",
        clock(at),
        snap.sent,
        snap.ok,
        snap.failed
    );
    for (i, backend) in stage.backends.iter().enumerate() {
        let now = snap.per_backend.get(i).copied().unwrap_or(0);
        let before = last.per_backend.get(i).copied().unwrap_or(0);
        let state = pool
            .and_then(|p| p.backends().find(|b| b.addr() == backend.addr()))
            .map_or("?", |b| if b.is_up() { "up" } else { "down" });
        let _ = write!(
            line,
            " | b{}={now} +{}/s {state}",
            backend.n(),
            now.saturating_sub(before)
        );
    }
    line
}

fn counts(snap: &Snapshot) -> String {
    let mut line = format!("sent={} ok={} failed={}", snap.sent, snap.ok, snap.failed);
    for (i, count) in snap.per_backend.iter().enumerate() {
        let _ = write!(line, " b{}={count}", i + 1);
    }
    line
}

/// `  12.0s`: time since the show started.
fn clock(at: Duration) -> String {
    format!("{:>6.1}s", at.as_secs_f64())
}

/// One line on stdout; a closed stdout only ends the printing, not the demo.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
