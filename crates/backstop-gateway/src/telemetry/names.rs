//! The attribute values and span names of one target, made once with the config: a span
//! takes its values by reference count rather than copying strings, and its names need no
//! formatting.

use opentelemetry::StringValue;
use std::sync::Arc;

/// A target's span attributes and names.
#[derive(Debug)]
pub struct TargetNames {
    /// `gen_ai.request.model`: the upstream model.
    pub model: StringValue,
    /// `backstop.target`: the target's label.
    pub label: StringValue,
    /// The name of an attempt's span, `chat UPSTREAM-MODEL`.
    pub chat: String,
    /// The name of a continuation's span, `continue UPSTREAM-MODEL`.
    pub continuation: String,
    /// The name of a hedge's span, `hedge UPSTREAM-MODEL`.
    pub hedge: String,
}

impl TargetNames {
    /// The names of the target `label` that serves the upstream model `model`.
    pub fn new(model: &str, label: &str) -> Self {
        Self {
            model: shared(model),
            label: shared(label),
            chat: format!("chat {model}"),
            continuation: format!("continue {model}"),
            hedge: format!("hedge {model}"),
        }
    }
}

/// `text` as an attribute value whose clones share it.
pub fn shared(text: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(text))
}
