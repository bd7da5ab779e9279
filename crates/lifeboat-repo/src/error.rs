//! The repository's error type, classified so that the CLI can map each
//! failure to a documented exit code and a message that says what to do.

use crate::storage::{StorageError, StorageErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Nothing, or something that is not a Lifeboat repository, at the location.
    #[error("{location}: {detail}")]
    NotARepository { location: String, detail: String },

    /// A document written by a newer Lifeboat than this one.
    #[error(
        "{what} has format version {found}, this Lifeboat understands up to {supported}: upgrade Lifeboat to read this repository"
    )]
    NewerFormat {
        what: String,
        found: u64,
        supported: u64,
    },

    /// No key slot opens with the secret given.
    #[error("{0}")]
    WrongKey(String),

    /// Another process holds a conflicting lock.
    #[error("repository is locked: {0}")]
    Locked(String),

    /// This operation's own lock was removed or could not be refreshed:
    /// it stopped without committing (see `lock`).
    #[error("lost the repository lock: {0}")]
    LockLost(String),

    /// Stored data failed verification. `object` names it.
    #[error("integrity failure in {object}: {detail}")]
    Corrupt { object: String, detail: String },

    /// A snapshot (or key, or item) asked for does not exist.
    #[error("{0}")]
    NotFound(String),

    /// A command that deletes, run in append-only mode (the `String` names
    /// the command).
    #[error("{0} refused: {hint}", hint = crate::storage::append_only::ADMIN_HINT)]
    AppendOnly(String),

    /// The caller asked for something invalid (bad parameters, last key removal…).
    #[error("{0}")]
    Invalid(String),

    #[error("storage: {0}")]
    Storage(#[from] StorageError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error: {0}")]
    Internal(String),
}

/// Coarse classes of failure; the CLI maps each to its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    NotFound,
    Incompatible,
    Auth,
    Locked,
    Integrity,
    Usage,
    Storage,
    Other,
}

impl RepoError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RepoError::NotARepository { .. } | RepoError::NotFound(_) => ErrorClass::NotFound,
            RepoError::NewerFormat { .. } => ErrorClass::Incompatible,
            RepoError::WrongKey(_) => ErrorClass::Auth,
            RepoError::Locked(_) | RepoError::LockLost(_) => ErrorClass::Locked,
            RepoError::Corrupt { .. } => ErrorClass::Integrity,
            RepoError::Invalid(_) | RepoError::AppendOnly(_) => ErrorClass::Usage,
            RepoError::Storage(e) => class_of_storage(e),
            RepoError::Io { .. } | RepoError::Internal(_) => ErrorClass::Other,
        }
    }

    pub fn corrupt(object: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        RepoError::Corrupt {
            object: object.into(),
            detail: detail.to_string(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RepoError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The class of a storage error: a missing object is not found, an invalid
/// location is usage, an object shorter than what was asked of it is an
/// integrity failure (stored data is damaged); the rest is storage.
pub fn class_of_storage(e: &StorageError) -> ErrorClass {
    match e.kind {
        StorageErrorKind::NotFound => ErrorClass::NotFound,
        StorageErrorKind::InvalidLocation => ErrorClass::Usage,
        StorageErrorKind::Truncated => ErrorClass::Integrity,
        StorageErrorKind::Transient | StorageErrorKind::Permanent => ErrorClass::Storage,
    }
}

impl From<crate::crypto::CryptoError> for RepoError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        RepoError::Internal(e.to_string())
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;
