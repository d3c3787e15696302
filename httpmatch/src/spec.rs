//! The user-facing rule model, mirroring one entry of Cilium's `rules.http[]`, and its validation.

use serde::{Deserialize, Serialize};

/// One HTTP rule, as written under `toPorts[].rules.http[]` of a CiliumNetworkPolicy.
///
/// Every field that is set must match (AND); an unset field matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRuleSpec {
    /// Regex matched against the whole request method (`GET`, `GET|HEAD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Regex matched against the whole normalized path, query string included (as Envoy's `:path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Regex matched against the whole authority (`Host`), port kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `"Name: value"` requires that exact value, `"Name"` only presence; names are case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Header checks with an action to take on mismatch instead of denying.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_matches: Vec<HeaderMatch>,
}

/// One entry of `headerMatches`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// Exact value required; `None` means the header only has to be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What to do when the header does not match; `None` denies the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

/// Action on a `headerMatches` mismatch (Cilium's `mismatch` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mismatch {
    /// Allow, and note the mismatch in the flow log.
    Log,
    /// Allow, adding the header with the configured value.
    Add,
    /// Allow, removing the header.
    Delete,
    /// Allow, setting the header to the configured value (added if missing).
    Replace,
}

/// A rule field that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpRuleError {
    /// `method`, `path` or `host` is not a valid regular expression.
    #[error("http rule {field}: invalid regex {pattern:?}: {reason}")]
    BadRegex {
        /// `method`, `path` or `host`.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
    /// A header name is empty or not a valid HTTP header name.
    #[error("http rule {field}: invalid header name {name:?}")]
    BadHeaderName {
        /// `headers` or `headerMatches`.
        field: &'static str,
        /// The name as written.
        name: String,
    },
    /// A header value contains characters HTTP does not allow.
    #[error("http rule {field}: invalid value for header {name:?}")]
    BadHeaderValue {
        /// `headers` or `headerMatches`.
        field: &'static str,
        /// The header name.
        name: String,
    },
    /// `mismatch: ADD` or `REPLACE` needs a value to write.
    #[error("http rule headerMatches: mismatch {action:?} for {name:?} needs a value")]
    MissingValue {
        /// The header name.
        name: String,
        /// The action that needs the value.
        action: Mismatch,
    },
}

/// A parsed `headers` entry: name (lower-case) and the exact value, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderRequirement {
    pub(crate) name: http::HeaderName,
    pub(crate) value: Option<String>,
}

impl HttpRuleSpec {
    /// Checks every field and names the first bad one.
    pub fn validate(&self) -> Result<(), HttpRuleError> {
        for (field, pattern) in self.regex_fields() {
            if let Some(p) = pattern {
                regex::Regex::new(&anchor(p)).map_err(|e| HttpRuleError::BadRegex {
                    field,
                    pattern: p.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        for h in &self.headers {
            parse_header_entry(h)?;
        }
        for m in &self.header_matches {
            check_header_match(m)?;
        }
        Ok(())
    }

    /// The three regex fields with their policy names, in a fixed order.
    pub(crate) fn regex_fields(&self) -> [(&'static str, &Option<String>); 3] {
        [
            ("method", &self.method),
            ("path", &self.path),
            ("host", &self.host),
        ]
    }
}

/// Wraps a rule regex so it must match the whole value, as Envoy's `safe_regex` does.
pub(crate) fn anchor(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Parses `"Name: value"`, `"Name value"` (Cilium splits on the first space and trims a `:`)
/// or `"Name"`.
pub(crate) fn parse_header_entry(entry: &str) -> Result<HeaderRequirement, HttpRuleError> {
    let entry = entry.trim();
    let (name, value) = match entry.find([':', ' ']) {
        Some(i) => {
            let value = entry[i + 1..].trim_start_matches(':').trim();
            // "Name:" with nothing after it asks for presence only.
            (&entry[..i], (!value.is_empty()).then(|| value.to_string()))
        }
        None => (entry, None),
    };
    let name = parse_name("headers", name)?;
    if let Some(v) = &value {
        check_value("headers", name.as_str(), v)?;
    }
    Ok(HeaderRequirement { name, value })
}

/// Validates one `headerMatches` entry.
pub(crate) fn check_header_match(m: &HeaderMatch) -> Result<http::HeaderName, HttpRuleError> {
    let name = parse_name("headerMatches", &m.name)?;
    if let Some(v) = &m.value {
        check_value("headerMatches", &m.name, v)?;
    }
    if let (Some(action @ (Mismatch::Add | Mismatch::Replace)), None) = (m.mismatch, &m.value) {
        return Err(HttpRuleError::MissingValue {
            name: m.name.clone(),
            action,
        });
    }
    Ok(name)
}

fn parse_name(field: &'static str, name: &str) -> Result<http::HeaderName, HttpRuleError> {
    http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HttpRuleError::BadHeaderName {
        field,
        name: name.to_string(),
    })
}

fn check_value(field: &'static str, name: &str, value: &str) -> Result<(), HttpRuleError> {
    http::HeaderValue::from_str(value)
        .map(|_| ())
        .map_err(|_| HttpRuleError::BadHeaderValue {
            field,
            name: name.to_string(),
        })
}
