//! OpenTelemetry span export over OTLP/gRPC (tonic), when an endpoint is configured.
//!
//! Every role builds its `tracing` subscriber in [`crate::role::init_telemetry`]; with
//! an endpoint it adds a `tracing-opentelemetry` layer whose batch processor exports
//! the per-event spans (`publish`, `dispatch`, `resolve`, `deliver`, all with target
//! [`crate::trace::SPAN_TARGET`]) to the collector. Without one no exporter is built and
//! those spans are disabled at their call sites, so they cost next to nothing.
//!
//! The batch processor honours the standard `OTEL_BSP_*` variables (for example
//! `OTEL_BSP_SCHEDULE_DELAY` in milliseconds); the service name is `OTEL_SERVICE_NAME`,
//! else the role's name.

use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The standard variable naming the collector, used when `--otlp-endpoint` is absent.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming this service in exported spans.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported by this process (an exporter was built).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The `--otlp-endpoint` flag shared by every role binary and `fanout standalone`.
#[derive(Debug, Clone, Default, Args)]
pub struct OtlpArgs {
    /// OTLP/gRPC collector to export trace spans to (e.g. http://otel-collector:4317)
    /// [default: $OTEL_EXPORTER_OTLP_ENDPOINT; none: nothing is exported].
    #[arg(long, env = "FANOUT_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl OtlpArgs {
    /// The endpoint to export to: the flag (or `FANOUT_OTLP_ENDPOINT`), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` (no export) when neither is set or empty.
    pub fn endpoint(&self) -> Option<String> {
        self.otlp_endpoint
            .clone()
            .or_else(|| std::env::var(OTEL_EXPORTER_OTLP_ENDPOINT).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }
}

impl OtlpArgs {
    /// What is wrong with the configured endpoint, for the usage errors reported at
    /// start (the exporter accepts only `http://` and `https://` URLs with a host).
    pub fn problem(&self) -> Option<String> {
        let endpoint = self.endpoint()?;
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => None,
            _ => Some(format!(
                "--otlp-endpoint {endpoint:?} must be an http:// or https:// URL with a host"
            )),
        }
    }
}

/// Why span export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The OTLP exporter rejected its configuration (a malformed endpoint URL...).
    #[error("cannot build the OTLP exporter for {endpoint}")]
    Exporter {
        /// The endpoint as configured.
        endpoint: String,
        /// What the exporter reported.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// A running span exporter; [`Exporter::shutdown`] flushes what is still batched.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// Builds a batch exporter to `endpoint` for service `service` (overridden by
    /// `OTEL_SERVICE_NAME`). Must run inside a tokio runtime (tonic's channel lives
    /// there); it connects lazily, so a collector that is down only loses spans.
    pub fn start(endpoint: &str, service: &str) -> Result<(Self, SdkTracer), OtelError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|source| OtelError::Exporter {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        let name = std::env::var(OTEL_SERVICE_NAME)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| service.to_owned());
        let provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(name).build())
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("fanout");
        ENABLED.store(true, Ordering::Relaxed);
        Ok((Self { provider }, tracer))
    }

    /// Exports the spans still batched and stops the exporter. The SDK blocks while it
    /// flushes, so this runs on a blocking thread and leaves the runtime free to carry
    /// the export.
    pub async fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "span exporter shutdown"),
            Err(e) => tracing::warn!(error = %e, "span exporter shutdown panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls() {
        let args = |e: &str| OtlpArgs {
            otlp_endpoint: Some(e.to_owned()),
        };
        assert_eq!(args("http://collector:4317").problem(), None);
        assert_eq!(args("https://collector").problem(), None);
        assert!(args("collector:4317").problem().is_some());
        assert!(args("http://").problem().is_some());
    }
}
