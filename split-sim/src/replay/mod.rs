//! `split-sim replay`: feeds access-log lines (the proxy's JSON access log) through a
//! candidate configuration and reports, per route/rule/arm, where the requests went then
//! and would go now, and which share of requests and of sticky keys would move.
//!
//! A log line keeps method, uri, client address, consumer and model, so requests are
//! rebuilt from those (headers and Host are not logged: rules that read them see none).

pub mod cli;
mod log;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;
use split_core::request::Request;
use split_core::snapshot::{hash_key, Lookup, RuleKey, Snapshot};

pub use log::{parse_line, LogLine};

use crate::run::engine::TicketBook;

/// Where one request went.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Placement {
    /// Route id (`""` = no route, 404).
    pub route: String,
    /// Rule index (`None` = no rule matched).
    pub rule: Option<usize>,
    /// Arm label (`None` = no rule matched).
    pub arm: Option<String>,
}

/// Counts of one placement before and after.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementCounts {
    /// The placement.
    #[serde(flatten)]
    pub at: Placement,
    /// Requests there under the old configuration (or the log).
    pub old: u64,
    /// Requests there under the new configuration.
    pub new: u64,
}

/// Sticky-key movement.
#[derive(Debug, Clone, Serialize)]
pub struct StickyMoves {
    /// What identifies a key: the chash rule's `hash_on`, else consumer, else client address.
    pub source: String,
    /// Distinct keys.
    pub keys: u64,
    /// Keys whose first request lands on a different placement.
    pub moved: u64,
    /// moved / keys.
    pub moved_share: f64,
}

/// The replay result.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// `log` (logged placements vs NEW) or `diff` (OLD vs NEW).
    pub mode: String,
    /// Lines replayed.
    pub requests: u64,
    /// Lines skipped (not JSON, or missing method/uri).
    pub skipped: u64,
    /// Per placement.
    pub placements: Vec<PlacementCounts>,
    /// Requests whose placement differs.
    pub moved: u64,
    /// moved / requests.
    pub moved_share: f64,
    /// Sticky keys.
    pub sticky: StickyMoves,
}

/// What old placements come from.
pub enum Baseline<'a> {
    /// The placements written in the log.
    Logged,
    /// Placements decided by this configuration.
    Config(&'a Snapshot),
}

/// Owned parts of a rebuilt request.
struct Rebuilt {
    method: http::Method,
    path: String,
    query: Option<String>,
    headers: http::HeaderMap,
    remote_addr: IpAddr,
    body: Vec<u8>,
    consumer: Option<String>,
}

impl Rebuilt {
    fn from_line(l: &LogLine) -> Rebuilt {
        let (path, query) = match l.uri.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (l.uri.clone(), None),
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let body = match &l.model {
            Some(m) => serde_json::json!({"model": m, "messages": []})
                .to_string()
                .into_bytes(),
            None => b"{}".to_vec(),
        };
        Rebuilt {
            method: http::Method::from_bytes(l.method.as_bytes()).unwrap_or(http::Method::GET),
            path,
            query,
            headers,
            remote_addr: l.remote_ip(),
            body,
            consumer: l.consumer.clone(),
        }
    }

    fn view(&self) -> Request<'_> {
        Request {
            method: &self.method,
            host: None,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            remote_addr: self.remote_addr,
            remote_port: 0,
            body: Some(&self.body),
            consumer: self.consumer.as_deref(),
            route_id: None,
        }
    }
}

/// Decides `req` under `snap`; also returns the chash key of the matched rule, if any.
fn place(snap: &Snapshot, req: &Request<'_>, book: &mut TicketBook) -> (Placement, Option<String>) {
    match snap.find(req) {
        Lookup::Found(route) => {
            let mut ticket = |k: RuleKey| book.take(k);
            match route.decide(req, &mut ticket) {
                Ok(d) => {
                    let key = d
                        .rule
                        .and_then(|r| route.rules.get(r))
                        .and_then(|r| r.hash_on.as_ref())
                        .and_then(|h| {
                            let with_route = Request {
                                route_id: Some(&route.route.id),
                                ..req.clone()
                            };
                            hash_key(h, &with_route).ok().flatten()
                        });
                    (
                        Placement {
                            route: route.route.id.clone(),
                            rule: d.rule,
                            arm: d.arm_label.map(|l| l.to_string()),
                        },
                        key,
                    )
                }
                Err(_) => (no_route(), None),
            }
        }
        Lookup::NeedBody | Lookup::NotFound => (no_route(), None),
    }
}

fn no_route() -> Placement {
    Placement {
        route: String::new(),
        rule: None,
        arm: None,
    }
}

/// Replays `lines` against `new`, comparing with `baseline`.
pub fn replay(text: &str, baseline: &Baseline<'_>, new: &Snapshot) -> ReplayReport {
    let mut counts: BTreeMap<Placement, (u64, u64)> = BTreeMap::new();
    let mut requests = 0u64;
    let mut skipped = 0u64;
    let mut moved = 0u64;
    let mut old_book = TicketBook::default();
    let mut new_book = TicketBook::default();
    // key → whether its first request moved.
    let mut keys: HashMap<String, bool> = HashMap::new();
    let mut source: Option<&'static str> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some(l) = parse_line(line) else {
            skipped += 1;
            continue;
        };
        requests += 1;
        let rebuilt = Rebuilt::from_line(&l);
        let req = rebuilt.view();
        let (old, old_key) = match baseline {
            Baseline::Logged => (l.placement(), None),
            Baseline::Config(s) => place(s, &req, &mut old_book),
        };
        let (new_p, new_key) = place(new, &req, &mut new_book);
        counts.entry(old.clone()).or_default().0 += 1;
        counts.entry(new_p.clone()).or_default().1 += 1;
        let differs = old != new_p;
        moved += u64::from(differs);
        let (key, src) = match (new_key.or(old_key), &l.consumer) {
            (Some(k), _) => (k, "chash key"),
            (None, Some(c)) => (c.clone(), "consumer"),
            (None, None) => (l.remote_addr.clone(), "remote_addr"),
        };
        source.get_or_insert(src);
        keys.entry(key).or_insert(differs);
    }
    let keys_moved = keys.values().filter(|m| **m).count() as u64;
    let n_keys = keys.len() as u64;
    ReplayReport {
        mode: match baseline {
            Baseline::Logged => "log".into(),
            Baseline::Config(_) => "diff".into(),
        },
        requests,
        skipped,
        placements: counts
            .into_iter()
            .map(|(at, (old, new))| PlacementCounts { at, old, new })
            .collect(),
        moved,
        moved_share: ratio(moved, requests),
        sticky: StickyMoves {
            source: source.unwrap_or("none").to_owned(),
            keys: n_keys,
            moved: keys_moved,
            moved_share: ratio(keys_moved, n_keys),
        },
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Human-readable report.
pub fn render_text(r: &ReplayReport) -> String {
    let mut s = String::new();
    let (old, new) = if r.mode == "log" {
        ("logged", "new")
    } else {
        ("old", "new")
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "split-sim replay: {} requests{}",
        r.requests,
        if r.skipped > 0 {
            format!(" ({} lines skipped)", r.skipped)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "  {:<24} {:>6} {:>16} {:>10} {:>10}",
        "route", "rule", "arm", old, new
    );
    for p in &r.placements {
        let route = if p.at.route.is_empty() {
            "(404)"
        } else {
            &p.at.route
        };
        let rule = p.at.rule.map_or("-".to_owned(), |r| r.to_string());
        let arm = p.at.arm.as_deref().unwrap_or("route upstream");
        let _ = writeln!(
            s,
            "  {route:<24} {rule:>6} {arm:>16} {:>10} {:>10}",
            p.old, p.new
        );
    }
    let _ = writeln!(
        s,
        "requests that would move: {} of {} ({:.2}%)",
        r.moved,
        r.requests,
        r.moved_share * 100.0
    );
    let _ = writeln!(
        s,
        "  (round-robin picks depend on each rule's ticket position, which a replay starts \
         at 0: compare counts there; chash and match changes move requests for real)"
    );
    let _ = writeln!(
        s,
        "sticky keys ({}) that would move: {} of {} ({:.2}%)",
        r.sticky.source,
        r.sticky.moved,
        r.sticky.keys,
        r.sticky.moved_share * 100.0
    );
    s
}
