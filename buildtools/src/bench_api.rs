//! `buildtools/bench api`: controller API latency on the current backend
//! (SQLite, or PostgreSQL when `DEIS_TEST_DATABASE_URL` is set).
//!
//! - `config:set` latency over 1,000 sequential calls (each makes a release);
//! - `apps:list` latency with 10,000 apps: the default page (100 apps and the
//!   count) and the whole list in one page.

use std::collections::HashMap;

use anyhow::Result;
use deis_proto::v2 as pb;
use deis_testkit::{TestPlatform, authed};
use prost_types::value::Kind;

use crate::Samples;

pub(crate) async fn run() -> Result<()> {
    let platform = TestPlatform::start().await;
    let token = platform.register("bench").await;
    let mut c = platform.clients().await;
    c.apps
        .create_app(authed(&token, pb::CreateAppRequest { id: "bench".into() }))
        .await?;

    // Warm up connections and caches.
    for i in 0..50 {
        set(&mut c, &token, "WARM", &i.to_string()).await?;
    }
    let mut config_set = Samples::new();
    for i in 0..1000 {
        config_set
            .time(set(&mut c, &token, &format!("KEY{}", i % 10), &i.to_string()))
            .await?;
    }
    println!(
        "[{}] config:set          {}",
        platform.backend,
        config_set.summary()
    );

    let owner = platform.store.find_user("bench").await?.expect("bench user");
    let started = std::time::Instant::now();
    for i in 0..10_000 {
        platform
            .store
            .create_app(&format!("app-{i:05}"), &owner, "bench created initial release")
            .await?;
    }
    println!(
        "[{}] (setup: 10,000 apps in {:.1}s)",
        platform.backend,
        started.elapsed().as_secs_f64()
    );

    for (label, limit) in [("apps:list (page of 100)", 0), ("apps:list (all 10,001)", 10_000)] {
        let mut samples = Samples::new();
        for _ in 0..5 {
            list(&mut c, &token, limit).await?;
        }
        for _ in 0..50 {
            samples.time(list(&mut c, &token, limit)).await?;
        }
        println!("[{}] {label:<24} {}", platform.backend, samples.summary());
    }
    Ok(())
}

async fn set(c: &mut deis_testkit::Clients, token: &str, key: &str, value: &str) -> Result<()> {
    let value = prost_types::Value {
        kind: Some(Kind::StringValue(value.into())),
    };
    let req = pb::SetConfigRequest {
        app: "bench".into(),
        values: HashMap::from([(key.to_owned(), value)]),
        ..Default::default()
    };
    c.config.set_config(authed(token, req)).await?;
    Ok(())
}

async fn list(c: &mut deis_testkit::Clients, token: &str, limit: i32) -> Result<usize> {
    let page = c
        .apps
        .list_apps(authed(token, pb::ListAppsRequest { limit, offset: 0 }))
        .await?
        .into_inner();
    Ok(page.results.len())
}
