//! LLM-specific pure logic: reading token `usage` out of OpenAI-compatible responses
//! (JSON or server-sent events, fed frame by frame) and asking for it in streamed
//! requests.
//!
//! - [`UsageScanner`]: a bounded-memory scanner over response body frames.
//! - [`model_of`]: the `model` of a JSON request body.
//! - [`ArmLlm`]: the per-arm `llm` option (`include_usage`) and the body edit it implies.

pub(crate) mod model;
pub(crate) mod usage;
mod usage_request;

pub use model::model_of;
pub use usage::{BodyFormat, Usage, UsageScanner, MAX_EVENT, TAIL};
pub use usage_request::{request_stream_usage, ArmLlm};
