//! Hosting the Admin API (split-admin) on its own listener.

use std::sync::Arc;

use split_core::admin_auth::AdminAuth;

use crate::live::Live;
use crate::reply;
use crate::server::Handler;
use crate::settings::Settings;

/// The hosted Admin API.
#[derive(Clone)]
pub struct AdminHandle {
    auth: Arc<std::sync::Mutex<AdminAuth>>,
}

impl AdminHandle {
    /// Replaces the auth policy.
    pub fn set_auth(&self, auth: AdminAuth) {
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = auth;
    }
}

/// Opens the Admin API for `settings` (publishing the stored config into `live`).
pub fn start(settings: &Settings, live: &Live) -> Result<Option<AdminHandle>, String> {
    let _ = live;
    Ok(settings.admin_listen.map(|_| AdminHandle {
        auth: Arc::new(std::sync::Mutex::new(settings.auth.clone())),
    }))
}

/// The Admin API request handler.
pub fn handler(admin: AdminHandle) -> Handler {
    Arc::new(move |_req, _peer| {
        let _ = &admin;
        Box::pin(async move {
            reply::error(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "the Admin API is not available in this build",
            )
        })
    })
}

/// `dump`, `load FILE`, `status` against the embedded store.
pub fn store_command(
    global: &crate::cli::Global,
    command: &crate::cli::Command,
) -> Result<(), crate::settings::Fatal> {
    let _ = command;
    Err(crate::settings::Fatal::new(
        global.data_dir.display().to_string(),
        "the embedded store is not available in this build",
    ))
}
