//! Compiling a candidate set of objects with split-core, tolerating objects that were
//! already broken before a write.
//!
//! The store never accepts a write that breaks an object. The one way a stored object
//! can stop compiling is a forced delete (`DELETE ...?force=true`) of something it
//! references; such objects are left out of the live snapshot (their requests find no
//! route) until they are fixed, and they do not block unrelated writes.

use std::collections::BTreeSet;

use split_core::config::ResourceKind;
use split_core::snapshot::{CompileError, ConfigSet, Snapshot};

/// Objects left out of the live snapshot because they do not compile.
pub(crate) type Broken = BTreeSet<(ResourceKind, String)>;

/// A compiled snapshot and the objects that had to be left out.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The snapshot of everything that compiles (its `source` is the full set).
    pub snapshot: Snapshot,
    /// Left-out objects, each with its error.
    pub broken: Vec<CompileError>,
}

impl Compiled {
    /// The left-out objects' keys.
    pub fn broken_keys(&self) -> Broken {
        self.broken.iter().map(|e| (e.kind, e.id.clone())).collect()
    }
}

/// Compiles the set `make` builds, leaving out (one at a time, as the core reports them)
/// the objects that fail. Fails only when the core reports an error for an object it was
/// not given. `make` is called again only when something fails.
pub(crate) fn compile_lenient(make: impl Fn() -> ConfigSet) -> Result<Compiled, CompileError> {
    // The usual case: everything compiles from one copy of the objects.
    let first = match Snapshot::compile(make()) {
        Ok(snapshot) => {
            return Ok(Compiled {
                snapshot,
                broken: Vec::new(),
            })
        }
        Err(e) => e,
    };
    let full = std::sync::Arc::new(make());
    let mut remaining = (*full).clone();
    let mut broken = Vec::new();
    let mut error = first;
    let total: usize = remaining.objects.values().map(|m| m.len()).sum();
    // Each failed round removes one object, so at most `total` rounds.
    for _ in 0..total {
        let removed = remaining
            .objects
            .get_mut(&error.kind)
            .and_then(|m| m.remove(&error.id));
        if removed.is_none() {
            return Err(error);
        }
        broken.push(error);
        match Snapshot::compile(remaining.clone()) {
            Ok(mut snapshot) => {
                snapshot.source = full;
                return Ok(Compiled { snapshot, broken });
            }
            Err(e) => error = e,
        }
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(objects: &[(ResourceKind, &str, serde_json::Value)]) -> ConfigSet {
        let mut s = ConfigSet::default();
        for (kind, id, v) in objects {
            s.objects
                .entry(*kind)
                .or_default()
                .insert((*id).to_owned(), v.clone());
        }
        s
    }

    #[test]
    fn broken_objects_are_left_out_but_kept_in_the_source() {
        let s = set(&[
            (
                ResourceKind::Routes,
                "ok",
                json!({"id": "ok", "uri": "/ok", "upstream": {"nodes": {"127.0.0.1:1": 1}}}),
            ),
            (
                ResourceKind::Routes,
                "bad1",
                json!({"id": "bad1", "uri": "/b1", "upstream_id": "gone"}),
            ),
            (
                ResourceKind::Routes,
                "bad2",
                json!({"id": "bad2", "uri": "/b2", "upstream_id": "gone"}),
            ),
        ]);
        let c = compile_lenient(|| s.clone()).expect("lenient compile");
        let keys: Vec<_> = c.broken_keys().into_iter().collect();
        assert_eq!(
            keys,
            [
                (ResourceKind::Routes, "bad1".to_owned()),
                (ResourceKind::Routes, "bad2".to_owned())
            ]
        );
        assert_eq!(c.snapshot.routes.len(), 1);
        assert_eq!(*c.snapshot.source, s);
    }

    #[test]
    fn a_clean_set_compiles_as_is() {
        let s = set(&[(
            ResourceKind::Upstreams,
            "u",
            json!({"id": "u", "nodes": {"127.0.0.1:1": 1}}),
        )]);
        let c = compile_lenient(|| s.clone()).expect("compiles");
        assert!(c.broken.is_empty());
        assert_eq!(*c.snapshot.source, s);
    }
}
