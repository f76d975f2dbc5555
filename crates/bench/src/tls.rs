//! TLS client setup (rustls with the aws-lc-rs provider): trust a given CA
//! file, or — with `--insecure` — accept ANY certificate (benchmarks only).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How the server certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Trust the CA certificates in this PEM file.
    CaFile(std::path::PathBuf),
    /// INSECURE: accept any certificate. Only for loopback benchmarks.
    Insecure,
}

/// INSECURE verifier: accepts every server certificate without checking
/// name or chain; handshake signatures are still verified so the TLS
/// session itself is well-formed. Used only with `--insecure`.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds a client configuration for `trust`.
pub fn client_config(trust: &Trust) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(Path::new(path))
                .map_err(|e| anyhow::anyhow!("reading CA {}: {e}", path.display()))?
            {
                let cert =
                    cert.map_err(|e| anyhow::anyhow!("parsing CA {}: {e}", path.display()))?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                anyhow::bail!("no certificate found in CA file {}", path.display());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    pub server_name: ServerName<'static>,
    pub connector: TlsConnector,
}

impl Endpoint {
    pub fn new(
        addr: std::net::SocketAddr,
        sni: &str,
        config: Arc<ClientConfig>,
    ) -> anyhow::Result<Self> {
        let server_name = ServerName::try_from(sni.to_string())
            .map_err(|e| anyhow::anyhow!("invalid TLS server name {sni:?}: {e}"))?;
        Ok(Self {
            addr,
            server_name,
            connector: TlsConnector::from(config),
        })
    }

    /// TCP connect plus TLS handshake, bounded by `timeout`.
    pub async fn connect(
        &self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        let fut = async {
            let tcp = TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            let tls = self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await?;
            anyhow::Ok(tls)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow::anyhow!("connect to {} timed out", self.addr))?
    }
}
