//! The embedded store's write path: serialise writers, validate with split-core, commit
//! durably, then swap in the new catalog and publish the compiled snapshot.
//!
//! Order per write (under one lock): plan against the current catalog → validate each
//! written object (`validate_object`) → compile the whole candidate set
//! (`Snapshot::compile`) → commit to redb → swap the catalog → publish into `Live`.
//! A rejected write touches neither the store nor the catalog nor `Live`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use http::StatusCode;
use split_core::snapshot::{validate_object, ConfigSet, Snapshot};

use crate::catalog::{Catalog, Change};
use crate::check::{check, Checked};
use crate::compile::{compile_lenient, Broken};
use crate::error::describe_compile_error;
use crate::reply::Reply;
use crate::resource::Resource;
use crate::store::Store;
use crate::{AdminError, Live};

/// What readers see: the catalog and the objects left out of the live snapshot.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Stored objects.
    pub catalog: Catalog,
    /// Objects that do not compile (only after a forced delete).
    pub broken: Broken,
}

/// A write to perform, decided against the current catalog.
#[derive(Debug)]
pub(crate) struct Plan<T> {
    /// Changes, applied as one revision.
    pub changes: Vec<Change>,
    /// A forced delete may leave referencing objects broken.
    pub may_break_others: bool,
    /// What the caller needs to answer (e.g. 201 vs 200).
    pub outcome: T,
}

/// The embedded redb-backed configuration.
pub(crate) struct Embedded {
    store: Store,
    view: ArcSwap<View>,
    write: Mutex<()>,
    live: Live,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("revision", &self.view.load().catalog.revision)
            .finish_non_exhaustive()
    }
}

pub(crate) fn warn_broken(broken: &[split_core::snapshot::CompileError]) {
    for e in broken {
        tracing::warn!(
            object = %describe_compile_error(e),
            "stored object does not compile; it is left out of the live configuration until fixed"
        );
    }
}

impl Embedded {
    /// Opens the store in `dir`, compiles it and publishes it into `live`.
    pub fn open(dir: &Path, live: Live) -> Result<Embedded, AdminError> {
        let store = Store::open(dir)?;
        let catalog = store.load()?;
        let compiled = compile_lenient(|| catalog.config_set())?;
        warn_broken(&compiled.broken);
        let broken = compiled.broken_keys();
        live.store(Arc::new(compiled.snapshot));
        Ok(Embedded {
            store,
            view: ArcSwap::from_pointee(View { catalog, broken }),
            write: Mutex::new(()),
            live,
        })
    }

    /// Takes the writer lock. If a previous writer panicked while holding it, the view
    /// may lag the store (a panic between commit and swap), so the view and the live
    /// snapshot are reloaded from the store before writing resumes.
    fn lock(&self) -> Result<MutexGuard<'_, ()>, AdminError> {
        match self.write.lock() {
            Ok(guard) => Ok(guard),
            Err(poisoned) => {
                let guard = poisoned.into_inner();
                tracing::warn!("an earlier admin write panicked; reloading the store");
                let catalog = self.store.load()?;
                let compiled = compile_lenient(|| catalog.config_set())?;
                let broken = compiled.broken_keys();
                self.view.store(Arc::new(View { catalog, broken }));
                self.live.store(Arc::new(compiled.snapshot));
                self.write.clear_poison();
                Ok(guard)
            }
        }
    }

    /// The current view (lock-free).
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Performs one write. `plan` sees the current catalog and either returns the changes
    /// or the reply that rejects the request.
    pub fn write<T>(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Plan<T>, Reply>,
    ) -> Result<(Arc<View>, T), Reply> {
        let _guard = self.lock().map_err(|e| {
            tracing::error!(error = %e, "admin store could not recover from an earlier failed write");
            Reply::unavailable(AdminError::Poisoned.to_string())
        })?;
        let current = self.view.load_full();
        let plan = plan(&current.catalog)?;
        let Checked { next, compiled } = check(&current, &plan, current.catalog.revision + 1)?;
        if let Err(e) = self.store.commit(&plan.changes, &next) {
            tracing::error!(error = %e, "admin write failed to commit");
            return Err(Reply::unavailable(format!(
                "failed to write to the store: {e}"
            )));
        }
        warn_broken(
            &compiled
                .broken
                .iter()
                .filter(|e| !current.broken.contains(&(e.kind, e.id.clone())))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let view = Arc::new(View {
            broken: compiled.broken_keys(),
            catalog: next,
        });
        self.view.store(view.clone());
        self.live.store(Arc::new(compiled.snapshot));
        Ok((view, plan.outcome))
    }

    /// Validates `set` strictly (every object, then the whole set) and replaces the store
    /// contents with it in one transaction.
    pub fn import(&self, set: ConfigSet) -> Result<(), AdminError> {
        let _guard = self.lock()?;
        for (kind, objects) in &set.objects {
            for (id, value) in objects {
                validate_object(*kind, id, value).map_err(|e| {
                    AdminError::Invalid(format!("{} {id}: {e}", Resource::of(*kind).label))
                })?;
            }
        }
        let snapshot = Snapshot::compile(set.clone())?;
        let current = self.view.load_full();
        let next = Catalog::from_set(&set, current.catalog.revision + 1);
        self.store.replace_all(&next)?;
        self.view.store(Arc::new(View {
            catalog: next,
            broken: Broken::new(),
        }));
        self.live.store(Arc::new(snapshot));
        Ok(())
    }
}

/// The reply for a write the store could not accept because it is read-only.
pub(crate) fn read_only_reply(msg: &str) -> Reply {
    Reply::error(StatusCode::METHOD_NOT_ALLOWED, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use split_core::config::ResourceKind;

    fn put_upstream(id: &str) -> Plan<()> {
        Plan {
            changes: vec![Change::Put {
                kind: ResourceKind::Upstreams,
                id: id.to_owned(),
                value: json!({"id": id, "nodes": {"127.0.0.1:1": 1}, "type": "roundrobin"}),
            }],
            may_break_others: false,
            outcome: (),
        }
    }

    #[test]
    fn a_panicking_writer_does_not_stop_later_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live: Live = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let e = Embedded::open(dir.path(), live.clone()).expect("open");
        e.write(|_| Ok(put_upstream("a"))).expect("first write");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = e.write::<()>(|_| panic!("writer bug"));
        }));
        assert!(panicked.is_err());
        let (view, ()) = e
            .write(|_| Ok(put_upstream("b")))
            .expect("write after panic");
        assert_eq!(view.catalog.revision, 2);
        assert!(view.catalog.get(ResourceKind::Upstreams, "a").is_some());
        assert_eq!(live.load().upstreams.len(), 2);
    }

    #[test]
    fn rejected_plans_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live: Live = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let e = Embedded::open(dir.path(), live.clone()).expect("open");
        let before = live.load_full();
        let bad = Plan {
            changes: vec![Change::Put {
                kind: ResourceKind::Upstreams,
                id: "x".into(),
                value: json!({"nodes": 5}),
            }],
            may_break_others: false,
            outcome: (),
        };
        let r = e.write(|_| Ok(bad));
        assert!(r.is_err());
        assert_eq!(e.view().catalog, Catalog::default());
        assert!(Arc::ptr_eq(&before, &live.load_full()));
        assert_eq!(e.store.load().expect("load"), Catalog::default());
    }
}
