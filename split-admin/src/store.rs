//! Durable storage in an embedded redb database (`data_dir/split.redb`).
//!
//! Table `objects`: key `/<kind>/<id>`, value = created index (u64 LE) ‖ modified index
//! (u64 LE) ‖ the object's JSON. Table `meta`: key `revision` → the store revision.
//! Every write is one redb transaction committed with the default (durable) setting
//! before the caller answers.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use crate::catalog::{parse_store_key, store_key, Catalog, Change, Entry};
use crate::AdminError;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
const HEADER: usize = 16;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "split.redb";

/// The redb database.
pub(crate) struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn store_err(e: impl Into<redb::Error>) -> AdminError {
    AdminError::Store(Box::new(e.into()))
}

fn encode(entry: &Entry) -> Vec<u8> {
    let json = entry.value.to_string();
    let mut out = Vec::with_capacity(HEADER + json.len());
    out.extend_from_slice(&entry.created.to_le_bytes());
    out.extend_from_slice(&entry.modified.to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

fn decode(key: &str, bytes: &[u8]) -> Result<Entry, AdminError> {
    let corrupt = |reason: String| AdminError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    if bytes.len() < HEADER {
        return Err(corrupt(format!(
            "value of {} bytes is too short",
            bytes.len()
        )));
    }
    let (created, rest) = bytes.split_at(8);
    let (modified, json) = rest.split_at(8);
    let index = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    };
    let value = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
    Ok(Entry {
        value,
        created: index(created),
        modified: index(modified),
    })
}

impl Store {
    /// Opens or creates `dir/split.redb` (creating `dir` too).
    pub fn open(dir: &Path) -> Result<Store, AdminError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join(DB_FILE)).map_err(store_err)?;
        // Make both tables exist so read transactions never see "table does not exist".
        let tx = db.begin_write().map_err(store_err)?;
        {
            tx.open_table(OBJECTS).map_err(store_err)?;
            tx.open_table(META).map_err(store_err)?;
        }
        tx.commit().map_err(store_err)?;
        Ok(Store { db })
    }

    /// Reads everything into a catalog.
    pub fn load(&self) -> Result<Catalog, AdminError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let meta = tx.open_table(META).map_err(store_err)?;
        let revision = meta
            .get(REVISION)
            .map_err(store_err)?
            .map_or(0, |v| v.value());
        let objects = tx.open_table(OBJECTS).map_err(store_err)?;
        let mut catalog = Catalog {
            revision,
            ..Catalog::default()
        };
        for row in objects.iter().map_err(store_err)? {
            let (k, v) = row.map_err(store_err)?;
            let key = k.value();
            let Some((kind, id)) = parse_store_key(key) else {
                return Err(AdminError::Corrupt {
                    key: key.to_owned(),
                    reason: "unknown key layout".into(),
                });
            };
            let entry = decode(key, v.value())?;
            catalog
                .entries
                .entry(kind)
                .or_default()
                .insert(id.to_owned(), entry);
        }
        Ok(catalog)
    }

    /// Durably applies `changes` as revision `next.revision`; `next` is the catalog after
    /// the changes (the source of the stored indexes).
    pub fn commit(&self, changes: &[Change], next: &Catalog) -> Result<(), AdminError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        {
            let mut objects = tx.open_table(OBJECTS).map_err(store_err)?;
            for change in changes {
                match change {
                    Change::Put { kind, id, .. } => {
                        let Some(entry) = next.get(*kind, id) else {
                            // `next` was built from these changes; a miss is a caller bug.
                            return Err(AdminError::Invalid(format!(
                                "internal: {} {id} missing after write",
                                kind.as_str()
                            )));
                        };
                        let bytes = encode(entry);
                        objects
                            .insert(store_key(*kind, id).as_str(), bytes.as_slice())
                            .map_err(store_err)?;
                    }
                    Change::Delete { kind, id } => {
                        objects
                            .remove(store_key(*kind, id).as_str())
                            .map_err(store_err)?;
                    }
                }
            }
            let mut meta = tx.open_table(META).map_err(store_err)?;
            meta.insert(REVISION, next.revision).map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    /// Durably replaces the whole contents with `next` in one transaction.
    pub fn replace_all(&self, next: &Catalog) -> Result<(), AdminError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        {
            let mut objects = tx.open_table(OBJECTS).map_err(store_err)?;
            objects.retain(|_, _| false).map_err(store_err)?;
            for (kind, entries) in &next.entries {
                for (id, entry) in entries {
                    let bytes = encode(entry);
                    objects
                        .insert(store_key(*kind, id).as_str(), bytes.as_slice())
                        .map_err(store_err)?;
                }
            }
            let mut meta = tx.open_table(META).map_err(store_err)?;
            meta.insert(REVISION, next.revision).map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use split_core::config::ResourceKind;

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            value: json!({"uri": "/x", "id": 1}),
            created: 7,
            modified: 9,
        };
        assert_eq!(decode("/routes/1", &encode(&e)).expect("decodes"), e);
        assert!(matches!(
            decode("/routes/1", b"short"),
            Err(AdminError::Corrupt { .. })
        ));
    }

    #[test]
    fn commit_then_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let change = Change::Put {
            kind: ResourceKind::Upstreams,
            id: "u1".into(),
            value: json!({"nodes": {"127.0.0.1:1": 1}}),
        };
        {
            let store = Store::open(dir.path()).expect("open");
            let empty = store.load().expect("load");
            assert_eq!(empty, Catalog::default());
            let next = empty.with(std::slice::from_ref(&change), 1);
            store.commit(&[change], &next).expect("commit");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.revision, 1);
        let e = loaded.get(ResourceKind::Upstreams, "u1").expect("stored");
        assert_eq!((e.created, e.modified), (1, 1));
        store
            .replace_all(&Catalog {
                revision: 5,
                ..Catalog::default()
            })
            .expect("replace");
        let loaded = store.load().expect("load");
        assert_eq!(
            loaded,
            Catalog {
                revision: 5,
                ..Catalog::default()
            }
        );
    }
}
