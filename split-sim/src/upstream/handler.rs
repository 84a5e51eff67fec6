//! Request handling of the mock: routing, faults, JSON replies and paced SSE streams.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};

use super::openai::{self, ChatRequest};
use super::stats::Stats;
use super::UpstreamConfig;

/// Response body of the mock: a full JSON body or a paced stream.
pub type MockBody = BoxBody<Bytes, io::Error>;

/// Largest request body the mock reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Shared state of one mock.
#[derive(Debug)]
pub struct State {
    config: UpstreamConfig,
    stats: Arc<Stats>,
    chat_seq: AtomicU64,
}

/// What identifies one answer.
struct Ctx {
    path: String,
    echo: Value,
}

impl State {
    /// New state.
    pub fn new(config: UpstreamConfig, stats: Arc<Stats>) -> State {
        State {
            config,
            stats,
            chat_seq: AtomicU64::new(0),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: http::Request<Incoming>) -> Response<MockBody> {
        let path = req.uri().path().to_owned();
        if path == "/_stats" && req.method() == Method::GET {
            let snap = self.stats.snapshot(&self.config.name);
            let body = serde_json::to_value(&snap).unwrap_or(Value::Null);
            return self.json(StatusCode::OK, &path, &body);
        }
        self.stats.hit(&path);
        let echo = openai::echo_json(
            &self.config.name,
            req.method().as_str(),
            &path,
            req.uri().query(),
            req.headers(),
        );
        let ctx = Ctx { path, echo };
        let resp = self.route(req, &ctx).await;
        self.stats.status(resp.status().as_u16());
        resp
    }

    async fn route(&self, req: http::Request<Incoming>, ctx: &Ctx) -> Response<MockBody> {
        let is_chat = ctx.path.ends_with("/chat/completions");
        let is_models = ctx.path.ends_with("/models");
        match (is_chat, is_models, req.method()) {
            (true, _, &Method::POST) => self.chat(req, ctx).await,
            (false, true, &Method::GET) => {
                self.delay().await;
                let body = openai::models_json(&self.config.models);
                self.json(StatusCode::OK, &ctx.path, &body)
            }
            (true, _, _) | (false, true, _) => self.error(
                StatusCode::METHOD_NOT_ALLOWED,
                ctx,
                &format!("method {} not allowed on {}", req.method(), ctx.path),
            ),
            _ => self.error(
                StatusCode::NOT_FOUND,
                ctx,
                &format!("Invalid URL ({} {})", req.method(), ctx.path),
            ),
        }
    }

    async fn chat(&self, req: http::Request<Incoming>, ctx: &Ctx) -> Response<MockBody> {
        let n = self.chat_seq.fetch_add(1, Ordering::Relaxed);
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return self.error(
                    StatusCode::BAD_REQUEST,
                    ctx,
                    &format!("could not read the request body: {e}"),
                )
            }
        };
        self.delay().await;
        if self.config.fault.fails(n) {
            self.stats.injected();
            let status = StatusCode::from_u16(self.config.fault.status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut resp = self.error(status, ctx, "injected failure (split-sim upstream)");
            let retry_after =
                super::fault::retry_after_header(status.as_u16(), self.config.retry_after);
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        let chat = match openai::parse_chat_request(&body) {
            Ok(c) => c,
            Err(msg) => return self.error(StatusCode::BAD_REQUEST, ctx, &msg),
        };
        let id = format!("chatcmpl-{}-{n}", self.config.name);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if chat.stream && self.config.first_event_error {
            self.stats.stream();
            self.stats.injected();
            self.error_stream(ctx)
        } else if chat.stream {
            self.stats.stream();
            self.stream(ctx, &id, created, &chat)
        } else {
            let body = openai::completion_json(&id, created, &chat, &self.config.reply, &ctx.echo);
            self.json(StatusCode::OK, &ctx.path, &body)
        }
    }

    fn stream(&self, ctx: &Ctx, id: &str, created: u64, chat: &ChatRequest) -> Response<MockBody> {
        let pieces = openai::stream_pieces(&self.config.reply, self.config.chunks);
        let mut events: VecDeque<Event> = VecDeque::new();
        let mut first = openai::chunk_json(
            id,
            created,
            &chat.model,
            json!({"role": "assistant", "content": ""}),
            None,
        );
        first["x_split_mock"] = ctx.echo.clone();
        events.push_back(Event::data(Duration::ZERO, openai::sse_event(&first)));
        let mut sent = String::new();
        for (i, piece) in pieces.iter().enumerate() {
            if self.config.reset_after_chunks == Some(i as u32) {
                events.push_back(Event::Reset);
                break;
            }
            sent.push_str(piece);
            let chunk =
                openai::chunk_json(id, created, &chat.model, json!({"content": piece}), None);
            events.push_back(Event::data(
                self.config.chunk_interval,
                openai::sse_event(&chunk),
            ));
        }
        if !matches!(events.back(), Some(Event::Reset)) {
            let last = openai::chunk_json(id, created, &chat.model, json!({}), Some("stop"));
            events.push_back(Event::data(Duration::ZERO, openai::sse_event(&last)));
            if chat.include_usage {
                let usage = openai::usage_json(chat.prompt_tokens, openai::count_tokens(&sent));
                let chunk = openai::usage_chunk_json(id, created, &chat.model, usage);
                events.push_back(Event::data(Duration::ZERO, openai::sse_event(&chunk)));
            }
            events.push_back(Event::data(Duration::ZERO, openai::SSE_DONE.to_owned()));
        }
        let stats = Arc::clone(&self.stats);
        let stream = futures_util::stream::unfold(events, move |mut events| {
            let stats = Arc::clone(&stats);
            async move {
                match events.pop_front()? {
                    Event::Data(delay, bytes) => {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Some((Ok(Frame::data(bytes)), events))
                    }
                    Event::Reset => {
                        // Pause so hyper flushes the chunks already written: the client
                        // must see exactly N chunks before the connection drops.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        stats.reset();
                        events.clear();
                        let err = io::Error::new(io::ErrorKind::ConnectionReset, "injected reset");
                        Some((Err(err), events))
                    }
                }
            }
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.tag(&mut resp, &ctx.path);
        resp
    }

    /// A 200 SSE stream whose first (and only) event is an error.
    fn error_stream(&self, ctx: &Ctx) -> Response<MockBody> {
        let event = super::fault::first_event_error("injected stream error (split-sim upstream)");
        let full = Full::new(Bytes::from(event)).map_err(|never| match never {});
        let mut resp = Response::new(BodyExt::boxed(full));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.tag(&mut resp, &ctx.path);
        resp
    }

    async fn delay(&self) {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
    }

    fn json(&self, status: StatusCode, path: &str, body: &Value) -> Response<MockBody> {
        let mut bytes = serde_json::to_vec(body).unwrap_or_default();
        bytes.push(b'\n');
        let full = Full::new(Bytes::from(bytes)).map_err(|never| match never {});
        let mut resp = Response::new(BodyExt::boxed(full));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.tag(&mut resp, path);
        resp
    }

    fn error(&self, status: StatusCode, ctx: &Ctx, message: &str) -> Response<MockBody> {
        let (kind, code) = openai::error_kind_for_status(status.as_u16());
        let mut body = openai::error_json(message, kind, code);
        body["x_split_mock"] = ctx.echo.clone();
        self.json(status, &ctx.path, &body)
    }

    fn tag(&self, resp: &mut Response<MockBody>, path: &str) {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.config.name) {
            h.insert("x-split-mock", v);
        }
        if let Ok(v) = HeaderValue::from_str(path) {
            h.insert("x-split-mock-path", v);
        }
    }
}

/// One step of a stream.
enum Event {
    /// Wait, then send bytes.
    Data(Duration, Bytes),
    /// Abort the response mid-body.
    Reset,
}

impl Event {
    fn data(delay: Duration, text: String) -> Event {
        Event::Data(delay, Bytes::from(text))
    }
}
