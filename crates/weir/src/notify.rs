//! systemd readiness notification (`Type=notify`), without libsystemd.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). weir sends
//! `READY=1` once every listener is bound and signals are handled, `RELOADING=1` then
//! `READY=1` around a SIGHUP reload, and `STOPPING=1` when it starts draining, so
//! `systemctl start` and `systemctl reload` return when weir is really ready.

use std::os::unix::net::UnixDatagram;

/// Sends `state` to systemd if weir runs under it; otherwise does nothing.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(error = %e, state, "sd_notify failed");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_state_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("weir-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).expect("bind datagram socket");
        send(path.as_os_str(), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("receive");
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn sends_the_state_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("weir-notify-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract socket");
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("receive");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
