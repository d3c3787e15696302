//! Label selectors (`matchLabels`, `matchExpressions`) and their matching against label sets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::labels::{is_source, LabelSet, POD_NAMESPACE, SOURCE_K8S};

/// A selector as written in YAML (Kubernetes `LabelSelector`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorSpec {
    /// Exact key/value requirements.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<MatchExpression>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchExpression {
    /// Label key (with optional source prefix).
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: Operator,
    /// Values for `In` / `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Set-based operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operator {
    /// Value is one of `values`.
    In,
    /// Label absent or value not in `values`.
    NotIn,
    /// Label present.
    Exists,
    /// Label absent.
    DoesNotExist,
}

/// A compiled selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Requirement {
    /// `None` matches labels of any source.
    source: Option<String>,
    key: String,
    op: Operator,
    values: Vec<String>,
}

/// Splits `k8s:app` into (Some("k8s"), "app"); `app` and `any:app` have no source constraint.
fn split_key(key: &str, default_source: Option<&str>) -> (Option<String>, String) {
    match key.split_once(':') {
        Some(("any", k)) => (None, k.to_string()),
        Some((src, k)) if is_source(src) => (Some(src.to_string()), k.to_string()),
        _ => (default_source.map(str::to_string), key.to_string()),
    }
}

impl Selector {
    /// Selects everything (the empty selector `{}`).
    pub fn all() -> Self {
        Selector { reqs: Vec::new() }
    }

    /// Compiles a spec; keys without a source prefix match any source unless
    /// `default_source` is given (Kubernetes NetworkPolicy selectors use `k8s`).
    pub fn compile(spec: &LabelSelectorSpec, default_source: Option<&str>) -> Self {
        let mut reqs = Vec::new();
        for (k, v) in &spec.match_labels {
            let (source, key) = split_key(k, default_source);
            reqs.push(Requirement {
                source,
                key,
                op: Operator::In,
                values: vec![v.clone()],
            });
        }
        for e in &spec.match_expressions {
            let (source, key) = split_key(&e.key, default_source);
            let mut values = e.values.clone();
            values.sort();
            reqs.push(Requirement {
                source,
                key,
                op: e.operator,
                values,
            });
        }
        reqs.sort();
        Selector { reqs }
    }

    /// Adds `key op values` with source `k8s` (used for namespace scoping).
    pub fn require(mut self, key: &str, op: Operator, values: &[&str]) -> Self {
        self.reqs.push(Requirement {
            source: Some(SOURCE_K8S.to_string()),
            key: key.to_string(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        });
        self.reqs.sort();
        self
    }

    /// A selector requiring both `a` and `b`.
    pub fn intersect(a: Selector, b: Selector) -> Self {
        let mut reqs = a.reqs;
        reqs.extend(b.reqs);
        reqs.sort();
        reqs.dedup();
        Selector { reqs }
    }

    /// True when the selector names a key (any source).
    pub fn mentions(&self, key: &str) -> bool {
        self.reqs.iter().any(|r| r.key == key)
    }

    /// Scopes a namespaced policy's selector to `ns` unless it names the namespace itself.
    pub fn scoped_to_namespace(self, ns: &str) -> Self {
        if self.mentions(POD_NAMESPACE) {
            self
        } else {
            self.require(POD_NAMESPACE, Operator::In, &[ns])
        }
    }

    /// True for the empty selector.
    pub fn is_all(&self) -> bool {
        self.reqs.is_empty()
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.reqs.iter().all(|r| r.holds(labels))
    }
}

impl Requirement {
    fn holds(&self, labels: &LabelSet) -> bool {
        let mut found = labels
            .iter()
            .filter(|l| l.key == self.key && self.source.as_ref().is_none_or(|s| &l.source == s));
        match self.op {
            Operator::In => found.any(|l| self.values.contains(&l.value)),
            Operator::NotIn => !found.any(|l| self.values.contains(&l.value)),
            Operator::Exists => found.next().is_some(),
            Operator::DoesNotExist => found.next().is_none(),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reqs.is_empty() {
            return write!(f, "{{}}");
        }
        let parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| {
                let key = match &r.source {
                    Some(s) => format!("{s}:{}", r.key),
                    None => format!("any:{}", r.key),
                };
                match r.op {
                    Operator::In if r.values.len() == 1 => format!("{key}={}", r.values[0]),
                    Operator::In => format!("{key} in ({})", r.values.join(",")),
                    Operator::NotIn => format!("{key} notin ({})", r.values.join(",")),
                    Operator::Exists => key,
                    Operator::DoesNotExist => format!("!{key}"),
                }
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;

    fn set(labels: &[&str]) -> LabelSet {
        labels.iter().map(|l| Label::parse(l, "k8s")).collect()
    }

    fn spec(yaml: &str) -> LabelSelectorSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn selector_table() {
        let pod = set(&[
            "k8s:env=prod",
            "k8s:app=web",
            "k8s:io.kubernetes.pod.namespace=default",
        ]);
        let host = set(&["reserved:host"]);
        let cases: &[(&str, &LabelSet, bool)] = &[
            ("{}", &pod, true),
            ("{}", &host, true),
            ("matchLabels: {env: prod}", &pod, true),
            ("matchLabels: {env: dev}", &pod, false),
            ("matchLabels: {k8s:env: prod}", &pod, true),
            ("matchLabels: {any:env: prod}", &pod, true),
            ("matchLabels: {reserved:env: prod}", &pod, false),
            ("matchLabels: {reserved:host: ''}", &host, true),
            ("matchLabels: {reserved:host: ''}", &pod, false),
            ("matchExpressions: [{key: env, operator: In, values: [dev, prod]}]", &pod, true),
            ("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]", &pod, false),
            ("matchExpressions: [{key: tier, operator: NotIn, values: [db]}]", &pod, true),
            ("matchExpressions: [{key: app, operator: Exists}]", &pod, true),
            ("matchExpressions: [{key: app, operator: DoesNotExist}]", &pod, false),
            ("matchExpressions: [{key: tier, operator: DoesNotExist}]", &pod, true),
            ("{matchLabels: {env: prod}, matchExpressions: [{key: app, operator: In, values: [db]}]}", &pod, false),
        ];
        for (yaml, labels, want) in cases {
            let sel = Selector::compile(&spec(yaml), None);
            assert_eq!(sel.matches(labels), *want, "{yaml} vs {labels:?}");
        }
    }

    #[test]
    fn namespace_scoping() {
        let pod = set(&["k8s:env=prod", "k8s:io.kubernetes.pod.namespace=other"]);
        let sel = Selector::compile(&spec("matchLabels: {env: prod}"), None);
        assert!(!sel.clone().scoped_to_namespace("default").matches(&pod));
        assert!(sel.scoped_to_namespace("other").matches(&pod));
        let explicit = Selector::compile(
            &spec("matchLabels: {k8s:io.kubernetes.pod.namespace: other}"),
            None,
        );
        assert!(
            explicit.scoped_to_namespace("default").matches(&pod),
            "explicit namespace wins"
        );
    }
}
