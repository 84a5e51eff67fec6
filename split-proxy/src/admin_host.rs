//! Hosting the Admin API (split-admin) on its own listener, and the store subcommands
//! (`dump`, `load`, `status`).

use std::sync::Arc;

use http::header::SERVER;
use http::StatusCode;
use split_admin::{Admin, AdminOptions};
use split_core::admin_auth::AdminAuth;
use split_core::config::standalone::{parse, render_yaml};
use split_core::request::normalize_ip;

use crate::body::ProxyBody;
use crate::cli::{Command, Global};
use crate::headers::server_value;
use crate::live::{empty_snapshot, new_live, Live};
use crate::reply;
use crate::server::Handler;
use crate::settings::{Fatal, Settings, Source};

/// Opens the config store for `settings` and publishes its content into `live`: the
/// embedded store, or a read-only Admin API over the standalone file.
pub fn open(settings: &Settings, live: &Live) -> Result<Admin, Fatal> {
    match &settings.source {
        Source::Embedded => {
            let opts = AdminOptions {
                auth: settings.auth.clone(),
                read_only: None,
            };
            Admin::open_embedded(&settings.data_dir, Arc::clone(live), opts).map_err(|e| {
                Fatal::new(
                    settings
                        .data_dir
                        .join(split_admin::DB_FILE)
                        .display()
                        .to_string(),
                    e.to_string(),
                )
            })
        }
        Source::Standalone(path) => {
            let opts = AdminOptions {
                auth: settings.auth.clone(),
                read_only: Some(format!(
                    "the Admin API is read-only: configuration comes from the standalone file {}",
                    path.display()
                )),
            };
            Ok(Admin::read_only(Arc::clone(live), opts))
        }
        Source::Etcd(etcd) => crate::etcd::open(etcd, settings, live),
    }
}

/// The Admin API listener's handler: `/apisix/admin/routes/{id}/guard` is the canary
/// guardrail's view, other `/apisix/admin...` paths go to split-admin, anything else is a
/// 404; every response gets the `Server` header.
pub fn handler(admin: Admin, llm: Arc<crate::llm_state::LlmState>) -> Handler {
    Arc::new(move |req, peer| {
        let admin = admin.clone();
        let llm = Arc::clone(&llm);
        Box::pin(async move {
            if !req.uri().path().starts_with("/apisix/admin") {
                return reply::error(StatusCode::NOT_FOUND, "404 Route Not Found");
            }
            if let Some(id) = crate::guard_admin::route_of(req.uri().path()) {
                let id = id.to_owned();
                let auth = admin.auth();
                let mut res =
                    crate::guard_admin::handle(&req, normalize_ip(peer.ip()), &auth, &id, &llm);
                res.headers_mut().insert(SERVER, server_value());
                return res;
            }
            let res = admin.handle(req, normalize_ip(peer.ip())).await;
            let (mut parts, body) = res.into_parts();
            parts.headers.insert(SERVER, server_value());
            http::Response::from_parts(parts, crate::body::stream(body) as ProxyBody)
        })
    })
}

/// `dump`, `load FILE`, `status` against the embedded store (the gateway must not be
/// running on the same data dir: the store is single-process).
pub fn store_command(global: &Global, command: &Command) -> Result<(), Fatal> {
    let live = new_live(empty_snapshot());
    let opts = AdminOptions {
        auth: AdminAuth {
            keys: Vec::new(),
            required: false,
            allow: Vec::new(),
        },
        read_only: None,
    };
    let store = global.data_dir.join(split_admin::DB_FILE);
    let shown = store.display().to_string();
    let admin = Admin::open_embedded(&global.data_dir, Arc::clone(&live), opts)
        .map_err(|e| Fatal::new(&shown, e.to_string()))?;
    match command {
        Command::Dump => print!("{}", render_yaml(&admin.export())),
        Command::Load { file } => {
            let file_shown = file.display().to_string();
            let text = std::fs::read_to_string(file)
                .map_err(|e| Fatal::new(&file_shown, e.to_string()))?;
            let set = parse(&text, crate::standalone::format_of(file))
                .map_err(|e| Fatal::new(&file_shown, e.to_string()))?;
            admin
                .import(set)
                .map_err(|e| Fatal::new(&file_shown, e.to_string()))?;
            println!(
                "loaded {file_shown} into {shown}: revision {}, {} routes",
                admin.revision(),
                live.load().routes.len()
            );
        }
        Command::Status => {
            let snapshot = live.load();
            println!("store: {shown}");
            println!("revision: {}", admin.revision());
            println!("routes: {}", snapshot.routes.len());
            println!("upstreams: {}", snapshot.upstreams.len());
            let rules: usize = snapshot.routes.iter().map(|r| r.rules.len()).sum();
            println!("split rules: {rules}");
        }
        Command::Serve | Command::Validate { .. } => {}
    }
    Ok(())
}
