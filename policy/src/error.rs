//! Errors for loading policies and topologies: every one names file, line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in which file something was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl SourceLocation {
    /// A location naming only the file.
    pub fn file(path: &Path) -> Self {
        SourceLocation {
            path: path.to_path_buf(),
            line: None,
            column: None,
        }
    }

    /// A location at a line and column of a file.
    pub fn at(path: &Path, line: usize, column: usize) -> Self {
        SourceLocation {
            path: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        Ok(())
    }
}

/// A file that could not be loaded; nothing from it is applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The YAML is malformed or a field has a wrong type, unknown name or invalid value.
    #[error("{location}: {field}: {message}")]
    Invalid {
        /// Where.
        location: SourceLocation,
        /// Field path such as `spec.egress[0].toCIDR[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl LoadError {
    /// Wraps an I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Turns a YAML deserialization error into a located error, splitting off the field path
    /// that serde_yaml_ng puts in front of its message (`spec.egress[0]: message at line…`).
    pub fn yaml(path: &Path, e: &serde_yaml_ng::Error) -> Self {
        let location = match e.location() {
            Some(l) => SourceLocation::at(path, l.line(), l.column()),
            None => SourceLocation::file(path),
        };
        let (field, message) = split_yaml_message(&e.to_string());
        LoadError::Invalid {
            location,
            field,
            message,
        }
    }

    /// Same as [`LoadError::yaml`] with the line shifted by `line_offset` (multi-document files
    /// are parsed document by document) and `prefix` put in front of the field path.
    pub fn yaml_in_document(
        path: &Path,
        e: &serde_yaml_ng::Error,
        line_offset: usize,
        prefix: &str,
    ) -> Self {
        match Self::yaml(path, e) {
            LoadError::Invalid {
                mut location,
                field,
                message,
            } => {
                location.line = location.line.map(|l| l + line_offset);
                let field = match (prefix.is_empty(), field.is_empty()) {
                    (true, _) => field,
                    (false, true) => prefix.to_string(),
                    (false, false) => format!("{prefix}.{field}"),
                };
                LoadError::Invalid {
                    location,
                    field,
                    message,
                }
            }
            other => other,
        }
    }

    /// The field path of an `Invalid` error.
    pub fn field(&self) -> Option<&str> {
        match self {
            LoadError::Invalid { field, .. } => Some(field),
            LoadError::Io { .. } => None,
        }
    }
}

fn split_yaml_message(msg: &str) -> (String, String) {
    // Drop the trailing " at line L column C": the location is reported separately.
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // A leading path looks like `spec.egress[0].toPorts: ...` (no spaces before the colon).
    if let Some((head, rest)) = msg.split_once(": ") {
        if !head.is_empty() && !head.contains(' ') {
            return (head.to_string(), rest.to_string());
        }
    }
    (String::new(), msg.to_string())
}

/// A non-fatal finding about a policy (for example `egress: []`, which enables nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub location: SourceLocation,
    /// Field path.
    pub field: String,
    /// What the user should know.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.field, self.message)
    }
}
