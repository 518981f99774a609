//! The store's errors: what failed, on which resource, and why.

use std::fmt;

/// The kinds of resource the store keeps, named in [`StoreError`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A function (all its versions).
    Function,
    /// One version of a function (`$LATEST` or a number).
    Version,
    /// An alias of a function.
    Alias,
    /// A function event-invoke configuration (per function and qualifier).
    EventInvokeConfig,
    /// A provisioned-concurrency configuration (per function and qualifier).
    ProvisionedConcurrencyConfig,
    /// An asynchronous event in the queue.
    Event,
    /// A content-addressed package blob.
    Blob,
    /// A function URL's configuration (per function and qualifier).
    FunctionUrlConfig,
    /// A statement of a function's resource policy.
    Permission,
    /// A schedule (EventBridge Scheduler's).
    Schedule,
    /// An event-source mapping.
    EventSourceMapping,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Function => "function",
            Kind::Version => "function version",
            Kind::Alias => "alias",
            Kind::EventInvokeConfig => "event invoke config",
            Kind::ProvisionedConcurrencyConfig => "provisioned concurrency config",
            Kind::Event => "event",
            Kind::Blob => "blob",
            Kind::FunctionUrlConfig => "function url config",
            Kind::Permission => "permission",
            Kind::Schedule => "schedule",
            Kind::EventSourceMapping => "event source mapping",
        })
    }
}

/// Everything that can go wrong in the store.
///
/// The API layer maps these onto Lambda's errors: [`StoreError::NotFound`] to
/// `ResourceNotFoundException` (404), [`StoreError::AlreadyExists`] and
/// [`StoreError::Conflict`] to `ResourceConflictException` (409),
/// [`StoreError::RevisionMismatch`] to `PreconditionFailedException` (412),
/// [`StoreError::InvalidArgument`] and [`StoreError::TooManyTags`] to
/// `InvalidParameterValueException` (400), and the rest to
/// `ServiceException` (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource does not exist.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// What kind of resource was looked for.
        kind: Kind,
        /// Its name (for qualified resources `function:qualifier`).
        name: String,
    },
    /// The resource exists already and cannot be created again.
    #[error("{kind} already exists: {name}")]
    AlreadyExists {
        /// What kind of resource.
        kind: Kind,
        /// Its name (for qualified resources `function:qualifier`).
        name: String,
    },
    /// The operation conflicts with the state of another resource (for example
    /// deleting a version that an alias points at).
    #[error("conflict on {kind} {name}: {reason}")]
    Conflict {
        /// What kind of resource the operation was on.
        kind: Kind,
        /// Its name.
        name: String,
        /// Why the operation cannot be done now.
        reason: String,
    },
    /// An expected revision id did not match the current one.
    #[error(
        "{kind} {name}: revision id {expected} does not match the current revision id {actual}"
    )]
    RevisionMismatch {
        /// What kind of resource.
        kind: Kind,
        /// Its name.
        name: String,
        /// The revision id the caller expected.
        expected: String,
        /// The revision id the resource has.
        actual: String,
    },
    /// An argument is not acceptable to the store (for example an alias name
    /// that looks like a version number, or a malformed marker).
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A function would have more tags than it may have
    /// ([`mayfly_proto::limits::TAGS_PER_FUNCTION`]).
    #[error("function {name} would have {count} tags, more than the {limit} a function may have")]
    TooManyTags {
        /// The function.
        name: String,
        /// How many tags it would have.
        count: usize,
        /// How many it may have.
        limit: usize,
    },
    /// A file-system operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done, with the path.
        op: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded database failed.
    #[error("database error while {op}: {source}")]
    Sqlite {
        /// The store operation that failed.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A JSON column could not be read or written.
    #[error("JSON of {what}: {source}")]
    Json {
        /// Which value.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The database or a blob holds something it should not (for example a
    /// blob whose content does not match its name).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The data directory is open to others and cannot be made private.
    #[error("the data directory {dir} is not private: {reason}")]
    NotPrivate {
        /// The directory.
        dir: std::path::PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The database was written by a newer Mayfly with a schema this one does
    /// not know.
    #[error("database schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew {
        /// The schema version found in the database.
        found: u32,
        /// The newest schema version this build knows.
        supported: u32,
    },
}

/// The default operation name of a database error, replaced by the name of
/// the store method it happened in.
pub(crate) const UNNAMED_OP: &str = "accessing the database";

impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            op: UNNAMED_OP,
            source,
        }
    }
}

impl StoreError {
    /// Names the operation of a database error that does not have one yet.
    pub(crate) fn in_op(self, name: &'static str) -> Self {
        match self {
            StoreError::Sqlite { op, source } if op == UNNAMED_OP => {
                StoreError::Sqlite { op: name, source }
            }
            other => other,
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn not_found(kind: Kind, name: impl Into<String>) -> Self {
        StoreError::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }

    /// True for [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
