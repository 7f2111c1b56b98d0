//! The command line contract (DESIGN.md §2): `weir check` exit codes and messages in the
//! `FILE:LINE:COLUMN: FIELD.PATH: message` form, `--version`, `run` refusing a bad file,
//! and the shell completions and man page generated from the same definition.

use std::sync::LazyLock;
use std::time::Duration;

use weir_e2e::config::{ADMIN, MINIMAL, WEB_LISTENER};
use weir_e2e::{check_config, run_weir, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// 1-based columns of the key `key` and of its value on 1-based line `line` of `yaml`.
fn key_and_value_columns(yaml: &str, line: usize, key: &str) -> (usize, usize) {
    let text = yaml.lines().nth(line - 1).expect("line exists");
    let key_col = text.find(&format!("{key}:")).expect("key on line") + 1;
    let after = key_col - 1 + key.len() + 1;
    let value_col = after + text[after..].len() - text[after..].trim_start().len() + 1;
    (key_col, value_col)
}

/// The stderr line reporting `path` on `line`, checked against the contract's form.
fn error_line<'a>(lines: &[&'a str], yaml: &str, line: usize, key: &str, path: &str) -> &'a str {
    let (key_col, value_col) = key_and_value_columns(yaml, line, key);
    let at_key = format!("weir.yaml:{line}:{key_col}: {path}: ");
    let at_value = format!("weir.yaml:{line}:{value_col}: {path}: ");
    lines
        .iter()
        .find(|l| l.starts_with(&at_key) || l.starts_with(&at_value))
        .unwrap_or_else(|| panic!("no line starting {at_key:?} or {at_value:?} in {lines:#?}"))
}

/// A valid file: weighted pool `web` of two backends, health-checked.
static VALID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{ADMIN}{WEB_LISTENER}pools:
  web:
    strategy: weighted
    backends:
      - {{ address: 127.0.0.1:1, weight: 3 }}
      - {{ address: 127.0.0.1:2 }}
    health_check: {{ type: http, path: /health, interval: 2s, timeout: 1s }}
"
    )
});

#[tokio::test]
async fn check_accepts_a_valid_file_with_exit_0() {
    let out = check_config(WEIR, &VALID).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("weir.yaml: configuration ok"),
        "{out:?}"
    );
    assert!(out.stderr_lines().is_empty(), "{out:?}");
}

#[tokio::test]
async fn check_lists_every_error_with_file_line_column_and_path() {
    let yaml = "\
admin:
  listen: 127.0.0.1:0
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - match: { path_prefix: /api/ }
        pool: nope
      - pool: web
pools:
  web:
    strategy: round_robin
    backends:
      - { address: 127.0.0.1:8081 }
      - { address: 127.0.0.1:8082, weight: 0 }
    health_check:
      type: http
      path: /health
      timeout: fast
";
    let out = check_config(WEIR, yaml).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!out.stdout.contains("configuration ok"), "{out:?}");
    let lines = out.stderr_lines();
    let pool = error_line(&lines, yaml, 8, "pool", "listeners[0].routes[0].pool");
    let weight = error_line(&lines, yaml, 15, "weight", "pools.web.backends[1].weight");
    let timeout = error_line(
        &lines,
        yaml,
        19,
        "timeout",
        "pools.web.health_check.timeout",
    );
    assert!(pool.contains("nope"), "name the missing pool: {pool}");
    assert!(
        timeout.contains("\"fast\""),
        "quote the bad duration: {timeout}"
    );
    // Listed in file order, one per line.
    let index = |l: &str| lines.iter().position(|x| *x == l).expect("present");
    assert!(
        index(pool) < index(weight) && index(weight) < index(timeout),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn check_names_an_unknown_field_and_its_parent() {
    let yaml = format!("{MINIMAL}    bogus_field: 1\n");
    let out = check_config(WEIR, &yaml).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines = out.stderr_lines();
    let line = lines
        .iter()
        .find(|l| l.contains("bogus_field"))
        .unwrap_or_else(|| panic!("unknown key not named: {lines:#?}"));
    assert!(
        line.starts_with("weir.yaml:10:"),
        "line of the unknown key: {line}"
    );
    assert!(line.contains("pools.web"), "path of the parent: {line}");
}

#[tokio::test]
async fn check_rejects_an_unknown_upstream_protocol() {
    let yaml = format!("{}    upstream_protocol: h3\n", *VALID);
    let out = check_config(WEIR, &yaml).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr_lines()
            .iter()
            .any(|l| l.starts_with("weir.yaml:15:")
                && l.contains("unknown upstream protocol \"h3\" (expected http1 or h2)")),
        "{out:?}"
    );
}

#[tokio::test]
async fn check_of_a_missing_file_exits_1_naming_it() {
    let out = run_weir(WEIR, &["check", "-c", "does-not-exist.yaml"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("does-not-exist.yaml"), "{out:?}");
}

#[tokio::test]
async fn version_prints_name_and_version() {
    let out = run_weir(WEIR, &["--version"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), "weir 0.1.0");
}

#[tokio::test]
async fn demo_refuses_a_kill_cadence_over_a_day_instead_of_panicking() {
    // Before the cap, `start + kill_every` overflowed the clock and panicked.
    let huge = "18446744073709551615s";
    for cadence in [
        ["--kill-every", huge, "--down-for", "1s"],
        ["--kill-every", "10s", "--down-for", huge],
    ] {
        let mut args = vec!["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
        args.extend(cadence);
        let out = run_weir(WEIR, &args).await;
        assert_eq!(out.code, Some(2), "a usage error, not a panic: {out:?}");
        assert!(out.stderr.contains("at most 24h"), "{out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
}

#[tokio::test]
async fn run_with_an_invalid_file_exits_1_and_says_where() {
    let yaml = VALID.replace("weight: 3", "weight: -3");
    let mut weir = Weir::spawn_run(WEIR, &yaml, "info");
    let status = weir.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "{}", weir.log_tail(20));
    let tail = weir.log_tail(20);
    assert!(
        tail.contains("weir.yaml:12:"),
        "the error names file and line: {tail}"
    );
}

/// Runs `bash -c command` with `stdin` on its standard input; (exit code, stdout, stderr).
async fn bash(command: &str, stdin: &str) -> (Option<i32>, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", command])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn bash");
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write to bash");
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("bash finishes within 30 s")
        .expect("bash runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn completions_are_printed_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run_weir(WEIR, &["completions", shell]).await;
        assert_eq!(out.code, Some(0), "{shell}: {out:?}");
        for sub in ["run", "check", "demo", "completions", "manpage"] {
            assert!(out.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = run_weir(WEIR, &["completions", "tcsh"]).await;
    assert_eq!(
        out.code,
        Some(2),
        "an unknown shell is a usage error: {out:?}"
    );
}

#[tokio::test]
async fn bash_accepts_the_bash_completion_and_it_completes() {
    let script = run_weir(WEIR, &["completions", "bash"]).await.stdout;
    let (code, _, stderr) = bash("bash -n", &script).await;
    assert_eq!(code, Some(0), "bash -n rejects the script: {stderr}");
    // Sourced, it completes a subcommand and a subcommand's flag as bash would ask it to.
    let ask = "source /dev/stdin
        COMP_WORDS=(weir de); COMP_CWORD=1; COMP_LINE='weir de'; COMP_POINT=7
        _weir weir de weir; echo \"1:${COMPREPLY[*]}\"
        COMP_WORDS=(weir demo --qu); COMP_CWORD=2; COMP_LINE='weir demo --qu'; COMP_POINT=14
        _weir weir --qu demo; echo \"2:${COMPREPLY[*]}\"";
    let (code, stdout, stderr) = bash(ask, &script).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1:demo\n"), "{stdout:?} {stderr}");
    assert!(stdout.contains("2:--quiet\n"), "{stdout:?} {stderr}");
}

#[tokio::test]
async fn manpage_is_roff_naming_every_subcommand() {
    let out = run_weir(WEIR, &["manpage"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // Only roff conditionals (the apostrophe string) may precede the title header.
    let head: Vec<&str> = out
        .stdout
        .lines()
        .take_while(|l| !l.starts_with(".TH"))
        .collect();
    assert!(
        head.iter()
            .all(|l| l.starts_with(".ie ") || l.starts_with(".el ")),
        "the page starts with its .TH header: {head:?}"
    );
    assert!(
        out.stdout.contains("\n.TH weir 1 "),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    assert!(out.stdout.contains("\n.SH SUBCOMMANDS"), "{}", out.stdout);
    for sub in ["run", "check", "demo", "completions", "manpage"] {
        assert!(
            out.stdout.contains(&format!("weir\\-{sub}")),
            "the page names {sub}: {}",
            out.stdout
        );
    }
}
