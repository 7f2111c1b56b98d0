//! TLS with rustls, terminating on listeners. TLS to backends is the pool's transport's
//! (`weir_upstream::UpstreamTls`, reached through `Pool::transport`), so this module and
//! the HTTP one no longer depend on each other.
//!
//! A [`ListenerTls`] is built from the validated config off the data path (at start-up,
//! in `weir check` and on every reload, so certificates are re-read each time) and set
//! on a running listener with [`crate::ListenerHandle::set_tls`]. Each accepted
//! connection loads the listener's current one, so a reload changes the certificates
//! for new connections while established ones keep the session they negotiated.
//!
//! Only TLS 1.2 and 1.3 are offered (rustls has nothing older), with the `ring`
//! provider. HTTP listeners offer ALPN `h2` and `http/1.1`; TCP listeners offer none
//! (the bytes inside are not ours to name). The certificate is chosen by SNI in
//! [`sni`]; errors carry the config entry's position ([`TlsError::config_error`]).
//!
//! ```text
//! mod.rs       ListenerTls, the server handshake
//! sni.rs       certificate selection by server name (exact, then wildcard, then default)
//! ```
//! [`TlsError`] and the PEM reading are shared with the upstream side (`weir_upstream`).

pub(crate) mod sni;

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use weir_config::{CertificateConfig, ListenerTlsConfig, Protocol};
use weir_upstream::tls::{pem_error, provider, read_certificates};

pub use weir_upstream::TlsError;

/// TLS termination for one listener: its certificates and handshake timeout.
#[derive(Clone)]
pub struct ListenerTls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Reads every certificate and key of `config` and builds the rustls server config:
    /// TLS 1.2 and 1.3, SNI selection, ALPN `h2` + `http/1.1` when `protocol` is HTTP.
    ///
    /// Blocking file I/O: call it off the runtime's workers (`spawn_blocking`).
    ///
    /// # Errors
    ///
    /// A file that cannot be read, holds no PEM certificate or key, a key of an
    /// unsupported type, or a key that does not match its certificate; placed at the
    /// certificate's entry in the file.
    pub fn load(config: &ListenerTlsConfig, protocol: Protocol) -> Result<Self, TlsError> {
        let provider = provider();
        let mut keys = Vec::with_capacity(config.certificates.len());
        for c in &config.certificates {
            keys.push(certified_key(c, &provider)?);
        }
        let origin = config
            .certificates
            .first()
            .map(|c| c.origin.clone())
            .unwrap_or_default();
        let resolver = sni::Resolver::new(keys).map_err(|m| TlsError::new(&origin, m))?;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::new(&origin, format!("TLS setup failed: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        if protocol == Protocol::Http {
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Ok(ListenerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: config.handshake_timeout,
        })
    }

    /// The rustls server configuration (for inspection and tests).
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        self.acceptor.config()
    }

    /// How long a client has to finish the handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}

/// Runs the server handshake on `stream` within the listener's handshake timeout.
/// `None` (logged at debug: clients cause these) when it fails, times out or the
/// listener is closed by force meanwhile.
pub(crate) async fn accept(
    tls: &ListenerTls,
    stream: TcpStream,
    kill: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    let handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream));
    tokio::select! {
        r = handshake => match r {
            Ok(Ok(mut stream)) => {
                // rustls queues up to 64 KiB of records for a client that does not read;
                // 16 KiB (one record) keeps back-pressure close to the backend.
                stream.get_mut().1.set_buffer_limit(Some(16 * 1024));
                let (_, conn) = stream.get_ref();
                tracing::debug!(
                    sni = conn.server_name(),
                    alpn = conn.alpn_protocol().map(String::from_utf8_lossy).as_deref(),
                    version = conn.protocol_version().map(|v| v.as_str().unwrap_or("?")),
                    "TLS handshake done"
                );
                Some(stream)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(timeout = ?tls.handshake_timeout, "TLS handshake timed out");
                None
            }
        },
        () = kill.cancelled() => None,
    }
}

/// One `{ cert, key }` entry read, parsed and checked to belong together.
fn certified_key(c: &CertificateConfig, provider: &CryptoProvider) -> Result<sni::Entry, TlsError> {
    let chain = read_certificates(&c.cert, &c.origin, "certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| {
        TlsError::new(
            &c.origin,
            format!(
                "cannot read a private key from {}: {}",
                c.key.display(),
                pem_error(&e)
            ),
        )
    })?;
    let names = sni::names(&chain).map_err(|e| {
        TlsError::new(
            &c.origin,
            format!("invalid certificate in {}: {e}", c.cert.display()),
        )
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let message = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key {} does not match the certificate {}",
                c.key.display(),
                c.cert.display()
            ),
            other => format!("unusable private key {}: {other}", c.key.display()),
        };
        TlsError::new(&c.origin, message)
    })?;
    Ok(sni::Entry {
        key: Arc::new(key),
        names,
    })
}
