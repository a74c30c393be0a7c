//! The gRPC service the Secrets Store CSI Driver calls: `Version` and
//! `Mount`, with the per-request timeout and the Mount metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};

use crate::error::MountError;
use crate::metrics::Metrics;
use crate::mount::Provider;
use crate::proto::csi_driver_provider_server::CsiDriverProvider;
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

/// API version the provider speaks.
pub const API_VERSION: &str = "v1alpha1";
/// Runtime name reported by `Version`.
pub const RUNTIME_NAME: &str = "cairn-csi-provider";

/// The tonic service.
pub struct CsiService {
    provider: Arc<Provider>,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl CsiService {
    /// A service answering with `provider`, cutting each Mount at `timeout`.
    pub fn new(provider: Arc<Provider>, metrics: Arc<Metrics>, timeout: Duration) -> Self {
        Self {
            provider,
            metrics,
            timeout,
        }
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for CsiService {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: API_VERSION.into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let started = Instant::now();
        let result =
            match tokio::time::timeout(self.timeout, self.provider.mount(request.into_inner()))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(MountError::Timeout(self.timeout)),
            };
        let code = result.as_ref().map_or_else(MountError::code, |_| Code::Ok);
        self.metrics.mount(code, started.elapsed().as_secs_f64());
        match result {
            Ok(response) => Ok(Response::new(response)),
            Err(err) => {
                tracing::warn!(code = ?code, error = %err, "mount failed");
                Err(err.into())
            }
        }
    }
}
