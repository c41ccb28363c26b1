//! The crate's one error type.
//!
//! Every fallible library call returns [`Result`]. Variants name *what* went wrong and
//! *where* (file, row, column, field) so that a host engine can log a single line and an
//! operator can fix the input without a debugger. The binary wraps these in `anyhow`.

use std::path::PathBuf;

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bar failed validation; `row` is the 1-based data row (header excluded) in `source`.
    #[error("{source_name}: row {row}, column `{column}`: {reason}")]
    InvalidBar {
        /// File path or `<memory>` / `<dataframe>` for in-memory input.
        source_name: String,
        /// 1-based data row (the header is not counted).
        row: usize,
        /// Column that holds the offending value.
        column: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record of an input log (a trade log) failed to parse; `row` is the 1-based data row
    /// (the header of a CSV is not counted; a JSONL file's line number).
    #[error("{source_name}: row {row}, column `{column}`: {reason}")]
    InvalidRecord {
        /// File path or `<memory>`.
        source_name: String,
        /// 1-based data row.
        row: usize,
        /// Column (or JSON key) that holds the offending value.
        column: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A required column is absent from an input table.
    #[error("{source_name}: missing column `{column}` (found: {found})")]
    MissingColumn {
        /// File path or in-memory label.
        source_name: String,
        /// The column we looked for (canonical name).
        column: String,
        /// The columns that were present.
        found: String,
    },

    /// The input holds no rows.
    #[error("{source_name}: no data rows")]
    Empty {
        /// File path or in-memory label.
        source_name: String,
    },

    /// Arrays that must have one length do not.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Which array or argument.
        what: String,
        /// The length required.
        expected: usize,
        /// The length given.
        got: usize,
    },

    /// A configuration or parameter value is out of its valid range.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidParam {
        /// Dotted path of the field, e.g. `features[3].period`.
        field: String,
        /// Why it is invalid.
        reason: String,
    },

    /// A configuration document failed to parse (unknown keys are errors).
    #[error("{source_name}: {message}")]
    Config {
        /// File path or `<string>`.
        source_name: String,
        /// Parser message (includes line and column where the parser gives them).
        message: String,
    },

    /// The file format could not be inferred or is not supported.
    #[error("{path}: unsupported file type (expected .csv or .parquet)")]
    UnsupportedFormat {
        /// The offending path.
        path: PathBuf,
    },

    /// An I/O failure, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// polars failed to read, convert or write a table.
    #[error("{context}: {source}")]
    Polars {
        /// What we were doing and on which file.
        context: String,
        /// The underlying polars error.
        #[source]
        source: polars::error::PolarsError,
    },

    /// Work was cancelled (by the caller or its time limit) before it finished.
    #[error("cancelled: {reason}")]
    Cancelled {
        /// Who or what stopped it.
        reason: String,
    },

    /// A saved model file is truncated, corrupt or of an unknown version.
    #[error("{source_name}: not a valid model file: {reason}")]
    CorruptModel {
        /// File path or `<bytes>`.
        source_name: String,
        /// What is wrong.
        reason: String,
    },

    /// A stored version is incomplete or its bytes do not match its manifest.
    #[error("model `{model_id}` version {tag}: corrupt: {reason}")]
    CorruptVersion {
        /// The model id.
        model_id: String,
        /// The version tag.
        tag: String,
        /// What is wrong (the file and the mismatch).
        reason: String,
    },

    /// A store file (FORMAT, aliases.json, audit log) is unreadable or inconsistent.
    #[error("{path}: corrupt store file: {reason}")]
    CorruptStore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The store was written by a newer (or unknown) format version.
    #[error("{path}: store format {found} is not supported (this build reads format {supported})")]
    StoreFormat {
        /// The FORMAT file.
        path: PathBuf,
        /// What the file says.
        found: String,
        /// The format this build reads and writes.
        supported: u32,
    },

    /// A model id or version tag that the store does not hold.
    #[error("model `{model_id}`: {what} not found")]
    NotFound {
        /// The model id.
        model_id: String,
        /// What was looked for (`version v…`, `artifact …`, `active version`).
        what: String,
    },

    /// A status change the version lifecycle forbids (e.g. FAILED → ACTIVE).
    #[error("model `{model_id}` version {tag}: cannot go from {from} to {to}{hint}")]
    IllegalTransition {
        /// The model id.
        model_id: String,
        /// The version tag.
        tag: String,
        /// Its current status.
        from: String,
        /// The requested status.
        to: String,
        /// Extra explanation (starts with "; " when present).
        hint: String,
    },

    /// Compare-and-swap on a model's alias generation failed: someone changed it first.
    #[error("model `{model_id}`: aliases changed concurrently (expected generation {expected}, found {found})")]
    GenerationConflict {
        /// The model id.
        model_id: String,
        /// The generation the caller read.
        expected: u64,
        /// The generation on disk.
        found: u64,
    },

    /// A candle tensor operation failed (shapes, device, a kernel); boxed because candle's
    /// error is large and every `Result` in the crate would pay for it.
    #[error("candle: {0}")]
    Candle(Box<candle_core::Error>),

    /// A linfa dataset or trait call failed.
    #[error("linfa: {0}")]
    Linfa(#[from] linfa::error::Error),

    /// A baseline learner (linfa-logistic, smartcore, our CART) could not fit or predict,
    /// or was asked for a task it does not model.
    #[error("{kind}: {reason}")]
    Learner {
        /// The model kind (`logreg`).
        kind: &'static str,
        /// What went wrong.
        reason: String,
    },

    /// A fit refused a training table over its kind's size limit (a baseline that would run
    /// for an hour is refused instead).
    #[error(
        "{kind}: {rows} training rows × {features} features is over its limit of {limit} rows \
         (hyperparameter `max_rows`; raise it or narrow the window)"
    )]
    TooLarge {
        /// The model kind.
        kind: &'static str,
        /// Training rows asked for.
        rows: usize,
        /// Feature columns.
        features: usize,
        /// The kind's `max_rows`.
        limit: usize,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidParam`].
    pub fn param(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParam { field: field.into(), reason: reason.into() }
    }

    /// Shorthand for [`Error::Polars`] with a context line.
    pub(crate) fn polars(context: impl Into<String>, source: polars::error::PolarsError) -> Self {
        Error::Polars { context: context.into(), source }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(Box::new(e))
    }
}
