//! Fuzz target: path normalization (`palisade_httpmatch::normalize_path`) and rule matching
//! (`HttpRuleSet::check`) over arbitrary method, path, host and headers.
//!
//! Input: newline-separated fields `method \n path \n host \n header-line…` (`Name: value`).
//! Besides "never panics", it checks properties whose violation is a bypass:
//! - a normalized path starts with `/`, has no `.`/`..` segment and no `//`, and normalizing it
//!   again changes nothing (the upstream sees what the rules saw);
//! - S9's rule set (`GET /public`) allows only method `GET` with path exactly `/public`.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use palisade_httpmatch::{
    normalize_path, HeaderMatch, HttpRuleSet, HttpRuleSpec, Mismatch, RequestView,
};

/// S9's single rule.
fn s9() -> &'static HttpRuleSet {
    static SET: OnceLock<HttpRuleSet> = OnceLock::new();
    SET.get_or_init(|| {
        HttpRuleSet::compile(&[HttpRuleSpec {
            method: Some("GET".into()),
            path: Some("/public".into()),
            ..Default::default()
        }])
        .expect("S9 rule compiles")
    })
}

/// A mix of every rule feature (S10's rules, host, header presence, headerMatches actions).
fn mixed() -> &'static HttpRuleSet {
    static SET: OnceLock<HttpRuleSet> = OnceLock::new();
    SET.get_or_init(|| {
        let hm = |name: &str, value: Option<&str>, mismatch| HeaderMatch {
            name: name.into(),
            value: value.map(str::to_string),
            mismatch,
        };
        HttpRuleSet::compile(&[
            HttpRuleSpec {
                method: Some("GET".into()),
                path: Some("/path1$".into()),
                ..Default::default()
            },
            HttpRuleSpec {
                method: Some("PUT".into()),
                path: Some("/path2$".into()),
                headers: vec!["X-My-Header: true".into()],
                ..Default::default()
            },
            HttpRuleSpec {
                method: Some("GET|HEAD".into()),
                path: Some("/api/v[0-9]+/.*".into()),
                host: Some("(www\\.)?example\\.com(:[0-9]+)?".into()),
                headers: vec!["X-Present".into()],
                ..Default::default()
            },
            HttpRuleSpec {
                path: Some("/edit/.*".into()),
                header_matches: vec![
                    hm("X-Log", Some("1"), Some(Mismatch::Log)),
                    hm("X-Add", Some("2"), Some(Mismatch::Add)),
                    hm("X-Del", Some("3"), Some(Mismatch::Delete)),
                    hm("X-Rep", Some("4"), Some(Mismatch::Replace)),
                    hm("X-Must", None, None),
                ],
                ..Default::default()
            },
        ])
        .expect("mixed rules compile")
    })
}

/// The path part of a normalized target (before `?`).
fn path_part(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let raw_path = lines.next().unwrap_or("");
    let host = lines.next().unwrap_or("");
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let Ok(path) = normalize_path(raw_path) else {
        return;
    };
    let p = path_part(&path);
    assert!(p.starts_with('/'), "{raw_path:?} -> {path:?}: not absolute");
    assert!(!p.contains("//"), "{raw_path:?} -> {path:?}: `//` survived");
    assert!(
        p.split('/').all(|seg| seg != "." && seg != ".."),
        "{raw_path:?} -> {path:?}: a dot segment survived"
    );
    assert_eq!(
        normalize_path(&path).as_deref(),
        Ok(path.as_str()),
        "normalizing {raw_path:?} twice changes it"
    );

    let view = RequestView {
        method,
        path: &path,
        host,
        headers: &headers,
    };
    if s9().check(&view).allowed() {
        assert!(
            method == "GET" && path == "/public",
            "S9 allowed {method:?} {raw_path:?} (normalized {path:?})"
        );
    }
    let decision = mixed().check(&view);
    let mut edited = headers.clone();
    for action in &decision.actions {
        action.apply(&mut edited);
    }
});
