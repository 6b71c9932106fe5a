//! `[telemetry]`: where traces go (OTLP over HTTP/protobuf), the service's name, the
//! share of requests traced, and extra resource attributes.

use super::raw::RawTelemetry;
use super::ConfigError;
use std::collections::BTreeMap;

/// The OpenTelemetry export, when `[telemetry]` names an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to `/v1/traces`.
    pub otlp_endpoint: url::Url,
    /// `service.name` of every span.
    pub service_name: String,
    /// The share of new traces recorded, 0 to 1 (a client's sampled parent is followed).
    pub sample_ratio: f64,
    /// More resource attributes (`deployment.environment`, ...).
    pub resource: BTreeMap<String, String>,
}

impl TelemetrySettings {
    /// The URL spans are posted to: the endpoint's `/v1/traces`, unless it names that path itself.
    pub fn traces_url(&self) -> String {
        let base = self.otlp_endpoint.as_str().trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        }
    }
}

/// Validates `[telemetry]`; without `otlp_endpoint` telemetry is off.
pub fn telemetry_from_raw(raw: RawTelemetry) -> Result<Option<TelemetrySettings>, ConfigError> {
    let Some(endpoint) = raw.otlp_endpoint else {
        return Ok(None);
    };
    let otlp_endpoint = url::Url::parse(&endpoint)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| {
            ConfigError::at(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http(s) URL like \"http://collector:4318\""),
            )
        })?;
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(ConfigError::at(
            "telemetry.sample_ratio",
            "must be between 0 and 1",
        ));
    }
    let service_name = raw.service_name.unwrap_or_else(|| "backstop".to_string());
    if service_name.trim().is_empty() {
        return Err(ConfigError::at(
            "telemetry.service_name",
            "must not be blank",
        ));
    }
    Ok(Some(TelemetrySettings {
        otlp_endpoint,
        service_name,
        sample_ratio,
        resource: raw.resource,
    }))
}
