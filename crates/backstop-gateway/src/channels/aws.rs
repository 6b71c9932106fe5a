//! AWS Signature Version 4 for Bedrock, with the maintained `aws-sigv4` crate.

use super::credential_failure;
use crate::config::Secret;
use crate::pipeline::failure::Failure;
use crate::upstream::UpstreamRequest;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The credentials and region a Bedrock provider signs with.
#[derive(Debug)]
pub struct AwsCredentials {
    /// The access key id (not secret, but kept out of logs like the rest).
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// The AWS region of the endpoint (`us-east-1`).
    pub region: String,
    /// The signing service name (`bedrock`).
    pub service: &'static str,
}

impl AwsCredentials {
    /// `SigV4 (region R)`, plus whether a session token is used.
    pub fn describe(&self) -> String {
        let session = if self.session_token.is_some() {
            " with a session token"
        } else {
            ""
        };
        format!("AWS SigV4 in {}{session}", self.region)
    }

    /// The secret values, for the redactor.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            self.access_key_id.expose().to_string(),
            self.secret_access_key.expose().to_string(),
        ];
        secrets.extend(self.session_token.iter().map(|t| t.expose().to_string()));
        secrets
    }

    /// Signs `request` (method, URL, headers and body) now, adding the `authorization`,
    /// `x-amz-date` and, with a session token, `x-amz-security-token` headers.
    pub fn sign(&self, request: &mut UpstreamRequest) -> Result<(), Failure> {
        let failed = |error: &dyn std::fmt::Display| {
            credential_failure(format!("cannot sign the request with SigV4: {error}"))
        };
        let identity = Credentials::new(
            self.access_key_id.expose(),
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "backstop",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|error| failed(&error))?
            .into();
        let body = request.body().single().map(|b| &b[..]).unwrap_or_default();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|error| failed(&error))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| failed(&error))?
            .into_parts();
        let (signed_headers, _params) = instructions.into_parts();
        for header in signed_headers {
            let mut value =
                http::HeaderValue::from_str(header.value()).map_err(|error| failed(&error))?;
            value.set_sensitive(header.sensitive() || header.name() == "authorization");
            request.headers_mut().insert(header.name(), value);
        }
        Ok(())
    }
}
