//! `fixed-rate`: an open-loop HTTP/1.1 keep-alive load generator for latency at a fixed
//! request rate, light enough that its own queueing is not what it measures.
//!
//! `benches/compare/http.sh` measured p99 with oha, which at 20,000 requests/s on one
//! core spent most of that core itself: every proxy's p99 then read as oha's. This
//! client does only what the measurement needs, on one thread: `CONNS` keep-alive
//! connections, each sending GET requests on a fixed schedule (request `j` of connection
//! `k` is due at `start + (k + j·CONNS) / RATE`), reading each response by its
//! `Content-Length`, and recording its latency.
//!
//! **Coordinated omission.** When a response comes back after the next request of its
//! connection was due, that request's latency counts from when it was due, not from when
//! it could be sent (wrk2's correction): a stalled proxy is charged for the requests it
//! held up. When the connection was idle at the due time, the latency counts from the
//! write, so the timer's own lateness (tokio's is up to a millisecond) is not charged to
//! the proxy.
//!
//! ```text
//! fixed-rate ADDR RATE [--conns 10] [--duration 10] [--warmup 1] [--path /]
//! ```
//!
//! Prints one JSON object: requests, errors, the achieved rate and p50/p90/p99/p99.9/max
//! latency in milliseconds. Exits 1 if any request failed or was answered other than 2xx.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What one run is asked to do.
#[derive(Debug, Clone)]
struct Args {
    addr: SocketAddr,
    rate: f64,
    conns: usize,
    duration: Duration,
    warmup: Duration,
    path: String,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: fixed-rate ADDR RATE [--conns N] [--duration SECS] [--warmup SECS] [--path PATH]"
    );
    ExitCode::from(2)
}

fn parse_args() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let addr = it.next()?.parse().ok()?;
    let rate: f64 = it.next()?.parse().ok()?;
    let mut args = Args {
        addr,
        rate,
        conns: 10,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        path: "/".into(),
    };
    while let Some(flag) = it.next() {
        let value = it.next()?;
        match flag.as_str() {
            "--conns" => args.conns = value.parse().ok()?,
            "--duration" => args.duration = Duration::from_secs_f64(value.parse().ok()?),
            "--warmup" => args.warmup = Duration::from_secs_f64(value.parse().ok()?),
            "--path" => args.path = value,
            _ => return None,
        }
    }
    (args.rate > 0.0 && args.conns > 0 && args.path.starts_with('/')).then_some(args)
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Seen {
    /// Latencies of the measured requests, in microseconds.
    latencies: Vec<u32>,
    errors: u64,
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        return usage();
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fixed-rate: {e}");
            return ExitCode::from(1);
        }
    };
    let seen = rt.block_on(run(&args));
    report(&args, &seen)
}

async fn run(args: &Args) -> Vec<Seen> {
    // Every connection starts on the same clock, a moment after all are being opened.
    let start = Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = (0..args.conns)
        .map(|k| tokio::spawn(connection(args.clone(), k, start)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|_| Seen {
            latencies: Vec::new(),
            errors: 1,
        }));
    }
    out
}

/// Connection `k`'s requests, on its share of the schedule, until the run's end.
async fn connection(args: Args, k: usize, start: Instant) -> Seen {
    let mut seen = Seen::default();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: weir-fixed-rate\r\n\r\n",
        args.path, args.addr
    );
    let interval = Duration::from_secs_f64(args.conns as f64 / args.rate);
    let first = start + Duration::from_secs_f64(k as f64 / args.rate);
    let measured_from = start + args.warmup;
    let end = start + args.warmup + args.duration;
    let Some(mut stream) = reconnect(args.addr).await else {
        seen.errors += 1;
        return seen;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let per_conn = (args.duration.as_secs_f64() * args.rate / args.conns as f64) as usize + 1;
    seen.latencies.reserve(per_conn);
    let mut due = first;
    // Bounded by the schedule: one request per interval until `end`.
    while due < end {
        let late = Instant::now() >= due;
        if !late {
            tokio::time::sleep_until(due).await;
        }
        let sent = Instant::now();
        let mut outcome = exchange(&mut stream, request.as_bytes(), &mut buf).await;
        if outcome == Outcome::Closed {
            // The server closed the kept-alive connection before answering (its
            // per-connection request cap, or its idle timeout): resend once on a new one,
            // as every client does.
            outcome = match reconnect(args.addr).await {
                Some(s) => {
                    stream = s;
                    exchange(&mut stream, request.as_bytes(), &mut buf).await
                }
                None => Outcome::Failed,
            };
        }
        let done = Instant::now();
        let ok = matches!(outcome, Outcome::Answered { .. });
        if due >= measured_from {
            if ok {
                let from = if late { due } else { sent };
                let us = done.saturating_duration_since(from).as_micros();
                seen.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
            } else {
                seen.errors += 1;
            }
        }
        if outcome != (Outcome::Answered { close: false }) {
            // Closed by the server after this answer, or failed: the next request goes
            // on a new connection.
            match reconnect(args.addr).await {
                Some(s) => stream = s,
                None => {
                    seen.errors += 1;
                    return seen;
                }
            }
        }
        due += interval;
    }
    seen
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 2xx read to its end; `close` when the server said it closes the connection.
    Answered { close: bool },
    /// The connection ended before a byte of the response: nothing was answered.
    Closed,
    /// Anything else: an error, a non-2xx status, a cut or unframed response.
    Failed,
}

/// A new connection, `TCP_NODELAY` like every HTTP client's.
async fn reconnect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

/// Writes one request and reads its whole response, framed by its `Content-Length`
/// (this client asks only for fixed bodies).
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> Outcome {
    if stream.write_all(request).await.is_err() {
        return Outcome::Closed;
    }
    let mut filled = 0;
    // A head is at most the buffer; each read adds at least one byte.
    let (head_len, status, body_len, close) = loop {
        let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) else {
            return Outcome::Failed;
        };
        match stream.read(space).await {
            Ok(0) | Err(_) if filled == 0 => return Outcome::Closed,
            Ok(0) | Err(_) => return Outcome::Failed,
            Ok(n) => filled += n,
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        match res.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                let field = |name: &str| {
                    res.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::trim)
                };
                let Some(length) = field("content-length").and_then(|v| v.parse().ok()) else {
                    return Outcome::Failed;
                };
                let close = field("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                break (len, res.code.unwrap_or(0), length, close);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Outcome::Failed,
        }
    };
    let mut body_seen = filled - head_len;
    while body_seen < body_len {
        let want = (body_len - body_seen).min(buf.len());
        match stream.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return Outcome::Failed,
            Ok(n) => body_seen += n,
        }
    }
    if (200..300).contains(&status) && body_seen == body_len {
        Outcome::Answered { close }
    } else {
        Outcome::Failed
    }
}

fn report(args: &Args, seen: &[Seen]) -> ExitCode {
    let mut all: Vec<u32> = seen
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    let errors: u64 = seen.iter().map(|s| s.errors).sum();
    all.sort_unstable();
    let at = |q: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    println!(
        "{{\"requests\": {}, \"errors\": {}, \"rate\": {:.0}, \"p50_ms\": {:.3}, \"p90_ms\": {:.3}, \"p99_ms\": {:.3}, \"p999_ms\": {:.3}, \"max_ms\": {:.3}}}",
        all.len(),
        errors,
        all.len() as f64 / args.duration.as_secs_f64(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        at(1.0),
    );
    if errors > 0 || all.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
