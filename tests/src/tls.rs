//! Certificates made at test time with rcgen: a CA, leaves it signs, PEM files in a
//! private directory, and a rustls client that trusts the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;

use crate::tempdir::TempDir;

/// A test certificate authority.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A leaf certificate and its key, as PEM and DER.
#[derive(Debug)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The certificate, DER: what a client sees served.
    pub der: CertificateDer<'static>,
}

impl Ca {
    /// A fresh CA.
    ///
    /// # Panics
    /// When rcgen cannot make it (a broken test machine).
    pub fn new() -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "weir test CA");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca { cert, key }
    }

    /// A leaf for `names` (DNS subject alternative names), signed by this CA.
    ///
    /// # Panics
    /// As [`Ca::new`].
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// The CA certificate, PEM (for a pool's `tls.ca`).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A root store holding this CA alone.
    ///
    /// # Panics
    /// When rustls refuses the certificate.
    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("CA into roots");
        Arc::new(roots)
    }

    /// A rustls client (ring) trusting this CA alone and offering `alpn`.
    ///
    /// # Panics
    /// As [`Ca::roots`].
    pub fn client(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(self.roots())
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Default for Ca {
    fn default() -> Ca {
        Ca::new()
    }
}

/// A private directory for PEM files, removed on drop.
#[derive(Debug)]
pub struct Dir(TempDir);

impl Dir {
    /// A fresh directory.
    ///
    /// # Panics
    /// When it cannot be created.
    pub fn new() -> Dir {
        Dir(TempDir::new("tls"))
    }

    /// Replaces `name` atomically (write + rename), as a deploy tool would, and returns
    /// the full path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        let tmp = self.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).expect("write PEM file");
        std::fs::rename(&tmp, &path).expect("rename PEM file");
        path
    }

    /// Writes `leaf` as `site.pem` and `site.key`.
    ///
    /// # Panics
    /// As [`Dir::write`].
    pub fn install(&self, leaf: &Leaf) {
        self.write("site.pem", &leaf.cert_pem);
        self.write("site.key", &leaf.key_pem);
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Default for Dir {
    fn default() -> Dir {
        Dir::new()
    }
}
