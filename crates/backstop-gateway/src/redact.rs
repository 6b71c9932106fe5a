//! Keeping secrets out of every output: known secret values are masked wherever they
//! appear in a message, and URLs lose their userinfo before they are shown.

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not masked: a two-letter header value would
/// otherwise blank out every word that contains it, and is no secret anyway.
const MIN_SECRET_LEN: usize = 4;

/// The secrets of one configuration, to mask in text that came from elsewhere
/// (an upstream's error message, a config error).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets`, ignoring those too short to mask.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| s.trim().len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// `text` with every secret masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// `bytes` with every secret masked, whether or not they are UTF-8.
    pub fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for secret in &self.secrets {
            out = replace_bytes(&out, secret.as_bytes(), MASK.as_bytes());
        }
        out
    }

    /// Whether `text` holds any secret.
    pub fn finds_in(&self, text: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|secret| find(text, secret.as_bytes()).is_some())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = find(rest, needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// `url` with any `user:password@` replaced by `***@`, for showing it.
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!("{}{MASK}{}", &url[..authority_start], &rest[at..]),
        None => url.to_string(),
    }
}

/// Whether a config key holds a secret by its name: `api_key`, `client_keys`,
/// `admin_key`, or anything named like a token, password or secret.
pub fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.ends_with("_file") {
        // A path to a secret (`credentials_file`) is not one; the file's contents are.
        return false;
    }
    ["key", "token", "password", "passwd", "secret", "credential"]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_secret_longest_first_and_skips_short_values() {
        let redactor = Redactor::new(["sk-abc", "sk-abcdef", "1"]);
        assert_eq!(
            redactor.text("keys sk-abcdef and sk-abc, 1 of 1"),
            "keys *** and ***, 1 of 1"
        );
        assert_eq!(
            redactor.bytes(b"\xff sk-abc \xfe"),
            b"\xff *** \xfe".to_vec()
        );
        assert!(redactor.finds_in(b"x sk-abc y") && !redactor.finds_in(b"sk-ab"));
    }

    #[test]
    fn urls_lose_their_userinfo() {
        assert_eq!(
            url("https://user:pass@host.example/v1?x=1"),
            "https://***@host.example/v1?x=1"
        );
        assert_eq!(url("https://host/v1/a@b"), "https://host/v1/a@b");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn secret_key_names() {
        for name in [
            "api_key",
            "client_keys",
            "admin_key",
            "x-auth-token",
            "Password",
            "callback_secret",
        ] {
            assert!(is_secret_key(name), "{name}");
        }
        for name in ["base_url", "model", "kind", "credentials_file"] {
            assert!(!is_secret_key(name), "{name}");
        }
    }
}
