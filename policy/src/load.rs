//! Loading policy files: multi-document YAML, directories, kind dispatch, semantic checks that
//! span several fields, and warnings. A file with any error contributes nothing.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{LoadError, SourceLocation, Warning};
use crate::model::{CiliumPolicy, EgressRule, IngressRule, KubernetesPolicy, Rule};

/// A loaded policy document.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyDoc {
    /// CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
    Cilium(CiliumPolicy),
    /// Kubernetes NetworkPolicy.
    Kubernetes(KubernetesPolicy),
}

/// Kinds of policy documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `CiliumNetworkPolicy` (namespaced).
    Cnp,
    /// `CiliumClusterwideNetworkPolicy`.
    Ccnp,
    /// `NetworkPolicy` (networking.k8s.io/v1).
    Knp,
}

impl std::fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyKind::Cnp => "CiliumNetworkPolicy",
            PolicyKind::Ccnp => "CiliumClusterwideNetworkPolicy",
            PolicyKind::Knp => "NetworkPolicy",
        })
    }
}

/// One policy with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPolicy {
    /// The document.
    pub doc: PolicyDoc,
    /// Kind.
    pub kind: PolicyKind,
    /// `metadata.name`.
    pub name: String,
    /// Namespace (`default` for namespaced kinds when omitted; `None` when clusterwide).
    pub namespace: Option<String>,
    /// File and line of the document.
    pub location: SourceLocation,
}

impl LoadedPolicy {
    /// `namespace/name` or `name` for clusterwide policies.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Policies and warnings from one or more files.
#[derive(Debug, Clone, Default)]
pub struct LoadedSet {
    /// Policies in file order.
    pub policies: Vec<LoadedPolicy>,
    /// Non-fatal findings.
    pub warnings: Vec<Warning>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// A document's text and its first line in the file (0-based offset).
struct DocText<'a> {
    text: &'a str,
    line_offset: usize,
}

/// Splits a YAML stream on `---` lines, keeping line offsets.
fn split_documents(text: &str) -> Vec<DocText<'_>> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0;
    let mut pos = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push(DocText {
                text: &text[start_byte..pos],
                line_offset: start_line,
            });
            start_byte = pos + line.len();
            start_line = i + 1;
        }
        pos += line.len();
    }
    docs.push(DocText {
        text: &text[start_byte..],
        line_offset: start_line,
    });
    docs.retain(|d| {
        d.text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// Loads every document of one file. Any error rejects the whole file.
pub fn load_file(path: &Path) -> Result<LoadedSet, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
    parse_str(&text, path)
}

/// Parses policy YAML; `path` only names the source in errors and warnings.
pub fn parse_str(text: &str, path: &Path) -> Result<LoadedSet, LoadError> {
    let mut set = LoadedSet::default();
    for doc in split_documents(text) {
        let loaded = parse_document(&doc, path, &mut set.warnings)?;
        set.policies.push(loaded);
    }
    Ok(set)
}

fn parse_document(
    doc: &DocText<'_>,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<LoadedPolicy, LoadError> {
    let first_line = first_content_line(doc);
    let at = |line: usize, field: &str, message: String| LoadError::Invalid {
        location: SourceLocation::at(path, line, 1),
        field: field.to_string(),
        message,
    };
    let header: Header = serde_yaml_ng::from_str(doc.text).map_err(|e| {
        refine(
            LoadError::yaml_in_document(path, &e, doc.line_offset, ""),
            doc,
        )
    })?;
    let kind = header.kind.unwrap_or_default();
    let api = header.api_version.unwrap_or_default();
    let location = SourceLocation::at(path, first_line, 1);
    match kind.as_str() {
        "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" => {
            if api != "cilium.io/v2" {
                return Err(at(first_line, "apiVersion", format!("{kind} needs apiVersion cilium.io/v2, got {api:?}")));
            }
            let p: CiliumPolicy = serde_yaml_ng::from_str(doc.text)
                .map_err(|e| refine(LoadError::yaml_in_document(path, &e, doc.line_offset, ""), doc))?;
            let clusterwide = kind == "CiliumClusterwideNetworkPolicy";
            let ctx = CheckCtx { path, doc };
            check_cilium(&p, clusterwide, &ctx, warnings)?;
            let namespace = if clusterwide {
                None
            } else {
                Some(p.metadata.namespace.clone().unwrap_or_else(|| "default".into()))
            };
            Ok(LoadedPolicy {
                name: p.metadata.name.clone(),
                namespace,
                kind: if clusterwide { PolicyKind::Ccnp } else { PolicyKind::Cnp },
                doc: PolicyDoc::Cilium(p),
                location,
            })
        }
        "NetworkPolicy" => {
            if api != "networking.k8s.io/v1" {
                return Err(at(first_line, "apiVersion", format!("NetworkPolicy needs apiVersion networking.k8s.io/v1, got {api:?}")));
            }
            let p: KubernetesPolicy = serde_yaml_ng::from_str(doc.text)
                .map_err(|e| refine(LoadError::yaml_in_document(path, &e, doc.line_offset, ""), doc))?;
            if p.metadata.name.is_empty() {
                return Err(at(first_line, "metadata.name", "required".into()));
            }
            Ok(LoadedPolicy {
                name: p.metadata.name.clone(),
                namespace: Some(p.metadata.namespace.clone().unwrap_or_else(|| "default".into())),
                kind: PolicyKind::Knp,
                doc: PolicyDoc::Kubernetes(p),
                location,
            })
        }
        "" => Err(at(first_line, "kind", "missing".into())),
        other => Err(at(
            first_line,
            "kind",
            format!("unsupported kind {other:?}: expected CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy"),
        )),
    }
}

/// Points a value error at the bad value itself: serde reports the enclosing list or map, so
/// when the message quotes the value (`invalid CIDR "10.0.0.0/33"`), find it from the reported
/// line on and use its line and column.
fn refine(err: LoadError, doc: &DocText<'_>) -> LoadError {
    let LoadError::Invalid {
        mut location,
        field,
        message,
    } = err
    else {
        return err;
    };
    let quoted = message.split('"').nth(1).filter(|q| !q.is_empty());
    if let (Some(value), Some(line)) = (quoted, location.line) {
        let from = line.saturating_sub(doc.line_offset + 1);
        let hit = doc
            .text
            .lines()
            .enumerate()
            .skip(from)
            .find_map(|(i, l)| l.find(value).map(|c| (i, c)));
        if let Some((i, col)) = hit {
            location.line = Some(doc.line_offset + i + 1);
            location.column = Some(col + 1);
        }
    }
    LoadError::Invalid {
        location,
        field,
        message,
    }
}

fn first_content_line(doc: &DocText<'_>) -> usize {
    let idx = doc
        .text
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or(0);
    doc.line_offset + idx + 1
}

struct CheckCtx<'a> {
    path: &'a Path,
    doc: &'a DocText<'a>,
}

impl CheckCtx<'_> {
    /// Line of the `nth` occurrence of `key:` in the document (best effort), else its first line.
    fn line_of(&self, key: &str, nth: usize) -> usize {
        let needle = format!("{key}:");
        self.doc
            .text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                let t = l.trim_start().trim_start_matches("- ");
                t.starts_with(&needle) || t.starts_with(&format!("\"{key}\":"))
            })
            .nth(nth)
            .map(|(i, _)| self.doc.line_offset + i + 1)
            .unwrap_or_else(|| first_content_line(self.doc))
    }

    /// Location of the `nth` `key:` (line, and the key's column on it).
    fn at(&self, key: &str, nth: usize) -> SourceLocation {
        let line = self.line_of(key, nth);
        let text = self
            .doc
            .text
            .lines()
            .nth(line.saturating_sub(self.doc.line_offset + 1))
            .unwrap_or("");
        let col = text.find(key).map(|c| c + 1).unwrap_or(1);
        SourceLocation::at(self.path, line, col)
    }

    fn error(&self, key: &str, nth: usize, field: String, message: String) -> LoadError {
        LoadError::Invalid {
            location: self.at(key, nth),
            field,
            message,
        }
    }
}

fn check_cilium(
    p: &CiliumPolicy,
    clusterwide: bool,
    ctx: &CheckCtx<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<(), LoadError> {
    if p.metadata.name.is_empty() {
        return Err(ctx.error("metadata", 0, "metadata.name".into(), "required".into()));
    }
    let rules: Vec<(String, &Rule)> = match (&p.spec, &p.specs) {
        (None, None) => {
            return Err(ctx.error(
                "kind",
                0,
                "spec".into(),
                "a policy needs `spec` or `specs`".into(),
            ))
        }
        (Some(s), None) => vec![("spec".to_string(), s)],
        (None, Some(v)) => v
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("specs[{i}]"), r))
            .collect(),
        (Some(s), Some(v)) => std::iter::once(("spec".to_string(), s))
            .chain(
                v.iter()
                    .enumerate()
                    .map(|(i, r)| (format!("specs[{i}]"), r)),
            )
            .collect(),
    };
    for (n, (field, rule)) in rules.iter().enumerate() {
        match (&rule.endpoint_selector, &rule.node_selector) {
            (None, None) => {
                return Err(ctx.error(
                    "spec",
                    0,
                    field.clone(),
                    "a rule needs `endpointSelector` or `nodeSelector`".into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ctx.error(
                    "nodeSelector",
                    0,
                    format!("{field}.nodeSelector"),
                    "cannot be combined with `endpointSelector`".into(),
                ))
            }
            (None, Some(_)) if !clusterwide => {
                return Err(ctx.error(
                    "nodeSelector",
                    0,
                    format!("{field}.nodeSelector"),
                    "only CiliumClusterwideNetworkPolicy may select nodes".into(),
                ))
            }
            _ => {}
        }
        for (i, r) in rule.ingress.iter().flatten().enumerate() {
            check_ingress(r, &format!("{field}.ingress[{i}]"), ctx)?;
        }
        for (i, r) in rule.ingress_deny.iter().flatten().enumerate() {
            check_ingress(r, &format!("{field}.ingressDeny[{i}]"), ctx)?;
            check_no_l7(
                r.to_ports.as_deref(),
                &format!("{field}.ingressDeny[{i}]"),
                ctx,
            )?;
        }
        for (i, r) in rule.egress.iter().flatten().enumerate() {
            check_egress(r, &format!("{field}.egress[{i}]"), ctx)?;
        }
        for (i, r) in rule.egress_deny.iter().flatten().enumerate() {
            check_egress(r, &format!("{field}.egressDeny[{i}]"), ctx)?;
            check_no_l7(
                r.to_ports.as_deref(),
                &format!("{field}.egressDeny[{i}]"),
                ctx,
            )?;
            if r.to_fqdns.is_some() {
                return Err(ctx.error(
                    "toFQDNs",
                    0,
                    format!("{field}.egressDeny[{i}].toFQDNs"),
                    "toFQDNs is not supported in deny rules".into(),
                ));
            }
        }
        let lists = [
            ("ingress", rule.ingress.as_ref().map(Vec::len)),
            ("ingressDeny", rule.ingress_deny.as_ref().map(Vec::len)),
            ("egress", rule.egress.as_ref().map(Vec::len)),
            ("egressDeny", rule.egress_deny.as_ref().map(Vec::len)),
        ];
        if lists.iter().all(|(_, len)| len.unwrap_or(0) == 0) {
            let named = lists.iter().find(|(_, len)| len.is_some()).map(|(k, _)| *k);
            let (key, dir) = match named {
                Some(k) => (
                    k,
                    if k.starts_with("ingress") {
                        "ingress"
                    } else {
                        "egress"
                    },
                ),
                None => ("spec", "egress"),
            };
            warnings.push(Warning {
                location: ctx.at(key, n),
                field: match named {
                    Some(k) => format!("{field}.{k}"),
                    None => field.clone(),
                },
                message: format!(
                    "rule has no ingress or egress rules, so it enables no default deny and blocks nothing; \
                     write `{dir}: [{{}}]` to deny all {dir}"
                ),
            });
        }
    }
    Ok(())
}

fn check_no_l7(
    ports: Option<&[crate::model::PortRule]>,
    field: &str,
    ctx: &CheckCtx<'_>,
) -> Result<(), LoadError> {
    for (i, p) in ports.unwrap_or_default().iter().enumerate() {
        if p.rules
            .as_ref()
            .is_some_and(|r| !r.http.is_empty() || !r.dns.is_empty())
        {
            return Err(ctx.error(
                "rules",
                0,
                format!("{field}.toPorts[{i}].rules"),
                "L7 rules are not allowed in deny rules".into(),
            ));
        }
        let tls = [
            ("serverNames", p.server_names.is_some()),
            ("terminatingTLS", p.terminating_tls.is_some()),
            ("originatingTLS", p.originating_tls.is_some()),
        ];
        if let Some((key, _)) = tls.iter().find(|(_, set)| *set) {
            return Err(ctx.error(
                key,
                0,
                format!("{field}.toPorts[{i}].{key}"),
                "TLS settings are not allowed in deny rules".into(),
            ));
        }
    }
    Ok(())
}

fn check_ingress(r: &IngressRule, field: &str, ctx: &CheckCtx<'_>) -> Result<(), LoadError> {
    let members = [
        (
            "fromEndpoints",
            r.from_endpoints.as_ref().map_or(0, Vec::len),
        ),
        ("fromCIDR", r.from_cidr.as_ref().map_or(0, Vec::len)),
        ("fromCIDRSet", r.from_cidr_set.as_ref().map_or(0, Vec::len)),
        ("fromEntities", r.from_entities.as_ref().map_or(0, Vec::len)),
        ("fromNodes", r.from_nodes.as_ref().map_or(0, Vec::len)),
    ];
    check_single_l3(&members, field, ctx)?;
    check_cidr_sets(
        r.from_cidr_set.as_deref(),
        &format!("{field}.fromCIDRSet"),
        ctx,
    )
}

fn check_egress(r: &EgressRule, field: &str, ctx: &CheckCtx<'_>) -> Result<(), LoadError> {
    let members = [
        ("toEndpoints", r.to_endpoints.as_ref().map_or(0, Vec::len)),
        ("toCIDR", r.to_cidr.as_ref().map_or(0, Vec::len)),
        ("toCIDRSet", r.to_cidr_set.as_ref().map_or(0, Vec::len)),
        ("toEntities", r.to_entities.as_ref().map_or(0, Vec::len)),
        ("toServices", r.to_services.as_ref().map_or(0, Vec::len)),
        ("toFQDNs", r.to_fqdns.as_ref().map_or(0, Vec::len)),
        ("toNodes", r.to_nodes.as_ref().map_or(0, Vec::len)),
    ];
    check_single_l3(&members, field, ctx)?;
    for (i, s) in r.to_services.iter().flatten().enumerate() {
        if s.k8s_service.is_some() == s.k8s_service_selector.is_some() {
            return Err(ctx.error(
                "toServices",
                0,
                format!("{field}.toServices[{i}]"),
                "exactly one of k8sService and k8sServiceSelector is required".into(),
            ));
        }
    }
    check_cidr_sets(r.to_cidr_set.as_deref(), &format!("{field}.toCIDRSet"), ctx)
}

fn check_single_l3(
    members: &[(&str, usize)],
    field: &str,
    ctx: &CheckCtx<'_>,
) -> Result<(), LoadError> {
    let used: Vec<&str> = members
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, _)| *k)
        .collect();
    if used.len() > 1 {
        return Err(ctx.error(
            used[1],
            0,
            format!("{field}.{}", used[1]),
            format!(
                "combining {} and {} in one rule is not supported (as in Cilium): use two rules",
                used[0], used[1]
            ),
        ));
    }
    Ok(())
}

fn check_cidr_sets(
    sets: Option<&[crate::model::CidrRule]>,
    field: &str,
    ctx: &CheckCtx<'_>,
) -> Result<(), LoadError> {
    for (i, set) in sets.unwrap_or_default().iter().enumerate() {
        for (j, ex) in set.except.iter().enumerate() {
            if !set.cidr.0.contains(&ex.0) {
                return Err(ctx.error(
                    "except",
                    0,
                    format!("{field}[{i}].except[{j}]"),
                    format!("{ex} is not inside {}", set.cidr),
                ));
            }
        }
    }
    Ok(())
}

/// Policy files under a path: the file itself, or every `.yaml`/`.yml`/`.json` file in a
/// directory (recursively, sorted).
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| LoadError::io(&dir, e))?;
        for entry in entries {
            let p = entry.map_err(|e| LoadError::io(&dir, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue; // editors' temp files, hidden dirs
            }
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every policy file under each path. Returns the good files' policies and one error per
/// bad file (a bad file contributes nothing).
pub fn load_paths(paths: &[PathBuf]) -> (LoadedSet, Vec<LoadError>) {
    let mut set = LoadedSet::default();
    let mut errors = Vec::new();
    for path in paths {
        let files = match policy_files(path) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for file in files {
            match load_file(&file) {
                Ok(mut s) => {
                    set.policies.append(&mut s.policies);
                    set.warnings.append(&mut s.warnings);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (set, errors)
}
