//! TLS: the only way in (RFC 8314 implicit TLS). rustls with the aws-lc-rs
//! provider as the one provider in the graph, TLS 1.2 and 1.3 only, the
//! post-quantum hybrid X25519MLKEM768 preferred. Certificates and keys are
//! read with rustls-pki-types' PEM API (rustls-pemfile is unmaintained,
//! RUSTSEC-2025-0134).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig, crypto::CryptoProvider};

use crate::config::ConfigError;

/// The process-wide crypto provider: aws-lc-rs with the hybrid
/// post-quantum group first.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    let pq = rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768;
    p.kx_groups.retain(|g| g.name() != pq.name());
    p.kx_groups.insert(0, pq);
    Arc::new(p)
}

/// Installs [`provider`] as the process default, so that a `builder()` call
/// inside a dependency (sqlx's TLS to PostgreSQL/MariaDB) cannot panic on an
/// ambiguous provider. Harmless if called twice.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default((*provider()).clone());
}

/// Reads the certificate chain and key and builds the server configuration.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError(format!("[tls]: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError(format!("[tls] cert/key: {e}")))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError(format!("[tls] cert: cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError(format!(
                "[tls] cert: {}: not valid PEM: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ConfigError(format!(
            "[tls] cert: {}: no CERTIFICATE block found",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError(format!("[tls] key: cannot read {}: {e}", path.display())))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        ConfigError(format!(
            "[tls] key: {}: no usable private key ({e})",
            path.display()
        ))
    })
}

/// A short name of the negotiated protocol version, for logs.
pub fn version_name(v: Option<rustls::ProtocolVersion>) -> String {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
        Some(other) => format!("{other:?}"),
        None => "none".into(),
    }
}

/// The TLS configuration in use, replaceable at run time (SIGHUP) so that a
/// renewed certificate is picked up without dropping open sessions: each new
/// handshake takes the configuration current at that moment; established
/// sessions keep theirs.
#[derive(Debug)]
pub struct TlsState {
    current: RwLock<Arc<ServerConfig>>,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsState {
    /// Loads the certificate and key for the first time.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<TlsState>, ConfigError> {
        let config = load_server_config(cert, key)?;
        Ok(Arc::new(TlsState {
            current: RwLock::new(config),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Re-reads the certificate and key. On error the old configuration
    /// stays in use and the error is returned for the log.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let config = load_server_config(&self.cert, &self.key)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }
}
