//! DomainsService, CertsService and KeysService.

use deis_core::{Error, Resource, cert, sshkey, validate};
use deis_proto::v2::{
    AddDomainRequest, AddDomainResponse, AddKeyRequest, AddKeyResponse, AttachCertRequest,
    AttachCertResponse, CreateCertRequest, CreateCertResponse, DeleteCertRequest, DeleteCertResponse,
    DetachCertRequest, DetachCertResponse, GetCertRequest, GetCertResponse, GetKeyRequest, GetKeyResponse,
    ListCertsRequest, ListCertsResponse, ListDomainsRequest, ListDomainsResponse, ListKeysRequest,
    ListKeysResponse, RemoveDomainRequest, RemoveDomainResponse, RemoveKeyRequest, RemoveKeyResponse,
    certs_service_server::CertsService, domains_service_server::DomainsService,
    keys_service_server::KeysService,
};
use deis_store::{App, Certificate, NewCertificate, StoreError, User};
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::Access;
use crate::convert::{self, page_request, paged};
use crate::error::respond;

impl Api {
    /// Refuses domains that would take over another app's default route.
    fn check_platform_domain(&self, app: &App, ace: &str) -> deis_core::Result<()> {
        let suffix = format!(".{}", self.inner.config.platform_domain);
        let Some(label) = ace.strip_suffix(&suffix) else {
            return Ok(());
        };
        if label == app.name {
            return Err(Error::already_exists(format!(
                "{ace} is already the default domain of {}.",
                app.name
            )));
        }
        if !label.contains('.') {
            return Err(Error::permission_denied(format!(
                "{ace} is reserved for the app {label}'s default domain."
            )));
        }
        Ok(())
    }

    async fn do_add_domain(
        &self,
        request: Request<AddDomainRequest>,
    ) -> deis_core::Result<AddDomainResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Write).await?;
        let ace = validate::domain(&req.domain).map_err(|e| e.on_field("domain"))?;
        self.check_platform_domain(&app, &ace)?;
        let domain = match self.inner.store.add_domain(&app, &user.username, &ace).await {
            Err(StoreError::Duplicate(_)) => {
                let owner = self.inner.store.domain_owner_app(&ace).await?;
                return Err(if owner.is_some_and(|o| o.uuid == app.uuid) {
                    Error::already_exists(format!("The domain {ace} is already attached to {}", app.name))
                } else {
                    Error::already_exists(format!("The domain {ace} is already in use by another app"))
                        .on_field("domain")
                });
            }
            other => other?,
        };
        self.inner
            .event(&app.name, &format!("{} added domain {ace}", user.username));
        self.routing_changed();
        Ok(AddDomainResponse {
            domain: Some(convert::domain(&domain)),
        })
    }

    async fn do_remove_domain(
        &self,
        request: Request<RemoveDomainRequest>,
    ) -> deis_core::Result<RemoveDomainResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Write).await?;
        let ace = validate::domain(&req.domain)?;
        if !self.inner.store.remove_domain(&app, &ace).await? {
            return Err(Error::no_such(
                Resource::Domain,
                format_args!("{} on {}", req.domain, app.name),
            ));
        }
        self.inner
            .event(&app.name, &format!("{} removed domain {ace}", user.username));
        self.routing_changed();
        Ok(RemoveDomainResponse {})
    }

    async fn own_cert(&self, user: &User, name: &str) -> deis_core::Result<Certificate> {
        self.inner
            .store
            .find_certificate(user, name)
            .await?
            .ok_or_else(|| Error::no_such(Resource::Certificate, name))
    }

    /// The domain (ACE) a certificate operation names, after checking the
    /// caller may change that domain's app (Deis did not check this).
    async fn writable_domain(&self, user: &User, domain: &str) -> deis_core::Result<(String, App)> {
        let ace = validate::domain(domain)?;
        let app = self
            .inner
            .store
            .domain_owner_app(&ace)
            .await?
            .ok_or_else(|| Error::no_such(Resource::Domain, domain))?;
        self.authorize(user, &app, Access::Write).await?;
        Ok((ace, app))
    }

    async fn do_create_cert(
        &self,
        request: Request<CreateCertRequest>,
    ) -> deis_core::Result<CreateCertResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        validate::cert_name(&req.name).map_err(|e| e.on_field("name"))?;
        let info = cert::parse_certificate(&req.certificate).map_err(|e| e.on_field("certificate"))?;
        cert::parse_private_key(&req.key).map_err(|e| e.on_field("key"))?;
        // A key of another certificate would only fail later, in the router.
        cert::check_key_pair(&req.certificate, &req.key).map_err(|e| e.on_field("key"))?;
        let new = NewCertificate {
            name: req.name,
            certificate: req.certificate,
            private_key: req.key,
            info,
        };
        let created = match self.inner.store.create_certificate(&user, new).await {
            Err(StoreError::Duplicate(_)) => {
                return Err(
                    Error::already_exists("Certificate with this name already exists.").on_field("name"),
                );
            }
            other => other?,
        };
        Ok(CreateCertResponse {
            cert: Some(convert::certificate(&created)),
        })
    }
}

#[tonic::async_trait]
impl DomainsService for Api {
    async fn list_domains(
        &self,
        request: Request<ListDomainsRequest>,
    ) -> Result<Response<ListDomainsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_domains(&app, paging).await?;
                Ok(paged(
                    &format!("/v2/apps/{}/domains", app.name),
                    paging,
                    &page,
                    convert::domain,
                ))
            }
            .await,
        )
    }

    async fn add_domain(
        &self,
        request: Request<AddDomainRequest>,
    ) -> Result<Response<AddDomainResponse>, Status> {
        respond(self.do_add_domain(request).await)
    }

    async fn remove_domain(
        &self,
        request: Request<RemoveDomainRequest>,
    ) -> Result<Response<RemoveDomainResponse>, Status> {
        respond(self.do_remove_domain(request).await)
    }
}

#[tonic::async_trait]
impl CertsService for Api {
    async fn list_certs(
        &self,
        request: Request<ListCertsRequest>,
    ) -> Result<Response<ListCertsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_certificates(&user, paging).await?;
                Ok(paged("/v2/certs", paging, &page, convert::certificate))
            }
            .await,
        )
    }

    async fn create_cert(
        &self,
        request: Request<CreateCertRequest>,
    ) -> Result<Response<CreateCertResponse>, Status> {
        respond(self.do_create_cert(request).await)
    }

    async fn get_cert(&self, request: Request<GetCertRequest>) -> Result<Response<GetCertResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let cert = self.own_cert(&user, &request.get_ref().name).await?;
                Ok(GetCertResponse {
                    cert: Some(convert::certificate(&cert)),
                })
            }
            .await,
        )
    }

    async fn delete_cert(
        &self,
        request: Request<DeleteCertRequest>,
    ) -> Result<Response<DeleteCertResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let cert = self.own_cert(&user, &request.get_ref().name).await?;
                self.inner.store.delete_certificate(&cert).await?;
                self.routing_changed();
                Ok(DeleteCertResponse {})
            }
            .await,
        )
    }

    async fn attach_cert(
        &self,
        request: Request<AttachCertRequest>,
    ) -> Result<Response<AttachCertResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let cert = self.own_cert(&user, &req.name).await?;
                let (ace, app) = self.writable_domain(&user, &req.domain).await?;
                self.inner.store.set_domain_certificate(&ace, Some(&cert)).await?;
                self.inner.event(
                    &app.name,
                    &format!("{} attached certificate {} to {ace}", user.username, cert.name),
                );
                self.routing_changed();
                Ok(AttachCertResponse {})
            }
            .await,
        )
    }

    async fn detach_cert(
        &self,
        request: Request<DetachCertRequest>,
    ) -> Result<Response<DetachCertResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let cert = self.own_cert(&user, &req.name).await?;
                let (ace, app) = self.writable_domain(&user, &req.domain).await?;
                if !cert.domains.contains(&ace) {
                    return Err(Error::not_found(format!(
                        "Certificate {} is not attached to {}.",
                        cert.name, req.domain
                    )));
                }
                self.inner.store.set_domain_certificate(&ace, None).await?;
                self.inner.event(
                    &app.name,
                    &format!("{} detached certificate {} from {ace}", user.username, cert.name),
                );
                self.routing_changed();
                Ok(DetachCertResponse {})
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl KeysService for Api {
    async fn list_keys(
        &self,
        request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_keys(&user, paging).await?;
                Ok(paged("/v2/keys", paging, &page, convert::key))
            }
            .await,
        )
    }

    async fn add_key(&self, request: Request<AddKeyRequest>) -> Result<Response<AddKeyResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                validate::key_id(&req.id).map_err(|e| e.on_field("id"))?;
                let parsed = sshkey::parse_public_key(&req.public).map_err(|e| e.on_field("public"))?;
                let (name_taken, key_taken) = self
                    .inner
                    .store
                    .key_exists(&req.id, &parsed.sha256_fingerprint)
                    .await?;
                if key_taken {
                    return Err(Error::already_exists("Public Key is already in use").on_field("public"));
                }
                if name_taken {
                    return Err(Error::already_exists("SSH Key with this id already exists.").on_field("id"));
                }
                let key = self
                    .inner
                    .store
                    .add_key(
                        &user,
                        &req.id,
                        &parsed.canonical,
                        &parsed.md5_fingerprint,
                        &parsed.sha256_fingerprint,
                    )
                    .await
                    .map_err(|e| match e {
                        // Lost a race with a concurrent upload of the same key.
                        StoreError::Duplicate(_) => {
                            Error::already_exists("SSH Key with this id already exists.").on_field("id")
                        }
                        other => other.into(),
                    })?;
                Ok(AddKeyResponse {
                    key: Some(convert::key(&key)),
                })
            }
            .await,
        )
    }

    async fn get_key(&self, request: Request<GetKeyRequest>) -> Result<Response<GetKeyResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let id = &request.get_ref().id;
                let key = self
                    .inner
                    .store
                    .find_key(&user, id)
                    .await?
                    .ok_or_else(|| Error::no_such(Resource::Key, id))?;
                Ok(GetKeyResponse {
                    key: Some(convert::key(&key)),
                })
            }
            .await,
        )
    }

    async fn remove_key(
        &self,
        request: Request<RemoveKeyRequest>,
    ) -> Result<Response<RemoveKeyResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let id = &request.get_ref().id;
                if !self.inner.store.remove_key(&user, id).await? {
                    return Err(Error::no_such(Resource::Key, id));
                }
                Ok(RemoveKeyResponse {})
            }
            .await,
        )
    }
}
