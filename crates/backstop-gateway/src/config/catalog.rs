//! `[catalog]`: the models a team has approved, each pinned to one upstream version per provider, with optional
//! metadata. Targets may name a catalog entry (`{ provider = "anthropic", catalog = "claude-sonnet-4-5" }`) and
//! get its pinned version; with `enforce = true` a target that is not a pinned version is an error naming it.
//! Applied to the raw models before they are validated, so everything after sees plain targets.

use super::raw::{RawModel, RawPrice};
use super::ConfigError;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// `[catalog]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub enforce: Option<bool>,
    #[serde(default)]
    pub models: BTreeMap<String, RawCatalogModel>,
}

/// `[catalog.models.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalogModel {
    pub versions: BTreeMap<String, String>,
    pub context_window: Option<u64>,
    pub price: Option<RawPrice>,
    pub regions: Option<Vec<String>>,
}

/// The pinned targets (`provider/version` labels) of each public model.
pub type Pins = BTreeMap<String, BTreeSet<String>>;

/// Resolves `catalog = "NAME"` targets to their pinned versions, gives a model the metadata of the catalog entry
/// its targets name (where it sets none of its own), and with `enforce` refuses a target that is not a pinned
/// version. Returns the pinned targets of each model.
pub fn apply(
    catalog: Option<RawCatalog>,
    models: &mut BTreeMap<String, RawModel>,
) -> Result<Pins, ConfigError> {
    let catalog = catalog.unwrap_or_default();
    for (name, entry) in &catalog.models {
        let path = format!("catalog.models.{name}");
        if entry.versions.is_empty() {
            return Err(ConfigError::at(
                format!("{path}.versions"),
                "pins no version: give `{ PROVIDER = \"upstream-model-id\" }`",
            ));
        }
        if let Some(regions) = &entry.regions {
            super::regions::check_globs(&format!("{path}.regions"), regions)?;
        }
    }
    let fallback_of = |model: &str| -> Vec<&str> {
        models
            .iter()
            .filter(|(_, m)| m.fallbacks.iter().any(|f| f == model))
            .map(|(name, _)| name.as_str())
            .collect()
    };
    let mut refusal = None;
    let mut pins = Pins::new();
    let enforce = catalog.enforce.unwrap_or(false);
    for (name, model) in models.iter() {
        for (index, target) in model.targets.iter().enumerate() {
            let pinned = match &target.catalog {
                Some(_) => true,
                None => catalog
                    .models
                    .values()
                    .any(|entry| entry.versions.get(&target.provider) == Some(&target.model)),
            };
            if !pinned && enforce && refusal.is_none() {
                let mut message = format!(
                    "`{}/{}` is not in the approved catalog (catalog.enforce = true)",
                    target.provider, target.model
                );
                let of = fallback_of(name);
                if !of.is_empty() {
                    message.push_str(&format!(
                        "; `{name}` is a fallback of `{}`",
                        of.join("`, `")
                    ));
                }
                message.push_str(": pin it in [catalog.models.NAME].versions or remove it");
                refusal = Some(ConfigError::at(
                    format!("models.{name}.targets[{index}]"),
                    message,
                ));
            }
        }
    }
    for (name, model) in models.iter_mut() {
        let path = format!("models.{name}");
        let mut entry_used = None;
        for (index, target) in model.targets.iter_mut().enumerate() {
            let Some(entry_name) = &target.catalog else {
                if catalog
                    .models
                    .values()
                    .any(|entry| entry.versions.get(&target.provider) == Some(&target.model))
                {
                    pins.entry(name.clone())
                        .or_default()
                        .insert(format!("{}/{}", target.provider, target.model));
                }
                continue;
            };
            let at = format!("{path}.targets[{index}]");
            if !target.model.is_empty() {
                return Err(ConfigError::at(
                    at,
                    "names both a `model` and a `catalog` entry: give one",
                ));
            }
            let entry = catalog.models.get(entry_name).ok_or_else(|| {
                ConfigError::at(
                    format!("{at}.catalog"),
                    format!(
                        "unknown catalog entry `{entry_name}` (known: {})",
                        catalog
                            .models
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let version = entry.versions.get(&target.provider).ok_or_else(|| {
                ConfigError::at(
                    format!("{at}.catalog"),
                    format!(
                        "catalog entry `{entry_name}` pins no version for provider `{}`",
                        target.provider
                    ),
                )
            })?;
            target.model = version.clone();
            pins.entry(name.clone())
                .or_default()
                .insert(format!("{}/{version}", target.provider));
            entry_used.get_or_insert(entry);
        }
        if let Some(entry) = entry_used {
            model.context_window = model.context_window.or(entry.context_window);
            model.price = model.price.or(entry.price);
            if model.regions.is_none() {
                model.regions.clone_from(&entry.regions);
            }
        }
    }
    match refusal {
        Some(error) => Err(error),
        None => Ok(pins),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const PROVIDERS: &str =
        "[providers.anthropic]\nkind = \"anthropic\"\n[providers.openai]\nkind = \"openai\"\n\
        [catalog.models.sonnet]\nversions = { anthropic = \"claude-sonnet-4-5-20250929\" }\n\
        context_window = 200000\nprice = { input = 3, output = 15 }\nregions = [\"us-*\"]\n";

    #[test]
    fn catalog_targets_resolve_to_their_pin_and_take_its_metadata() {
        let text = format!(
            "{PROVIDERS}[models.smart]\ntargets = [{{ provider = \"anthropic\", catalog = \"sonnet\" }}]\n"
        );
        let config = parse(&text, &|_| None).unwrap();
        let smart = &config.models["smart"];
        assert_eq!(
            smart.targets[0].model.as_ref(),
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(smart.context_window, Some(200_000));
        assert_eq!(smart.price.map(|p| p.output), Some(15.0));
        assert_eq!(
            smart.policy.regions.as_deref(),
            Some(&["us-*".to_string()][..])
        );
        assert!(smart
            .policy
            .pinned
            .contains("anthropic/claude-sonnet-4-5-20250929"));
    }

    #[test]
    fn bad_catalog_references_name_the_target() {
        let error = |targets: &str| {
            parse(
                &format!("{PROVIDERS}[models.smart]\ntargets = [{targets}]\n"),
                &|_| None,
            )
            .unwrap_err()
        };
        let unknown = error("{ provider = \"anthropic\", catalog = \"opus\" }");
        assert_eq!(unknown.path, "models.smart.targets[0].catalog");
        assert!(unknown.message.contains("`opus`"), "{unknown}");
        let unpinned = error("{ provider = \"openai\", catalog = \"sonnet\" }");
        assert!(unpinned
            .message
            .contains("no version for provider `openai`"));
        let both = error("{ provider = \"anthropic\", catalog = \"sonnet\", model = \"x\" }");
        assert_eq!(both.path, "models.smart.targets[0]");
    }

    #[test]
    fn enforce_refuses_an_unapproved_fallback_naming_it() {
        let text = format!(
            "[catalog]\nenforce = true\n{PROVIDERS}\
             [models.smart]\ntargets = [{{ provider = \"anthropic\", catalog = \"sonnet\" }}]\nfallbacks = [\"cheap\"]\n\
             [models.cheap]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o-mini\" }}]\n"
        );
        let error = parse(&text, &|_| None).unwrap_err();
        assert_eq!(error.path, "models.cheap.targets[0]");
        assert!(
            error
                .message
                .contains("`openai/gpt-4o-mini` is not in the approved catalog")
                && error.message.contains("`cheap` is a fallback of `smart`"),
            "{error}"
        );
        // Without enforce it is allowed; naming the pinned version literally counts as approved.
        assert!(
            parse(&text.replace("enforce = true", "enforce = false"), &|_| {
                None
            })
            .is_ok()
        );
        let literal = text.replace(
            "model = \"gpt-4o-mini\"",
            "model = \"gpt-4o-mini-2024-07-18\"",
        ).replace(
            "versions = { anthropic = \"claude-sonnet-4-5-20250929\" }",
            "versions = { anthropic = \"claude-sonnet-4-5-20250929\", openai = \"gpt-4o-mini-2024-07-18\" }",
        );
        assert!(parse(&literal, &|_| None).is_ok());
    }
}
