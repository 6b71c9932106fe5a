//! The OTLP/HTTP exporter: each batch encoded to protobuf by [`super::otlp`] and posted to
//! the collector's `/v1/traces` over the gateway's own HTTP client, once (a batch the
//! collector refuses or does not take within [`EXPORT_TIMEOUT`] is given up and counted by
//! the export task).

use super::export::EXPORT_TIMEOUT;
use super::otlp::{encode_batch, EncodedResource, Scratch};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// How much of the collector's answer to a batch is read at most.
const ANSWER_LIMIT: usize = 64 << 10;

/// Posts batches of spans to one collector as OTLP/HTTP protobuf.
#[derive(Debug)]
pub struct OtlpExporter {
    client: reqwest::Client,
    url: String,
    resource: EncodedResource,
    /// The encoder's buffers, kept from batch to batch (batches are encoded one at a time).
    scratch: std::sync::Mutex<Scratch>,
}

impl OtlpExporter {
    /// An exporter to `url` (the collector's full `/v1/traces` address) over `client`; the
    /// resource is the one [`SpanExporter::set_resource`] gives it.
    pub fn new(client: reqwest::Client, url: String) -> Self {
        Self {
            client,
            url,
            resource: EncodedResource::default(),
            scratch: std::sync::Mutex::default(),
        }
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = {
            let mut scratch = self
                .scratch
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            encode_batch(&batch, &self.resource, &mut scratch)
        };
        drop(batch);
        let mut response = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .timeout(EXPORT_TIMEOUT)
            .send()
            .await
            .map_err(|error| {
                OTelSdkError::InternalFailure(format!(
                    "the collector could not be reached: {}",
                    error.without_url()
                ))
            })?;
        let status = response.status();
        // The answer is small (a partial-success notice at most): read, up to a bound, so
        // that the connection can carry the next batch.
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > ANSWER_LIMIT {
                break;
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "the collector answered {status}"
            )))
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}
