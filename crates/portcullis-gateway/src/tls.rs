//! TLS termination (C1): rustls with TLS 1.2 and 1.3 only, AEAD suites with
//! forward secrecy only, ALPN `h2` and `http/1.1`.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Installs the process-wide crypto provider once (idempotent).
pub fn install_crypto_provider() {
    let _ = aws_lc_rs::default_provider().install_default();
}

/// The cipher suites Portcullis offers: TLS 1.3 suites and ECDHE + AEAD for
/// TLS 1.2. No CBC, no RSA key exchange, no SHA-1 MACs.
pub fn provider() -> rustls::crypto::CryptoProvider {
    use aws_lc_rs::cipher_suite::*;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    }
}

/// Which file a TLS problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The certificate chain.
    Cert,
    /// The private key.
    Key,
}

/// Loads certificate and key and builds the server configuration. Errors say
/// what is wrong without quoting file contents.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, (TlsFile, String)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| (TlsFile::Cert, pem_error(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| (TlsFile::Cert, pem_error(e)))?;
    if certs.is_empty() {
        return Err((TlsFile::Cert, "no CERTIFICATE block in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| (TlsFile::Key, pem_error(e)))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| (TlsFile::Cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            (TlsFile::Key, format!("certificate and key don't fit together or are unsupported: {e}"))
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The server configuration for `[server.tls.acme]`: the certificate comes
/// from `resolver` (updated in place by renewals), and `acme-tls/1` is
/// offered for TLS-ALPN-01 validation handshakes.
pub fn acme_server_config(
    resolver: Arc<crate::acme::CertResolver>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), crate::acme::ACME_TLS_ALPN.to_vec()];
    Ok(cfg)
}

fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(io) => format!("can't read the file: {}", io.kind()),
        Error::NoItemsFound => "no PEM block of the expected kind in the file".to_owned(),
        _ => "malformed PEM".to_owned(),
    }
}
