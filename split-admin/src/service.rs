//! Serving one Admin API request: prefix and auth checks, bounded body read, dispatch to
//! the resource handlers and the self-description endpoints.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use split_core::admin_auth::{extract_token, AuthDecision};
use split_core::snapshot::validate_object;

use crate::backend::Backend;
use crate::body::{self, MAX_BODY};
use crate::catalog::Catalog;
use crate::embedded::{read_only_reply, View};
use crate::query::Query;
use crate::reply::Reply;
use crate::resource::{self, Resource};
use crate::target::{self, Target};
use crate::{openapi, read, schema, write, Admin};

impl Admin {
    pub(crate) async fn serve<B>(&self, req: http::Request<B>, remote: IpAddr) -> Reply
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let target = Target::parse(path);
        let method = &parts.method;
        let auth = self.inner.auth.load_full();
        let token = extract_token(parts.uri.query(), &parts.headers);
        let decision = auth.check(remote, token.as_deref(), method);
        drop(token);
        // allow_admin guards the whole admin listener, as nginx's allow/deny does.
        if decision == AuthDecision::Forbidden {
            return forbidden(remote, method, path);
        }
        if target == Target::Root && method == Method::HEAD {
            // The liveness probe needs no key.
            return Reply::empty(StatusCode::OK);
        }
        if target == Target::NotFound && !path.starts_with(target::PREFIX) {
            return Reply::not_found();
        }
        if let AuthDecision::Unauthorized(description) = decision {
            tracing::warn!(
                client = %remote, %method, path, reason = description,
                "admin request refused: failed to check token"
            );
            return Reply::json(
                StatusCode::UNAUTHORIZED,
                json!({"error_msg": "failed to check token", "description": description}),
            );
        }
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
                    .filter_map(|n| schema::plugin_schema(n, None).map(|s| (n.to_owned(), s)))
                    .collect();
                Reply::json(StatusCode::OK, Value::Object(all))
            }
            // Plugins are compiled in; there is nothing to reload (APISIX answers "done").
            Target::Plugin("reload") if method == Method::PUT => {
                Reply::json(StatusCode::OK, json!("done"))
            }
            Target::Plugin(name) | Target::SchemaPlugin(name) if method == Method::GET => {
                match schema::plugin_schema(name, query.get("schema_type")) {
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
                Reply::json(StatusCode::OK, openapi::openapi())
            }
            Target::Resource { res, id, sub } => {
                self.resource(res, id, &sub, method, query, body).await
            }
            _ => Reply::not_found(),
        }
    }

    fn view(&self) -> Arc<View> {
        match &self.inner.backend {
            Some(b) => b.view(),
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
        let Some(backend) = self.inner.backend.clone() else {
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
        match backend.write(planner).await {
            Ok((revision, outcome)) => {
                tracing::info!(
                    %method,
                    key = %res.api_key(id.unwrap_or("")),
                    revision,
                    status = outcome.status.as_u16(),
                    "admin write committed"
                );
                if matches!(backend, Backend::Embedded(_)) {
                    self.inner.sync.send_modify(|s| s.revision = revision);
                }
                outcome
            }
            Err(reply) => reply,
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
