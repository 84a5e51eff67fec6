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

/// Compiles `set`, leaving out (one at a time, as the core reports them) the objects
/// that fail. Fails only when the core reports an error for an object it was not given.
pub(crate) fn compile_lenient(set: ConfigSet) -> Result<Compiled, CompileError> {
    let full = std::sync::Arc::new(set.clone());
    let mut remaining = set;
    let mut broken = Vec::new();
    let total: usize = remaining.objects.values().map(|m| m.len()).sum();
    // Each failed round removes one object, so at most `total + 1` rounds.
    for _ in 0..=total {
        match Snapshot::compile(remaining.clone()) {
            Ok(mut snapshot) => {
                snapshot.source = full;
                return Ok(Compiled { snapshot, broken });
            }
            Err(e) => {
                let removed = remaining
                    .objects
                    .get_mut(&e.kind)
                    .and_then(|m| m.remove(&e.id));
                if removed.is_none() {
                    return Err(e);
                }
                broken.push(e);
            }
        }
    }
    // Unreachable in practice: every round above removed one of `total` objects.
    Err(broken.pop().unwrap_or_else(|| CompileError {
        kind: ResourceKind::Routes,
        id: String::new(),
        error: split_core::ConfigError::new("", "compile did not converge"),
    }))
}
