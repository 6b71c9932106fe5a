//! A batch of ended spans encoded straight to the OTLP/HTTP protobuf body
//! (`ExportTraceServiceRequest`, opentelemetry-proto's `trace/v1`), in one pass over the
//! `SpanData`: no intermediate message is built, no key or value is copied into a `String`,
//! and each nested message's length is computed once. A span's fields are written into a
//! scratch buffer reused from span to span, then copied after their tag and length; an
//! attribute's length is summed from its parts as it is written.

use opentelemetry::trace::{Link, SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use std::time::{SystemTime, UNIX_EPOCH};

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: whether the parent is remote is known.
const HAS_IS_REMOTE: u32 = 0x100;
/// `SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent is remote.
const IS_REMOTE: u32 = 0x200;

/// The resource of every batch, encoded once (a `Resource` message's fields) with its schema.
#[derive(Debug, Default, Clone)]
pub struct EncodedResource {
    fields: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    /// Encodes `resource`'s attributes, in the order it lists them.
    pub fn new(resource: &Resource) -> Self {
        let mut fields = Vec::new();
        for (key, value) in resource.iter() {
            attribute(&mut fields, 1, key, value);
        }
        Self {
            fields,
            schema_url: resource.schema_url().unwrap_or_default().to_string(),
        }
    }
}

/// The buffers the encoding of a batch writes into before the body, kept from one batch to
/// the next: a batch of a few hundred KB is not grown anew (and its pages faulted in) each time.
#[derive(Debug, Default)]
pub struct Scratch {
    /// One `ScopeSpans`' fields.
    scope: Vec<u8>,
    /// Every `ScopeSpans` message of the batch.
    scope_spans: Vec<u8>,
}

/// The `ExportTraceServiceRequest` of `spans` under `resource`: one `ResourceSpans`, with a
/// `ScopeSpans` per instrumentation scope in the order the scopes first appear.
pub fn encode_batch(
    spans: &[SpanData],
    resource: &EncodedResource,
    scratch: &mut Scratch,
) -> Vec<u8> {
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    for span in spans {
        if !scopes.contains(&&span.instrumentation_scope) {
            scopes.push(&span.instrumentation_scope);
        }
    }
    // The resource's spans: each scope's, then the resource and schema around them.
    let Scratch { scope, scope_spans } = scratch;
    scope_spans.clear();
    for instrumentation_scope in scopes {
        scope.clear();
        encode_scope_spans(scope, instrumentation_scope, spans);
        message(scope_spans, 2, scope);
    }
    let resource_len = key_len(1) + encoded_len_varint(resource.fields.len() as u64);
    let resource_spans_len = resource_len
        + resource.fields.len()
        + scope_spans.len()
        + string_len(3, &resource.schema_url);
    let mut body = Vec::with_capacity(resource_spans_len + 16);
    encode_key(1, WireType::LengthDelimited, &mut body);
    encode_varint(resource_spans_len as u64, &mut body);
    message(&mut body, 1, &resource.fields);
    body.extend_from_slice(scope_spans);
    string(&mut body, 3, &resource.schema_url);
    body
}

/// A `ScopeSpans`' fields: `scope`, and each of `spans` made under it.
fn encode_scope_spans(out: &mut Vec<u8>, scope: &InstrumentationScope, spans: &[SpanData]) {
    let mut fields = Vec::with_capacity(64);
    string(&mut fields, 1, scope.name());
    string(&mut fields, 2, scope.version().unwrap_or_default());
    for attribute_value in scope.attributes() {
        key_value(&mut fields, 3, attribute_value);
    }
    message(out, 1, &fields);
    let mut span_fields = Vec::with_capacity(1024);
    for span in spans.iter().filter(|s| &s.instrumentation_scope == scope) {
        span_fields.clear();
        encode_span(&mut span_fields, span);
        message(out, 2, &span_fields);
    }
    string(out, 3, scope.schema_url().unwrap_or_default());
}

/// A `Span`'s fields.
fn encode_span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    trace_state(out, 3, context.trace_state());
    if span.parent_span_id != SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    uint(out, 6, kind(&span.span_kind));
    fixed64(out, 7, nanos(span.start_time));
    fixed64(out, 8, nanos(span.end_time));
    for attribute_value in &span.attributes {
        key_value(out, 9, attribute_value);
    }
    uint(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        let mut fields = Vec::with_capacity(64);
        fixed64(&mut fields, 1, nanos(event.timestamp));
        string(&mut fields, 2, &event.name);
        for attribute_value in &event.attributes {
            key_value(&mut fields, 3, attribute_value);
        }
        uint(&mut fields, 4, u64::from(event.dropped_attributes_count));
        message(out, 11, &fields);
    }
    uint(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let fields = encode_link(link);
        message(out, 13, &fields);
    }
    uint(out, 14, u64::from(span.links.dropped_count));
    // The status is always there, if only as `Unset`.
    let (code, text) = match &span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    let status_len = string_len(2, text) + uint_len(3, code);
    encode_key(15, WireType::LengthDelimited, out);
    encode_varint(status_len as u64, out);
    string(out, 2, text);
    uint(out, 3, code);
    let flags = u32::from(context.trace_flags().to_u8()) | HAS_IS_REMOTE;
    let flags = if span.parent_span_is_remote {
        flags | IS_REMOTE
    } else {
        flags
    };
    fixed32(out, 16, flags);
}

/// A `Span.Link`'s fields.
fn encode_link(link: &Link) -> Vec<u8> {
    let context = &link.span_context;
    let mut fields = Vec::with_capacity(64);
    bytes(&mut fields, 1, &context.trace_id().to_bytes());
    bytes(&mut fields, 2, &context.span_id().to_bytes());
    trace_state(&mut fields, 3, context.trace_state());
    for attribute_value in &link.attributes {
        key_value(&mut fields, 4, attribute_value);
    }
    uint(&mut fields, 5, u64::from(link.dropped_attributes_count));
    let flags = u32::from(context.trace_flags().to_u8()) | HAS_IS_REMOTE;
    let flags = if context.is_remote() {
        flags | IS_REMOTE
    } else {
        flags
    };
    fixed32(&mut fields, 6, flags);
    fields
}

/// `Span.SpanKind` of `kind`.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Nanoseconds since the Unix epoch (0 before it), as OTLP times are.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// Field `tag`, the W3C `tracestate` header of `state` (left out when there is none).
fn trace_state(out: &mut Vec<u8>, tag: u32, state: &TraceState) {
    if *state != TraceState::NONE {
        string(out, tag, &state.header());
    }
}

/// Field `tag`, a `KeyValue` message.
fn key_value(out: &mut Vec<u8>, tag: u32, attribute_value: &KeyValue) {
    attribute(out, tag, &attribute_value.key, &attribute_value.value);
}

/// Field `tag`, a `KeyValue` message of `key` and `value`.
fn attribute(out: &mut Vec<u8>, tag: u32, key: &Key, value: &Value) {
    let key = key.as_str();
    let value_len = any_value_len(value);
    let len = string_len(1, key) + key_len(2) + encoded_len_varint(value_len as u64) + value_len;
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
    string(out, 1, key);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(value_len as u64, out);
    any_value(out, value);
}

/// One `AnyValue` that is not an array, borrowed from an attribute's value.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(&'a str),
}

impl Scalar<'_> {
    /// The length of this `AnyValue` message.
    fn len(self) -> usize {
        match self {
            Scalar::Bool(_) => key_len(2) + 1,
            Scalar::Int(number) => key_len(3) + encoded_len_varint(number as u64),
            Scalar::Double(_) => key_len(4) + 8,
            Scalar::Text(text) => key_len(1) + encoded_len_varint(text.len() as u64) + text.len(),
        }
    }

    /// This `AnyValue` message's one set member (written even when it is the default, as a
    /// member of a `oneof` is).
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Scalar::Bool(flag) => {
                encode_key(2, WireType::Varint, out);
                encode_varint(u64::from(flag), out);
            }
            Scalar::Int(number) => {
                encode_key(3, WireType::Varint, out);
                encode_varint(number as u64, out);
            }
            Scalar::Double(number) => {
                encode_key(4, WireType::SixtyFourBit, out);
                out.extend_from_slice(&number.to_le_bytes());
            }
            Scalar::Text(text) => {
                encode_key(1, WireType::LengthDelimited, out);
                encode_varint(text.len() as u64, out);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

/// The length of `value`'s `AnyValue` message.
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(flag) => Scalar::Bool(*flag).len(),
        Value::I64(number) => Scalar::Int(*number).len(),
        Value::F64(number) => Scalar::Double(*number).len(),
        Value::String(text) => Scalar::Text(text.as_str()).len(),
        Value::Array(array) => {
            let len = array_len(array);
            key_len(5) + encoded_len_varint(len as u64) + len
        }
        _ => 0,
    }
}

/// An `AnyValue` message's fields for `value`.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(flag) => Scalar::Bool(*flag).write(out),
        Value::I64(number) => Scalar::Int(*number).write(out),
        Value::F64(number) => Scalar::Double(*number).write(out),
        Value::String(text) => Scalar::Text(text.as_str()).write(out),
        Value::Array(array) => {
            encode_key(5, WireType::LengthDelimited, out);
            encode_varint(array_len(array) as u64, out);
            for element in elements(array) {
                encode_key(1, WireType::LengthDelimited, out);
                encode_varint(element.len() as u64, out);
                element.write(out);
            }
        }
        _ => {}
    }
}
/// The length of `array`'s `ArrayValue` message: an `AnyValue` per element.
fn array_len(array: &Array) -> usize {
    elements(array)
        .map(|element| {
            let len = element.len();
            key_len(1) + encoded_len_varint(len as u64) + len
        })
        .sum()
}

/// The elements of `array`.
fn elements(array: &Array) -> Box<dyn Iterator<Item = Scalar<'_>> + '_> {
    match array {
        Array::Bool(values) => Box::new(values.iter().map(|v| Scalar::Bool(*v))),
        Array::I64(values) => Box::new(values.iter().map(|v| Scalar::Int(*v))),
        Array::F64(values) => Box::new(values.iter().map(|v| Scalar::Double(*v))),
        Array::String(values) => Box::new(values.iter().map(|v| Scalar::Text(v.as_str()))),
        _ => Box::new(std::iter::empty()),
    }
}

/// Field `tag`, a message whose fields are `fields`.
fn message(out: &mut Vec<u8>, tag: u32, fields: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(fields.len() as u64, out);
    out.extend_from_slice(fields);
}

/// Field `tag`, a string (left out when empty, as proto3 does).
fn string(out: &mut Vec<u8>, tag: u32, text: &str) {
    if !text.is_empty() {
        bytes(out, tag, text.as_bytes());
    }
}

fn string_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(text.len() as u64) + text.len()
    }
}

/// Field `tag`, bytes.
fn bytes(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    message(out, tag, value);
}

/// Field `tag`, a varint (left out when 0).
fn uint(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

fn uint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

/// Field `tag`, a `fixed64` (left out when 0).
fn fixed64(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Field `tag`, a `fixed32` (left out when 0).
fn fixed32(out: &mut Vec<u8>, tag: u32, value: u32) {
    if value != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Event, SpanContext, TraceFlags, TraceId};
    use opentelemetry::StringValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::Duration;

    /// An attribute of every value type, empty and default values included.
    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("static.str", "chat"),
            KeyValue::new("owned.str", "gpt-4o-mini".to_string()),
            KeyValue::new("shared.str", StringValue::from(Arc::<str>::from("mock/a"))),
            KeyValue::new("empty.str", ""),
            KeyValue::new("unicode", "é漢🙂"),
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("true", true),
            KeyValue::new("false", false),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("negative", -7_i64),
            KeyValue::new("big", i64::MAX),
            KeyValue::new("double", 2.5_f64),
            KeyValue::new("double.zero", 0.0_f64),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec!["stop".into(), "".into()])),
            ),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![0, -1, 300]))),
            KeyValue::new("doubles", Value::Array(Array::F64(vec![1.5, -0.0]))),
            KeyValue::new("empty.array", Value::Array(Array::I64(vec![]))),
        ]
    }

    fn context(trace: u128, span: u64, state: TraceState, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            state,
        )
    }

    fn scope(name: &'static str) -> InstrumentationScope {
        InstrumentationScope::builder(name)
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("scope.attr", 3_i64)])
            .build()
    }

    /// A span with every field set; `plain` leaves out what is optional.
    fn span(number: u64, scope: InstrumentationScope, plain: bool) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_764_500_000_123_456_789 + number);
        let state = TraceState::from_key_value([("vendor", "a1"), ("other", "b")]).unwrap();
        let link = Link::new(
            context(0xfeed, 0xbeef, state.clone(), true),
            every_value(),
            2,
        );
        let mut events = SpanEvents::default();
        let mut links = SpanLinks::default();
        if !plain {
            events.events = vec![
                Event::new("retry", start, every_value(), 1),
                Event::with_name("bare"),
            ];
            events.dropped_count = 5;
            links.links = vec![link];
            links.dropped_count = 6;
        }
        SpanData {
            span_context: context(
                0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
                number,
                if plain { TraceState::NONE } else { state },
                false,
            ),
            parent_span_id: if plain {
                SpanId::INVALID
            } else {
                SpanId::from(0x77)
            },
            parent_span_is_remote: !plain,
            span_kind: if plain {
                SpanKind::Internal
            } else {
                SpanKind::Client
            },
            name: if plain {
                Cow::Borrowed("")
            } else {
                Cow::Owned(format!("chat {number}"))
            },
            start_time: start,
            end_time: start + Duration::from_millis(12),
            attributes: if plain { Vec::new() } else { every_value() },
            dropped_attributes_count: if plain { 0 } else { 4 },
            events,
            links,
            status: match number % 3 {
                0 => Status::Unset,
                1 => Status::Ok,
                _ => Status::error("upstream_5xx"),
            },
            instrumentation_scope: scope,
        }
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("backstop-test")
            .with_schema_url(
                [KeyValue::new("deployment.environment", "prod")],
                "https://opentelemetry.io/schemas/1.30.0",
            )
            .build()
    }

    /// What opentelemetry-otlp sent for the same spans: opentelemetry-proto's own conversion.
    fn reference(spans: Vec<SpanData>, resource: &Resource) -> ExportTraceServiceRequest {
        let resource = ResourceAttributesWithSchema::from(resource);
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans, &resource),
        }
    }

    fn ours(spans: &[SpanData], resource: &Resource) -> ExportTraceServiceRequest {
        let body = encode_batch(
            spans,
            &EncodedResource::new(resource),
            &mut Scratch::default(),
        );
        ExportTraceServiceRequest::decode(body.as_slice()).unwrap()
    }

    #[test]
    fn a_batch_decodes_to_what_opentelemetry_protos_conversion_gives() {
        let spans: Vec<SpanData> = (1..=6)
            .map(|n| span(n, scope("backstop"), n == 4))
            .collect();
        // One resource for both: its attributes are listed in a hash map's order.
        let resource = resource();
        let expected = reference(spans.clone(), &resource);
        let decoded = ours(&spans, &resource);
        // Field by field first, for a readable failure.
        let (ours_rs, expected_rs) = (&decoded.resource_spans[0], &expected.resource_spans[0]);
        assert_eq!(ours_rs.resource, expected_rs.resource);
        assert_eq!(ours_rs.schema_url, expected_rs.schema_url);
        let (ours_ss, expected_ss) = (&ours_rs.scope_spans[0], &expected_rs.scope_spans[0]);
        assert_eq!(ours_ss.scope, expected_ss.scope);
        assert_eq!(ours_ss.schema_url, expected_ss.schema_url);
        assert_eq!(ours_ss.spans.len(), 6);
        for (ours_span, expected_span) in ours_ss.spans.iter().zip(&expected_ss.spans) {
            assert_eq!(ours_span, expected_span);
        }
        assert_eq!(decoded, expected);
        // The test spans do set what they should: ids, parent, flags, events, links, status.
        let first = &ours_ss.spans[0];
        assert_eq!(first.parent_span_id, 0x77_u64.to_be_bytes());
        assert_eq!(first.flags, 0x301);
        assert_eq!(first.events.len(), 2);
        assert_eq!(first.links[0].attributes.len(), every_value().len());
        assert_eq!(first.trace_state, "vendor=a1,other=b");
        assert!(ours_ss.spans[3].parent_span_id.is_empty());
        assert_eq!(ours_ss.spans[1].status.as_ref().map(|s| s.code), Some(2));
    }

    #[test]
    fn spans_of_several_scopes_are_grouped_by_scope_in_order_of_first_appearance() {
        let spans = vec![
            span(1, scope("b"), false),
            span(2, scope("a"), true),
            span(3, scope("b"), true),
            span(4, InstrumentationScope::builder("bare").build(), false),
        ];
        let resource = resource();
        let decoded = ours(&spans, &resource);
        assert_eq!(decoded, reference(spans, &resource));
        let names: Vec<_> = decoded.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| s.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default())
            .collect();
        assert_eq!(names, ["b", "a", "bare"]);
    }

    #[test]
    fn an_empty_resource_and_a_single_span_match_too() {
        let spans = vec![span(7, scope("backstop"), true)];
        let empty = Resource::builder_empty().build();
        assert_eq!(ours(&spans, &empty), reference(spans, &empty));
    }
}
