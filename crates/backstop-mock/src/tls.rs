//! HTTPS for the mock: a certificate chain and key in PEM, ALPN offering `h2` and `http/1.1`.
//!
//! A gateway's upstream client has to be tested against what providers really run: TLS, with
//! HTTP/2 chosen by ALPN, and HTTP/1.1 when the server offers nothing else. [`MockTls`] holds a
//! ready rustls server configuration, built once when the PEM is loaded so that a bad file or a
//! key that does not match its certificate is an error at start, not a failed handshake later.
//! The crypto provider is aws-lc-rs, the one reqwest already links, so no second provider is built.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::MockError;

/// ALPN protocol id of HTTP/2.
const H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
const HTTP1: &[u8] = b"http/1.1";

/// The TLS side of a mock: what [`MockServer::start_tls`](crate::MockServer::start_tls) serves
/// with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MockTls {
    config: Arc<ServerConfig>,
}

impl MockTls {
    /// From PEM text: `cert_chain` holds the leaf certificate first, then any intermediates;
    /// `key` holds its private key (PKCS#8, PKCS#1 or SEC1). ALPN offers `h2`, then `http/1.1`.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<MockTls, MockError> {
        Self::build(cert_chain, key, "(inline)", "(inline)")
    }

    /// From PEM files, as [`MockTls::from_pem`]; an unreadable file is an error naming it.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<MockTls, MockError> {
        let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| MockError::Tls {
                message: format!("cannot read the {what} {}: {e}", path.display()),
            })
        };
        let certs = read(cert_path, "certificate chain")?;
        let key = read(key_path, "private key")?;
        Self::build(
            &certs,
            &key,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    fn build(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_origin: &str,
        key_origin: &str,
    ) -> Result<MockTls, MockError> {
        let tls_error = |message: String| MockError::Tls { message };
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("certificate chain {cert_origin}: bad PEM: {e}")))?;
        if certs.is_empty() {
            return Err(tls_error(format!(
                "certificate chain {cert_origin}: no \"BEGIN CERTIFICATE\" block found"
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            tls_error(format!(
                "private key {key_origin}: no usable PEM private key ({e})"
            ))
        })?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| tls_error(format!("TLS setup: {e}")))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| {
                    tls_error(format!(
                        "certificate {cert_origin} with key {key_origin}: {e}"
                    ))
                })?;
        config.alpn_protocols = vec![H2.to_vec(), HTTP1.to_vec()];
        Ok(MockTls {
            config: Arc::new(config),
        })
    }

    /// The TLS setup of command-line flags: none without a certificate, else the PEM
    /// certificate chain and key, offering only http/1.1 when `http1_only`.
    pub fn from_flags(
        cert_and_key: Option<(&Path, &Path)>,
        http1_only: bool,
    ) -> Result<Option<MockTls>, MockError> {
        let Some((cert, key)) = cert_and_key else {
            return Ok(None);
        };
        let tls = MockTls::from_pem_files(cert, key)?;
        Ok(Some(if http1_only { tls.http1_only() } else { tls }))
    }

    /// Offers only `http/1.1` by ALPN, so that a client has to fall back from HTTP/2.
    pub fn http1_only(mut self) -> MockTls {
        Arc::make_mut(&mut self.config).alpn_protocols = vec![HTTP1.to_vec()];
        self
    }

    /// The ALPN protocols offered, most preferred first (`["h2", "http/1.1"]` by default).
    pub fn alpn(&self) -> Vec<String> {
        self.config
            .alpn_protocols
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    /// The acceptor that performs handshakes with this configuration.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_a_clear_error() {
        let err = MockTls::from_pem(b"not a certificate", b"nor a key").unwrap_err();
        assert!(
            err.to_string().contains("no \"BEGIN CERTIFICATE\" block"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let err =
            MockTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/cert.pem"), "{text}");
        assert!(text.contains("certificate chain"), "{text}");
    }
}
