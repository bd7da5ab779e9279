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

    /// A snapshot, key slot or item asked for does not exist: `what` says
    /// which, `message` names it and says where to look.
    #[error("{message}")]
    NotFound { what: Missing, message: String },

    /// A command that deletes, run in append-only mode (the `String` names
    /// the command).
    #[error("{0} refused: {hint}", hint = crate::storage::append_only::ADMIN_HINT)]
    AppendOnly(String),

    /// The caller asked for something invalid: `what` says what was wrong
    /// with the request, `message` says what to do instead.
    #[error("{message}")]
    Invalid { what: BadInput, message: String },

    #[error("storage: {0}")]
    Storage(#[from] StorageError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A failure of Lifeboat itself, not of the data or the request: `what`
    /// says where (encoding, a task or thread, cryptography, a caller
    /// breaking an API's contract).
    #[error("internal error: {message}")]
    Internal { what: Fault, message: String },
}

/// What a [`RepoError::NotFound`] did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No snapshot matches the id (or `latest`) asked for, in the scope asked.
    Snapshot,
    /// No key slot matches the id asked for.
    KeySlot,
    /// The snapshot has no item of the name asked for, or no items at all.
    Item,
}

/// What was wrong with the request of a [`RepoError::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// Parameters of a new repository (chunker sizes, pack size, zstd
    /// level) or of an operation (prune's grace period) out of bounds.
    Parameter,
    /// The location for a new repository is not empty, or already holds one.
    Location,
    /// A snapshot id that is malformed or matches several snapshots.
    SnapshotId,
    /// A key id that matches several key slots.
    KeyId,
    /// Removing this key slot would lock someone out (the last slot, or the
    /// slot that opened the repository without `--force`).
    KeyRemoval,
    /// A key file that is empty or whose key line is damaged.
    KeyFile,
}

/// Where a [`RepoError::Internal`] failure arose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Serializing or compressing a document.
    Encoding,
    /// A task or thread of a pipeline panicked, failed to join, or stopped.
    Task,
    /// The cryptography library or the system random number generator.
    Crypto,
    /// A caller broke an API's contract (a range past a stream's end, holes
    /// asked of a stream, a secret of the wrong kind for a slot).
    Misuse,
}

/// What kind of failure a [`RepoError`] is, without its text: for callers
/// that decide by kind (exit codes, retries, tests). [`RepoError::class`]
/// is the coarser grouping the CLI's exit codes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoErrorKind {
    NotARepository,
    NewerFormat,
    WrongKey,
    Locked,
    LockLost,
    Corrupt,
    NotFound(Missing),
    AppendOnly,
    Invalid(BadInput),
    Storage(StorageErrorKind),
    Io,
    Internal(Fault),
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
    /// The coarse class of this failure, which the CLI maps to an exit code.
    pub fn class(&self) -> ErrorClass {
        self.kind().class()
    }

    /// What kind of failure this is (see [`RepoErrorKind`]).
    pub fn kind(&self) -> RepoErrorKind {
        match self {
            RepoError::NotARepository { .. } => RepoErrorKind::NotARepository,
            RepoError::NewerFormat { .. } => RepoErrorKind::NewerFormat,
            RepoError::WrongKey(_) => RepoErrorKind::WrongKey,
            RepoError::Locked(_) => RepoErrorKind::Locked,
            RepoError::LockLost(_) => RepoErrorKind::LockLost,
            RepoError::Corrupt { .. } => RepoErrorKind::Corrupt,
            RepoError::NotFound { what, .. } => RepoErrorKind::NotFound(*what),
            RepoError::AppendOnly(_) => RepoErrorKind::AppendOnly,
            RepoError::Invalid { what, .. } => RepoErrorKind::Invalid(*what),
            RepoError::Storage(e) => RepoErrorKind::Storage(e.kind),
            RepoError::Io { .. } => RepoErrorKind::Io,
            RepoError::Internal { what, .. } => RepoErrorKind::Internal(*what),
        }
    }

    pub fn not_found(what: Missing, message: impl Into<String>) -> Self {
        RepoError::NotFound {
            what,
            message: message.into(),
        }
    }

    pub fn invalid(what: BadInput, message: impl Into<String>) -> Self {
        RepoError::Invalid {
            what,
            message: message.into(),
        }
    }

    pub fn internal(what: Fault, message: impl Into<String>) -> Self {
        RepoError::Internal {
            what,
            message: message.into(),
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

impl RepoErrorKind {
    /// The coarse class of this kind of failure.
    pub fn class(self) -> ErrorClass {
        match self {
            RepoErrorKind::NotARepository | RepoErrorKind::NotFound(_) => ErrorClass::NotFound,
            RepoErrorKind::NewerFormat => ErrorClass::Incompatible,
            RepoErrorKind::WrongKey => ErrorClass::Auth,
            RepoErrorKind::Locked | RepoErrorKind::LockLost => ErrorClass::Locked,
            RepoErrorKind::Corrupt => ErrorClass::Integrity,
            RepoErrorKind::Invalid(_) | RepoErrorKind::AppendOnly => ErrorClass::Usage,
            RepoErrorKind::Storage(k) => class_of_storage_kind(k),
            RepoErrorKind::Io | RepoErrorKind::Internal(_) => ErrorClass::Other,
        }
    }
}

/// The class of a storage error: a missing object is not found, an invalid
/// location is usage, an object shorter than what was asked of it is an
/// integrity failure (stored data is damaged); the rest is storage.
pub fn class_of_storage(e: &StorageError) -> ErrorClass {
    class_of_storage_kind(e.kind)
}

fn class_of_storage_kind(kind: StorageErrorKind) -> ErrorClass {
    match kind {
        StorageErrorKind::NotFound => ErrorClass::NotFound,
        StorageErrorKind::InvalidLocation => ErrorClass::Usage,
        StorageErrorKind::Truncated => ErrorClass::Integrity,
        StorageErrorKind::Transient | StorageErrorKind::Permanent => ErrorClass::Storage,
    }
}

impl From<crate::crypto::CryptoError> for RepoError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        RepoError::internal(Fault::Crypto, e.to_string())
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_variants_keep_their_text_and_class() {
        let e = RepoError::not_found(Missing::Snapshot, "no snapshot with id abcd");
        assert_eq!(e.to_string(), "no snapshot with id abcd");
        assert_eq!(e.kind(), RepoErrorKind::NotFound(Missing::Snapshot));
        assert_eq!(e.class(), ErrorClass::NotFound);

        let e = RepoError::invalid(BadInput::KeyRemoval, "refusing to remove the last key");
        assert_eq!(e.to_string(), "refusing to remove the last key");
        assert_eq!(e.kind(), RepoErrorKind::Invalid(BadInput::KeyRemoval));
        assert_eq!(e.class(), ErrorClass::Usage);

        let e = RepoError::internal(Fault::Task, "writer thread panicked");
        assert_eq!(e.to_string(), "internal error: writer thread panicked");
        assert_eq!(e.kind(), RepoErrorKind::Internal(Fault::Task));
        assert_eq!(e.class(), ErrorClass::Other);

        let e: RepoError = crate::crypto::CryptoError::TooShort(3).into();
        assert_eq!(e.kind(), RepoErrorKind::Internal(Fault::Crypto));
    }

    #[test]
    fn storage_errors_are_classed_by_their_kind() {
        for (kind, class) in [
            (StorageErrorKind::NotFound, ErrorClass::NotFound),
            (StorageErrorKind::InvalidLocation, ErrorClass::Usage),
            (StorageErrorKind::Truncated, ErrorClass::Integrity),
            (StorageErrorKind::Transient, ErrorClass::Storage),
            (StorageErrorKind::Permanent, ErrorClass::Storage),
        ] {
            assert_eq!(RepoErrorKind::Storage(kind).class(), class, "{kind:?}");
        }
    }
}
