//! Releases and deploys: the heart of the controller.
//!
//! Every change to an app runs under the app's lock: read the current
//! release, compute the next one, record it (the store assigns the next
//! version in a transaction), then hand it to the scheduler. A deploy that
//! fails marks its release failed; the previous release keeps serving, and
//! "current" always means the newest release that did not fail.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use deis_core::{ConfigChanges, Error, Resource, summary};
use deis_scheduler::{BuildKind, BuildSpec, DeploySpec, ReleaseSpec, RunOutcome, RunSpec, SchedulerError};
use deis_store::{App, Build, BuildSource, Config, ConfigSource, NewBuild, Release, ReleaseState};

use crate::Controller;

/// The default formation of a build (Deis's `_default_structure`).
pub(crate) fn default_structure(build: &Build) -> BTreeMap<String, i32> {
    let kind = BuildKind::classify(&build.sha, &build.dockerfile);
    let mut structure = BTreeMap::new();
    if build.procfile.contains_key("web") {
        structure.insert("web".to_owned(), 1);
    } else if kind != BuildKind::Buildpack {
        structure.insert("cmd".to_owned(), 1);
    } else if build.procfile.is_empty() {
        structure.insert("web".to_owned(), 1);
    }
    structure
}

/// The formation after deploying `build` over `previous` (Deis's rules: a
/// first deploy gets the default formation; a change of build type replaces
/// web/cmd with the new default; types the new Procfile lacks go to zero).
pub(crate) fn next_structure(
    current: &BTreeMap<String, i32>,
    previous: Option<&Build>,
    build: &Build,
) -> BTreeMap<String, i32> {
    let kind = BuildKind::classify(&build.sha, &build.dockerfile);
    let mut structure = current.clone();
    let type_changed = previous.is_some_and(|p| BuildKind::classify(&p.sha, &p.dockerfile) != kind);
    if structure.is_empty() || type_changed {
        structure.remove("web");
        structure.remove("cmd");
        for (ptype, count) in default_structure(build) {
            structure.entry(ptype).or_insert(count);
        }
    }
    if !build.procfile.is_empty() {
        structure.retain(|ptype, _| {
            build.procfile.contains_key(ptype) || (ptype == "cmd" && kind != BuildKind::Buildpack)
        });
    }
    structure
}

/// The process type the router sends traffic to.
pub(crate) fn routable_type(build: &Build, structure: &BTreeMap<String, i32>) -> Option<String> {
    if build.procfile.contains_key("web") || structure.contains_key("web") {
        Some("web".into())
    } else if structure.contains_key("cmd") {
        Some("cmd".into())
    } else {
        None
    }
}

/// The process environment: platform defaults overlaid by the user's config.
pub(crate) fn environment(app: &App, state: &ReleaseState) -> BTreeMap<String, String> {
    let release = &state.release;
    let mut env = BTreeMap::from([
        ("DEIS_APP".to_owned(), app.name.clone()),
        ("WORKFLOW_RELEASE".to_owned(), format!("v{}", release.version)),
        ("WORKFLOW_RELEASE_SUMMARY".to_owned(), release.summary.clone()),
        (
            "WORKFLOW_RELEASE_CREATED_AT".to_owned(),
            release.created.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ]);
    if let Some(build) = state.build.as_ref().filter(|b| !b.sha.is_empty()) {
        env.insert("SOURCE_VERSION".into(), build.sha.clone());
    }
    // User config wins over the defaults, as in Deis.
    env.extend(state.config.data.values.clone());
    env
}

fn release_spec(app: &App, state: &ReleaseState) -> Option<ReleaseSpec> {
    let build = state.build.as_ref()?;
    Some(ReleaseSpec {
        app: app.name.clone(),
        version: state.release.version,
        summary: state.release.summary.clone(),
        created: state.release.created,
        build: BuildSpec {
            uuid: build.uuid.clone(),
            kind: BuildKind::classify(&build.sha, &build.dockerfile),
            image: build.image.clone(),
            sha: build.sha.clone(),
            procfile: build.procfile.clone(),
        },
        config: state.config.data.clone(),
        env: environment(app, state),
    })
}

fn no_build() -> Error {
    Error::invalid("No build associated with this release")
}

impl Controller {
    /// `deis pull`: copies the image into the platform's registry as
    /// `<app>:v<N>` (N the release it is about to become, as Deis tags it)
    /// and returns that reference, which the runtime pulls. Without an
    /// importer the image is recorded as given.
    pub(crate) async fn import_image(&self, app: &App, source: &str) -> deis_core::Result<String> {
        let Some(importer) = self.inner.image_importer.get() else {
            return Ok(source.to_owned());
        };
        let current = self.inner.store.current_state(app).await?;
        let registry = &current.config.data.registry;
        let credentials = registry
            .get("username")
            .zip(registry.get("password"))
            .map(|(user, password)| (user.clone(), password.clone()));
        let tag = format!("v{}", current.release.version + 1);
        importer
            .import(source, credentials, &app.name, &tag)
            .await
            .map_err(Error::invalid)?;
        Ok(format!("{}:{tag}", app.name))
    }

    /// The URL the router answers on for an app.
    pub(crate) fn app_url(&self, app: &str) -> String {
        let c = &self.inner.config;
        let default_port = matches!(
            (c.router_scheme.as_str(), c.router_port),
            ("http", 80) | ("https", 443)
        );
        if default_port {
            format!("{}://{app}.{}", c.router_scheme, c.platform_domain)
        } else {
            format!(
                "{}://{app}.{}:{}",
                c.router_scheme, c.platform_domain, c.router_port
            )
        }
    }

    async fn deploy_spec(
        &self,
        app: &App,
        state: &ReleaseState,
        structure: &BTreeMap<String, i32>,
    ) -> deis_core::Result<Option<DeploySpec>> {
        let (Some(release), Some(build)) = (release_spec(app, state), state.build.as_ref()) else {
            return Ok(None);
        };
        let settings = self.inner.store.current_settings(app).await?;
        // Deis: the app's DEIS_DEPLOY_TIMEOUT (seconds) before the platform's.
        let deploy_timeout = state
            .config
            .data
            .values
            .get("DEIS_DEPLOY_TIMEOUT")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(self.inner.config.deploy_timeout, std::time::Duration::from_secs);
        Ok(Some(DeploySpec {
            release,
            structure: structure.clone(),
            routable_type: if settings.routable {
                routable_type(build, structure)
            } else {
                None
            },
            deploy_timeout,
            autoscale: settings.autoscale.clone(),
        }))
    }

    /// Deploys a freshly recorded release; on failure marks it failed with
    /// `failed_summary` and returns the scheduler's reason.
    async fn deploy_new_release(
        &self,
        app: &App,
        state: &ReleaseState,
        structure: &BTreeMap<String, i32>,
        failed_summary: &str,
    ) -> deis_core::Result<()> {
        let Some(spec) = self.deploy_spec(app, state, structure).await? else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let deployed = self.inner.scheduler.deploy(&spec).await;
        self.inner.metrics.deployed(deployed.is_ok(), started.elapsed());
        match deployed {
            Ok(()) => Ok(()),
            Err(err) => {
                let version = state.release.version;
                tracing::warn!(app = %app.name, version, error = %err, "deploy failed");
                self.inner
                    .store
                    .mark_release_failed(&state.release, failed_summary)
                    .await?;
                self.inner.event(&app.name, &format!("{failed_summary}: {err}"));
                Err(match err {
                    SchedulerError::Unavailable(m) => Error::unavailable(m),
                    other => Error::invalid(format!("There was a problem deploying v{version}: {other}")),
                })
            }
        }
    }

    /// Records a build as a new release and deploys it (`deis pull`, or the
    /// builder after a `git push`).
    pub(crate) async fn publish_build(
        &self,
        username: &str,
        app: &App,
        new: NewBuild,
    ) -> deis_core::Result<(Build, Release)> {
        deis_core::validate::procfile(&new.procfile).map_err(|e| e.on_field("procfile"))?;
        let _guard = self.lock_app(&app.uuid).await;
        let app = self.find_app(&app.name).await?;
        let current = self.inner.store.current_state(&app).await?;
        let text = summary::build_deployed(username, &new.sha, &new.image);
        let state = self
            .inner
            .store
            .create_release(
                &app,
                username,
                ConfigSource::Existing(current.config.uuid.clone()),
                BuildSource::New(new),
                &text,
            )
            .await?;
        let build = state
            .build
            .clone()
            .ok_or_else(|| Error::internal("the new release lost its build"))?;
        let structure = next_structure(&app.structure, current.build.as_ref(), &build);
        let failed = format!(
            "{username} deployed {} which failed",
            build.uuid.get(..7).unwrap_or(&build.uuid)
        );
        self.deploy_new_release(&app, &state, &structure, &failed).await?;
        if structure != app.structure {
            self.inner.store.set_structure(&app, &structure).await?;
        }
        self.inner.event(&app.name, &text);
        Ok((build, state.release))
    }

    /// Applies a config change as a new release, deploying it when the app
    /// has a build.
    pub(crate) async fn change_config(
        &self,
        username: &str,
        app: &App,
        changes: &ConfigChanges,
    ) -> deis_core::Result<(Config, Release)> {
        let _guard = self.lock_app(&app.uuid).await;
        let app = self.find_app(&app.name).await?;
        let current = self.inner.store.current_state(&app).await?;
        let next = current.config.data.apply(changes)?;
        if next.tags != current.config.data.tags && !next.tags.is_empty() {
            self.inner.scheduler.check_tags(&next.tags).await?;
        }
        let Some(text) = summary::config_change(username, &current.config.data, &next) else {
            return Err(Error::conflict(summary::changed_nothing(username)));
        };
        let build = BuildSource::Existing(current.build.as_ref().map(|b| b.uuid.clone()));
        let state = self
            .inner
            .store
            .create_release(&app, username, ConfigSource::New(next), build, &text)
            .await?;
        let failed = format!("{username} deployed a config that failed");
        self.deploy_new_release(&app, &state, &app.structure, &failed)
            .await?;
        self.inner.event(&app.name, &text);
        Ok((state.config, state.release))
    }

    /// Rolls back to `target` (default: the release before the current one)
    /// by making a new release with its build and config.
    pub(crate) async fn rollback(
        &self,
        username: &str,
        app: &App,
        target: Option<i32>,
    ) -> deis_core::Result<i32> {
        let _guard = self.lock_app(&app.uuid).await;
        let app = self.find_app(&app.name).await?;
        let current = self.inner.store.current_state(&app).await?;
        let version = target.unwrap_or(current.release.version - 1);
        if version < 1 {
            return Err(Error::invalid("version cannot be below 0"));
        }
        if version == 1 {
            return Err(Error::invalid("Cannot roll back to initial release."));
        }
        let prev = self
            .inner
            .store
            .release_state(&app, version)
            .await?
            .ok_or_else(|| Error::no_such(Resource::Release, format_args!("v{version}")))?;
        if prev.release.failed {
            return Err(Error::invalid("Cannot roll back to failed release."));
        }
        let text = summary::rolled_back(username, version);
        let state = self
            .inner
            .store
            .create_release(
                &app,
                username,
                ConfigSource::Existing(prev.config.uuid.clone()),
                BuildSource::Existing(prev.build.as_ref().map(|b| b.uuid.clone())),
                &text,
            )
            .await?;
        if current.build.is_some() {
            let failed = format!("{username} performed roll back to a release that failed");
            self.deploy_new_release(&app, &state, &app.structure, &failed)
                .await?;
        }
        self.inner.event(&app.name, &text);
        Ok(state.release.version)
    }

    /// Changes process counts without a new release.
    pub(crate) async fn scale(
        &self,
        username: &str,
        app: &App,
        counts: &BTreeMap<String, i32>,
    ) -> deis_core::Result<()> {
        let _guard = self.lock_app(&app.uuid).await;
        let app = self.find_app(&app.name).await?;
        let current = self.inner.store.current_state(&app).await?;
        let build = current.build.as_ref().ok_or_else(no_build)?;
        let kind = BuildKind::classify(&build.sha, &build.dockerfile);
        for ptype in counts.keys() {
            deis_core::validate::process_type(ptype)?;
            let allowed =
                build.procfile.contains_key(ptype) || (ptype == "cmd" && kind != BuildKind::Buildpack);
            if !allowed {
                return Err(Error::not_found(format!(
                    "Container type {ptype} does not exist in application"
                )));
            }
        }
        let mut structure = app.structure.clone();
        structure.extend(counts.clone());
        let spec = self
            .deploy_spec(&app, &current, &structure)
            .await?
            .ok_or_else(no_build)?;
        // The formation is saved only once the scheduler has applied it, so a
        // failure leaves the previous formation recorded (Deis reverts too).
        self.inner.scheduler.scale(&spec).await?;
        self.inner.store.set_structure(&app, &structure).await?;
        let described: Vec<String> = counts.iter().map(|(t, n)| format!("{t}={n}")).collect();
        self.inner.event(
            &app.name,
            &format!("{username} scaled pods {}", described.join(" ")),
        );
        Ok(())
    }

    /// What a one-off command in the current release runs, once the event
    /// is logged; shared by unary and attached runs.
    pub(crate) async fn run_spec(
        &self,
        username: &str,
        app: &App,
        command: &str,
    ) -> deis_core::Result<RunSpec> {
        let current = self.inner.store.current_state(app).await?;
        let release = release_spec(app, &current)
            .ok_or_else(|| Error::invalid("No build associated with this release to run this command"))?;
        self.inner
            .event(&app.name, &format!("{username} runs '{command}'"));
        Ok(RunSpec {
            release,
            command: command.to_owned(),
            timeout: self.inner.config.run_timeout,
        })
    }

    /// Runs a one-off command in the current release.
    pub(crate) async fn run_command(
        &self,
        username: &str,
        app: &App,
        command: &str,
    ) -> deis_core::Result<RunOutcome> {
        let spec = self.run_spec(username, app, command).await?;
        Ok(self.inner.scheduler.run(&spec).await?)
    }

    /// Re-applies the current settings-dependent state (routing) of an app
    /// whose settings changed, when it has a build.
    pub(crate) async fn redeploy_current(&self, app: &App) -> deis_core::Result<()> {
        let _guard = self.lock_app(&app.uuid).await;
        let app = self.find_app(&app.name).await?;
        if let Some(spec) = self.current_spec(&app).await? {
            self.inner.scheduler.deploy(&spec).await?;
        }
        Ok(())
    }

    /// What the app should be running now, if it has a build.
    async fn current_spec(&self, app: &App) -> deis_core::Result<Option<DeploySpec>> {
        let current = self.inner.store.current_state(app).await?;
        self.deploy_spec(app, &current, &app.structure).await
    }
}

/// Re-applies the desired state of every app with a build that does not
/// run as specified.
pub(crate) async fn converge_all(controller: &Controller) {
    let apps = match controller.inner.store.list_all_apps().await {
        Ok(apps) => apps,
        Err(err) => {
            tracing::error!(error = %err, "cannot list apps to converge");
            return;
        }
    };
    // One question to the scheduler for all apps (on Kubernetes a few list
    // requests, instead of several reads per app); the answer is read
    // without the apps' locks, so a stale app is redeployed under its lock
    // from its state then, and one deployed meanwhile is up to date anyway.
    let mut with_build = Vec::new();
    let mut specs = Vec::new();
    for app in apps {
        match controller.current_spec(&app).await {
            Ok(Some(spec)) => {
                with_build.push(app);
                specs.push(spec);
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(app = %app.name, error = %err, "cannot read the app's desired state"),
        }
    }
    let stale = controller
        .inner
        .scheduler
        .out_of_date(&specs)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot compare the apps with what runs; re-applying all of them");
            (0..specs.len()).collect()
        });
    for app in stale.into_iter().filter_map(|i| with_build.get(i)) {
        if let Err(err) = controller.redeploy_current(app).await {
            tracing::warn!(app = %app.name, error = %err, "could not restore the app's processes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn build(sha: &str, dockerfile: &str, procfile: &[(&str, &str)]) -> Build {
        Build {
            uuid: "b".into(),
            app: "a".into(),
            owner: "o".into(),
            image: "img".into(),
            sha: sha.into(),
            procfile: procfile
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dockerfile: dockerfile.into(),
            created: Utc::now(),
            updated: Utc::now(),
        }
    }

    fn s(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn default_structures_follow_deis() {
        assert_eq!(
            default_structure(&build("abc", "", &[("web", "x")])),
            s(&[("web", 1)])
        );
        assert_eq!(default_structure(&build("", "", &[])), s(&[("cmd", 1)]));
        assert_eq!(default_structure(&build("abc", "true", &[])), s(&[("cmd", 1)]));
        assert_eq!(default_structure(&build("abc", "", &[("worker", "x")])), s(&[]));
        assert_eq!(default_structure(&build("abc", "", &[])), s(&[("web", 1)]));
    }

    #[test]
    fn next_structure_keeps_scale_and_drops_missing_types() {
        let prev = build("abc", "", &[("web", "x"), ("worker", "y")]);
        let next = build("def", "", &[("web", "x")]);
        assert_eq!(
            next_structure(&s(&[("web", 3), ("worker", 2)]), Some(&prev), &next),
            s(&[("web", 3)])
        );
        // buildpack → image: web goes, cmd arrives
        let image = build("", "", &[]);
        assert_eq!(
            next_structure(&s(&[("web", 3)]), Some(&prev), &image),
            s(&[("cmd", 1)])
        );
    }
}
