//! Envoy-like path normalization, as Cilium configures Envoy (`normalize_path: true`,
//! `merge_slashes: true`, escaped slashes rejected).
//!
//! Order: split off the query (kept byte for byte), decode percent-encoded unreserved characters
//! (RFC 3986 §2.3) and upper-case the hex of the other escapes, merge runs of `/`, then remove `.`
//! and `..` segments (RFC 3986 §5.2.4; `..` never climbs above the root).
//!
//! Escaped slashes (`%2F`, `%5C`), literal backslashes, `%00` and malformed escapes are
//! **rejected** (the proxy answers 400), never decoded: an upstream that decodes them could
//! otherwise see `/public/..%2Fprivate` as `/private` after our rules saw a `/public/…` path.

/// Why a request path cannot be normalized; the proxy answers 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (asterisk-form or a relative path).
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// `%2F` or `%5C`: an encoded slash or backslash.
    #[error("path contains an encoded slash or backslash")]
    EscapedSlash,
    /// A literal `\`, which some servers treat as `/`.
    #[error("path contains a backslash")]
    Backslash,
    /// `%00`.
    #[error("path contains an encoded NUL")]
    EncodedNul,
    /// `%` not followed by two hex digits.
    #[error("path contains a malformed percent-escape")]
    BadEscape,
}

/// Normalizes a request target in origin form (`/a/../b?q=1` → `/b?q=1`).
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    let (path, query) = match raw.find('?') {
        Some(i) => raw.split_at(i),
        None => (raw, ""),
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path) {
        // The common case on the request path: nothing to decode, merge or resolve.
        return Ok(raw.to_owned());
    }
    let decoded = decode_unreserved(path)?;
    let mut out = remove_dot_segments(&decoded);
    out.push_str(query);
    Ok(out)
}

/// Decodes `%XX` of unreserved characters, upper-cases the rest, rejects dangerous escapes.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let hi = hex_val(hex[0]).ok_or(PathError::BadEscape)?;
                let lo = hex_val(hex[1]).ok_or(PathError::BadEscape)?;
                let c = hi << 4 | lo;
                match c {
                    b'/' | b'\\' => return Err(PathError::EscapedSlash),
                    0 => return Err(PathError::EncodedNul),
                    c if is_unreserved(c) => out.push(c as char),
                    c => out.push_str(&format!("%{c:02X}")),
                }
                i += 3;
            }
            _ => {
                // Copy the whole run up to the next special byte, keeping UTF-8 intact.
                let end = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b'%' | b'\\'))
                    .map_or(bytes.len(), |p| i + p);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    Ok(out)
}

/// Whether normalization would return `path` unchanged: no escape, no backslash, no empty
/// segment before the last and no segment starting with `.` (a superset of `.` and `..`).
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    !bytes.iter().any(|b| matches!(b, b'%' | b'\\'))
        && !bytes
            .windows(2)
            .any(|w| w[0] == b'/' && matches!(w[1], b'/' | b'.'))
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Merges `//` and resolves `.`/`..`; a trailing `.`/`..` or `/` keeps the trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in path.split('/').skip(1) {
        trailing_slash = false;
        match seg {
            // Empty segments come from `//` (merged away) or a trailing `/`.
            "" | "." => trailing_slash = true,
            ".." => {
                stack.pop();
                trailing_slash = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    out
}
