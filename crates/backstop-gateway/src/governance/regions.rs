//! Region policy: the regions a request may be served from are those every rule in force allows: the model asked
//! for (`models.NAME.regions`), the model of each fallback for its own targets, the client key
//! (`keys[].regions`) and the request's `x-backstop-regions` header, which can only narrow what the others allow.
//! A candidate outside is never tried; a provider with no `region` is outside every rule. When nothing is left the
//! request gets a 503 saying so, never an answer from elsewhere. Chat, Responses and embeddings requests are all
//! restricted the same way.

use crate::config::{region_matches, ClientKey, Model};
use crate::http::{ApiError, ErrorKind};
use crate::pipeline::{ClientRequest, Route};
use backstop_core::Candidate;
use http::HeaderMap;

/// The request header that narrows the regions further.
pub const REGIONS_HEADER: &str = "x-backstop-regions";

/// One rule: where it comes from and its globs.
struct Rule {
    source: String,
    globs: Vec<String>,
}

/// Drops the candidates of a chat request the region policy does not allow; a 503 when none is left, a 400 for
/// a malformed header.
pub fn restrict(
    request: &ClientRequest,
    model: &Model,
    candidates: &mut Vec<Candidate<Route>>,
) -> Result<(), ApiError> {
    let key = request.tab.as_ref().and_then(|tab| tab.key());
    restrict_for(&Asked::new(key, &request.headers), model, candidates)
}

/// Who asked, as the region policy sees a request: its client key and its headers.
pub struct Asked<'a> {
    key: Option<&'a ClientKey>,
    headers: &'a HeaderMap,
}

impl<'a> Asked<'a> {
    /// A request sent with `key` (if any) and `headers`.
    pub fn new(key: Option<&'a ClientKey>, headers: &'a HeaderMap) -> Self {
        Asked { key, headers }
    }

    fn request_id(&self) -> &str {
        self.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }
}

/// [`restrict`] for any request: drops the candidates the rules of `model`, of the key and of the header that
/// `asked` carries do not allow.
pub fn restrict_for(
    asked: &Asked<'_>,
    model: &Model,
    candidates: &mut Vec<Candidate<Route>>,
) -> Result<(), ApiError> {
    let mut rules = Vec::new();
    if let Some(globs) = &model.policy.regions {
        rules.push(Rule {
            source: format!("model `{}`", model.name),
            globs: globs.clone(),
        });
    }
    if let Some(key) = asked.key {
        if let Some(globs) = &key.regions {
            rules.push(Rule {
                source: format!("key `{}`", key.name),
                globs: globs.clone(),
            });
        }
    }
    if let Some(globs) = header_globs(asked.headers)? {
        rules.push(Rule {
            source: REGIONS_HEADER.to_string(),
            globs,
        });
    }
    let own = |route: &Route| {
        route.model.name == model.name
            || route
                .model
                .policy
                .regions
                .as_ref()
                .is_none_or(|globs| region_of(route).is_some_and(|r| region_matches(globs, r)))
    };
    if rules.is_empty() && candidates.iter().all(|c| own(&c.inner)) {
        return Ok(());
    }
    let allowed = |route: &Route| {
        own(route)
            && rules
                .iter()
                .all(|rule| region_of(route).is_some_and(|r| region_matches(&rule.globs, r)))
    };
    let excluded: Vec<String> = candidates
        .iter()
        .filter(|c| !allowed(&c.inner))
        .map(|c| {
            let region = region_of(&c.inner).unwrap_or("no region");
            format!("{} ({region})", c.inner.target.label)
        })
        .collect();
    candidates.retain(|c| allowed(&c.inner));
    if !excluded.is_empty() {
        tracing::debug!(
            request_id = asked.request_id(),
            model = %model.name,
            "region policy excluded {}",
            excluded.join(", ")
        );
    }
    if candidates.is_empty() {
        let rules: Vec<String> = rules
            .iter()
            .map(|rule| format!("{} allows [{}]", rule.source, rule.globs.join(", ")))
            .collect();
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "model `{}` could not be served: the region policy left no target ({}; excluded: {})",
                model.name,
                rules.join("; "),
                excluded.join(", ")
            ),
        ));
    }
    Ok(())
}

fn region_of(route: &Route) -> Option<&str> {
    route.target.provider.region.as_deref()
}

/// The globs of `x-backstop-regions` (comma-separated), if sent.
fn header_globs(headers: &HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    let Some(value) = headers.get(REGIONS_HEADER) else {
        return Ok(None);
    };
    let globs: Vec<String> = value
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|glob| !glob.is_empty())
        .map(str::to_string)
        .collect();
    if globs.is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!("{REGIONS_HEADER} names no region: send globs separated by commas (`eu-*, us-east-1`)"),
        ));
    }
    Ok(Some(globs))
}
