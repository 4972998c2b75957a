//! The store on SQLite and, when `DEIS_TEST_DATABASE_URL` is set, PostgreSQL:
//! the same tests for both backends.

use deis_core::ConfigData;
use deis_store::{BuildSource, ConfigSource, NewBuild, NewUser, PageRequest, Store, StoreError};
use deis_testkit::test_store;

fn user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        first_name: String::new(),
        last_name: String::new(),
        password_hash: "$argon2id$not-used".into(),
    }
}

const ALL: PageRequest = PageRequest {
    limit: 1000,
    offset: 0,
};

#[tokio::test]
async fn first_user_is_admin_and_names_are_unique() {
    let (store, guard) = test_store().await;
    let first = store.create_user(user("first")).await.unwrap();
    let second = store.create_user(user("second")).await.unwrap();
    assert!(first.is_superuser && !second.is_superuser, "{}", guard.backend);
    assert!(matches!(
        store.create_user(user("first")).await,
        Err(StoreError::Duplicate(_))
    ));
}

#[tokio::test]
async fn concurrent_releases_get_consecutive_versions() {
    let (store, guard) = test_store().await;
    let owner = store.create_user(user("owner")).await.unwrap();
    let app = store
        .create_app("race", &owner, "owner created initial release")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store: Store = store.clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut data = ConfigData::default();
            data.values.insert(format!("K{i}"), "v".into());
            store
                .create_release(
                    &app,
                    "owner",
                    ConfigSource::New(data),
                    BuildSource::Existing(None),
                    "change",
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let page = store.list_releases(&app, ALL).await.unwrap();
    let mut versions: Vec<i32> = page.items.iter().map(|r| r.version).collect();
    versions.sort();
    assert_eq!(versions, (1..=51).collect::<Vec<_>>(), "{}", guard.backend);
}

#[tokio::test]
async fn release_state_round_trips_config_and_build() {
    let (store, _guard) = test_store().await;
    let owner = store.create_user(user("owner")).await.unwrap();
    let app = store.create_app("state", &owner, "init").await.unwrap();
    let mut data = ConfigData::default();
    data.values.insert("MULTI".into(), "line one\nline two ✓".into());
    data.memory.insert("web".into(), "512M".into());
    data.healthcheck.insert(
        "web".into(),
        serde_json::json!({"livenessProbe": {"tcpSocket": {"port": 5000}}}),
    );
    let build = NewBuild {
        image: "home/state:git-abc/push/slug.tgz".into(),
        sha: "abc".into(),
        procfile: [("web".to_string(), "python app.py".to_string())].into(),
        dockerfile: String::new(),
    };
    let made = store
        .create_release(
            &app,
            "owner",
            ConfigSource::New(data.clone()),
            BuildSource::New(build),
            "deployed",
        )
        .await
        .unwrap();
    let current = store.current_state(&app).await.unwrap();
    assert_eq!(current, made);
    assert_eq!(current.config.data, data);
    assert_eq!(current.build.as_ref().unwrap().procfile["web"], "python app.py");
    store.mark_release_failed(&made.release, "failed").await.unwrap();
    assert_eq!(
        store.current_state(&app).await.unwrap().release.version,
        1,
        "failed releases are not current"
    );
    assert_eq!(store.latest_release(&app).await.unwrap().version, 2);
}

#[tokio::test]
async fn deleting_an_app_removes_everything_it_owns() {
    let (store, _guard) = test_store().await;
    let owner = store.create_user(user("owner")).await.unwrap();
    let friend = store.create_user(user("friend")).await.unwrap();
    let app = store.create_app("doomed", &owner, "init").await.unwrap();
    store.add_collaborator(&app, &friend).await.unwrap();
    store
        .add_domain(&app, "owner", "doomed.example.com")
        .await
        .unwrap();
    store
        .create_release(
            &app,
            "owner",
            ConfigSource::New(ConfigData::default()),
            BuildSource::New(NewBuild::default()),
            "b",
        )
        .await
        .unwrap();
    assert!(
        matches!(store.delete_user(&owner).await, Err(StoreError::Conflict(_))),
        "owners of apps cannot leave"
    );
    store.delete_app(&app).await.unwrap();
    assert!(store.find_app("doomed").await.unwrap().is_none());
    assert!(
        store
            .domain_owner_app("doomed.example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_apps(&friend, false, ALL).await.unwrap().count, 0);
    store.delete_user(&owner).await.unwrap();
}

#[tokio::test]
async fn app_listing_covers_owned_and_shared_apps() {
    let (store, _guard) = test_store().await;
    let admin = store.create_user(user("admin")).await.unwrap();
    let alice = store.create_user(user("alice")).await.unwrap();
    let bob = store.create_user(user("bob")).await.unwrap();
    for name in ["a1", "a2", "a3"] {
        store.create_app(name, &alice, "init").await.unwrap();
    }
    let b1 = store.create_app("b1", &bob, "init").await.unwrap();
    store.add_collaborator(&b1, &alice).await.unwrap();
    let names =
        |p: deis_store::Page<deis_store::App>| p.items.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_apps(&alice, false, ALL).await.unwrap()),
        ["a1", "a2", "a3", "b1"]
    );
    assert_eq!(names(store.list_apps(&bob, false, ALL).await.unwrap()), ["b1"]);
    let page = store
        .list_apps(&admin, true, PageRequest { limit: 2, offset: 1 })
        .await
        .unwrap();
    assert_eq!(page.count, 4);
    assert_eq!(names(page), ["a2", "a3"]);
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_normal_sync() {
    let (store, _guard) = test_store().await;
    if let Some((journal, synchronous)) = store.sqlite_pragmas().await.unwrap() {
        assert_eq!(journal, "wal");
        assert_eq!(synchronous, 1, "NORMAL");
    }
}
