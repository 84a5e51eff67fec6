//! Errors of the Admin library's non-HTTP entry points (open, import).

use split_core::snapshot::CompileError;

/// Why opening, importing or persisting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The redb store failed (open, transaction, table, commit).
    #[error("store error: {0}")]
    Store(Box<redb::Error>),
    /// The data directory could not be created or read.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration was rejected by validation; the message names the field path.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The store holds bytes this version cannot read.
    #[error("corrupt store entry {key}: {reason}")]
    Corrupt {
        /// Store key of the entry.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A previous writer panicked while holding the write lock; the store state is
    /// unknown until the process restarts.
    #[error("admin store unavailable: a previous write panicked")]
    Poisoned,
    /// This Admin serves configuration managed elsewhere (standalone file).
    #[error("{0}")]
    ReadOnly(String),
}

impl From<redb::Error> for AdminError {
    fn from(e: redb::Error) -> Self {
        AdminError::Store(Box::new(e))
    }
}

impl From<CompileError> for AdminError {
    fn from(e: CompileError) -> Self {
        AdminError::Invalid(describe_compile_error(&e))
    }
}

/// `route 1: upstream_id: ...` — the object and the field path of a compile error.
pub(crate) fn describe_compile_error(e: &CompileError) -> String {
    format!(
        "{} {}: {}",
        crate::resource::Resource::of(e.kind).label,
        e.id,
        e.error
    )
}
