//! PlatformService: versions, addresses and what the runtime enforces; no
//! token needed.

use deis_proto::v2::{
    GetPlatformInfoRequest, GetPlatformInfoResponse, platform_service_server::PlatformService,
};
use tonic::{Request, Response, Status};

use super::Api;
use crate::{API_VERSION, PLATFORM_VERSION};

#[tonic::async_trait]
impl PlatformService for Api {
    async fn get_platform_info(
        &self,
        _: Request<GetPlatformInfoRequest>,
    ) -> Result<Response<GetPlatformInfoResponse>, Status> {
        let c = &self.inner.config;
        let capabilities = self.inner.scheduler.capabilities();
        Ok(Response::new(GetPlatformInfoResponse {
            api_version: API_VERSION.into(),
            platform_version: PLATFORM_VERSION.into(),
            builder_host: c.builder_host.clone(),
            builder_port: i32::from(c.builder_port),
            platform_domain: c.platform_domain.clone(),
            registration_mode: c.registration_mode.as_str().into(),
            memory_limits: capabilities.memory_limits.as_str().into(),
            cpu_limits: capabilities.cpu_limits.as_str().into(),
            autoscaling: capabilities.autoscaling.as_str().into(),
        }))
    }
}
