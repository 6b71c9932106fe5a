//! A model's governance settings: the regions its requests may be served from and what a drift from its pinned
//! version does.

use super::raw::RawModel;
use super::ConfigError;

/// What to do when a target answers with another model than its pinned version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DriftPolicy {
    /// Count and log it, serve the answer.
    #[default]
    Log,
    /// Treat the target as broken: fail over to a channel that still serves the pinned version.
    Fail,
}

/// A model's governance settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPolicy {
    /// Region globs its requests may be served from, fallbacks included (`None`: any).
    pub regions: Option<Vec<String>>,
    /// What a drift from a pinned version does.
    pub on_drift: DriftPolicy,
    /// The targets (`provider/version`) pinned to a version of the approved catalog, whose answers are checked
    /// for drift.
    pub pinned: std::collections::BTreeSet<String>,
}

/// What `check` says about a model's governance: its regions, pinned targets and drift policy.
pub fn policy_plan(model: &super::Model) -> String {
    let policy = &model.policy;
    let mut out = String::new();
    if let Some(regions) = &policy.regions {
        out.push_str(&format!(
            "  regions: {} (fallbacks included)\n",
            regions.join(", ")
        ));
    }
    if !policy.pinned.is_empty() {
        let pinned: Vec<&str> = policy.pinned.iter().map(String::as_str).collect();
        let on_drift = match policy.on_drift {
            DriftPolicy::Log => "logged",
            DriftPolicy::Fail => "fails over",
        };
        out.push_str(&format!(
            "  pinned: {}; a drift {on_drift}\n",
            pinned.join(", ")
        ));
    }
    out
}

/// The governance settings of the model at `path`.
pub fn model_policy(path: &str, raw: &RawModel) -> Result<ModelPolicy, ConfigError> {
    if let Some(regions) = &raw.regions {
        super::regions::check_globs(&format!("{path}.regions"), regions)?;
    }
    let on_drift = match raw.on_drift.as_deref() {
        None | Some("log") => DriftPolicy::Log,
        Some("fail") => DriftPolicy::Fail,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{path}.on_drift"),
                format!("unknown policy `{other}`: use \"log\" or \"fail\""),
            ))
        }
    };
    Ok(ModelPolicy {
        regions: raw.regions.clone(),
        on_drift,
        pinned: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const BASE: &str = "[providers.p]\nkind = \"openai\"\nregion = \"eu-west-1\"\n[models.m]\n\
                        targets = [{ provider = \"p\", model = \"x\" }]\n";

    #[test]
    fn regions_and_on_drift_are_read_and_checked() {
        let config = parse(
            &format!("{BASE}regions = [\"eu-*\"]\non_drift = \"fail\"\n"),
            &|_| None,
        )
        .unwrap();
        let policy = &config.models["m"].policy;
        assert_eq!(policy.regions.as_deref(), Some(&["eu-*".to_string()][..]));
        assert_eq!(policy.on_drift, DriftPolicy::Fail);
        let error = parse(&format!("{BASE}regions = []\n"), &|_| None).unwrap_err();
        assert_eq!(error.path, "models.m.regions");
        let error = parse(&format!("{BASE}on_drift = \"panic\"\n"), &|_| None).unwrap_err();
        assert_eq!(error.path, "models.m.on_drift");
    }
}
