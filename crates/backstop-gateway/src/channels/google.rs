//! Google OAuth access tokens for Vertex AI: a token given in the configuration, or one
//! obtained for a service account by a signed JWT (RS256, with the maintained `jsonwebtoken`
//! crate) exchanged at the token endpoint, cached and refreshed before it expires. A token
//! never appears in a log or an error.

use super::credential_failure;
use crate::config::Secret;
use crate::pipeline::failure::Failure;
use crate::upstream::{UpstreamClient, UpstreamRequest};
use backstop_core::FailureClass;
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The OAuth scope Vertex AI needs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Google's token endpoint, where a service account's JWT is exchanged for an access token.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// How long before its expiry a cached token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The largest token endpoint answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// A service account's key, as in its JSON key file.
#[derive(Deserialize)]
pub struct ServiceAccount {
    /// The account's email, the JWT's issuer.
    pub client_email: String,
    /// Its RSA private key in PEM.
    pub private_key: String,
    /// The id of that key, the JWT's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// Where a Vertex provider's access tokens come from.
#[derive(Debug)]
enum Source {
    /// A token given in the configuration, used as it is.
    Given(Secret),
    /// A service account's key, exchanged at `token_url`.
    Account {
        account: ServiceAccount,
        key: jsonwebtoken::EncodingKey,
        token_url: String,
    },
}

/// A Vertex provider's access token: given, or obtained and cached.
#[derive(Debug)]
pub struct GoogleToken {
    source: Source,
    cached: Mutex<Option<(Secret, Instant)>>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The claims of the JWT a service account signs.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl GoogleToken {
    /// A token given in the configuration.
    pub fn given(token: Secret) -> Self {
        Self {
            source: Source::Given(token),
            cached: Mutex::new(None),
        }
    }

    /// Tokens for `account`, exchanged at `token_url`; an error when its private key is not
    /// an RSA key in PEM.
    pub fn for_account(account: ServiceAccount, token_url: String) -> Result<Self, String> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| "its private_key is not an RSA private key in PEM".to_string())?;
        Ok(Self {
            source: Source::Account {
                account,
                key,
                token_url,
            },
            cached: Mutex::new(None),
        })
    }

    /// What `backstop check` says about it.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Given(_) => "OAuth access token (access_token)".to_string(),
            Source::Account {
                account, token_url, ..
            } => format!(
                "service account {} (credentials_file), tokens from {}",
                account.client_email,
                crate::redact::url(token_url)
            ),
        }
    }

    /// The secret values, for the redactor (the current token too).
    pub fn secrets(&self) -> Vec<String> {
        match &self.source {
            Source::Given(token) => vec![token.expose().to_string()],
            Source::Account { account, .. } => vec![account.private_key.clone()],
        }
    }

    /// A valid token: the given one, or the cached one while it has more than a few minutes
    /// left, else a new one from the token endpoint (one exchange at a time).
    pub async fn get(&self, client: &UpstreamClient) -> Result<Secret, Failure> {
        let (account, key, token_url) = match &self.source {
            Source::Given(token) => return Ok(token.clone()),
            Source::Account {
                account,
                key,
                token_url,
            } => (account, key, token_url),
        };
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref() {
            if Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = exchange(client, account, key, token_url).await?;
        let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        *cached = Some((token.clone(), refresh_at));
        Ok(token)
    }
}

/// Signs a JWT for `account` and exchanges it for an access token and its lifetime.
async fn exchange(
    client: &UpstreamClient,
    account: &ServiceAccount,
    key: &jsonwebtoken::EncodingKey,
    token_url: &str,
) -> Result<(Secret, Duration), Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        iss: &account.client_email,
        scope: SCOPE,
        aud: token_url,
        iat: now,
        exp: now + 3600,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = account.private_key_id.clone();
    let assertion = jsonwebtoken::encode(&header, &claims, key).map_err(|error| {
        credential_failure(format!("cannot sign the service account's JWT: {error}"))
    })?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", &assertion)
        .finish();
    let where_ = crate::redact::url(token_url);
    let mut request = UpstreamClient::post(token_url, bytes::Bytes::from(form))
        .map_err(|_| credential_failure(format!("token_url `{where_}` is not a valid URL")))?;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let mut response = client.execute(request).await.map_err(|error| {
        Failure::local(
            FailureClass::Transient,
            format!(
                "the token endpoint {where_} did not answer: {}",
                crate::pipeline::failure::describe_transport(&error)
            ),
        )
    })?;
    let status = response.status();
    let broke_off = || {
        Failure::local(
            FailureClass::Transient,
            format!("the token endpoint {where_} broke off its answer"),
        )
    };
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| broke_off())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_ANSWER {
            break;
        }
    }
    if body.len() > MAX_TOKEN_ANSWER {
        return Err(credential_failure(format!(
            "the token endpoint {where_} answered too much"
        )));
    }
    if !status.is_success() {
        let class = if status.is_server_error() || status.as_u16() == 429 {
            FailureClass::Transient
        } else {
            FailureClass::TargetBroken
        };
        let reason = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_default();
        return Err(Failure::local(
            class,
            format!("the token endpoint {where_} refused the service account: {status} {reason}"),
        ));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
        credential_failure(format!(
            "the token endpoint {where_} answered without an access_token"
        ))
    })?;
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
    Ok((Secret::new(answer.access_token), lifetime))
}

/// Sets `authorization: Bearer TOKEN` on `request`, marked sensitive.
pub(super) fn set_bearer(request: &mut UpstreamRequest, token: &str) {
    if let Ok(mut value) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
}
