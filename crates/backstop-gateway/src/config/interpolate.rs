//! `${VAR}` interpolation in every string value of the configuration, done on the
//! parsed TOML tree so that a missing variable is reported with its key path.

use super::ConfigError;

/// Replaces `${VAR}` in every string of `value` using `lookup`. `$${` escapes a literal `${`.
pub fn interpolate(
    value: &mut toml::Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(text) => {
            *text = expand(text, lookup).map_err(|message| ConfigError::at(path, message))?;
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{index}]"), lookup)?;
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(item, &child, lookup)?;
            }
        }
        toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)
        | toml::Value::Datetime(_) => {}
    }
    Ok(())
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
            let name = &open[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            let value = lookup(name).ok_or_else(|| {
                format!(
                    "environment variable `{name}` is not set (export it, or remove the reference)"
                )
            })?;
            out.push_str(&value);
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "sk-123".to_string())
    }

    #[test]
    fn expands_and_reports_paths() {
        let mut value: toml::Value =
            toml::from_str("[p.a]\nkey = \"Bearer ${KEY}\"\nlit = \"$${KEY} costs $5\"").unwrap();
        interpolate(&mut value, "", &env).unwrap();
        assert_eq!(value["p"]["a"]["key"].as_str(), Some("Bearer sk-123"));
        assert_eq!(value["p"]["a"]["lit"].as_str(), Some("${KEY} costs $5"));

        let mut missing: toml::Value = toml::from_str("[p]\nlist = [\"ok\", \"${NOPE}\"]").unwrap();
        let error = interpolate(&mut missing, "", &env).unwrap_err();
        assert_eq!(error.path, "p.list[1]");
        assert!(error.message.contains("`NOPE` is not set"));
    }
}
