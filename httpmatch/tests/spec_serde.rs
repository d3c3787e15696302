//! Parsing and validation of `HttpRuleSpec` as written in policies.

use palisade_httpmatch::{HttpRuleError, HttpRuleSpec, Mismatch};

#[test]
fn parses_cilium_fields_camel_case() {
    let json = r#"{"method":"PUT","path":"/path2$","host":"api\\.example\\.com(:80)?",
        "headers":["X-My-Header: true"],
        "headerMatches":[{"name":"X-Token","value":"abc","mismatch":"REPLACE"}]}"#;
    let spec: HttpRuleSpec = serde_json::from_str(json).expect("valid rule parses");
    assert_eq!(spec.method.as_deref(), Some("PUT"));
    assert_eq!(spec.headers, vec!["X-My-Header: true".to_string()]);
    assert_eq!(spec.header_matches[0].mismatch, Some(Mismatch::Replace));
    spec.validate().expect("valid rule validates");
}

#[test]
fn rejects_unknown_fields() {
    let err = serde_json::from_str::<HttpRuleSpec>(r#"{"method":"GET","paht":"/x"}"#)
        .expect_err("typo in a field name must be rejected");
    assert!(
        err.to_string().contains("paht"),
        "error names the unknown field: {err}"
    );
    let err =
        serde_json::from_str::<HttpRuleSpec>(r#"{"headerMatches":[{"name":"a","vaule":"b"}]}"#)
            .expect_err("typo inside headerMatches must be rejected");
    assert!(
        err.to_string().contains("vaule"),
        "error names the unknown field: {err}"
    );
}

#[test]
fn validate_names_the_bad_field() {
    let cases: &[(HttpRuleSpec, &str)] = &[
        (
            HttpRuleSpec {
                method: Some("GET(".into()),
                ..Default::default()
            },
            "method",
        ),
        (
            HttpRuleSpec {
                path: Some("/a[".into()),
                ..Default::default()
            },
            "path",
        ),
        (
            HttpRuleSpec {
                host: Some("*.example.com".into()),
                ..Default::default()
            },
            "host",
        ),
    ];
    for (spec, field) in cases {
        match spec.validate() {
            Err(HttpRuleError::BadRegex { field: f, .. }) => assert_eq!(f, *field, "{spec:?}"),
            other => panic!("expected BadRegex on {field}, got {other:?}"),
        }
    }
    let bad_header = HttpRuleSpec {
        headers: vec!["Bad Header\u{1}: x".into()],
        ..Default::default()
    };
    assert!(
        matches!(
            bad_header.validate(),
            Err(HttpRuleError::BadHeaderValue { .. } | HttpRuleError::BadHeaderName { .. })
        ),
        "control characters in a header entry are rejected"
    );
    let bad_name: HttpRuleSpec =
        serde_json::from_str(r#"{"headerMatches":[{"name":"a b"}]}"#).expect("parses");
    assert!(
        matches!(
            bad_name.validate(),
            Err(HttpRuleError::BadHeaderName {
                field: "headerMatches",
                ..
            })
        ),
        "a header name with a space is rejected"
    );
    let no_value: HttpRuleSpec =
        serde_json::from_str(r#"{"headerMatches":[{"name":"a","mismatch":"ADD"}]}"#)
            .expect("parses");
    assert!(
        matches!(
            no_value.validate(),
            Err(HttpRuleError::MissingValue {
                action: Mismatch::Add,
                ..
            })
        ),
        "ADD without a value is rejected"
    );
}
