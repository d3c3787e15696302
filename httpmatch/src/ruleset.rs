//! Compiled rule set: one `RegexSet` per field over all rules, so a request costs one pass per
//! field whatever the number of rules; headers are then checked only on the surviving rules.

use crate::spec::{anchor, check_header_match, parse_header_entry, HeaderRequirement};
use crate::{HttpRuleError, HttpRuleSpec, Mismatch};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;

/// What the matcher needs from one request. The path is already normalized and includes the
/// query string; `host` is the authority as sent (port kept), empty when the request has none.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request method (`GET`).
    pub method: &'a str,
    /// Normalized path with query (`/public?x=1`).
    pub path: &'a str,
    /// Authority / `Host` header as sent (`example.com:8080`), or `""`.
    pub host: &'a str,
    /// Request headers; repeated headers match as their comma-joined value.
    pub headers: &'a HeaderMap,
}

/// A header edit or log note required by a matched rule's `headerMatches`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderAction {
    /// Header did not match; allowed with a note for the flow log.
    Log {
        /// Header name (lower-case).
        name: HeaderName,
    },
    /// Append this header value before forwarding.
    Add {
        /// Header name.
        name: HeaderName,
        /// Value to add.
        value: HeaderValue,
    },
    /// Remove every value of this header before forwarding.
    Delete {
        /// Header name.
        name: HeaderName,
    },
    /// Set this header to exactly this value before forwarding.
    Replace {
        /// Header name.
        name: HeaderName,
        /// Value to set.
        value: HeaderValue,
    },
}

impl HeaderAction {
    /// Applies the edit to the headers that will be forwarded (a `Log` changes nothing).
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self {
            HeaderAction::Log { .. } => {}
            HeaderAction::Add { name, value } => {
                headers.append(name.clone(), value.clone());
            }
            HeaderAction::Delete { name } => {
                headers.remove(name);
            }
            HeaderAction::Replace { name, value } => {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index (in the compiled slice) of the first rule that matched, if any.
    pub rule: Option<usize>,
    /// Header edits and log notes of the matched rule, in rule order.
    pub actions: Vec<HeaderAction>,
}

impl Decision {
    /// Whether some rule allowed the request.
    pub fn allowed(&self) -> bool {
        self.rule.is_some()
    }
}

/// One regex field (method, path or host) across all rules.
#[derive(Debug, Clone)]
struct FieldSet {
    /// Distinct patterns, anchored.
    set: regex::RegexSet,
    /// For each pattern of `set`, the rules that use it (a bit set, so a pattern shared by
    /// many rules costs a few word ORs, not a loop over the rules).
    rules_of: Vec<Bitset>,
    /// Rules that leave this field unset (match anything).
    wildcard: Bitset,
}

impl FieldSet {
    /// Keeps in `candidates` only the rules whose pattern for this field matches `value` (or
    /// that leave the field unset); `scratch` is reused across fields to avoid an allocation each.
    fn narrow(&self, value: &str, candidates: &mut Bitset, scratch: &mut Bitset) {
        match self.rules_of.len() {
            // Every rule leaves the field unset.
            0 => {}
            // One distinct pattern (the usual small policy): a plain match, no match set.
            1 => {
                if !self.set.is_match(value) {
                    candidates.and(&self.wildcard);
                }
            }
            _ => {
                scratch.words.clear();
                scratch.words.extend_from_slice(&self.wildcard.words);
                for pattern in self.set.matches(value).iter() {
                    scratch.or(&self.rules_of[pattern]);
                }
                candidates.and(scratch);
            }
        }
    }
}

/// A `headerMatches` entry, compiled.
#[derive(Debug, Clone)]
struct CompiledHeaderMatch {
    name: HeaderName,
    value: Option<String>,
    mismatch: Option<Mismatch>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    headers: Vec<HeaderRequirement>,
    header_matches: Vec<CompiledHeaderMatch>,
}

/// All rules of one port/peer, compiled once and checked per request.
#[derive(Debug, Clone)]
pub struct HttpRuleSet {
    rules: Vec<CompiledRule>,
    fields: [FieldSet; 3],
}

impl HttpRuleSet {
    /// Validates and compiles rules; rules are ORed, the fields of one rule ANDed.
    /// An empty slice compiles to a set that denies everything.
    pub fn compile(specs: &[HttpRuleSpec]) -> Result<HttpRuleSet, HttpRuleError> {
        let mut rules = Vec::with_capacity(specs.len());
        for spec in specs {
            spec.validate()?;
            rules.push(compile_rule(spec)?);
        }
        let field = |i: usize| {
            let values: Vec<Option<&String>> = specs
                .iter()
                .map(|s| s.regex_fields()[i].1.as_ref())
                .collect();
            build_field(FIELD_NAMES[i], &values)
        };
        let fields = [field(0)?, field(1)?, field(2)?];
        Ok(HttpRuleSet { rules, fields })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Returns the first rule (in order) whose fields all match, with its header actions.
    pub fn check(&self, req: &RequestView<'_>) -> Decision {
        let mut candidates = Bitset::full(self.rules.len());
        let values = [req.method, req.path, req.host];
        let mut scratch = Bitset::empty(0);
        for (field, value) in self.fields.iter().zip(values) {
            field.narrow(value, &mut candidates, &mut scratch);
        }
        for idx in candidates.iter() {
            if let Some(actions) = self.rules[idx].check_headers(req.headers) {
                return Decision {
                    rule: Some(idx),
                    actions,
                };
            }
        }
        Decision {
            rule: None,
            actions: Vec::new(),
        }
    }
}

impl CompiledRule {
    /// `None` if a header requirement fails, else the actions from `headerMatches`.
    fn check_headers(&self, headers: &HeaderMap) -> Option<Vec<HeaderAction>> {
        for req in &self.headers {
            if !header_matches(headers, &req.name, req.value.as_deref()) {
                return None;
            }
        }
        let mut actions = Vec::new();
        for m in &self.header_matches {
            if header_matches(headers, &m.name, m.value.as_deref()) {
                continue;
            }
            let name = m.name.clone();
            // Values were validated at compile time, so `from_str` cannot fail here.
            let value = || HeaderValue::from_str(m.value.as_deref().unwrap_or_default()).ok();
            actions.push(match m.mismatch? {
                Mismatch::Log => HeaderAction::Log { name },
                Mismatch::Delete => HeaderAction::Delete { name },
                Mismatch::Add => HeaderAction::Add {
                    name,
                    value: value()?,
                },
                Mismatch::Replace => HeaderAction::Replace {
                    name,
                    value: value()?,
                },
            });
        }
        Some(actions)
    }
}

/// Presence when `want` is `None`, else the comma-joined values must equal `want` exactly.
fn header_matches(headers: &HeaderMap, name: &HeaderName, want: Option<&str>) -> bool {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return false;
    };
    let Some(want) = want else {
        return true;
    };
    let first = first.as_bytes();
    let rest: Vec<&[u8]> = values.map(HeaderValue::as_bytes).collect();
    if rest.is_empty() {
        return first == want.as_bytes();
    }
    let mut joined = first.to_vec();
    for v in rest {
        joined.push(b',');
        joined.extend_from_slice(v);
    }
    joined == want.as_bytes()
}

fn compile_rule(spec: &HttpRuleSpec) -> Result<CompiledRule, HttpRuleError> {
    let headers = spec
        .headers
        .iter()
        .map(|h| parse_header_entry(h))
        .collect::<Result<_, _>>()?;
    let header_matches = spec
        .header_matches
        .iter()
        .map(|m| {
            Ok(CompiledHeaderMatch {
                name: check_header_match(m)?,
                value: m.value.clone(),
                mismatch: m.mismatch,
            })
        })
        .collect::<Result<_, HttpRuleError>>()?;
    Ok(CompiledRule {
        headers,
        header_matches,
    })
}

/// Field names in the order of `HttpRuleSpec::regex_fields`.
const FIELD_NAMES: [&str; 3] = ["method", "path", "host"];

/// Room for a thousand-rule set; the default 10 MiB limit is hit around a few hundred paths.
const SET_SIZE_LIMIT: usize = 256 << 20;

/// Builds one field's set; identical patterns share one slot.
fn build_field(field: &'static str, values: &[Option<&String>]) -> Result<FieldSet, HttpRuleError> {
    let mut wildcard = Bitset::empty(values.len());
    let mut slots: HashMap<&str, usize> = HashMap::new();
    let mut patterns = Vec::new();
    let mut rules_of: Vec<Bitset> = Vec::new();
    for (rule, value) in values.iter().enumerate() {
        match value {
            None => wildcard.set(rule),
            Some(p) => {
                let slot = *slots.entry(p.as_str()).or_insert_with(|| {
                    patterns.push(anchor(p));
                    rules_of.push(Bitset::empty(values.len()));
                    patterns.len() - 1
                });
                rules_of[slot].set(rule);
            }
        }
    }
    let set = regex::RegexSetBuilder::new(&patterns)
        .size_limit(SET_SIZE_LIMIT)
        .dfa_size_limit(SET_SIZE_LIMIT)
        .build()
        .map_err(|e| HttpRuleError::BadRegex {
            field,
            pattern: patterns.join(" | "),
            reason: e.to_string(),
        })?;
    Ok(FieldSet {
        set,
        rules_of,
        wildcard,
    })
}

/// A fixed-size bit set over rule indices.
#[derive(Debug, Clone)]
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn empty(len: usize) -> Bitset {
        Bitset {
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn full(len: usize) -> Bitset {
        let mut b = Bitset {
            words: vec![u64::MAX; len.div_ceil(64)],
        };
        if !len.is_multiple_of(64) {
            if let Some(last) = b.words.last_mut() {
                *last = (1u64 << (len % 64)) - 1;
            }
        }
        b
    }

    fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    fn or(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    fn and(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// Set indices in increasing order.
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let tz = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + tz)
            })
        })
    }
}
