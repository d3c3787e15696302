//! Creating the API's unix socket so that only root can ever connect to it.

use std::fs::{self, DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::error::ApiError;

/// Binds `path` with mode 0600, creating its parent (0700) and replacing a stale socket.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    let bind_err = |source| ApiError::Bind {
        path: path.to_owned(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|source| ApiError::SocketDir {
                path: parent.clone(),
                source,
            })?;
    }
    remove_stale(path)?;
    // Bind under a temporary name and rename once chmod-ed: the final path never exists
    // with the umask's permissions, not even for an instant.
    let file_name = path.file_name().ok_or_else(|| {
        bind_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "socket path has no file name",
        ))
    })?;
    let tmp = parent.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(bind_err)?;
    let placed = fs::set_permissions(&tmp, Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(bind_err(e));
    }
    Ok(listener)
}

/// Removes a socket left by a previous run; refuses to touch a live one or a non-socket.
fn remove_stale(path: &Path) -> Result<(), ApiError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ApiError::Bind {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ApiError::Bind {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "path exists and is not a socket",
            ),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ApiError::InUse(path.to_owned()));
    }
    fs::remove_file(path).map_err(|source| ApiError::Bind {
        path: path.to_owned(),
        source,
    })
}
