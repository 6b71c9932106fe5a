//! What a drill aims at and what it does there: a [`TargetRef`] names one
//! `provider/model` target or every target of a provider, and a [`FaultSpec`] is
//! the failure the admin API makes the gateway pretend that target returned.

use super::DrillError;
use std::fmt;
use std::time::Duration;

/// One `provider/model` target, or (without a model) every target of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// The provider name from the config.
    pub provider: String,
    /// The upstream model, or `None` for every model of the provider.
    pub model: Option<String>,
}

impl TargetRef {
    /// Parses `PROVIDER` or `PROVIDER/MODEL` (the model may itself contain `/`).
    pub fn parse(text: &str) -> Result<Self, DrillError> {
        let text = text.trim();
        let (provider, model) = match text.split_once('/') {
            Some((provider, model)) => (provider, Some(model.to_string())),
            None => (text, None),
        };
        if provider.is_empty() || model.as_deref() == Some("") {
            return Err(DrillError::Usage(format!(
                "--target `{text}` is not PROVIDER or PROVIDER/MODEL (e.g. `openai/gpt-4o-mini`)"
            )));
        }
        Ok(Self {
            provider: provider.to_string(),
            model,
        })
    }

    /// Whether the target labelled `label` (`provider/model`) is one of these.
    pub fn matches(&self, label: &str) -> bool {
        match (label.split_once('/'), &self.model) {
            (Some((provider, model)), Some(wanted)) => provider == self.provider && model == wanted,
            (Some((provider, _)), None) => provider == self.provider,
            (None, _) => false,
        }
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.model {
            Some(model) => write!(f, "{}/{model}", self.provider),
            None => write!(f, "{}/*", self.provider),
        }
    }
}

/// Whether `label` is one of `targets`.
pub fn matches_any(targets: &[TargetRef], label: &str) -> bool {
    targets.iter().any(|target| target.matches(label))
}

/// The failure injected through `POST /admin/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSpec {
    /// The target answers with this HTTP status.
    Status(u16),
    /// The target accepts the request and stays silent past `first_byte`.
    Timeout,
    /// The connection is reset before any byte.
    Reset,
}

impl FaultSpec {
    /// Parses `status:503` (or just `503`), `timeout` or `reset`.
    pub fn parse(text: &str) -> Result<Self, DrillError> {
        let text = text.trim();
        let status = text.strip_prefix("status:").unwrap_or(text);
        if let Ok(code) = status.parse::<u16>() {
            if (100..=599).contains(&code) {
                return Ok(Self::Status(code));
            }
        }
        match text {
            "timeout" => Ok(Self::Timeout),
            "reset" => Ok(Self::Reset),
            _ => Err(DrillError::Usage(format!(
                "--fault `{text}` is not one of status:CODE (e.g. status:503), timeout, reset"
            ))),
        }
    }

    /// The JSON body of `POST /admin/faults` for `target`, lasting `duration`.
    pub fn admin_body(&self, target: &str, duration: Duration) -> serde_json::Value {
        let duration = format!("{}ms", duration.as_millis().max(1));
        match self {
            Self::Status(status) => serde_json::json!({
                "target": target, "kind": "status", "status": status, "duration": duration,
            }),
            Self::Timeout => {
                serde_json::json!({"target": target, "kind": "timeout", "duration": duration})
            }
            Self::Reset => {
                serde_json::json!({"target": target, "kind": "reset", "duration": duration})
            }
        }
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status:{status}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Reset => f.write_str("reset"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_target_is_a_provider_or_a_provider_and_model() {
        let one = TargetRef::parse("openai/gpt-4o").unwrap();
        assert!(one.matches("openai/gpt-4o"));
        assert!(!one.matches("openai/gpt-4o-mini"));
        assert!(!one.matches("azure/gpt-4o"));
        let all = TargetRef::parse("openai").unwrap();
        assert!(all.matches("openai/gpt-4o") && all.matches("openai/o3"));
        assert!(!all.matches("openai-eu/gpt-4o"));
        let nested = TargetRef::parse("groq/meta-llama/llama-4").unwrap();
        assert_eq!(nested.model.as_deref(), Some("meta-llama/llama-4"));
        assert!(nested.matches("groq/meta-llama/llama-4"));
        assert!(TargetRef::parse("").is_err());
        assert!(TargetRef::parse("openai/").is_err());
        assert!(TargetRef::parse("/gpt").is_err());
    }

    #[test]
    fn faults_parse_and_become_admin_bodies() {
        assert_eq!(
            FaultSpec::parse("status:503").unwrap(),
            FaultSpec::Status(503)
        );
        assert_eq!(FaultSpec::parse("429").unwrap(), FaultSpec::Status(429));
        assert_eq!(FaultSpec::parse("timeout").unwrap(), FaultSpec::Timeout);
        assert_eq!(FaultSpec::parse("reset").unwrap(), FaultSpec::Reset);
        assert!(FaultSpec::parse("status:99").is_err());
        assert!(FaultSpec::parse("boom").is_err());
        let body = FaultSpec::Status(503).admin_body("a/b", Duration::from_secs(10));
        assert_eq!(
            body,
            serde_json::json!({"target": "a/b", "kind": "status", "status": 503, "duration": "10000ms"})
        );
        assert_eq!(
            FaultSpec::Timeout.admin_body("a/b", Duration::ZERO)["duration"],
            "1ms"
        );
        assert_eq!(FaultSpec::Reset.to_string(), "reset");
    }
}
