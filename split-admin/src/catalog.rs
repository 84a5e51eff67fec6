//! The in-memory image of the store: every object with its etcd-style indexes, and the
//! store revision. Writers build a new `Catalog` and swap it in after the commit, so
//! readers never wait for a write.

use std::collections::BTreeMap;

use split_core::config::ResourceKind;
use split_core::snapshot::ConfigSet;

/// One stored object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The object as stored (with `id`, `create_time`, `update_time`).
    pub value: serde_json::Value,
    /// Revision that created it.
    pub created: u64,
    /// Revision that last changed it.
    pub modified: u64,
}

/// Every stored object by kind and id, plus the revision of the last write.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Catalog {
    /// kind → id → entry.
    pub entries: BTreeMap<ResourceKind, BTreeMap<String, Entry>>,
    /// Revision of the last committed write (0 for an empty new store).
    pub revision: u64,
}

/// One change of a write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Create or replace `kind/id` with `value`.
    Put {
        /// Kind.
        kind: ResourceKind,
        /// Id (store key).
        id: String,
        /// New value.
        value: serde_json::Value,
    },
    /// Remove `kind/id`.
    Delete {
        /// Kind.
        kind: ResourceKind,
        /// Id.
        id: String,
    },
}

impl Catalog {
    /// The entry `kind/id`, if stored.
    pub fn get(&self, kind: ResourceKind, id: &str) -> Option<&Entry> {
        self.entries.get(&kind).and_then(|m| m.get(id))
    }

    /// Every object of `kind`, in id order.
    pub fn list(&self, kind: ResourceKind) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.get(&kind).into_iter().flat_map(|m| m.iter())
    }

    /// The raw objects, as the core compiles them.
    pub fn config_set(&self) -> ConfigSet {
        let mut set = ConfigSet::default();
        for (kind, objects) in &self.entries {
            let out = set.objects.entry(*kind).or_default();
            for (id, entry) in objects {
                out.insert(id.clone(), entry.value.clone());
            }
        }
        set
    }

    /// A catalog holding `set`, every object created at `revision`.
    pub fn from_set(set: &ConfigSet, revision: u64) -> Catalog {
        let mut entries: BTreeMap<ResourceKind, BTreeMap<String, Entry>> = BTreeMap::new();
        for (kind, objects) in &set.objects {
            if objects.is_empty() {
                continue;
            }
            let out = entries.entry(*kind).or_default();
            for (id, value) in objects {
                let entry = Entry {
                    value: value.clone(),
                    created: revision,
                    modified: revision,
                };
                out.insert(id.clone(), entry);
            }
        }
        Catalog { entries, revision }
    }

    /// This catalog with `changes` applied as revision `revision`.
    pub fn with(&self, changes: &[Change], revision: u64) -> Catalog {
        let mut next = self.clone();
        next.revision = revision;
        for change in changes {
            match change {
                Change::Put { kind, id, value } => {
                    let objects = next.entries.entry(*kind).or_default();
                    let created = objects.get(id).map_or(revision, |e| e.created);
                    let entry = Entry {
                        value: value.clone(),
                        created,
                        modified: revision,
                    };
                    objects.insert(id.clone(), entry);
                }
                Change::Delete { kind, id } => {
                    if let Some(objects) = next.entries.get_mut(kind) {
                        objects.remove(id);
                        if objects.is_empty() {
                            next.entries.remove(kind);
                        }
                    }
                }
            }
        }
        next
    }
}

/// The store key of `kind/id`: `/routes/1`.
pub(crate) fn store_key(kind: ResourceKind, id: &str) -> String {
    format!("/{}/{}", kind.as_str(), id)
}

/// Splits a store key back into kind and id.
pub(crate) fn parse_store_key(key: &str) -> Option<(ResourceKind, &str)> {
    let rest = key.strip_prefix('/')?;
    let (kind, id) = rest.split_once('/')?;
    Some((ResourceKind::parse(kind)?, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_keep_created_and_bump_modified() {
        let c = Catalog::default();
        let put = |v: serde_json::Value| Change::Put {
            kind: ResourceKind::Routes,
            id: "1".into(),
            value: v,
        };
        let c1 = c.with(&[put(json!({"a": 1}))], 1);
        let c2 = c1.with(&[put(json!({"a": 2}))], 2);
        let e = c2.get(ResourceKind::Routes, "1").expect("stored");
        assert_eq!((e.created, e.modified), (1, 2));
        assert_eq!(e.value, json!({"a": 2}));
        let c3 = c2.with(
            &[Change::Delete {
                kind: ResourceKind::Routes,
                id: "1".into(),
            }],
            3,
        );
        assert!(c3.get(ResourceKind::Routes, "1").is_none());
        assert!(c3.entries.is_empty());
        assert_eq!(c3.revision, 3);
    }

    #[test]
    fn store_keys_round_trip() {
        let k = store_key(ResourceKind::PluginConfigs, "a.b");
        assert_eq!(k, "/plugin_configs/a.b");
        assert_eq!(
            parse_store_key(&k),
            Some((ResourceKind::PluginConfigs, "a.b"))
        );
        assert_eq!(parse_store_key("/nope/1"), None);
        assert_eq!(parse_store_key("routes/1"), None);
    }
}
