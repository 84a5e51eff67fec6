//! Guard trips on disk, so a tripped canary stays at weight 0 across a restart:
//! `guard-trips.json` in the gateway's data dir (next to the embedded store).
//!
//! - Written on every trip and every clear, atomically: a temporary file in the same
//!   directory, fsync, rename over the old file, fsync of the directory. A crash leaves
//!   the old or the new file, never a mix.
//! - Read once, when the first configuration is served. A missing file means no trips; an unreadable or corrupt one is
//!   logged and the gateway starts with no trips (it never refuses to start for it).
//! - Each trip is stored with its rule's [`RuleKey`] (a deterministic hash of the route
//!   id, the rule index and the rule's arms, stable across processes), its route id, rule
//!   and arm index and the arm's label. At start a trip whose rule no longer exists, whose
//!   arms changed or which is no longer guarded is dropped, as an in-memory trip stops
//!   applying when the rule's arms change.
//! - Every config source persists trips in the data dir (`--data-dir`): the embedded
//!   store and a standalone file restore them at start, etcd once the first sync is
//!   served (see [`restore_when_ready`]). Gateways of an etcd fleet each keep their own
//!   file, as each judges its own traffic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use split_core::snapshot::{RuleKey, Snapshot};

use tokio::sync::watch;

use crate::guard::Trip;

/// The file name in the data dir.
pub const FILE: &str = "guard-trips.json";

/// Format version written in the file.
const VERSION: u32 = 1;

/// Where trips are persisted; writes are serialised.
pub struct TripStore {
    path: PathBuf,
    writing: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TripFile {
    version: u32,
    trips: Vec<StoredTrip>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredTrip {
    /// The rule's key in hex (a JSON number would lose bits in many readers).
    rule_key: String,
    route: String,
    rule: usize,
    arm: usize,
    label: String,
    reason: String,
    /// When it tripped, in Unix milliseconds.
    since_ms: u64,
}

impl TripStore {
    /// The store of data dir `dir`.
    pub fn in_dir(dir: &Path) -> TripStore {
        TripStore {
            path: dir.join(FILE),
            writing: Mutex::new(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The trips in the file; none when it is missing, and none (with a warning) when it
    /// cannot be read or parsed.
    pub fn load(&self) -> Vec<(RuleKey, Trip)> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e,
                    "cannot read the guard trips; starting with none");
                return Vec::new();
            }
        };
        match parse(&text) {
            Ok(trips) => trips,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e,
                    "corrupt guard trips file; starting with none");
                Vec::new()
            }
        }
    }

    /// Writes the trips `current` returns, atomically. `current` is called with the
    /// write lock held, so concurrent saves land in order and the last one written holds
    /// the latest state.
    pub fn save(&self, current: impl FnOnce() -> Vec<(RuleKey, Trip)>) -> std::io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let text = render(&current());
        write_atomically(&self.path, text.as_bytes())
    }
}

/// Parses the file's text.
fn parse(text: &str) -> Result<Vec<(RuleKey, Trip)>, String> {
    let file: TripFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("version: unsupported {}", file.version));
    }
    file.trips
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let key = u64::from_str_radix(&t.rule_key, 16)
                .map_err(|_| format!("trips[{i}].rule_key: not a hex u64"))?;
            let since = SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_millis(t.since_ms))
                .ok_or_else(|| format!("trips[{i}].since_ms: out of range"))?;
            let trip = Trip {
                route: t.route,
                rule: t.rule,
                arm: t.arm,
                label: t.label,
                reason: t.reason,
                since,
            };
            Ok((RuleKey(key), trip))
        })
        .collect()
}

/// The file's text for `trips`, in a stable order.
fn render(trips: &[(RuleKey, Trip)]) -> String {
    let mut stored: Vec<StoredTrip> = trips
        .iter()
        .map(|(key, t)| StoredTrip {
            rule_key: format!("{:016x}", key.0),
            route: t.route.clone(),
            rule: t.rule,
            arm: t.arm,
            label: t.label.clone(),
            reason: t.reason.clone(),
            since_ms: t
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
        .collect();
    stored.sort_by(|a, b| (&a.route, a.rule, a.arm).cmp(&(&b.route, b.rule, b.arm)));
    let file = TripFile {
        version: VERSION,
        trips: stored,
    };
    // Serialising plain strings and integers cannot fail.
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

/// Writes `bytes` to `path` through a temporary file in the same directory (created if
/// missing), fsynced and renamed over `path`; then fsyncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename is durable once the directory is synced; where a directory cannot be
    // opened for that, the rename alone still never leaves a torn file.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Keeps the trips that still apply to `snapshot`: the route has the rule, with the same
/// key (same arms), still guarded, and the arm index still names the same label.
pub fn still_valid(snapshot: &Snapshot, key: RuleKey, trip: &Trip) -> bool {
    snapshot
        .routes
        .iter()
        .find(|r| r.route.id == trip.route)
        .and_then(|r| r.rules.get(trip.rule))
        .filter(|rule| rule.key == key && rule.guard.is_some())
        .and_then(|rule| rule.arms.get(trip.arm))
        .is_some_and(|arm| *arm.label == *trip.label)
}

/// Restores the trips persisted in the data dir once the gateway serves its first full
/// configuration: right away for the embedded store and a standalone file (both loaded
/// before the listeners open), after the first etcd sync otherwise (until then there
/// are no routes, so nothing can trip or be steered).
pub fn restore_when_ready(
    llm: &Arc<crate::llm_state::LlmState>,
    settings: &crate::settings::Settings,
    live: &crate::live::Live,
    mut sync: watch::Receiver<split_admin::SyncState>,
) {
    let store = TripStore::in_dir(&settings.data_dir);
    match settings.source {
        crate::settings::Source::Embedded | crate::settings::Source::Standalone(_) => {
            llm.guard.restore(store, &live.load(), &llm.metrics.llm);
        }
        crate::settings::Source::Etcd(_) => {
            let (llm, live) = (Arc::clone(llm), Arc::clone(live));
            tokio::spawn(async move {
                // `wait_for` fails only when the sender is gone (shutting down).
                if sync.wait_for(|s| s.ready).await.is_ok() {
                    llm.guard.restore(store, &live.load(), &llm.metrics.llm);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(route: &str, arm: usize, label: &str, since_ms: u64) -> Trip {
        Trip {
            route: route.to_owned(),
            rule: 0,
            arm,
            label: label.to_owned(),
            reason: "error rate 1.00 over 0.50".to_owned(),
            since: SystemTime::UNIX_EPOCH + Duration::from_millis(since_ms),
        }
    }

    #[test]
    fn trips_round_trip_with_key_and_since() {
        let dir = tempfile::tempdir().unwrap();
        let store = TripStore::in_dir(&dir.path().join("data"));
        assert!(store.load().is_empty(), "no file, no trips");
        let key = RuleKey(0xfedc_ba98_7654_3210);
        let saved = vec![
            (key, trip("g", 1, "canary", 1_700_000_000_123)),
            (RuleKey(7), trip("a", 2, "c2", 5)),
        ];
        store.save(|| saved.clone()).unwrap();
        let mut loaded = store.load();
        loaded.sort_by(|a, b| a.1.route.cmp(&b.1.route));
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].0, RuleKey(7));
        assert_eq!(loaded[1].0, key);
        let t = &loaded[1].1;
        assert_eq!((t.route.as_str(), t.rule, t.arm), ("g", 0, 1));
        assert_eq!(t.label, "canary");
        assert_eq!(t.reason, "error rate 1.00 over 0.50");
        assert_eq!(
            t.since,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
    }

    #[test]
    fn a_corrupt_or_foreign_file_loads_as_no_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = TripStore::in_dir(dir.path());
        for text in [
            "{not json",
            "",
            r#"{"version": 2, "trips": []}"#,
            r#"{"version": 1, "trips": [{"rule_key": "xyz", "route": "g", "rule": 0,
                "arm": 1, "label": "c", "reason": "r", "since_ms": 1}]}"#,
            r#"{"version": 1, "trips": [], "extra": true}"#,
        ] {
            std::fs::write(store.path(), text).unwrap();
            assert!(store.load().is_empty(), "{text}");
        }
        assert!(parse(r#"{"version": 2, "trips": []}"#)
            .unwrap_err()
            .contains("version"));
        let err = parse(
            r#"{"version": 1, "trips": [{"rule_key": "xyz", "route": "g", "rule": 0,
                "arm": 1, "label": "c", "reason": "r", "since_ms": 1}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("trips[0].rule_key"), "{err}");
    }

    #[test]
    fn saves_replace_the_whole_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let store = TripStore::in_dir(dir.path());
        // A temporary file left by a crash mid-write is neither read nor in the way.
        let tmp = dir.path().join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, "garbage").unwrap();
        store
            .save(|| vec![(RuleKey(1), trip("g", 1, "canary", 10))])
            .unwrap();
        assert_eq!(store.load().len(), 1);
        store.save(Vec::new).unwrap();
        assert!(store.load().is_empty(), "a clear empties the file");
        assert!(!tmp.exists(), "the temporary file was renamed away");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(parse(&text).unwrap().is_empty(), "{text}");
    }

    /// A snapshot of one route `g` whose rule has arms `stable` and `canary` (weights
    /// 3 and `canary_weight`), guarded or not.
    fn snapshot(dir: &Path, canary_weight: u32, guarded: bool) -> Snapshot {
        let mut rule = serde_json::json!({"weighted_upstreams": [
            {"name": "stable", "weight": 3, "upstream": {"nodes": {"127.0.0.1:1": 1}}},
            {"name": "canary", "weight": canary_weight,
             "upstream": {"nodes": {"127.0.0.1:2": 1}}}
        ]});
        if guarded {
            rule["guard"] = serde_json::json!({"max_error_rate": 0.5});
        }
        let doc = serde_json::json!({"routes": [{"id": "g", "uri": "/x",
            "plugins": {"traffic-split": {"rules": [rule]}}}]});
        let file = dir.join("apisix.json");
        std::fs::write(&file, doc.to_string()).unwrap();
        crate::standalone::load(&file).unwrap().0
    }

    #[test]
    fn only_trips_of_the_same_guarded_rule_and_arm_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        let now = snapshot(dir.path(), 1, true);
        let key = now.routes[0].rules[0].key;
        assert!(still_valid(&now, key, &trip("g", 1, "canary", 0)));
        assert!(!still_valid(
            &now,
            RuleKey(key.0 ^ 1),
            &trip("g", 1, "canary", 0)
        ));
        assert!(!still_valid(&now, key, &trip("g", 1, "other", 0)));
        assert!(!still_valid(&now, key, &trip("g", 2, "canary", 0)));
        assert!(!still_valid(&now, key, &trip("gone", 1, "canary", 0)));
        // Changed arms change the rule's key; an unguarded rule keeps no trip.
        let reweighted = snapshot(dir.path(), 2, true);
        assert_ne!(reweighted.routes[0].rules[0].key, key);
        assert!(!still_valid(&reweighted, key, &trip("g", 1, "canary", 0)));
        let unguarded = snapshot(dir.path(), 1, false);
        assert_eq!(
            unguarded.routes[0].rules[0].key, key,
            "guard is not in the key"
        );
        assert!(!still_valid(&unguarded, key, &trip("g", 1, "canary", 0)));
    }

    #[test]
    fn rule_keys_keep_all_64_bits() {
        let text = render(&[(RuleKey(u64::MAX), trip("g", 1, "c", 0))]);
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed[0].0, RuleKey(u64::MAX));
    }
}
