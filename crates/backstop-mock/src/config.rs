//! What the mock says and how it misbehaves: [`MockConfig`], loaded from code or a script.
//!
//! A script is the same table in TOML or JSON:
//!
//! ```toml
//! answer = "Hello from the mock."   # optional, default: a fixed 60-word text
//! chunks = 60                       # optional
//! seed = 7                          # optional, for probability faults
//! [[faults]]
//! kind = "status"
//! status = 503
//! window = ["0s", "60s"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fault::Fault;

/// The fixed default answer: exactly 60 words, served as 60 chunks.
pub const DEFAULT_ANSWER: &str =
    "Backstop mock provider answer: this deterministic text exists so \
that tests can tell a complete reply from a truncated one. Every word arrives as its own chunk, in \
order, and the usage numbers count exactly those chunks. If you are reading all of it, the stream \
reached its natural end without being cut, stalled, reset, or silently replaced. All done.";

/// Errors from loading a script or running the mock.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A script could not be parsed or contains an invalid fault.
    #[error("invalid mock script {origin}: {message}")]
    Script {
        /// The file name, or "(inline)".
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A TLS certificate or key could not be used (bad PEM, no key, key and certificate
    /// that do not match).
    #[error("invalid TLS setup: {message}")]
    Tls {
        /// What is wrong, naming the file.
        message: String,
    },
}

/// The syntax of a script given as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptFormat {
    /// TOML, with faults as `[[faults]]` tables.
    Toml,
    /// JSON, with faults as a `"faults"` array.
    Json,
}

/// Everything the mock needs to know: its answer and its faults.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// The fixed answer text of every non-tool reply.
    pub answer: String,
    /// How many tokens / stream events the answer is split into (at least 1).
    pub chunks: usize,
    /// The arguments of every tool call the mock makes.
    pub tool_arguments: serde_json::Value,
    /// Faults active from the start (windows count from server start).
    pub faults: Vec<Fault>,
    /// Seed of the RNG behind probability faults.
    pub seed: u64,
    /// How many requests `GET /_mock/requests` keeps (oldest dropped first).
    pub log_capacity: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            answer: DEFAULT_ANSWER.to_owned(),
            chunks: 60,
            tool_arguments: serde_json::json!({ "location": "Paris", "unit": "celsius" }),
            faults: Vec::new(),
            seed: 0,
            log_capacity: 100_000,
        }
    }
}

/// The script file's shape; every key optional, unknown keys rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    answer: Option<String>,
    chunks: Option<usize>,
    tool_arguments: Option<serde_json::Value>,
    seed: Option<u64>,
    log_capacity: Option<usize>,
    #[serde(default)]
    faults: Vec<Fault>,
}

impl MockConfig {
    /// Loads a script file; `.json` files are JSON, anything else TOML.
    pub fn from_script_file(path: impl AsRef<Path>) -> Result<Self, MockError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| MockError::Io {
            context: format!("cannot read mock script {}", path.display()),
            source,
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => ScriptFormat::Json,
            _ => ScriptFormat::Toml,
        };
        Self::parse(&text, format, &path.display().to_string())
    }

    /// Parses a script given as text.
    pub fn from_script_str(text: &str, format: ScriptFormat) -> Result<Self, MockError> {
        Self::parse(text, format, "(inline)")
    }

    fn parse(text: &str, format: ScriptFormat, origin: &str) -> Result<Self, MockError> {
        let bad = |message: String| MockError::Script {
            origin: origin.to_owned(),
            message,
        };
        let script: Script = match format {
            ScriptFormat::Toml => toml::from_str(text).map_err(|e| bad(e.to_string()))?,
            ScriptFormat::Json => serde_json::from_str(text).map_err(|e| bad(e.to_string()))?,
        };
        let defaults = MockConfig::default();
        let chunks = script.chunks.unwrap_or(defaults.chunks);
        if chunks == 0 {
            return Err(bad("`chunks` must be at least 1".to_owned()));
        }
        Ok(MockConfig {
            answer: script.answer.unwrap_or(defaults.answer),
            chunks,
            tool_arguments: script.tool_arguments.unwrap_or(defaults.tool_arguments),
            faults: script.faults,
            seed: script.seed.unwrap_or(defaults.seed),
            log_capacity: script.log_capacity.unwrap_or(defaults.log_capacity),
        })
    }
}

/// The deterministic chunks of `config.answer`: concatenated they give the answer exactly.
///
/// Words (with their leading whitespace) are spread evenly over `config.chunks` chunks; an
/// answer with fewer words than chunks is split by characters instead, so the count holds
/// whenever the text is long enough.
pub fn answer_chunks(config: &MockConfig) -> Vec<String> {
    split_text(&config.answer, config.chunks.max(1))
}

pub(crate) fn split_text(text: &str, chunks: usize) -> Vec<String> {
    let words = words_with_leading_space(text);
    let pieces: Vec<&str> = if words.len() >= chunks {
        words
    } else {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let n = chars.len().clamp(1, chunks);
        let bounds: Vec<usize> = (0..=n)
            .map(|i| {
                chars
                    .get(i * chars.len() / n)
                    .map_or(text.len(), |(at, _)| *at)
            })
            .collect();
        return bounds
            .windows(2)
            .map(|w| text[w[0]..w[1]].to_owned())
            .collect();
    };
    let n = pieces.len();
    (0..chunks)
        .map(|i| pieces[i * n / chunks..(i + 1) * n / chunks].concat())
        .collect()
}

/// Splits before every run of whitespace that follows a non-space character.
fn words_with_leading_space(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_space = true;
    for (at, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && !prev_space && at > start {
            out.push(&text[start..at]);
            start = at;
        }
        prev_space = space;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_answer_is_sixty_words_in_sixty_chunks() {
        assert_eq!(DEFAULT_ANSWER.split_whitespace().count(), 60);
        let chunks = answer_chunks(&MockConfig::default());
        assert_eq!(chunks.len(), 60);
        assert_eq!(chunks.concat(), DEFAULT_ANSWER);
        assert_eq!(chunks[0], "Backstop");
        assert_eq!(chunks[1], " mock");
    }

    #[test]
    fn chunks_always_concatenate_to_the_answer() {
        for (text, n) in [
            ("one two three four five", 2),
            ("abc", 10),
            ("a b", 5),
            ("héllo wörld", 4),
            ("", 3),
        ] {
            let chunks = split_text(text, n);
            assert_eq!(chunks.concat(), text, "{text} / {n}");
            assert!(!chunks.is_empty());
            assert!(chunks.len() <= n);
        }
        assert_eq!(
            split_text("one two three four five", 2),
            vec!["one two", " three four five"]
        );
        assert_eq!(split_text("abcdef", 3), vec!["ab", "cd", "ef"]);
    }

    #[test]
    fn scripts_load_from_toml_and_json() {
        let toml = r#"
            answer = "Hi there friend"
            chunks = 3
            seed = 9
            [[faults]]
            kind = "status"
            status = 503
            window = ["0s", "60s"]
        "#;
        let config = MockConfig::from_script_str(toml, ScriptFormat::Toml).unwrap();
        assert_eq!(config.answer, "Hi there friend");
        assert_eq!(config.seed, 9);
        assert_eq!(config.faults.len(), 1);
        let json =
            r#"{"faults": [{"kind": "cut_after", "events": 4}, {"kind": "hang", "count": 1}]}"#;
        let config = MockConfig::from_script_str(json, ScriptFormat::Json).unwrap();
        assert_eq!(config.faults.len(), 2);
        assert_eq!(config.answer, DEFAULT_ANSWER);
    }

    #[test]
    fn script_errors_name_the_key() {
        let err = MockConfig::from_script_str("anwser = 1", ScriptFormat::Toml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("anwser"), "{err}");
        let err =
            MockConfig::from_script_str(r#"{"faults":[{"kind":"status"}]}"#, ScriptFormat::Json)
                .unwrap_err()
                .to_string();
        assert!(err.contains("needs the key `status`"), "{err}");
        let err = MockConfig::from_script_file("/nonexistent/script.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read mock script"), "{err}");
    }
}
