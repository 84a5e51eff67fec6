//! `key-auth`: finding the consumer for an API key, and the route-side decision.
//!
//! Keys are secrets: they are compared in constant time (`subtle`), never printed
//! (`Debug` is redacted) and never part of an error. The index buckets consumers by a
//! digest of the key under a per-process random SipHash key, then compares the key
//! itself with `ct_eq`, so a lookup's timing does not depend on how much of a stored key
//! matches.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::config::consumer::Consumer;
use crate::config::plugins::KeyAuthRoute;
use crate::request::Request;

/// Consumers by API key and by username.
#[derive(Clone, Default)]
pub struct KeyAuthIndex {
    hasher: RandomState,
    /// Key digest → indexes into `consumers` (collisions share a bucket).
    by_digest: HashMap<u64, Vec<usize>>,
    /// Username → index into `consumers`.
    by_name: HashMap<String, usize>,
    consumers: Vec<Arc<Consumer>>,
}

impl std::fmt::Debug for KeyAuthIndex {
    // Never print the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAuthIndex")
            .field("consumers", &self.by_name.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyAuthIndex {
    /// Indexes `consumers`. Keys are assumed unique (the snapshot checks it); with a
    /// duplicate, the first consumer in the list wins.
    pub fn build(consumers: impl IntoIterator<Item = Arc<Consumer>>) -> KeyAuthIndex {
        let mut index = KeyAuthIndex::default();
        for consumer in consumers {
            let i = index.consumers.len();
            if let Some(auth) = &consumer.plugins.key_auth {
                let digest = index.hasher.hash_one(auth.key.as_bytes());
                index.by_digest.entry(digest).or_default().push(i);
            }
            index.by_name.entry(consumer.username.clone()).or_insert(i);
            index.consumers.push(consumer);
        }
        index
    }

    /// The consumer whose `key-auth.key` is `key`.
    pub fn lookup(&self, key: &str) -> Option<&Arc<Consumer>> {
        let digest = self.hasher.hash_one(key.as_bytes());
        let bucket = self.by_digest.get(&digest)?;
        let mut found = None;
        for &i in bucket {
            let Some(consumer) = self.consumers.get(i) else {
                continue;
            };
            let Some(auth) = &consumer.plugins.key_auth else {
                continue;
            };
            // `ct_eq` on slices of different length is false without leaking where
            // they differ; look at every candidate so the loop time is the bucket's.
            if bool::from(auth.key.as_bytes().ct_eq(key.as_bytes())) && found.is_none() {
                found = Some(consumer);
            }
        }
        found
    }

    /// The consumer named `username`.
    pub fn by_name(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.by_name
            .get(username)
            .and_then(|&i| self.consumers.get(i))
    }

    /// Number of consumers.
    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    /// True when there are no consumers.
    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }
}

/// Where the key of a request was found (so `hide_credentials` can remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The configured header.
    Header,
    /// The configured query argument.
    Query,
}

/// The outcome of `key-auth` for one request.
#[derive(Debug, Clone)]
pub enum AuthOutcome<'a> {
    /// The key belongs to this consumer.
    Consumer {
        /// The consumer (its username feeds `consumer_name`, chash `consumer`, logs).
        consumer: &'a Arc<Consumer>,
        /// Where the key was.
        source: KeySource,
    },
    /// No or an unknown key, and the route names an `anonymous_consumer`.
    Anonymous(&'a Arc<Consumer>),
    /// 401 with [`AuthReject::body`] and `WWW-Authenticate: <challenge>`.
    Reject(AuthReject),
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReject {
    /// No key in the header or the query.
    Missing,
    /// A key no consumer has.
    Invalid,
    /// The `anonymous_consumer` does not exist.
    MissingAnonymous,
}

impl AuthReject {
    /// The 401 body, APISIX's wording.
    pub fn body(self) -> &'static str {
        match self {
            AuthReject::Missing => r#"{"message":"Missing API key in request"}"#,
            AuthReject::Invalid => r#"{"message":"Invalid API key in request"}"#,
            AuthReject::MissingAnonymous => r#"{"message":"Invalid user authorization"}"#,
        }
    }
}

/// The key in `req`: the header first, then the query argument.
pub fn find_key<'r>(conf: &KeyAuthRoute, req: &Request<'r>) -> Option<(String, KeySource)> {
    if let Some(value) = req.headers.get(&conf.header) {
        // A non-UTF-8 header value cannot equal any configured key; keep it so the
        // answer is "invalid", not "missing".
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        return Some((value, KeySource::Header));
    }
    let value = req.var(&format!("arg_{}", conf.query)).ok().flatten()?;
    Some((value.into_owned(), KeySource::Query))
}

/// Runs `key-auth` for `req` against `index`.
pub fn authenticate<'a>(
    conf: &KeyAuthRoute,
    index: &'a KeyAuthIndex,
    req: &Request<'_>,
) -> AuthOutcome<'a> {
    let reject = match find_key(conf, req) {
        None => AuthReject::Missing,
        Some((key, source)) => match index.lookup(&key) {
            Some(consumer) => return AuthOutcome::Consumer { consumer, source },
            None => AuthReject::Invalid,
        },
    };
    match &conf.anonymous_consumer {
        None => AuthOutcome::Reject(reject),
        Some(name) => match index.by_name(name) {
            Some(consumer) => AuthOutcome::Anonymous(consumer),
            None => AuthOutcome::Reject(AuthReject::MissingAnonymous),
        },
    }
}
