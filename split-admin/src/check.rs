//! The store-independent half of a write: validate every written object, compile the
//! whole candidate set, and refuse a write that breaks an object. Both stores (redb and
//! etcd) run a plan through [`check`] before they commit anything.

use split_core::config::ResourceKind;
use split_core::snapshot::validate_object;

use crate::catalog::{Catalog, Change};
use crate::compile::{compile_lenient, Compiled};
use crate::embedded::{Plan, View};
use crate::error::describe_compile_error;
use crate::reply::Reply;

/// A plan that passed every check: the catalog after it and its compiled snapshot.
#[derive(Debug)]
pub(crate) struct Checked {
    /// `current` with the plan's changes applied as `revision`.
    pub next: Catalog,
    /// The compiled candidate (broken objects left out, see [`compile_lenient`]).
    pub compiled: Compiled,
}

/// Validates `plan` against `current`; `revision` is the revision the changes get in
/// `next`. A rejected plan is the 400 reply naming the object and the field path.
pub(crate) fn check<T>(current: &View, plan: &Plan<T>, revision: u64) -> Result<Checked, Reply> {
    for change in &plan.changes {
        if let Change::Put { kind, id, value } = change {
            validate_object(*kind, id, value).map_err(Reply::invalid)?;
        }
    }
    let next = current.catalog.with(&plan.changes, revision);
    let compiled = compile_lenient(|| next.config_set())
        .map_err(|e| Reply::invalid(describe_compile_error(&e)))?;
    let written: Vec<(ResourceKind, &str)> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Put { kind, id, .. } => Some((*kind, id.as_str())),
            Change::Delete { .. } => None,
        })
        .collect();
    for e in &compiled.broken {
        let is_written = written.contains(&(e.kind, e.id.as_str()));
        let was_broken = current.broken.contains(&(e.kind, e.id.clone()));
        if is_written && written.len() == 1 {
            return Err(Reply::invalid(&e.error));
        }
        if is_written || !(was_broken || plan.may_break_others) {
            return Err(Reply::invalid(describe_compile_error(e)));
        }
    }
    Ok(Checked { next, compiled })
}
