//! SettingsService: maintenance, routing, whitelist, autoscale, labels, TLS.
//! None of these makes a release; each change records a new revision.

use std::collections::BTreeMap;

use deis_core::{Error, validate};
use deis_proto::v2::{
    AddWhitelistRequest, AddWhitelistResponse, GetAppSettingsRequest, GetAppSettingsResponse, GetTlsRequest,
    GetTlsResponse, ListWhitelistRequest, ListWhitelistResponse, RemoveWhitelistRequest,
    RemoveWhitelistResponse, SetTlsRequest, SetTlsResponse, UpdateAppSettingsRequest,
    UpdateAppSettingsResponse, settings_service_server::SettingsService,
};
use deis_store::{App, SettingsData, User};
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::Access;
use crate::convert::{self, setting_changes, struct_to_json};
use crate::error::respond;

/// Applies set/unset changes to a map; unsetting a missing key is a 422.
fn merge<V: Clone>(
    attr: &str,
    current: &BTreeMap<String, V>,
    changes: BTreeMap<String, Option<V>>,
) -> deis_core::Result<BTreeMap<String, V>> {
    let mut next = current.clone();
    for (key, value) in changes {
        match value {
            Some(v) => {
                next.insert(key, v);
            }
            None => {
                if next.remove(&key).is_none() {
                    return Err(Error::unprocessable(format!("{key} does not exist under {attr}")));
                }
            }
        }
    }
    Ok(next)
}

impl Api {
    async fn settings_data(
        &self,
        req: &UpdateAppSettingsRequest,
        current: &SettingsData,
    ) -> deis_core::Result<SettingsData> {
        let mut next = current.clone();
        if let Some(m) = req.maintenance {
            next.maintenance = m;
        }
        if let Some(r) = req.routable {
            next.routable = r;
        }
        if let Some(autoscale) = &req.autoscale {
            let mut changes = BTreeMap::new();
            for (ptype, spec) in struct_to_json(autoscale) {
                validate::process_type(&ptype)?;
                let value = if spec.is_null() {
                    None
                } else {
                    Some(validate::autoscale(&ptype, &spec)?)
                };
                changes.insert(ptype, value);
            }
            next.autoscale = merge("autoscale", &current.autoscale, changes)?;
        }
        let labels = setting_changes("label", &req.label)?;
        for key in labels.keys() {
            validate::label_key(key)?;
        }
        next.label = merge("label", &current.label, labels)?;
        Ok(next)
    }

    /// Saves a settings revision if it changes anything, and re-applies the
    /// app's desired state when routability or autoscaling changed.
    async fn save_settings(
        &self,
        user: &User,
        app: &App,
        current: &SettingsData,
        next: SettingsData,
    ) -> deis_core::Result<deis_store::AppSettings> {
        if &next == current {
            return Err(Error::conflict(format!("{} changed nothing", user.username)));
        }
        let saved = self.inner.store.save_settings(app, &user.username, &next).await?;
        self.routing_changed();
        if next.routable != current.routable || next.autoscale != current.autoscale {
            self.redeploy_current(app).await?;
        }
        Ok(saved)
    }
}

#[tonic::async_trait]
impl SettingsService for Api {
    async fn get_app_settings(
        &self,
        request: Request<GetAppSettingsRequest>,
    ) -> Result<Response<GetAppSettingsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let app = self.app_for(&user, &request.get_ref().app, Access::Read).await?;
                let settings = self.inner.store.current_settings(&app).await?;
                Ok(GetAppSettingsResponse {
                    settings: Some(convert::settings(&settings)),
                })
            }
            .await,
        )
    }

    async fn update_app_settings(
        &self,
        request: Request<UpdateAppSettingsRequest>,
    ) -> Result<Response<UpdateAppSettingsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                let current = SettingsData::from(&self.inner.store.current_settings(&app).await?);
                let next = self.settings_data(&req, &current).await?;
                let saved = self.save_settings(&user, &app, &current, next).await?;
                Ok(UpdateAppSettingsResponse {
                    settings: Some(convert::settings(&saved)),
                })
            }
            .await,
        )
    }

    async fn list_whitelist(
        &self,
        request: Request<ListWhitelistRequest>,
    ) -> Result<Response<ListWhitelistResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let app = self.app_for(&user, &request.get_ref().app, Access::Read).await?;
                let settings = self.inner.store.current_settings(&app).await?;
                Ok(ListWhitelistResponse {
                    addresses: settings.whitelist,
                })
            }
            .await,
        )
    }

    async fn add_whitelist(
        &self,
        request: Request<AddWhitelistRequest>,
    ) -> Result<Response<AddWhitelistResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                if req.addresses.is_empty() {
                    return Err(Error::invalid("addresses is a required field"));
                }
                for address in &req.addresses {
                    validate::whitelist_address(address)?;
                }
                let current = SettingsData::from(&self.inner.store.current_settings(&app).await?);
                let mut next = current.clone();
                for address in req.addresses {
                    if !next.whitelist.contains(&address) {
                        next.whitelist.push(address);
                    }
                }
                let saved = self.save_settings(&user, &app, &current, next).await?;
                Ok(AddWhitelistResponse {
                    addresses: saved.whitelist,
                })
            }
            .await,
        )
    }

    async fn remove_whitelist(
        &self,
        request: Request<RemoveWhitelistRequest>,
    ) -> Result<Response<RemoveWhitelistResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                if req.addresses.is_empty() {
                    return Err(Error::invalid("addresses is a required field"));
                }
                let current = SettingsData::from(&self.inner.store.current_settings(&app).await?);
                let missing: Vec<&String> = req
                    .addresses
                    .iter()
                    .filter(|a| !current.whitelist.contains(a))
                    .collect();
                if !missing.is_empty() {
                    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    return Err(Error::unprocessable(format!(
                        "addresses {} does not exist in whitelist",
                        list.join(", ")
                    )));
                }
                let mut next = current.clone();
                next.whitelist.retain(|a| !req.addresses.contains(a));
                self.save_settings(&user, &app, &current, next).await?;
                Ok(RemoveWhitelistResponse {})
            }
            .await,
        )
    }

    async fn get_tls(&self, request: Request<GetTlsRequest>) -> Result<Response<GetTlsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let app = self.app_for(&user, &request.get_ref().app, Access::Read).await?;
                let tls = self.inner.store.current_tls(&app).await?;
                Ok(GetTlsResponse {
                    tls: Some(convert::tls(&tls)),
                })
            }
            .await,
        )
    }

    async fn set_tls(&self, request: Request<SetTlsRequest>) -> Result<Response<SetTlsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                let current = self.inner.store.current_tls(&app).await?;
                if current.https_enforced == Some(req.https_enforced) {
                    return Err(Error::conflict(format!("{} changed nothing", user.username)));
                }
                let tls = self
                    .inner
                    .store
                    .save_tls(&app, &user.username, req.https_enforced)
                    .await?;
                self.routing_changed();
                Ok(SetTlsResponse {
                    tls: Some(convert::tls(&tls)),
                })
            }
            .await,
        )
    }
}
