//! The one error type of kiln. Every failure a caller can cause (a bad file, an
//! unsupported op, a wrong input) is a variant they can match on; nothing a user
//! controls makes kiln panic.

use std::path::PathBuf;

/// Result alias used throughout kiln.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One unsupported construct found while importing a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Node name (or `#index` when the node is unnamed).
    pub node: String,
    /// ONNX op type, with its domain when not the default one.
    pub op: String,
    /// The opset version the model declares for the op's domain.
    pub opset: i64,
    /// What exactly is unsupported.
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node '{}' op {} (opset {}): {}",
            self.node, self.op, self.opset, self.reason
        )
    }
}

fn list_unsupported(items: &[Unsupported]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a well-formed ONNX protobuf message.
    #[error("malformed ONNX protobuf: {0}")]
    Malformed(String),

    /// Every unsupported op, opset or dtype in the model, found in one pass.
    #[error("{} unsupported construct(s): {}", .0.len(), list_unsupported(.0))]
    Unsupported(Vec<Unsupported>),

    /// The graph is structurally wrong: cycles, dangling or duplicate names, bad attributes.
    #[error("invalid graph: {0}")]
    InvalidGraph(String),

    /// Shapes or dtypes do not fit together (at load, plan or run time).
    #[error("shape error at {node}: {message}")]
    Shape { node: String, message: String },

    /// A caller-supplied input does not match what the model declares.
    #[error("input '{name}': expected {expected}, got {got}")]
    InputMismatch {
        name: String,
        expected: String,
        got: String,
    },

    /// A configured resource cap would be exceeded.
    #[error("resource limit exceeded: {0}")]
    Limit(String),

    /// A problem with a tensor's external-data file.
    #[error("external data for tensor '{tensor}': {message}")]
    ExternalData { tensor: String, message: String },

    /// The requested backend cannot run on this machine or build.
    #[error("backend '{backend}' unavailable: {reason}")]
    BackendUnavailable { backend: String, reason: String },

    /// A GPU library or driver call failed at run time (out of device memory, a
    /// kernel fault, a cuDNN or cuBLAS status).
    #[error("device error: {0}")]
    Device(String),

    /// Anything else a user asked for that kiln cannot do (bad CLI argument, unknown zoo model).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The variant's name (`"Malformed"`, `"Limit"`, ...): stable, for logs, metrics
    /// and tests that check which kind of failure happened.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "Io",
            Error::Malformed(_) => "Malformed",
            Error::Unsupported(_) => "Unsupported",
            Error::InvalidGraph(_) => "InvalidGraph",
            Error::Shape { .. } => "Shape",
            Error::InputMismatch { .. } => "InputMismatch",
            Error::Limit(_) => "Limit",
            Error::ExternalData { .. } => "ExternalData",
            Error::BackendUnavailable { .. } => "BackendUnavailable",
            Error::Device(_) => "Device",
            Error::Usage(_) => "Usage",
        }
    }

    pub(crate) fn shape(node: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Shape {
            node: node.into(),
            message: message.into(),
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Error::Malformed(message.into())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidGraph(message.into())
    }
}
