//! The live dashboard: `GET /dashboard` serves one self-contained page (HTML, CSS and
//! JavaScript built into the binary, nothing fetched from elsewhere) that polls
//! `GET /admin/dashboard` every second, behind the admin key like the rest of `/admin`.
//! The page holds no data of its own: without the key it shows a key prompt and nothing
//! else. The state it shows names models, targets, classes and counts, never a key.

mod activity;

pub use activity::{Activity, HISTORY_SECONDS, TIERS, WINDOW_SECONDS};

use crate::config::AdminAccess;
use crate::http::{ApiError, ErrorKind};
use crate::pipeline::Gateway;
use crate::status;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use backstop_protocol::Protocol;
use serde_json::json;
use std::sync::Arc;

/// The page.
const PAGE: &str = include_str!("page.html");

/// `GET /dashboard`: the page, unless the admin API is disabled (then there is nothing it
/// could show).
pub async fn page(State(gateway): State<Arc<Gateway>>) -> Response {
    if let AdminAccess::Disabled(why) = gateway.config().admin_access() {
        return ApiError::new(ErrorKind::Forbidden, why).render(Protocol::OpenAi);
    }
    (
        [
            (http::header::CACHE_CONTROL, "no-store"),
            (
                http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
            (http::header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// `GET /admin/dashboard`: the live state the page shows.
pub async fn state(State(gateway): State<Arc<Gateway>>) -> Response {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Json(json!({
        "unix_ms": unix_ms,
        "status": status::status(&gateway),
        "targets": status::targets_report(&gateway),
        "activity": gateway.metrics().activity().report(),
        "telemetry": gateway.telemetry().is_some(),
    }))
    .into_response()
}
