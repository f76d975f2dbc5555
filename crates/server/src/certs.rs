//! Development certificates (rcgen): a private CA and a server certificate
//! for `localhost`, `127.0.0.1` and `::1` signed by it, so that clients can
//! verify the server by trusting `ca.pem` instead of turning verification off.
//! Used by `coffre serve --dev` and by the tests. Never for production.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Where the generated files are.
#[derive(Debug, Clone)]
pub struct DevCertPaths {
    /// The CA certificate clients should trust.
    pub ca: PathBuf,
    /// The server's certificate chain (leaf, then CA).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, mode 0600).
    pub key: PathBuf,
}

impl DevCertPaths {
    /// The standard file names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }

    /// Whether all three files exist.
    pub fn exist(&self) -> bool {
        self.ca.exists() && self.cert.exists() && self.key.exists()
    }
}

/// Generates a CA and a server certificate into `dir` (created if needed).
pub fn generate(dir: &Path) -> anyhow::Result<DevCertPaths> {
    std::fs::create_dir_all(dir)?;
    let paths = DevCertPaths::in_dir(dir);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        "Coffre development CA (not for production)",
    );
    ca_params.distinguished_name = dn;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    std::fs::write(&paths.ca, ca_cert.pem())?;
    std::fs::write(&paths.cert, format!("{}{}", cert.pem(), ca_cert.pem()))?;
    write_private(&paths.key, key.serialize_pem().as_bytes())?;
    Ok(paths)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
