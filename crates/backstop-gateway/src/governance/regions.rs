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

/// [`REGIONS_HEADER`] as a header name, looked up on every request without parsing the name.
const REGIONS_NAME: http::HeaderName = http::HeaderName::from_static(REGIONS_HEADER);

/// One rule: where it comes from and its globs.
#[derive(Clone)]
struct Rule {
    source: String,
    globs: Vec<String>,
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

    /// The request `request` as the region policy sees it.
    pub fn request(request: &'a ClientRequest) -> Self {
        let key = request.tab.as_ref().and_then(|tab| tab.key());
        Asked::new(key, &request.headers)
    }

    fn request_id(&self) -> &str {
        self.headers
            .get(&crate::http::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }
}

/// The region rules in force for one request, worked out once: the model asked for's, the key's and the
/// header's. A fallback model's own rule is its own and applies to its targets.
#[derive(Clone)]
pub struct Regions {
    rules: Vec<Rule>,
}

impl Regions {
    /// The rules for a request for `model` that `asked` makes; a 400 for a malformed header.
    pub fn of(asked: &Asked<'_>, model: &Model) -> Result<Self, ApiError> {
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
        Ok(Regions { rules })
    }

    /// Drops the candidates of a request for `model` that the rules do not allow; says which it dropped
    /// (`provider/model (region)`), and logs them under `request_id`.
    pub fn keep_allowed(
        &self,
        model: &Model,
        candidates: &mut Vec<Candidate<Route>>,
        request_id: &str,
    ) -> Vec<String> {
        let own =
            |route: &Route| {
                route.model.name == model.name
                    || route.model.policy.regions.as_ref().is_none_or(|globs| {
                        region_of(route).is_some_and(|r| region_matches(globs, r))
                    })
            };
        if self.rules.is_empty() && candidates.iter().all(|c| own(&c.inner)) {
            return Vec::new();
        }
        let allowed = |route: &Route| {
            own(route)
                && self
                    .rules
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
                request_id,
                model = %model.name,
                "region policy excluded {}",
                excluded.join(", ")
            );
        }
        excluded
    }

    /// The 503 for a request for `model` of which the rules left no target: they dropped `excluded`.
    pub fn nothing_left(&self, model: &Model, excluded: &[String]) -> ApiError {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|rule| format!("{} allows [{}]", rule.source, rule.globs.join(", ")))
            .collect();
        ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "model `{}` could not be served: the region policy left no target ({}; excluded: {})",
                model.name,
                rules.join("; "),
                excluded.join(", ")
            ),
        )
    }
}

/// Drops the candidates the rules of `model`, of the key and of the header that `asked` carries do not allow;
/// a 503 when none is left, a 400 for a malformed header.
pub fn restrict_for(
    asked: &Asked<'_>,
    model: &Model,
    candidates: &mut Vec<Candidate<Route>>,
) -> Result<(), ApiError> {
    let regions = Regions::of(asked, model)?;
    let excluded = regions.keep_allowed(model, candidates, asked.request_id());
    if candidates.is_empty() && !excluded.is_empty() {
        return Err(regions.nothing_left(model, &excluded));
    }
    Ok(())
}

fn region_of(route: &Route) -> Option<&str> {
    route.target.provider.region.as_deref()
}

/// The globs of `x-backstop-regions` (comma-separated), if sent.
fn header_globs(headers: &HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    let Some(value) = headers.get(&REGIONS_NAME) else {
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
