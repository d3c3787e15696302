//! Typed errors of the API server, the CLI client and the metrics endpoint.

use std::path::PathBuf;

/// Errors starting or running the API or metrics server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Creating the socket's parent directory failed.
    #[error("cannot create API socket directory {path}: {source}")]
    SocketDir {
        /// The directory.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Another agent answers on the socket; refusing to steal it.
    #[error("another agent is already listening on {0}")]
    InUse(PathBuf),
    /// Binding, chmod or rename of the socket failed.
    #[error("cannot bind API socket {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Binding the metrics TCP listener failed.
    #[error("cannot bind metrics listener {addr}: {source}")]
    BindTcp {
        /// The address.
        addr: std::net::SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Accepting a connection failed in a way that is not per-connection.
    #[error("accept failed: {0}")]
    Accept(std::io::Error),
}

/// Errors of the CLI client, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket does not exist.
    #[error("is the agent running? socket {0} not found")]
    SocketMissing(PathBuf),
    /// The socket (or its directory) is not accessible to this user.
    #[error("permission denied on {0}: must be root")]
    PermissionDenied(PathBuf),
    /// The socket exists but nobody accepts on it.
    #[error("is the agent running? connection to {0} refused")]
    Refused(PathBuf),
    /// Any other connect failure.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// HTTP-level failure talking to the agent.
    #[error("talking to the agent: {0}")]
    Http(#[from] hyper::Error),
    /// Building the request failed (bad path).
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
    /// The agent answered with an error; its message is passed through.
    #[error("agent error ({status}): {message}")]
    Agent {
        /// HTTP status.
        status: u16,
        /// Message from the agent's JSON error body.
        message: String,
    },
    /// The agent's answer did not decode.
    #[error("cannot decode the agent's answer: {0}")]
    Decode(#[from] serde_json::Error),
}

impl ClientError {
    /// Classifies a connect error on `path` into a message the user can act on.
    pub(crate) fn from_connect(path: PathBuf, source: std::io::Error) -> ClientError {
        match source.kind() {
            std::io::ErrorKind::NotFound => ClientError::SocketMissing(path),
            std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path),
            std::io::ErrorKind::ConnectionRefused => ClientError::Refused(path),
            _ => ClientError::Connect { path, source },
        }
    }
}
