//! The cloud channels' credentials: what a request to Azure (Entra ID token), Bedrock
//! (SigV4) or Vertex (OAuth access token) carries besides an API key, applied to a request
//! just before it is sent; and Bedrock's binary event stream turned into the SSE the relay
//! reads. What differs per channel in paths, bodies and errors lives in the provider specs of
//! `backstop-protocol`.

mod aws;
mod eventstream;
mod google;

pub use aws::AwsCredentials;
pub use google::{GoogleToken, ServiceAccount, DEFAULT_TOKEN_URL};

use crate::pipeline::failure::{describe_transport, transport_class, Failure};
use crate::upstream::{TransportError, UpstreamClient, UpstreamRequest, UpstreamResponse};
use backstop_core::FailureClass;
use backstop_protocol::{Framing, ProviderSpec};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::sync::Arc;

use crate::config::Secret;

/// How a request to a channel is authorized, beyond the API key header of its spec.
#[derive(Debug, Clone)]
pub enum ChannelAuth {
    /// `Authorization: Bearer TOKEN` (Azure's `azure_ad_token`).
    Bearer(Secret),
    /// An AWS SigV4 signature over the whole request (Bedrock).
    Aws(Arc<AwsCredentials>),
    /// A Google OAuth access token, given or obtained for a service account (Vertex).
    Google(Arc<GoogleToken>),
}

impl ChannelAuth {
    /// What `backstop check` says about it: the method, never the secret.
    pub fn describe(&self) -> String {
        match self {
            ChannelAuth::Bearer(_) => "Entra ID bearer token".to_string(),
            ChannelAuth::Aws(credentials) => credentials.describe(),
            ChannelAuth::Google(token) => token.describe(),
        }
    }

    /// The secret values it holds, for the redactor.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            ChannelAuth::Bearer(token) => vec![token.expose().to_string()],
            ChannelAuth::Aws(credentials) => credentials.secrets(),
            ChannelAuth::Google(token) => token.secrets(),
        }
    }
}

/// Sends `request` after applying `auth` (a signature or a token), mapping every failure to
/// the attempt loop's terms: a transport error by its kind, a credential that cannot be made
/// as the target's own breakage.
pub async fn send(
    client: &UpstreamClient,
    auth: Option<&ChannelAuth>,
    mut request: UpstreamRequest,
) -> Result<UpstreamResponse, Failure> {
    match auth {
        None => {}
        Some(ChannelAuth::Bearer(token)) => {
            google::set_bearer(&mut request, token.expose());
        }
        Some(ChannelAuth::Aws(credentials)) => credentials.sign(&mut request)?,
        Some(ChannelAuth::Google(token)) => {
            // Boxed: a token exchange is rare, and this future is part of every request's.
            let token = Box::pin(token.get(client)).await?;
            google::set_bearer(&mut request, token.expose());
        }
    }
    client
        .execute(request)
        .await
        .map_err(|error| transport_failure(&error))
}

/// The failure of a transport error: its class and description.
pub fn transport_failure(error: &TransportError) -> Failure {
    Failure::local(transport_class(error), describe_transport(error))
}

/// The body of a 2xx streaming answer as server-sent events of the provider's protocol:
/// as it comes for an SSE provider, decoded from AWS event-stream frames for Bedrock.
pub fn sse_body(
    spec: &ProviderSpec,
    response: UpstreamResponse,
) -> BoxStream<'static, Result<Bytes, TransportError>> {
    match spec.framing {
        Framing::Sse => response.bytes_stream().boxed(),
        Framing::AwsEventStream => eventstream::to_sse(response.bytes_stream()).boxed(),
    }
}

/// Lets the failure type mark a credential failure.
fn credential_failure(message: impl Into<String>) -> Failure {
    Failure::local(FailureClass::TargetBroken, message)
}

/// The failure of a successful answer that `target`'s content filter stopped, where its
/// channel counts that as a failure (Azure's `finish_reason: "content_filter"`); `None` for
/// an answer to relay.
pub fn refused_answer(target: &crate::config::Target, body: &[u8]) -> Option<Failure> {
    target.spec().refused_answer(body).then(output_filtered)
}

/// The failure of an answer the provider's output filter stopped before any of it was
/// delivered (a 200 whose finish reason is the content filter).
pub fn output_filtered() -> Failure {
    Failure::local(
        FailureClass::ContentFilter,
        "the provider's content filter stopped the answer (finish_reason content_filter)",
    )
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use std::mem::size_of_val;
    use std::time::Duration;

    /// Sending is awaited inside every request's handler, whose future keeps room for the
    /// largest thing it awaits for as long as the request is served (for a stream, until its
    /// first event): a token exchange, which is rare, is boxed, and so is the pool's answer.
    #[test]
    fn sending_holds_no_room_for_a_token_exchange() {
        let client = UpstreamClient::new(Duration::from_secs(1)).unwrap();
        let request =
            || UpstreamClient::post("http://127.0.0.1:9/v1", bytes::Bytes::new()).unwrap();
        let request_size = std::mem::size_of::<UpstreamRequest>();
        let executed = size_of_val(&client.execute(request()));
        let sent = size_of_val(&send(&client, None, request()));
        assert!(executed <= 64, "execute: {executed} bytes");
        assert!(
            sent <= 3 * request_size,
            "send: {sent} bytes, a request {request_size}"
        );
    }
}
