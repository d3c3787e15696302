//! DNS name matching with Cilium's `matchName` / `matchPattern` semantics.
//!
//! Used both by `toFQDNs` selectors and by `rules.dns` in the DNS proxy, so the two can never
//! disagree. Names are compared case-insensitively and fully qualified (trailing dot optional).

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Characters allowed in a name or pattern (besides `*` in patterns).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Lower-cases a DNS name and ensures a single trailing dot (`Api.GitHub.com` → `api.github.com.`).
pub fn normalize_name(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// True when [`normalize_name`] would return `name` unchanged.
fn is_normalized(name: &str) -> bool {
    name.ends_with('.')
        && !name
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())
}

/// Why a name or pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FqdnError {
    /// Empty name or pattern.
    #[error("empty DNS name")]
    Empty,
    /// A character that cannot appear in a DNS name.
    #[error("invalid character {0:?} in DNS name {1:?}")]
    BadChar(char, String),
    /// `**` anywhere but as a leading `**.` label.
    #[error("`**` is only allowed as the leading label `**.` in {0:?}")]
    BadDoubleStar(String),
}

/// A compiled `matchName` or `matchPattern`.
#[derive(Debug, Clone)]
pub struct FqdnMatcher {
    source: FqdnSelector,
    regex: Regex,
}

/// One `toFQDNs` / `rules.dns` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FqdnSelector {
    /// Exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// Pattern with `*` wildcards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

impl std::fmt::Display for FqdnSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.match_name, &self.match_pattern) {
            (Some(n), _) => write!(f, "matchName: {n}"),
            (None, Some(p)) => write!(f, "matchPattern: {p}"),
            (None, None) => write!(f, "(empty)"),
        }
    }
}

impl FqdnSelector {
    /// A `matchName` selector.
    pub fn name(n: &str) -> Self {
        FqdnSelector {
            match_name: Some(n.to_string()),
            match_pattern: None,
        }
    }

    /// A `matchPattern` selector.
    pub fn pattern(p: &str) -> Self {
        FqdnSelector {
            match_name: None,
            match_pattern: Some(p.to_string()),
        }
    }

    /// Compiles the selector (`matchName` wins when both are set, as in Cilium).
    pub fn compile(&self) -> Result<FqdnMatcher, FqdnError> {
        let regex = match (&self.match_name, &self.match_pattern) {
            (Some(n), _) => name_regex(n)?,
            (None, Some(p)) => pattern_regex(p)?,
            (None, None) => return Err(FqdnError::Empty),
        };
        Ok(FqdnMatcher {
            source: self.clone(),
            regex: Regex::new(&regex).expect("generated FQDN regex is valid"),
        })
    }
}

fn check_chars(s: &str, allow_star: bool) -> Result<(), FqdnError> {
    if s.trim().is_empty() {
        return Err(FqdnError::Empty);
    }
    for c in s.trim().chars() {
        if !(is_name_char(c) || (allow_star && c == '*')) {
            return Err(FqdnError::BadChar(c, s.to_string()));
        }
    }
    Ok(())
}

fn name_regex(name: &str) -> Result<String, FqdnError> {
    check_chars(name, false)?;
    Ok(format!("^{}$", regex::escape(&normalize_name(name))))
}

fn pattern_regex(pattern: &str) -> Result<String, FqdnError> {
    check_chars(pattern, true)?;
    let p = normalize_name(pattern);
    if p == "*." {
        // `*` alone matches every name.
        return Ok("^(?:[-a-z0-9_]+\\.)+$|^\\.$".to_string());
    }
    let (prefix, rest) = match p.strip_prefix("**.") {
        // One or more leading labels.
        Some(rest) => ("(?:[-a-z0-9_]+\\.)+", rest),
        None => ("", p.as_str()),
    };
    if rest.contains("**") {
        return Err(FqdnError::BadDoubleStar(pattern.to_string()));
    }
    // `*` stays within one label.
    let body = rest
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join("[-a-z0-9_]*");
    Ok(format!("^{prefix}{body}$"))
}

impl FqdnMatcher {
    /// True when `name` (any case, trailing dot optional) is selected.
    pub fn matches(&self, name: &str) -> bool {
        // The DNS proxy asks with names already normalized, once per query and selector: those
        // are matched as they are, without a normalized copy.
        if is_normalized(name) {
            self.regex.is_match(name)
        } else {
            self.regex.is_match(&normalize_name(name))
        }
    }

    /// The selector this was compiled from.
    pub fn selector(&self) -> &FqdnSelector {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str, name: &str) -> bool {
        FqdnSelector::pattern(p).compile().unwrap().matches(name)
    }

    #[test]
    fn pattern_table() {
        let cases = [
            ("*", "api.github.com", true),
            ("*", "com", true),
            ("*.github.com", "api.github.com", true),
            ("*.github.com", "API.GitHub.com.", true),
            ("*.github.com", "github.com", false),
            ("*.github.com", "a.b.github.com", false),
            ("*.github.com", "api.github.com.evil.org", false),
            ("**.github.com", "a.b.github.com", true),
            ("**.github.com", "api.github.com", true),
            ("**.github.com", "github.com", false),
            ("api*.github.com", "api.github.com", true),
            ("api*.github.com", "api-v2.github.com", true),
            ("api*.github.com", "www.github.com", false),
            ("*github.com", "api.github.com", false),
            ("sub.*.io", "sub.cilium.io", true),
            ("sub.*.io", "sub.a.b.io", false),
        ];
        for (p, name, want) in cases {
            assert_eq!(pat(p, name), want, "pattern {p:?} vs {name:?}");
        }
    }

    #[test]
    fn normalized_names_match_as_they_are() {
        let names = [
            "api.github.com",
            "API.GitHub.com.",
            " api.github.com. ",
            "a..",
            "com",
            ".",
        ];
        for n in names {
            let norm = normalize_name(n);
            assert!(
                is_normalized(&norm),
                "{n:?} normalizes to a normalized name"
            );
            assert_eq!(
                is_normalized(n),
                norm == n,
                "{n:?}: the check agrees with normalize"
            );
            for p in ["*", "*.github.com", "**.github.com", "api*.github.com"] {
                assert_eq!(
                    pat(p, n),
                    pat(p, &norm),
                    "pattern {p:?} vs {n:?} and {norm:?}"
                );
            }
        }
    }

    #[test]
    fn name_table() {
        let m = FqdnSelector::name("api.github.com").compile().unwrap();
        assert!(m.matches("api.github.com"));
        assert!(m.matches("API.GITHUB.COM."));
        assert!(!m.matches("xapi.github.com"));
        assert!(!m.matches("apixgithub.com"), "dots are literal");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(FqdnSelector::name("a b.com").compile().is_err());
        assert!(FqdnSelector::name("*.com").compile().is_err());
        assert!(FqdnSelector::pattern("a.**.com").compile().is_err());
        assert!(FqdnSelector::pattern("").compile().is_err());
    }
}
