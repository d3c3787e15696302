//! Table tests for `HttpRuleSet::check`: methods, anchored paths, hosts, headers, headerMatches.

use http::{HeaderMap, HeaderName, HeaderValue};
use palisade_httpmatch::{HeaderAction, HttpRuleSet, HttpRuleSpec, RequestView};

fn rule(method: Option<&str>, path: Option<&str>) -> HttpRuleSpec {
    HttpRuleSpec {
        method: method.map(Into::into),
        path: path.map(Into::into),
        ..Default::default()
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    map
}

/// (method, path, host, headers, expected matching rule)
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<usize>,
);

fn run(rules: &[HttpRuleSpec], cases: &[Case<'_>]) {
    let set = HttpRuleSet::compile(rules).expect("rules compile");
    for (method, path, host, hdrs, want) in cases {
        let map = headers(hdrs);
        let got = set.check(&RequestView {
            method,
            path,
            host,
            headers: &map,
        });
        assert_eq!(
            got.rule, *want,
            "{method} {path} host={host:?} headers={hdrs:?}"
        );
        assert_eq!(
            got.allowed(),
            want.is_some(),
            "allowed() agrees with rule for {method} {path}"
        );
    }
}

#[test]
fn s9_get_public_only() {
    run(
        &[rule(Some("GET"), Some("/public"))],
        &[
            ("GET", "/public", "", &[], Some(0)),
            ("GET", "/private", "", &[], None),
            ("POST", "/public", "", &[], None),
            ("get", "/public", "", &[], None),
            ("GET", "/public/", "", &[], None),
            ("GET", "/publicity", "", &[], None),
            ("GET", "/public?x=1", "", &[], None),
            ("GETX", "/public", "", &[], None),
        ],
    );
}

#[test]
fn s10_dollar_paths_and_required_header() {
    let rules = vec![
        rule(Some("GET"), Some("/path1$")),
        HttpRuleSpec {
            headers: vec!["X-My-Header: true".into()],
            ..rule(Some("PUT"), Some("/path2$"))
        },
    ];
    run(
        &rules,
        &[
            ("GET", "/path1", "", &[], Some(0)),
            ("GET", "/path1x", "", &[], None),
            ("PUT", "/path1", "", &[], None),
            ("PUT", "/path2", "", &[("X-My-Header", "true")], Some(1)),
            ("PUT", "/path2", "", &[("x-my-header", "true")], Some(1)),
            ("PUT", "/path2", "", &[], None),
            ("PUT", "/path2", "", &[("X-My-Header", "false")], None),
            ("PUT", "/path2", "", &[("X-My-Header", "TRUE")], None),
            (
                "PUT",
                "/path2",
                "",
                &[("X-My-Header", "true"), ("X-My-Header", "true")],
                None,
            ),
            ("GET", "/path2", "", &[("X-My-Header", "true")], None),
        ],
    );
}

#[test]
fn method_regexes_and_alternatives() {
    run(
        &[
            rule(Some("GET|HEAD"), None),
            rule(Some("P.*"), Some("/upload/.*")),
        ],
        &[
            ("GET", "/anything", "", &[], Some(0)),
            ("HEAD", "/", "", &[], Some(0)),
            ("POST", "/upload/a", "", &[], Some(1)),
            ("PATCH", "/upload/b/c", "", &[], Some(1)),
            ("POST", "/other", "", &[], None),
            ("DELETE", "/upload/a", "", &[], None),
        ],
    );
}

#[test]
fn host_matches_whole_authority_with_port() {
    let rules = vec![
        HttpRuleSpec {
            host: Some(r"api\.example\.com".into()),
            ..Default::default()
        },
        HttpRuleSpec {
            host: Some(r"web\.example\.com(:8080)?".into()),
            ..Default::default()
        },
    ];
    run(
        &rules,
        &[
            ("GET", "/", "api.example.com", &[], Some(0)),
            ("GET", "/", "api.example.com:80", &[], None),
            ("GET", "/", "xapi.example.com", &[], None),
            ("GET", "/", "web.example.com:8080", &[], Some(1)),
            ("GET", "/", "web.example.com", &[], Some(1)),
            ("GET", "/", "", &[], None),
        ],
    );
}

#[test]
fn header_presence_and_duplicates() {
    let rules = vec![
        HttpRuleSpec {
            headers: vec!["X-Present".into()],
            ..Default::default()
        },
        HttpRuleSpec {
            headers: vec!["X-Multi: a,b".into()],
            ..Default::default()
        },
        HttpRuleSpec {
            headers: vec!["x-two: 1".into(), "X-Three 3".into()],
            ..Default::default()
        },
    ];
    run(
        &rules,
        &[
            ("GET", "/", "", &[("x-present", "")], Some(0)),
            ("GET", "/", "", &[("X-PRESENT", "anything")], Some(0)),
            (
                "GET",
                "/",
                "",
                &[("X-Multi", "a"), ("X-Multi", "b")],
                Some(1),
            ),
            ("GET", "/", "", &[("X-Multi", "a,b")], Some(1)),
            ("GET", "/", "", &[("X-Multi", "a")], None),
            ("GET", "/", "", &[("X-Two", "1"), ("X-Three", "3")], Some(2)),
            ("GET", "/", "", &[("X-Two", "1")], None),
            ("GET", "/", "", &[], None),
        ],
    );
}

#[test]
fn first_matching_rule_wins_and_empty_set_denies() {
    run(
        &[
            rule(None, Some("/a")),
            rule(Some("GET"), None),
            rule(None, None),
        ],
        &[
            ("GET", "/a", "", &[], Some(0)),
            ("GET", "/b", "", &[], Some(1)),
            ("PUT", "/b", "", &[], Some(2)),
        ],
    );
    run(&[], &[("GET", "/", "", &[], None)]);
}

#[test]
fn header_matches_mismatch_actions() {
    let rules: Vec<HttpRuleSpec> = serde_json::from_str(
        r#"[{"path":"/deny","headerMatches":[{"name":"X-Token","value":"s3cret"}]},
            {"path":"/log","headerMatches":[{"name":"X-Token","value":"s3cret","mismatch":"LOG"}]},
            {"path":"/add","headerMatches":[{"name":"X-Token","value":"s3cret","mismatch":"ADD"}]},
            {"path":"/del","headerMatches":[{"name":"X-Token","value":"s3cret","mismatch":"DELETE"}]},
            {"path":"/rep","headerMatches":[{"name":"X-Token","value":"s3cret","mismatch":"REPLACE"}]}]"#,
    )
    .expect("rules parse");
    let set = HttpRuleSet::compile(&rules).expect("rules compile");
    let name = HeaderName::from_static("x-token");
    let secret = HeaderValue::from_static("s3cret");
    let check = |path: &str, token: Option<&str>| {
        let map = headers(&token.map(|t| vec![("X-Token", t)]).unwrap_or_default());
        set.check(&RequestView {
            method: "GET",
            path,
            host: "",
            headers: &map,
        })
    };
    for path in ["/deny", "/log", "/add", "/del", "/rep"] {
        let ok = check(path, Some("s3cret"));
        assert!(
            ok.allowed() && ok.actions.is_empty(),
            "{path} with the right token: plain allow, got {ok:?}"
        );
    }
    assert!(
        !check("/deny", Some("wrong")).allowed(),
        "no mismatch action: a wrong value denies"
    );
    assert!(
        !check("/deny", None).allowed(),
        "no mismatch action: a missing header denies"
    );
    let table: &[(&str, HeaderAction)] = &[
        ("/log", HeaderAction::Log { name: name.clone() }),
        (
            "/add",
            HeaderAction::Add {
                name: name.clone(),
                value: secret.clone(),
            },
        ),
        ("/del", HeaderAction::Delete { name: name.clone() }),
        (
            "/rep",
            HeaderAction::Replace {
                name: name.clone(),
                value: secret.clone(),
            },
        ),
    ];
    for (path, want) in table {
        let got = check(path, Some("wrong"));
        assert!(
            got.allowed(),
            "{path}: a mismatch with an action still allows"
        );
        assert_eq!(got.actions, vec![want.clone()], "{path}: action");
    }
    let mut fwd = headers(&[("X-Token", "wrong")]);
    HeaderAction::Replace {
        name: name.clone(),
        value: secret.clone(),
    }
    .apply(&mut fwd);
    assert_eq!(
        fwd.get_all(&name).iter().collect::<Vec<_>>(),
        vec![&secret],
        "REPLACE leaves one value"
    );
    HeaderAction::Add {
        name: name.clone(),
        value: HeaderValue::from_static("x"),
    }
    .apply(&mut fwd);
    assert_eq!(fwd.get_all(&name).iter().count(), 2, "ADD appends a value");
    HeaderAction::Delete { name: name.clone() }.apply(&mut fwd);
    assert!(fwd.get(&name).is_none(), "DELETE removes the header");
}

#[test]
fn many_rules_match_like_one_at_a_time() {
    let rules: Vec<HttpRuleSpec> = (0..300)
        .map(|i| {
            rule(
                Some(if i % 2 == 0 { "GET" } else { "POST" }),
                Some(&format!("/r{i}/.*")),
            )
        })
        .collect();
    let set = HttpRuleSet::compile(&rules).expect("300 rules compile");
    let empty = HeaderMap::new();
    for i in [0usize, 1, 150, 299] {
        let method = if i % 2 == 0 { "GET" } else { "POST" };
        let path = format!("/r{i}/x");
        let got = set.check(&RequestView {
            method,
            path: &path,
            host: "",
            headers: &empty,
        });
        assert_eq!(got.rule, Some(i), "{method} {path}");
        let wrong = if i % 2 == 0 { "POST" } else { "GET" };
        let got = set.check(&RequestView {
            method: wrong,
            path: &path,
            host: "",
            headers: &empty,
        });
        assert_eq!(got.rule, None, "{wrong} {path}");
    }
}
