//! A small client for the gateway's admin API: list targets, inject and clear faults.
//!
//! The drill uses the admin API rather than reaching into the gateway, so that the
//! same code drives an in-process gateway and one running elsewhere.

use super::target::FaultSpec;
use super::DrillError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One target as `GET /admin/targets` lists it (unknown fields are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetState {
    /// `provider/model`.
    pub target: String,
    /// The public models that use it.
    pub models: Vec<String>,
    /// `closed`, `half_open` or `open`.
    pub state: String,
    /// Why the breaker last tripped, if it did.
    pub last_trip: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct TargetList {
    targets: Vec<TargetState>,
}

/// Calls `/admin/*` on one gateway.
#[derive(Debug, Clone)]
pub struct AdminClient {
    client: reqwest::Client,
    base_url: String,
    key: Option<String>,
}

impl AdminClient {
    /// A client for the gateway at `base_url`, sending `key` as a bearer token when given.
    pub fn new(base_url: &str, key: Option<String>) -> Result<Self, DrillError> {
        let client = crate::client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DrillError::Failed(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /admin/targets`.
    pub async fn targets(&self) -> Result<Vec<TargetState>, DrillError> {
        let response = self
            .call(
                self.client.get(self.url("/admin/targets")),
                "GET /admin/targets",
            )
            .await?;
        let list: TargetList = response.json().await.map_err(|e| {
            DrillError::Failed(format!(
                "GET /admin/targets answered something that is not a target list: {e}"
            ))
        })?;
        Ok(list.targets)
    }

    /// `POST /admin/faults`: `target` fails with `fault` for `duration`.
    pub async fn inject(
        &self,
        target: &str,
        fault: FaultSpec,
        duration: Duration,
    ) -> Result<(), DrillError> {
        let request = self
            .client
            .post(self.url("/admin/faults"))
            .json(&fault.admin_body(target, duration));
        self.call(request, "POST /admin/faults").await.map(drop)
    }

    /// `DELETE /admin/faults?target=...`.
    pub async fn clear(&self, target: &str) -> Result<(), DrillError> {
        let request = self
            .client
            .delete(self.url("/admin/faults"))
            .query(&[("target", target)]);
        self.call(request, "DELETE /admin/faults").await.map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn call(
        &self,
        mut request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, DrillError> {
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| DrillError::Failed(format!("{what} on {}: {e}", self.base_url)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(response),
            401 | 403 => Err(DrillError::Failed(format!(
                "{what} was refused ({status}): pass the gateway's admin key with --admin-key or BACKSTOP_ADMIN_KEY"
            ))),
            404 => Err(DrillError::Failed(format!(
                "{what} answered 404: the gateway at {} has no admin API (it needs a Backstop with /admin/faults)",
                self.base_url
            ))),
            _ => {
                let body = response.text().await.unwrap_or_default();
                Err(DrillError::Failed(format!(
                    "{what} answered {status}: {}",
                    body.chars().take(300).collect::<String>()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_target_list_tolerates_extra_and_missing_fields() {
        let text = r#"{"targets":[{"target":"a/m","models":["smart"],"state":"open","error_rate":0.5,
            "latency_ms":{"p50":1,"p95":2,"p99":3},"last_trip":"5 consecutive failures","fault":null},
            {"target":"b/m"}]}"#;
        let list: TargetList = serde_json::from_str(text).unwrap();
        assert_eq!(list.targets.len(), 2);
        assert_eq!(list.targets[0].state, "open");
        assert_eq!(list.targets[0].models, vec!["smart".to_string()]);
        assert_eq!(
            list.targets[0].last_trip,
            Some(serde_json::json!("5 consecutive failures"))
        );
        assert_eq!(list.targets[1].state, "");
    }
}
