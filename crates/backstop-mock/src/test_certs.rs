//! Throwaway certificates for TLS tests: a private CA and a leaf for `localhost` and
//! `127.0.0.1`, generated in memory (feature `tls-test-certs`).
//!
//! Tests of a TLS client need a server certificate the client can be told to trust, and
//! checked-in keys expire and trip secret scanners. These are made fresh for each test and
//! signed by a CA that exists only in the test's memory.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::config::MockError;

/// A test CA and a leaf certificate it signed, all in PEM.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA certificate: what a client adds to its trusted roots (or `SSL_CERT_FILE`).
    pub ca_pem: String,
    /// The leaf certificate for `localhost` and `127.0.0.1`, signed by the CA.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
}

impl TestCerts {
    /// A new CA and a leaf for `localhost` and `127.0.0.1`.
    pub fn generate() -> Result<TestCerts, MockError> {
        Self::generate_for(&["localhost", "127.0.0.1"])
    }

    /// A new CA and a leaf for the given DNS names and IP addresses.
    pub fn generate_for(names: &[&str]) -> Result<TestCerts, MockError> {
        let tls_error = |e: rcgen::Error| MockError::Tls {
            message: format!("cannot generate test certificates: {e}"),
        };
        let ca_key = KeyPair::generate().map_err(tls_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "backstop-mock test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;
        let ca = rcgen::Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().map_err(tls_error)?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut leaf_params = CertificateParams::new(names).map_err(tls_error)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "backstop-mock");
        let leaf_cert = leaf_params.signed_by(&leaf_key, &ca).map_err(tls_error)?;
        Ok(TestCerts {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }

    /// A [`MockTls`](crate::MockTls) serving the leaf (ALPN `h2`, `http/1.1`).
    pub fn mock_tls(&self) -> Result<crate::MockTls, MockError> {
        crate::MockTls::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }

    /// Starts a mock with `config` serving HTTPS with this certificate, offering only
    /// http/1.1 by ALPN when `http1_only`.
    pub async fn start_mock(
        &self,
        config: crate::MockConfig,
        http1_only: bool,
    ) -> Result<crate::MockServer, MockError> {
        let tls = self.mock_tls()?;
        let tls = if http1_only { tls.http1_only() } else { tls };
        crate::MockServer::start_tls(config, tls)
            .await
            .map_err(|source| MockError::Io {
                context: "cannot start the TLS mock".into(),
                source,
            })
    }
}
