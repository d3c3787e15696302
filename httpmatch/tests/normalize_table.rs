//! Table tests for `normalize_path`: dot segments, merged slashes, decoded unreserved escapes,
//! and the escapes that must be rejected rather than decoded.

use palisade_httpmatch::{normalize_path, PathError};

#[test]
fn normalizes_like_envoy() {
    let table: &[(&str, &str)] = &[
        ("/public", "/public"),
        ("/", "/"),
        ("/public/../private", "/private"),
        ("/public/./page", "/public/page"),
        ("//public", "/public"),
        ("/a//b///c", "/a/b/c"),
        ("/public/", "/public/"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/../../x", "/x"),
        ("/public/%2e%2e/private", "/private"),
        ("/public/%2E%2E/private", "/private"),
        ("/%2e/public", "/public"),
        ("/%70ublic", "/public"),
        ("/a%7eb", "/a~b"),
        ("/a%20b", "/a%20b"),
        ("/a%3fb", "/a%3Fb"),
        ("/public?x=1", "/public?x=1"),
        ("/a/../b?p=/../c", "/b?p=/../c"),
        ("/public?q=%2F", "/public?q=%2F"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        // Paths the fast path returns unchanged, and near misses it must hand to the full pass.
        ("/a.b/c..d/e.", "/a.b/c..d/e."),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/..b", "/a/..b"),
        ("/a/b?x=//y/../z", "/a/b?x=//y/../z"),
        ("/a/b/", "/a/b/"),
    ];
    for (raw, want) in table {
        assert_eq!(
            normalize_path(raw).as_deref(),
            Ok(*want),
            "normalize_path({raw:?})"
        );
    }
}

#[test]
fn rejects_escaped_slashes_and_bad_escapes() {
    let table: &[(&str, PathError)] = &[
        ("/public%2Fprivate", PathError::EscapedSlash),
        ("/public%2fprivate", PathError::EscapedSlash),
        ("/public/..%2Fprivate", PathError::EscapedSlash),
        ("/a%5Cb", PathError::EscapedSlash),
        ("/a%5cb", PathError::EscapedSlash),
        ("/a\\b", PathError::Backslash),
        ("/a%00b", PathError::EncodedNul),
        ("/a%zz", PathError::BadEscape),
        ("/a%2", PathError::BadEscape),
        ("/a%", PathError::BadEscape),
        ("public", PathError::NotAbsolute),
        ("*", PathError::NotAbsolute),
        ("", PathError::NotAbsolute),
    ];
    for (raw, want) in table {
        assert_eq!(
            normalize_path(raw).as_ref(),
            Err(want),
            "normalize_path({raw:?})"
        );
    }
}

#[test]
fn normalization_is_idempotent() {
    for raw in ["/a/../b", "//x/./y/", "/%2e%2e/z", "/a%20b?c", "/a%3fb"] {
        let once = normalize_path(raw).expect("normalizes");
        let twice = normalize_path(&once).expect("normalizes again");
        assert_eq!(once, twice, "normalizing {raw:?} twice changed it");
    }
}
