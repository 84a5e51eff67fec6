//! # split-admin
//!
//! The APISIX v3 compatible Admin API of the `split` gateway, as a library: the binary
//! (`split-proxy`) hosts [`Admin::handle`] on its admin listener.
//!
//! - Every write is validated by split-core (`validate_object`, then
//!   `Snapshot::compile` of the whole candidate set) before it is stored; a rejected
//!   write changes nothing.
//! - The embedded store is a redb database (`data_dir/split.redb`); every acknowledged
//!   write is committed durably before the response, then the compiled snapshot is
//!   published into [`Live`] so the proxy serves it on its next request.
//! - In read-only mode (standalone file) GETs read the live snapshot's source set
//!   (`createdIndex`/`modifiedIndex` are then 0) and writes get 405.
//!
//! Deliberate differences from APISIX:
//! - An `allow_admin` miss is 403 `{"error_msg":"403 Forbidden"}` (JSON), where APISIX's
//!   nginx sends an HTML page.
//! - A forced delete (`?force=true`) of a referenced object leaves the referencing
//!   objects in the store but out of the live snapshot (their requests find no route)
//!   until fixed; APISIX keeps serving them and fails each request with 5xx.
//! - An invalid regex in the `name`/`uri` list filters is 400, not an empty list.
//! - `?ttl=` on writes is refused with 400 (keys never expire).
//! - `PUT plugins/reload` answers "done" without doing anything: plugins are compiled in.

#![warn(missing_docs)]

mod body;
mod catalog;
mod compile;
mod embedded;
mod error;
mod patch;
mod query;
mod read;
mod references;
mod reply;
mod resource;
mod schema;
mod store;
mod target;
mod write;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use split_core::admin_auth::{extract_token, AdminAuth, AuthDecision};
use split_core::snapshot::{validate_object, ConfigSet};

pub use body::MAX_BODY;
pub use error::AdminError;
pub use split_core::snapshot::Snapshot;
pub use store::DB_FILE;

use catalog::Catalog;
use embedded::{read_only_reply, Embedded, View};
use query::Query;
use reply::Reply;
use resource::Resource;
use target::Target;

/// Shared live snapshot: the admin publishes a new compiled `Arc<Snapshot>` after every
/// successful write; the proxy does `live.load()` per request.
pub type Live = Arc<ArcSwap<Snapshot>>;

/// How an [`Admin`] behaves.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Who may use the Admin API.
    pub auth: AdminAuth,
    /// `Some(msg)`: read-only (standalone file is the source of truth) → writes get 405
    /// `{"error_msg": msg}`.
    pub read_only: Option<String>,
}

/// The Admin API service. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("embedded", &self.inner.embedded)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

struct Inner {
    live: Live,
    auth: ArcSwap<AdminAuth>,
    read_only: Option<String>,
    embedded: Option<Arc<Embedded>>,
}

impl Admin {
    /// Opens (creating if needed) the embedded redb store at `data_dir/split.redb`,
    /// compiles what it holds and publishes it into `live` before returning.
    pub fn open_embedded(
        data_dir: &Path,
        live: Live,
        opts: AdminOptions,
    ) -> Result<Admin, AdminError> {
        let embedded = Embedded::open(data_dir, live.clone())?;
        Ok(Admin {
            inner: Arc::new(Inner {
                live,
                auth: ArcSwap::from_pointee(opts.auth),
                read_only: opts.read_only,
                embedded: Some(Arc::new(embedded)),
            }),
        })
    }

    /// An Admin API over config managed elsewhere (standalone file): GETs read
    /// `live.load().source`; writes → 405 with `opts.read_only` message (or a default
    /// one when `None`).
    pub fn read_only(live: Live, opts: AdminOptions) -> Admin {
        let msg = opts.read_only.unwrap_or_else(|| {
            "the Admin API is read-only: configuration is managed by a standalone file".into()
        });
        Admin {
            inner: Arc::new(Inner {
                live,
                auth: ArcSwap::from_pointee(opts.auth),
                read_only: Some(msg),
                embedded: None,
            }),
        }
    }

    /// Replaces the auth policy (SIGHUP reload of config.yaml).
    pub fn set_auth(&self, auth: AdminAuth) {
        self.inner.auth.store(Arc::new(auth));
    }

    /// Whole store (for `split-proxy dump`); in read-only mode, the live source set.
    pub fn export(&self) -> ConfigSet {
        match &self.inner.embedded {
            Some(e) => e.view().catalog.config_set(),
            None => (*self.inner.live.load().source).clone(),
        }
    }

    /// Validates and applies a whole set atomically, replacing everything (for
    /// `split-proxy load`). Read-only mode → [`AdminError::ReadOnly`].
    pub fn import(&self, set: ConfigSet) -> Result<(), AdminError> {
        match (&self.inner.embedded, &self.inner.read_only) {
            (Some(e), None) => e.import(set),
            (_, Some(msg)) => Err(AdminError::ReadOnly(msg.clone())),
            (None, None) => Err(AdminError::ReadOnly("no store".into())),
        }
    }

    /// Current store revision (0 in read-only mode).
    pub fn revision(&self) -> u64 {
        self.inner
            .embedded
            .as_ref()
            .map_or(0, |e| e.view().catalog.revision)
    }

    /// Serves one Admin API request (path starts with `/apisix/admin`). Enforces the
    /// 1.5 MiB body limit itself. `remote` is the client IP (for allow_admin + logging).
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
        remote: IpAddr,
    ) -> http::Response<Full<Bytes>>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::fmt::Display,
    {
        self.serve(req, remote).await.into_response()
    }

    async fn serve<B>(&self, req: http::Request<B>, remote: IpAddr) -> Reply
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let target = Target::parse(path);
        let method = &parts.method;
        if target == Target::NotFound && !path.starts_with(target::PREFIX) {
            return Reply::not_found();
        }
        let auth = self.inner.auth.load_full();
        if target == Target::Root && method == Method::HEAD {
            // The liveness probe needs no key, but allow_admin still applies.
            return match auth.check(remote, None, method) {
                AuthDecision::Forbidden => forbidden(remote, method, path),
                _ => Reply::empty(StatusCode::OK),
            };
        }
        let token = extract_token(parts.uri.query(), &parts.headers);
        match auth.check(remote, token.as_deref(), method) {
            AuthDecision::Allowed(_) => {}
            AuthDecision::Forbidden => return forbidden(remote, method, path),
            AuthDecision::Unauthorized(description) => {
                tracing::warn!(
                    client = %remote, %method, path, reason = description,
                    "admin request refused: failed to check token"
                );
                return Reply::json(
                    StatusCode::UNAUTHORIZED,
                    json!({"error_msg": "failed to check token", "description": description}),
                );
            }
        }
        drop(token);
        let query = Query::parse(parts.uri.query());
        let has_body = matches!(*method, Method::PUT | Method::POST | Method::PATCH);
        let body = if has_body {
            match body::read_limited(body, MAX_BODY).await {
                Ok(b) => b,
                Err(e) => {
                    return Reply::bad_request(format!("invalid request body: {e}"));
                }
            }
        } else {
            Bytes::new()
        };
        self.dispatch(target, method, &query, &body).await
    }

    async fn dispatch(
        &self,
        target: Target<'_>,
        method: &Method,
        query: &Query,
        body: &Bytes,
    ) -> Reply {
        match target {
            Target::NotFound => Reply::not_found(),
            Target::Unsupported(res) => Reply::error(
                StatusCode::NOT_FOUND,
                format!("Unsupported resource type: {res}"),
            ),
            Target::Root => Reply::not_found(),
            Target::PluginsList if method == Method::GET => {
                Reply::json(StatusCode::OK, json!(schema::plugin_names()))
            }
            Target::Plugins if method == Method::GET => {
                let all: serde_json::Map<String, Value> = schema::plugin_names()
                    .into_iter()
                    .filter_map(|n| schema::plugin_schema(n).map(|s| (n.to_owned(), s)))
                    .collect();
                Reply::json(StatusCode::OK, Value::Object(all))
            }
            // Plugins are compiled in; there is nothing to reload (APISIX answers "done").
            Target::Plugin("reload") if method == Method::PUT => {
                Reply::json(StatusCode::OK, json!("done"))
            }
            Target::Plugin(name) | Target::SchemaPlugin(name) if method == Method::GET => {
                match schema::plugin_schema(name) {
                    Some(s) => Reply::json(StatusCode::OK, s),
                    None => Reply::bad_request("plugin not found in subsystem http"),
                }
            }
            Target::Schema(res) if method == Method::GET => match schema::resource_schema(res) {
                Some(s) => Reply::json(StatusCode::OK, s),
                None => Reply::bad_request(format!("unsupported resource type: {res}")),
            },
            Target::SchemaValidate(res) if method == Method::POST => validate_only(res, body),
            Target::OpenApi if method == Method::GET => {
                Reply::json(StatusCode::OK, schema::openapi())
            }
            Target::Resource { res, id, sub } => {
                self.resource(res, id, &sub, method, query, body).await
            }
            _ => Reply::not_found(),
        }
    }

    fn view(&self) -> Arc<View> {
        match &self.inner.embedded {
            Some(e) => e.view(),
            None => Arc::new(View {
                catalog: Catalog::from_set(&self.inner.live.load().source, 0),
                broken: Default::default(),
            }),
        }
    }

    async fn resource(
        &self,
        res: Resource,
        id: Option<&str>,
        sub: &str,
        method: &Method,
        query: &Query,
        body: &Bytes,
    ) -> Reply {
        let is_write = matches!(
            *method,
            Method::PUT | Method::POST | Method::PATCH | Method::DELETE
        );
        if *method == Method::GET {
            let view = self.view();
            return match id {
                Some(id) => read::get_one(&view.catalog, res, id),
                None => read::list(&view.catalog, res, query),
            };
        }
        if !is_write {
            return Reply::not_found();
        }
        if res.refuses(method) {
            return Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("not supported `{method}` method for {}", res.label),
            );
        }
        if let Some(msg) = &self.inner.read_only {
            return read_only_reply(msg);
        }
        let Some(embedded) = self.inner.embedded.clone() else {
            return read_only_reply("no store");
        };
        if query.get("ttl").is_some() {
            // Keys that silently vanish would surprise a gateway's operator; refuse clearly.
            return Reply::bad_request(
                "invalid argument ttl: split does not support expiring keys",
            );
        }
        let conf = if *method == Method::DELETE {
            None
        } else {
            match write::parse_body(body) {
                Ok(c) => c,
                Err(r) => return r,
            }
        };
        let planner = match *method {
            Method::PUT => write::put(res, id, conf),
            Method::POST => write::post(res, id, conf),
            Method::PATCH => write::patch(res, id, sub, conf),
            _ => write::delete(res, id, query.get("force") == Some("true")),
        };
        let planner = match planner {
            Ok(p) => p,
            Err(r) => return r,
        };
        // redb commits fsync; keep that off the async worker threads.
        let joined = tokio::task::spawn_blocking(move || embedded.write(planner)).await;
        match joined {
            Ok(Ok((view, outcome))) => {
                tracing::info!(
                    %method,
                    key = %res.api_key(id.unwrap_or("")),
                    revision = view.catalog.revision,
                    status = outcome.status.as_u16(),
                    "admin write committed"
                );
                outcome
            }
            Ok(Err(reply)) => reply,
            Err(e) => {
                tracing::error!(error = %e, "admin write task failed");
                Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error while writing",
                )
            }
        }
    }
}

fn forbidden(remote: IpAddr, method: &Method, path: &str) -> Reply {
    tracing::warn!(client = %remote, %method, path, "admin request refused: address not in allow_admin");
    Reply::error(StatusCode::FORBIDDEN, "403 Forbidden")
}

/// `POST schema/validate/{res}`: schema check of one object, nothing stored.
fn validate_only(res: &str, body: &Bytes) -> Reply {
    let Some(kind) = split_core::config::ResourceKind::parse(res) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            format!("Unsupported resource type: {res}"),
        );
    };
    let conf = match write::parse_body(body) {
        Ok(Some(c)) => c,
        Ok(None) => return Reply::bad_request("missing configurations"),
        Err(r) => return r,
    };
    let id = conf
        .get("id")
        .and_then(resource::id_of)
        .or_else(|| {
            conf.get("username")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match validate_object(kind, &id, &conf) {
        Ok(()) => Reply::json(StatusCode::OK, json!({})),
        Err(e) => Reply::invalid(e),
    }
}
