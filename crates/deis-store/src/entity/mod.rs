//! sea-orm entities, one per table. Private to the crate: callers see the
//! record types in `records`, never these.

// The entity derives generate `pub` items; the module itself is private.
#![allow(unreachable_pub)]

pub(crate) mod app;
pub(crate) mod app_perm;
pub(crate) mod app_settings;
pub(crate) mod app_tls;
pub(crate) mod build;
pub(crate) mod certificate;
pub(crate) mod config;
pub(crate) mod domain;
pub(crate) mod drain;
pub(crate) mod release;
pub(crate) mod ssh_key;
pub(crate) mod token;
pub(crate) mod user;
