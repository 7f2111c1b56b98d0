//! weir: an L4/L7 reverse-proxy load balancer.
//!
//! This binary is the only crate that uses `anyhow`: it parses the command line, sets up
//! logging, and wires config, table, listeners, health checks and the admin server
//! together (see [`server`]). Everything that runs per request lives in the libraries.

mod demo;
mod discovery;
mod listeners;
mod notify;
mod server;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write as _;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use weir_telemetry::LogFormat;

/// Command line of `weir`.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about = "An L4/L7 reverse-proxy load balancer")]
struct Cli {
    /// Log line format on stderr (level from WEIR_LOG, env-filter syntax, default info).
    #[arg(long, value_enum, default_value_t = LogFormatArg::Pretty, global = true)]
    log_format: LogFormatArg,
    /// Worker threads of the async runtime (default: one per CPU). `--threads 1` makes
    /// weir comparable with a single-process HAProxy or nginx worker.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the configuration; SIGHUP reloads it, SIGTERM/SIGINT drain and stop.
    Run {
        /// The YAML configuration file.
        #[arg(short, long, default_value = "/etc/weir/weir.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration: exit 0 if valid, 1 with every error listed.
    Check {
        /// The YAML configuration file.
        #[arg(short, long, default_value = "/etc/weir/weir.yaml")]
        config: PathBuf,
    },
    /// Start three demo backends and a balancer in front of them, send them a little
    /// traffic and kill one backend every 10 s: a line a second shows that no request fails.
    Demo {
        /// Where the demo balancer listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the admin server listens.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: std::net::SocketAddr,
        /// Only the backends and the balancer: no traffic, no kills, nothing printed after
        /// the start-up text (for scripts).
        #[arg(long)]
        quiet: bool,
        /// How often a demo backend is killed (for tests: shortens the show).
        #[arg(long, default_value = "10s", value_parser = demo::parse_duration)]
        kill_every: std::time::Duration,
        /// How long a killed backend stays down; less than --kill-every (for tests).
        #[arg(long, default_value = "5s", value_parser = demo::parse_duration)]
        down_for: std::time::Duration,
    },
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Manpage,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Pretty => LogFormat::Pretty,
        LogFormatArg::Json => LogFormat::Json,
    };
    match &cli.command {
        Command::Check { config } => return check(config),
        Command::Completions { shell } => return completions(*shell),
        Command::Manpage => return manpage(),
        Command::Run { .. } | Command::Demo { .. } => {}
    }
    if let Err(e) = weir_telemetry::init_logging(format) {
        eprintln!("weir: {e}");
        return ExitCode::FAILURE;
    }
    // One thread: a current-thread runtime, like one HAProxy thread or nginx worker. It
    // skips the work-stealing machinery and keeps the client connection, the upstream
    // connection task and the timers on one run queue, with no cross-thread wake-ups.
    let mut builder = match cli.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(n));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => server::run_file(config).await,
            Command::Demo {
                listen,
                admin,
                quiet,
                kill_every,
                down_for,
            } => {
                let show = (!quiet).then_some(demo::Show {
                    kill_every,
                    down_for,
                });
                demo::run(listen, admin, show).await
            }
            Command::Check { .. } | Command::Completions { .. } | Command::Manpage => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "weir stopped");
            ExitCode::FAILURE
        }
    }
}

/// `weir check`: prints every error as `FILE:LINE:COLUMN: FIELD.PATH: message`.
fn check(path: &Path) -> ExitCode {
    // Certificates and keys are read too: a mismatch is a configuration error.
    let loaded = weir_config::load(path).and_then(|config| {
        tls::load(&config)
            .map(|_| config)
            .map_err(weir_config::ConfigErrors)
    });
    match loaded {
        Ok(_) => {
            println!("{}: configuration ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.errors() {
                eprintln!("{e}");
            }
            let n = errors.errors().len();
            eprintln!(
                "{}: {n} error{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// `weir completions SHELL`: the script clap_complete derives from [`Cli`].
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "weir", &mut script);
    print_bytes(&script)
}

/// `weir manpage`: weir(1) in roff, from the same definition as `--help`.
fn manpage() -> ExitCode {
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
        eprintln!("weir: rendering the man page: {e}");
        return ExitCode::FAILURE;
    }
    print_bytes(&page)
}

/// Writes generated text to stdout; a closed pipe (`| head`) is an error, not a panic.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing to tell it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("weir: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}
