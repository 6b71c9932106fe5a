//! Region globs (`regions = ["eu-*"]` on models and keys): `*` stands for any run of characters, everything
//! else matches itself, case-insensitively.

use super::ConfigError;

/// Checks a `regions` list: not empty, no blank entry.
pub fn check_globs(path: &str, globs: &[String]) -> Result<(), ConfigError> {
    if globs.is_empty() {
        return Err(ConfigError::at(
            path,
            "is empty, which would allow no region at all: remove it to allow any",
        ));
    }
    for (index, glob) in globs.iter().enumerate() {
        if glob.trim().is_empty() {
            return Err(ConfigError::at(format!("{path}[{index}]"), "is blank"));
        }
    }
    Ok(())
}

/// Whether `region` matches one of `globs`.
pub fn region_matches(globs: &[String], region: &str) -> bool {
    let region = region.to_ascii_lowercase();
    globs
        .iter()
        .any(|glob| glob_matches(&glob.to_ascii_lowercase(), &region))
}

/// `*` matches any run of characters; the rest matches itself.
fn glob_matches(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_regions() {
        let eu = vec!["eu-*".to_string()];
        assert!(region_matches(&eu, "eu-west-1"));
        assert!(region_matches(&eu, "EU-central"));
        assert!(!region_matches(&eu, "us-east-1"));
        assert!(!region_matches(&eu, "europe"));
        let exact = vec!["us-east-1".to_string(), "*-north-*".to_string()];
        assert!(region_matches(&exact, "us-east-1"));
        assert!(!region_matches(&exact, "us-east-12"));
        assert!(region_matches(&exact, "eu-north-1"));
        assert!(region_matches(&["*".to_string()], "anything"));
        assert!(region_matches(&["a*a".to_string()], "aa"));
        assert!(!region_matches(&["a*a".to_string()], "a"));
    }
}
