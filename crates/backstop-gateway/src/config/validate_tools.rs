//! Validation of `[tools.NAME]`, `[mcp.NAME]` and the status page keys of a provider; every
//! error names its key path.

use super::raw::RawRetry;
use super::raw::{RawBreaker, RawMcp, RawSize, RawTool, RawToolRetry, RawToolTimeouts};
use super::tools::*;
use super::types::{BreakerSettings, RetrySettings, Secret};
use super::validate::{breaker_from_raw, duration_at, join_keys, retry_from_raw, size_at};
use super::ConfigError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The default `max_response_bytes` of a tool or MCP server: 16 MiB.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// The default `status_poll`.
const DEFAULT_STATUS_POLL: Duration = Duration::from_secs(60);

/// The shortest `status_poll` accepted: a status page is not a health check.
const MIN_STATUS_POLL: Duration = Duration::from_millis(100);

/// The tools, each fallback checked to name another tool.
pub fn tools_from_raw(
    raw: BTreeMap<String, RawTool>,
) -> Result<BTreeMap<String, Arc<Tool>>, ConfigError> {
    let mut tools = BTreeMap::new();
    for (name, tool) in raw {
        let path = format!("tools.{name}");
        check_name(&path, &name)?;
        let upstream = upstream_from_raw(
            &path,
            "base_url",
            &tool.base_url,
            tool.headers,
            tool.timeouts,
            tool.retry,
            tool.circuit_breaker,
            tool.max_response_bytes.as_ref(),
        )?;
        let on_failure = match tool.on_failure.as_deref() {
            None | Some("error") => OnFailure::Error,
            Some("text") => OnFailure::Text,
            Some(other) => {
                return Err(ConfigError::at(
                    format!("{path}.on_failure"),
                    format!("unknown mode `{other}`: use \"error\" or \"text\""),
                ))
            }
        };
        let built = Tool {
            name: name.clone(),
            upstream,
            fallbacks: tool.fallbacks,
            on_failure,
            message: tool
                .message
                .unwrap_or_else(|| DEFAULT_TOOL_MESSAGE.to_string()),
        };
        tools.insert(name, Arc::new(built));
    }
    for (name, tool) in &tools {
        let mut seen = BTreeSet::new();
        for (index, fallback) in tool.fallbacks.iter().enumerate() {
            let path = format!("tools.{name}.fallbacks[{index}]");
            if !tools.contains_key(fallback) {
                return Err(ConfigError::at(
                    path,
                    format!("unknown tool `{fallback}` (known: {})", join_keys(&tools)),
                ));
            }
            if fallback == name || !seen.insert(fallback) {
                return Err(ConfigError::at(
                    path,
                    format!("`{fallback}` is `{name}` itself or listed twice"),
                ));
            }
        }
    }
    Ok(tools)
}

/// The MCP servers.
pub fn mcp_from_raw(
    raw: BTreeMap<String, RawMcp>,
) -> Result<BTreeMap<String, Arc<McpServer>>, ConfigError> {
    let mut servers = BTreeMap::new();
    for (name, server) in raw {
        let path = format!("mcp.{name}");
        check_name(&path, &name)?;
        let upstream = upstream_from_raw(
            &path,
            "url",
            &server.url,
            server.headers,
            server.timeouts,
            server.retry,
            server.circuit_breaker,
            server.max_response_bytes.as_ref(),
        )?;
        servers.insert(
            name.clone(),
            Arc::new(McpServer {
                name: name.clone(),
                upstream,
            }),
        );
    }
    Ok(servers)
}

/// A name that is one path segment of a URL and one metric label.
fn check_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::at(
            path,
            "a name may only hold letters, digits, `-`, `_` and `.`",
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn upstream_from_raw(
    path: &str,
    url_key: &str,
    url: &str,
    headers: BTreeMap<String, String>,
    timeouts: Option<RawToolTimeouts>,
    retry: Option<RawToolRetry>,
    breaker: Option<RawBreaker>,
    max_response_bytes: Option<&RawSize>,
) -> Result<ToolUpstream, ConfigError> {
    let parsed = url::Url::parse(url).ok();
    if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
        return Err(ConfigError::at(
            format!("{path}.{url_key}"),
            format!(
                "`{}` is not an http:// or https:// URL",
                crate::redact::url(url)
            ),
        ));
    }
    let mut set = Vec::new();
    for (header, value) in headers {
        let lower = header.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err()
            || http::HeaderValue::from_str(&value).is_err()
        {
            return Err(ConfigError::at(
                format!("{path}.headers.{header}"),
                "not a valid HTTP header",
            ));
        }
        set.push((lower, Secret::new(value)));
    }
    let timeouts = timeouts_from_raw(path, timeouts.unwrap_or_default())?;
    let breaker = match breaker {
        None => BreakerSettings::default(),
        Some(raw) => breaker_from_raw(raw).map_err(|error| {
            let key = error.path.trim_start_matches("circuit_breaker");
            ConfigError::at(format!("{path}.circuit_breaker{key}"), error.message)
        })?,
    };
    Ok(ToolUpstream {
        url: url.trim_end_matches('/').to_string(),
        headers: set,
        timeouts,
        retry: retry_of(path, retry)?,
        breaker,
        max_response_bytes: size_at(
            &format!("{path}.max_response_bytes"),
            max_response_bytes,
            DEFAULT_MAX_RESPONSE_BYTES,
            1,
        )?,
    })
}

fn timeouts_from_raw(path: &str, raw: RawToolTimeouts) -> Result<ToolTimeouts, ConfigError> {
    let default = ToolTimeouts::default();
    let at = |key: &str| format!("{path}.timeouts.{key}");
    let timeouts = ToolTimeouts {
        connect: duration_at(&at("connect"), raw.connect.as_ref(), default.connect)?,
        first_byte: duration_at(
            &at("first_byte"),
            raw.first_byte.as_ref(),
            default.first_byte,
        )?,
        total: duration_at(&at("total"), raw.total.as_ref(), default.total)?,
    };
    for (key, value) in [
        ("connect", timeouts.connect),
        ("first_byte", timeouts.first_byte),
        ("total", timeouts.total),
    ] {
        if value.is_zero() {
            return Err(ConfigError::at(at(key), "must be longer than zero"));
        }
    }
    Ok(timeouts)
}

fn retry_of(path: &str, raw: Option<RawToolRetry>) -> Result<ToolRetry, ConfigError> {
    let raw = raw.unwrap_or_default();
    let post = raw.post.unwrap_or(false);
    let as_retry = RawRetry {
        max_attempts: raw.max_attempts,
        base_delay: raw.base_delay,
        max_delay: raw.max_delay,
        respect_retry_after: raw.respect_retry_after,
        budget_ratio: None,
        budget_min_per_second: None,
    };
    let settings = retry_from_raw(
        &RetrySettings::default(),
        Some(&as_retry),
        &format!("{path}.retry"),
    )?;
    Ok(ToolRetry {
        max_attempts: settings.max_attempts,
        base_delay: settings.base_delay,
        max_delay: settings.max_delay,
        respect_retry_after: settings.respect_retry_after,
        post,
    })
}

/// The status page of the provider at `path`: the one configured (`"off"` for none), else
/// the official one of its `base_url`'s host.
pub fn status_page_from_raw(
    path: &str,
    base_url: &str,
    url: Option<String>,
    poll: Option<String>,
    on_major_incident: Option<String>,
) -> Result<Option<StatusPage>, ConfigError> {
    let poll = duration_at(
        &format!("{path}.status_poll"),
        poll.as_ref(),
        DEFAULT_STATUS_POLL,
    )?;
    if poll < MIN_STATUS_POLL {
        return Err(ConfigError::at(
            format!("{path}.status_poll"),
            "must be at least 100ms",
        ));
    }
    let on_major_incident = match on_major_incident.as_deref() {
        None | Some("deprioritize") => OnMajorIncident::Deprioritize,
        Some("avoid") => OnMajorIncident::Avoid,
        Some("ignore") => OnMajorIncident::Ignore,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{path}.on_major_incident"),
                format!("unknown policy `{other}`: use \"deprioritize\", \"avoid\" or \"ignore\""),
            ))
        }
    };
    let url = match url.as_deref() {
        Some("off") => return Ok(None),
        Some(url) => {
            let parsed = url::Url::parse(url).ok();
            if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
                return Err(ConfigError::at(
                    format!("{path}.status_page"),
                    format!(
                        "`{}` is not an http:// or https:// URL (or \"off\")",
                        crate::redact::url(url)
                    ),
                ));
            }
            url.to_string()
        }
        None => match official_status_page(base_url) {
            Some(url) => url.to_string(),
            None => return Ok(None),
        },
    };
    Ok(Some(StatusPage {
        url,
        poll,
        on_major_incident,
    }))
}

/// The official status page of a provider at `base_url` with the default settings.
pub fn default_status_page(base_url: &str) -> Option<StatusPage> {
    official_status_page(base_url).map(|url| StatusPage {
        url: url.to_string(),
        poll: DEFAULT_STATUS_POLL,
        on_major_incident: OnMajorIncident::Deprioritize,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, OnFailure, OnMajorIncident};

    fn error_of(text: &str) -> String {
        parse(text, &|_| None).unwrap_err().to_string()
    }

    #[test]
    fn tools_and_mcp_are_read_with_their_defaults() {
        let config = parse(
            "state = \"memory\"\n[tools.search]\nbase_url = \"http://s.example/v1/\"\non_failure = \"text\"\nfallbacks = [\"mirror\"]\nretry = { post = true }\n[tools.mirror]\nbase_url = \"http://m.example\"\n[mcp.files]\nurl = \"http://127.0.0.1:8000/mcp\"\n",
            &|_| None,
        )
        .unwrap();
        let search = &config.tools["search"];
        assert_eq!(search.upstream.url, "http://s.example/v1");
        assert_eq!(search.on_failure, OnFailure::Text);
        assert!(search.upstream.retry.post);
        assert_eq!(search.upstream.retry.max_attempts, 3);
        assert!(search.message.contains("{tool} is unavailable ({error})"));
        assert_eq!(config.tools["mirror"].on_failure, OnFailure::Error);
        assert_eq!(
            config.mcp["files"].upstream.url,
            "http://127.0.0.1:8000/mcp"
        );
    }

    #[test]
    fn bad_tool_keys_are_named() {
        let base = "state = \"memory\"\n[tools.t]\nbase_url = \"http://t.example\"\n";
        for (extra, path) in [
            ("on_failure = \"shout\"\n", "tools.t.on_failure"),
            ("fallbacks = [\"nope\"]\n", "tools.t.fallbacks[0]"),
            ("fallbacks = [\"t\"]\n", "tools.t.fallbacks[0]"),
            ("timeouts = { total = \"0s\" }\n", "tools.t.timeouts.total"),
            (
                "retry = { max_attempts = 0 }\n",
                "tools.t.retry.max_attempts",
            ),
            (
                "circuit_breaker = { failure_rate = 2.0 }\n",
                "tools.t.circuit_breaker.failure_rate",
            ),
            (
                "headers = { \"bad header\" = \"x\" }\n",
                "tools.t.headers.bad header",
            ),
            ("max_response_bytes = \"0\"\n", "tools.t.max_response_bytes"),
            ("colour = \"red\"\n", "tools.t"),
        ] {
            let error = error_of(&format!("{base}{extra}"));
            assert!(error.contains(&format!("`{path}")), "{extra}: {error}");
        }
        let error = error_of("state = \"memory\"\n[tools.\"a/b\"]\nbase_url = \"http://x\"\n");
        assert!(error.contains("`tools.a/b`"), "{error}");
        let error = error_of("state = \"memory\"\n[mcp.m]\nurl = \"ftp://x\"\n");
        assert!(error.contains("`mcp.m.url`"), "{error}");
    }

    #[test]
    fn status_pages_are_read_and_checked() {
        let provider = |extra: &str| {
            format!("state = \"memory\"\n[providers.p]\nkind = \"anthropic\"\n{extra}\n[models.m]\ntargets = [{{ provider = \"p\", model = \"x\" }}]\n")
        };
        let config = parse(&provider(""), &|_| None).unwrap();
        let page = config.providers["p"].status_page.clone().unwrap();
        assert_eq!(page.url, "https://status.anthropic.com/api/v2/status.json");
        assert_eq!(page.on_major_incident, OnMajorIncident::Deprioritize);
        let off = parse(&provider("status_page = \"off\""), &|_| None).unwrap();
        assert!(off.providers["p"].status_page.is_none());
        let own = parse(
            &provider("base_url = \"http://127.0.0.1:1\"\nstatus_page = \"http://127.0.0.1:2/api/v2/status.json\"\non_major_incident = \"avoid\"\nstatus_poll = \"5s\""),
            &|_| None,
        )
        .unwrap();
        let page = own.providers["p"].status_page.clone().unwrap();
        assert_eq!(page.on_major_incident, OnMajorIncident::Avoid);
        assert_eq!(page.poll, std::time::Duration::from_secs(5));
        for (extra, path) in [
            (
                "on_major_incident = \"panic\"",
                "providers.p.on_major_incident",
            ),
            ("status_poll = \"10ms\"", "providers.p.status_poll"),
            (
                "status_page = \"file:///etc/passwd\"",
                "providers.p.status_page",
            ),
        ] {
            let error = error_of(&provider(extra));
            assert!(error.contains(&format!("`{path}`")), "{extra}: {error}");
        }
    }
}
