//! The one way the gateway builds an HTTP client (to upstreams, and the drill's to a gateway).
//!
//! reqwest's rustls verifier trusts the system's certificate store (`SSL_CERT_FILE`/`SSL_CERT_DIR` replace it);
//! the public roots built into the binary are added to it, so a host or container without a store still reaches
//! the public providers.

/// A client builder trusting the built-in public roots plus the system's certificate store.
pub fn builder() -> reqwest::ClientBuilder {
    let built_in = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok());
    reqwest::Client::builder().tls_certs_merge(built_in)
}
