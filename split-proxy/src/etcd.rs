//! Opening the etcd store (`deployment.etcd`), or the clear refusal of a build without
//! the `etcd` feature.

use split_admin::Admin;
use split_core::config::gateway::EtcdSettings;

use crate::live::Live;
use crate::settings::{Fatal, Settings};

/// The Admin API over etcd; nothing is read until `Admin::spawn_sync` runs.
#[cfg(feature = "etcd")]
pub fn open(etcd: &EtcdSettings, settings: &Settings, live: &Live) -> Result<Admin, Fatal> {
    let opts = split_admin::AdminOptions {
        auth: settings.auth.clone(),
        read_only: None,
    };
    Admin::open_etcd(etcd, std::sync::Arc::clone(live), opts)
        .map_err(|e| Fatal::new("deployment.etcd", e.to_string()))
}

/// Without the feature: exit 64 saying how to build it.
#[cfg(not(feature = "etcd"))]
pub fn open(_etcd: &EtcdSettings, _settings: &Settings, _live: &Live) -> Result<Admin, Fatal> {
    Err(Fatal::new(
        "deployment.etcd",
        "this split-proxy was built without etcd support; build it with \
         `cargo build --release --features etcd` (needs protoc: apt-get install protobuf-compiler)",
    ))
}
