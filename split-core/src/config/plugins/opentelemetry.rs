//! The `opentelemetry` plugin (APISIX name and shape): the route plugin's sampler and
//! extra attributes, and `plugin_attr.opentelemetry` of config.yaml (collector, batch
//! span processor, trace id source, resource).
//!
//! Sampling follows OpenTelemetry: `always_on`, `always_off`, `trace_id_ratio`
//! (`options.fraction`, decided from the trace id so every hop agrees) and `parent_base`
//! (follow the sampled flag of an incoming `traceparent`, else `options.root`, default
//! `always_off` as in APISIX).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::ConfigError;

/// A sampler without a parent rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    /// Sample every trace.
    AlwaysOn,
    /// Sample nothing.
    AlwaysOff,
    /// Sample this fraction (0..=1) of trace ids.
    TraceIdRatio(f64),
}

/// The route plugin's `sampler`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// `always_on`, `always_off` or `trace_id_ratio`.
    Root(RootSampler),
    /// `parent_base`: the incoming `traceparent`'s sampled flag, else `root`.
    ParentBased(RootSampler),
}

impl Sampler {
    /// Whether a span with `trace_id` is sampled; `parent` is the sampled flag of the
    /// incoming `traceparent`, if there was one.
    pub fn sample(&self, trace_id: &[u8; 16], parent: Option<bool>) -> bool {
        match (self, parent) {
            (Sampler::ParentBased(_), Some(sampled)) => sampled,
            (Sampler::ParentBased(root) | Sampler::Root(root), _) => root.sample(trace_id),
        }
    }
}

impl RootSampler {
    /// OpenTelemetry's TraceIdRatioBased rule: the low 8 bytes of the trace id, as a
    /// big-endian number shifted to 63 bits, below `fraction · 2^63`.
    pub fn sample(&self, trace_id: &[u8; 16]) -> bool {
        match self {
            RootSampler::AlwaysOn => true,
            RootSampler::AlwaysOff => false,
            RootSampler::TraceIdRatio(fraction) => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                let x = u64::from_be_bytes(low) >> 1;
                let bound = (fraction * (1u64 << 63) as f64) as u64;
                *fraction >= 1.0 || x < bound
            }
        }
    }
}

/// The route-level `opentelemetry` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTelemetry {
    /// `sampler` (default `always_off`, as APISIX).
    pub sampler: Sampler,
    /// `additional_attributes`: request variables (`http_x_user`, `arg_q`, `remote_addr`,
    /// ...) added to the span under their own name when present.
    pub additional_attributes: Vec<String>,
    /// `additional_header_prefix_attributes`: request headers whose name starts with one
    /// of these prefixes, added as `<header name>` attributes.
    pub additional_header_prefix_attributes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugin {
    sampler: Option<RawSampler>,
    additional_attributes: Option<Vec<String>>,
    additional_header_prefix_attributes: Option<Vec<String>>,
    #[serde(rename = "_meta")]
    meta: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSampler {
    name: Option<String>,
    options: Option<RawOptions>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOptions {
    fraction: Option<f64>,
    root: Option<RawRoot>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoot {
    name: Option<String>,
    options: Option<RawRootOptions>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRootOptions {
    fraction: Option<f64>,
}

fn fraction(value: Option<f64>, path: &str) -> Result<f64, ConfigError> {
    match value {
        None => Ok(0.0),
        Some(f) if (0.0..=1.0).contains(&f) => Ok(f),
        Some(_) => Err(ConfigError::new(path, "must be between 0 and 1")),
    }
}

fn root_sampler(
    name: Option<&str>,
    frac: Option<f64>,
    path: &str,
) -> Result<RootSampler, ConfigError> {
    match name.unwrap_or("always_off") {
        "always_on" => Ok(RootSampler::AlwaysOn),
        "always_off" => Ok(RootSampler::AlwaysOff),
        "trace_id_ratio" => Ok(RootSampler::TraceIdRatio(fraction(
            frac,
            &crate::error::join(path, "options.fraction"),
        )?)),
        other => Err(ConfigError::new(
            crate::error::join(path, "name"),
            format!(
                "must be one of always_on, always_off, trace_id_ratio, parent_base (got `{other}`)"
            ),
        )),
    }
}

impl OpenTelemetry {
    /// Parses the route plugin's config; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<OpenTelemetry, ConfigError> {
        let raw: RawPlugin = fields::from_value(value)?;
        let _ = &raw.meta;
        let sampler = match raw.sampler {
            None => Sampler::Root(RootSampler::AlwaysOff),
            Some(s) => {
                let options = s.options;
                match s.name.as_deref() {
                    Some("parent_base") => {
                        let root = options.and_then(|o| o.root);
                        let (name, frac) = match &root {
                            Some(r) => (
                                r.name.as_deref(),
                                r.options.as_ref().and_then(|o| o.fraction),
                            ),
                            None => (None, None),
                        };
                        Sampler::ParentBased(root_sampler(name, frac, "sampler.options.root")?)
                    }
                    name => {
                        let frac = options.as_ref().and_then(|o| o.fraction);
                        Sampler::Root(root_sampler(name, frac, "sampler")?)
                    }
                }
            }
        };
        let additional_attributes = raw.additional_attributes.unwrap_or_default();
        for (i, name) in additional_attributes.iter().enumerate() {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if !ok {
                return Err(ConfigError::new(
                    format!("additional_attributes[{i}]"),
                    "must be a variable name such as `http_user_agent`",
                ));
            }
        }
        Ok(OpenTelemetry {
            sampler,
            additional_attributes,
            additional_header_prefix_attributes: raw
                .additional_header_prefix_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
        })
    }
}

/// Where new trace ids come from (`trace_id_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceIdSource {
    /// Random (default).
    #[default]
    Random,
    /// The request's `X-Request-Id` when it is 32 hex digits, else random.
    XRequestId,
}

/// `plugin_attr.opentelemetry` of config.yaml.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    /// `collector.address`: `host:port` of the OTLP/HTTP receiver (default
    /// `127.0.0.1:4318`); spans are POSTed to `/v1/traces`.
    pub address: String,
    /// `collector.request_timeout` (default 3 s).
    pub request_timeout: Duration,
    /// `collector.request_headers`: extra headers of every export request.
    pub request_headers: BTreeMap<String, String>,
    /// `batch_span_processor.max_queue_size` (default 1024): spans waiting beyond this are
    /// dropped and counted.
    pub max_queue_size: usize,
    /// `batch_span_processor.max_export_batch_size` (default 16).
    pub max_export_batch_size: usize,
    /// `batch_span_processor.batch_timeout` (default 2 s): a partial batch waits at most
    /// this long.
    pub batch_timeout: Duration,
    /// `trace_id_source`.
    pub trace_id_source: TraceIdSource,
    /// `resource`: resource attributes; `service.name` defaults to `APISIX`.
    pub resource: BTreeMap<String, String>,
}

impl Default for OtelSettings {
    fn default() -> Self {
        OtelSettings {
            address: "127.0.0.1:4318".to_owned(),
            request_timeout: Duration::from_secs(3),
            request_headers: BTreeMap::new(),
            max_queue_size: 1024,
            max_export_batch_size: 16,
            batch_timeout: Duration::from_secs(2),
            trace_id_source: TraceIdSource::Random,
            resource: BTreeMap::from([("service.name".to_owned(), "APISIX".to_owned())]),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    collector: Option<RawCollector>,
    batch_span_processor: Option<RawBatch>,
    trace_id_source: Option<String>,
    resource: Option<BTreeMap<String, Value>>,
    set_ngx_var: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    address: Option<String>,
    request_timeout: Option<f64>,
    request_headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    drop_on_queue_full: Option<bool>,
    max_queue_size: Option<i64>,
    batch_timeout: Option<f64>,
    inactive_timeout: Option<f64>,
    max_export_batch_size: Option<i64>,
}

fn count(value: Option<i64>, path: &str, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=1_000_000).contains(&v) => {
            usize::try_from(v).map_err(|_| ConfigError::new(path, "must be 1 to 1000000"))
        }
        Some(_) => Err(ConfigError::new(path, "must be 1 to 1000000")),
    }
}

impl OtelSettings {
    /// Parses `plugin_attr.opentelemetry`; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<OtelSettings, ConfigError> {
        let raw: RawSettings = fields::from_value(value)?;
        let mut s = OtelSettings::default();
        if raw.set_ngx_var == Some(true) {
            return Err(ConfigError::new(
                "set_ngx_var",
                "is not supported (there are no nginx variables)",
            ));
        }
        if let Some(c) = raw.collector {
            if let Some(address) = c.address {
                let rest = address.strip_prefix("http://").unwrap_or(&address);
                if rest.starts_with("https://") || address.starts_with("https://") {
                    return Err(ConfigError::new(
                        "collector.address",
                        "https collectors are not supported yet; use http://host:port",
                    ));
                }
                let host_port = rest.trim_end_matches('/');
                let valid = host_port
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !valid {
                    return Err(ConfigError::new("collector.address", "must be `host:port`"));
                }
                s.address = host_port.to_owned();
            }
            if let Some(t) = c.request_timeout {
                s.request_timeout = fields::positive_seconds(t, "collector.request_timeout")?;
            }
            if let Some(headers) = c.request_headers {
                for (name, value) in &headers {
                    let path = format!("collector.request_headers.{name}");
                    http::HeaderName::try_from(name.as_str())
                        .map_err(|_| ConfigError::new(&path, "invalid header name"))?;
                    http::HeaderValue::try_from(value.as_str())
                        .map_err(|_| ConfigError::new(&path, "invalid header value"))?;
                }
                s.request_headers = headers;
            }
        }
        if let Some(b) = raw.batch_span_processor {
            if b.drop_on_queue_full == Some(false) {
                return Err(ConfigError::new(
                    "batch_span_processor.drop_on_queue_full",
                    "false is not supported: a full queue drops spans so requests never wait",
                ));
            }
            let _ = b.inactive_timeout;
            s.max_queue_size = count(
                b.max_queue_size,
                "batch_span_processor.max_queue_size",
                1024,
            )?;
            s.max_export_batch_size = count(
                b.max_export_batch_size,
                "batch_span_processor.max_export_batch_size",
                16,
            )?;
            if let Some(t) = b.batch_timeout {
                s.batch_timeout =
                    fields::positive_seconds(t, "batch_span_processor.batch_timeout")?;
            }
        }
        s.trace_id_source = match raw.trace_id_source.as_deref() {
            None | Some("random") => TraceIdSource::Random,
            Some("x-request-id") => TraceIdSource::XRequestId,
            Some(other) => {
                return Err(ConfigError::new(
                    "trace_id_source",
                    format!("must be random or x-request-id (got `{other}`)"),
                ))
            }
        };
        if let Some(resource) = raw.resource {
            for (key, value) in resource {
                let text = match value {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(ConfigError::new(
                            format!("resource.{key}"),
                            "must be a string, number or boolean",
                        ))
                    }
                };
                s.resource.insert(key, text);
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn samplers() {
        let p = |v: Value| OpenTelemetry::from_json(&v).unwrap().sampler;
        assert_eq!(p(json!({})), Sampler::Root(RootSampler::AlwaysOff));
        assert_eq!(
            p(json!({"sampler": {"name": "always_on"}})),
            Sampler::Root(RootSampler::AlwaysOn)
        );
        assert_eq!(
            p(json!({"sampler": {"name": "trace_id_ratio", "options": {"fraction": 0.25}}})),
            Sampler::Root(RootSampler::TraceIdRatio(0.25))
        );
        assert_eq!(
            p(json!({"sampler": {"name": "parent_base"}})),
            Sampler::ParentBased(RootSampler::AlwaysOff)
        );
        assert_eq!(
            p(
                json!({"sampler": {"name": "parent_base", "options": {"root": {"name": "always_on"}}}})
            ),
            Sampler::ParentBased(RootSampler::AlwaysOn)
        );
        let err = |v: Value| OpenTelemetry::from_json(&v).unwrap_err().to_string();
        assert!(err(json!({"sampler": {"name": "sometimes"}}))
            .starts_with("sampler.name: must be one of"));
        assert_eq!(
            err(json!({"sampler": {"name": "trace_id_ratio", "options": {"fraction": 2}}})),
            "sampler.options.fraction: must be between 0 and 1"
        );
        assert!(err(json!({"x": 1})).starts_with("x"));
    }

    #[test]
    fn sampling_decisions() {
        let id = |low: u64| {
            let mut t = [0u8; 16];
            t[8..].copy_from_slice(&low.to_be_bytes());
            t
        };
        let half = RootSampler::TraceIdRatio(0.5);
        assert!(half.sample(&id(0)));
        assert!(half.sample(&id((1 << 63) - 1)));
        assert!(!half.sample(&id(1 << 63)));
        assert!(!half.sample(&id(u64::MAX)));
        assert!(RootSampler::TraceIdRatio(1.0).sample(&id(u64::MAX)));
        assert!(!RootSampler::TraceIdRatio(0.0).sample(&id(0)));
        let pb = Sampler::ParentBased(RootSampler::AlwaysOff);
        assert!(pb.sample(&id(5), Some(true)));
        assert!(!pb.sample(&id(5), Some(false)));
        assert!(!pb.sample(&id(5), None));
        assert!(!Sampler::Root(RootSampler::AlwaysOff).sample(&id(5), Some(true)));
    }

    #[test]
    fn settings() {
        let s = OtelSettings::from_json(&json!({
            "collector": {"address": "127.0.0.1:4318", "request_timeout": 1,
                          "request_headers": {"x-token": "t"}},
            "batch_span_processor": {"max_queue_size": 8, "max_export_batch_size": 2,
                                     "batch_timeout": 0.2},
            "trace_id_source": "x-request-id",
            "resource": {"service.name": "gw", "deployment": 3}
        }))
        .unwrap();
        assert_eq!(s.address, "127.0.0.1:4318");
        assert_eq!(s.request_timeout, Duration::from_secs(1));
        assert_eq!(s.max_queue_size, 8);
        assert_eq!(s.batch_timeout, Duration::from_millis(200));
        assert_eq!(s.trace_id_source, TraceIdSource::XRequestId);
        assert_eq!(s.resource["service.name"], "gw");
        assert_eq!(s.resource["deployment"], "3");
        assert_eq!(
            OtelSettings::from_json(&json!({})).unwrap(),
            OtelSettings::default()
        );
        let err = |v: Value| OtelSettings::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            err(json!({"collector": {"address": "nohost"}})),
            "collector.address: must be `host:port`"
        );
        assert!(err(json!({"collector": {"address": "https://c:4318"}})).contains("https"));
        assert_eq!(
            err(json!({"trace_id_source": "uuid"})),
            "trace_id_source: must be random or x-request-id (got `uuid`)"
        );
        assert!(err(json!({"batch_span_processor": {"max_queue_size": 0}}))
            .starts_with("batch_span_processor.max_queue_size"));
    }
}
