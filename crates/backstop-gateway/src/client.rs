//! The ways the gateway builds an HTTP client: the reqwest builder (the drill's to a gateway,
//! token endpoints, callbacks) and the TLS configuration of the upstream client.
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

/// The upstream client's TLS configuration, trusting what [`builder`] trusts: the platform
/// verifier over the system's store (or `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus the built-in
/// public roots; TLS 1.2 and 1.3 with the aws-lc-rs provider, as reqwest's default.
pub fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let built_in = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned();
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(built_in, provider.clone())?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth())
}
