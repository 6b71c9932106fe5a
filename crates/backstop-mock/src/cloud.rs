//! The cloud channels' side of the mock: how Azure OpenAI, AWS Bedrock and Vertex AI check a
//! request (auth, version, body) before it is answered like any other, Bedrock's SigV4
//! verification and event-stream framing, and Vertex's token endpoint.
//!
//! Credentials the mock accepts: any Azure `api-key` or Entra bearer token that is not empty;
//! a Bedrock request signed with any access key id and the secret [`BEDROCK_SECRET_ACCESS_KEY`]
//! (a wrong signature gets Bedrock's `InvalidSignatureException`); a Vertex bearer token that
//! begins `ya29.`, the form of Google access tokens, such as those its `POST /token` endpoint
//! issues for a service account's signed JWT.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::ask::{self, Ask};
use crate::errors::ErrorCase;
use crate::handler::Incoming;
use crate::stream::Events;

/// The secret access key the mock's Bedrock verifies SigV4 signatures with (any access key
/// id goes with it).
pub const BEDROCK_SECRET_ACCESS_KEY: &str = "backstop-mock-secret-access-key";

/// The `anthropic_version` Bedrock's Claude models take in the body.
const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// The `anthropic_version` Vertex's Claude models take in the body.
const VERTEX_VERSION: &str = "vertex-2023-10-16";

/// Counts the access tokens the token endpoint issued.
static ISSUED: AtomicU64 = AtomicU64::new(0);

/// Azure OpenAI: an `api-version` query, an `api-key` or bearer token, the OpenAI body with
/// the deployment as its model.
pub(crate) fn azure(
    deployment: &str,
    incoming: &Incoming,
    mut body: Value,
) -> Result<Ask, ErrorCase> {
    let has_version = incoming.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
    });
    if !has_version {
        return Err(ErrorCase::Status(404));
    }
    let key = header(&incoming.headers, "api-key");
    let bearer = header(&incoming.headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    if key.unwrap_or_default().is_empty() && bearer.unwrap_or_default().is_empty() {
        return Err(ErrorCase::Unauthorized);
    }
    body["model"] = json!(deployment);
    ask::openai(&body).map_err(ErrorCase::Invalid)
}

/// Bedrock InvokeModel: a valid SigV4 signature, the Anthropic body with `anthropic_version`
/// and without `model` or `stream` (the URL says both).
pub(crate) fn bedrock(
    model: &str,
    stream: bool,
    incoming: &Incoming,
    mut body: Value,
) -> Result<Ask, ErrorCase> {
    verify_sigv4(incoming)?;
    for key in ["model", "stream"] {
        if body.get(key).is_some() {
            return Err(ErrorCase::Invalid(format!(
                "Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."
            )));
        }
    }
    check_version(&body, BEDROCK_VERSION)?;
    body["model"] = json!(model);
    let mut asked = ask::anthropic(&body).map_err(ErrorCase::Invalid)?;
    asked.stream = stream;
    Ok(asked)
}

/// Vertex: a Google access token; Claude's body with `anthropic_version` and the model in
/// the URL, or Gemini's body as the Gemini API takes it.
pub(crate) fn vertex(
    publisher: &str,
    model: &str,
    stream: bool,
    incoming: &Incoming,
    mut body: Value,
) -> Result<Ask, ErrorCase> {
    let token = header(&incoming.headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| t.starts_with("ya29.")) {
        return Err(ErrorCase::Unauthorized);
    }
    if publisher == "google" {
        return ask::gemini(model, stream, &body).map_err(ErrorCase::Invalid);
    }
    check_version(&body, VERTEX_VERSION)?;
    body["model"] = json!(model);
    let mut asked = ask::anthropic(&body).map_err(ErrorCase::Invalid)?;
    asked.stream = stream;
    Ok(asked)
}

/// The body's `anthropic_version`: the channel's documented value, or an Anthropic API
/// version date (`2023-06-01`), which newer official SDKs send to every channel.
fn check_version(body: &Value, expected: &str) -> Result<(), ErrorCase> {
    let is_date = |v: &str| {
        v.len() == 10
            && v.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
    };
    match body.get("anthropic_version").and_then(Value::as_str) {
        Some(version) if version == expected || is_date(version) => Ok(()),
        Some(other) => Err(ErrorCase::Invalid(format!(
            "invalid anthropic_version: {other}"
        ))),
        None => Err(ErrorCase::Invalid(
            "anthropic_version: Field required".to_owned(),
        )),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the request's SigV4 signature by signing it again, with the secret the mock knows,
/// at the time and with the headers the request says it signed.
fn verify_sigv4(incoming: &Incoming) -> Result<(), ErrorCase> {
    let headers = &incoming.headers;
    let Some(authorization) = header(headers, "authorization") else {
        return Err(ErrorCase::Forbidden);
    };
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(ErrorCase::Unauthorized)?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name))
            .ok_or(ErrorCase::Unauthorized)
    };
    let credential = field("Credential=")?;
    let signed = field("SignedHeaders=")?;
    let given = field("Signature=")?;
    let mut scope = credential.split('/');
    let (Some(key_id), Some(_date), Some(region), Some(service)) =
        (scope.next(), scope.next(), scope.next(), scope.next())
    else {
        return Err(ErrorCase::Unauthorized);
    };
    let time = header(headers, "x-amz-date")
        .and_then(parse_amz_date)
        .ok_or(ErrorCase::Unauthorized)?;
    let session = header(headers, "x-amz-security-token").map(str::to_owned);
    let identity =
        Credentials::new(key_id, BEDROCK_SECRET_ACCESS_KEY, session, None, "mock").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| ErrorCase::Unauthorized)?
        .into();
    let host = header(headers, "host").unwrap_or("localhost");
    let path = incoming
        .uri
        .path_and_query()
        .map_or_else(|| incoming.uri.path().to_owned(), |p| p.to_string());
    let uri = format!("http://{host}{path}");
    let names: Vec<&str> = signed.split(';').collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .filter_map(|name| Some((*name, header(headers, name)?)))
        .collect();
    let request = SignableRequest::new(
        incoming.method.as_str(),
        uri,
        pairs.into_iter(),
        SignableBody::Bytes(&incoming.body),
    )
    .map_err(|_| ErrorCase::Unauthorized)?;
    let (_, expected) = sign(request, &params)
        .map_err(|_| ErrorCase::Unauthorized)?
        .into_parts();
    if expected == given {
        Ok(())
    } else {
        Err(ErrorCase::Unauthorized)
    }
}

/// `20250102T030405Z` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    if text.len() != 16 || text.as_bytes()[8] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    let days = days_from_civil(year, month, day)?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (from 1970 on).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Anthropic SSE events framed as Bedrock's event stream: each event's JSON, base64-encoded,
/// in a `chunk` event.
pub(crate) fn bedrock_events(events: Events) -> Events {
    Events {
        events: events.events.iter().map(chunk).collect(),
        terminator: events.terminator.as_ref().map(chunk),
    }
}

/// One Anthropic SSE event as a Bedrock `chunk` frame (an event without data as an empty one).
fn chunk(sse: &Bytes) -> Bytes {
    let text = String::from_utf8_lossy(sse);
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or_default();
    let payload = json!({ "bytes": aws_smithy_types::base64::encode(data), "p": "abcdefghij" });
    frame(
        Message::new(payload.to_string())
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String("chunk".into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            )),
    )
}

/// A chunk whose event is cut off mid-object.
pub(crate) fn bedrock_malformed() -> Bytes {
    chunk(&Bytes::from_static(
        b"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\n\n",
    ))
}

/// The exception Bedrock sends when a stream fails after its 200.
pub(crate) fn bedrock_exception() -> Bytes {
    let payload = json!({ "message": "The system encountered an unexpected error during processing. Try your request again." });
    frame(
        Message::new(payload.to_string())
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String("internalServerException".into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            )),
    )
}

fn frame(message: Message) -> Bytes {
    let mut out = Vec::new();
    // Writing to a Vec fails only for a message past the format's limits, which these are not.
    let _ = write_message_to(&message, &mut out);
    Bytes::from(out)
}

/// `POST /token`: Google's OAuth token endpoint for a service account's signed JWT
/// (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`). The JWT's claims are checked
/// (issuer, audience, scope, lifetime); its signature is not, the mock having no key list.
pub(crate) fn token(form: &str) -> (u16, Value) {
    let mut grant = None;
    let mut assertion = None;
    for (key, value) in form_urlencoded::parse(form.as_bytes()) {
        match key.as_ref() {
            "grant_type" => grant = Some(value.into_owned()),
            "assertion" => assertion = Some(value.into_owned()),
            _ => {}
        }
    }
    let invalid = |why: &str| {
        (
            400,
            json!({ "error": "invalid_grant", "error_description": why }),
        )
    };
    if grant.as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            400,
            json!({ "error": "unsupported_grant_type", "error_description": "Invalid grant_type" }),
        );
    }
    let Some(claims) = assertion.as_deref().and_then(jwt_claims) else {
        return invalid("Invalid JWT: not a signed JWT");
    };
    let text = |key: &str| {
        claims
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let number = |key: &str| claims.get(key).and_then(Value::as_u64).unwrap_or_default();
    if text("iss").is_empty() || text("aud").is_empty() {
        return invalid("Invalid JWT: iss and aud are required");
    }
    if !text("scope").contains("https://www.googleapis.com/auth/cloud-platform") {
        return invalid("Invalid JWT: the cloud-platform scope is required");
    }
    let (iat, exp) = (number("iat"), number("exp"));
    if exp <= iat || exp - iat > 3600 {
        return invalid("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    let n = ISSUED.fetch_add(1, Ordering::Relaxed) + 1;
    (
        200,
        json!({ "access_token": format!("ya29.backstop-mock-{n}"), "expires_in": 3599, "token_type": "Bearer" }),
    )
}

/// The claims of a JWT with three parts.
fn jwt_claims(jwt: &str) -> Option<Value> {
    let mut parts = jwt.split('.');
    let (_header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if signature.is_empty() || parts.next().is_some() {
        return None;
    }
    let bytes = base64url(claims)?;
    serde_json::from_slice(&bytes).ok()
}

/// Unpadded base64url, as JWTs use it.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    aws_smithy_types::base64::decode(standard).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates() {
        assert_eq!(
            parse_amz_date("19700101T000001Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        assert_eq!(
            parse_amz_date("20250102T030405Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_735_787_045))
        );
        assert_eq!(parse_amz_date("2025-01-02"), None);
    }
}
