//! Which objects: namespaces, kinds, names and a label selector — the same
//! filters for backup, restore and export.
//!
//! Label selectors are parsed here: `kube` can evaluate a selector
//! ([`kube::core::Selector`]) but has no parser for the string form users
//! type (`app=x,tier!=db,env in (a,b),!legacy`).

use std::collections::BTreeMap;

use kube::core::{Expression, Selector, SelectorExt};

use super::Record;

/// A label selector that does not parse; the message names the term and
/// what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

type Result<T> = std::result::Result<T, SelectorError>;

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(SelectorError(format!($($arg)*)))
    };
}

/// A parsed label selector, with the text it came from (sent to the API
/// server as `labelSelector` at backup; evaluated here at restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    pub text: String,
    selector: Selector,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self> {
        let mut exprs = Vec::new();
        for term in split_terms(text)? {
            exprs.push(parse_term(&term)?);
        }
        let mut selector = Selector::default();
        selector.extend(exprs);
        Ok(Self {
            text: text.trim().to_string(),
            selector,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<String>> {
    let mut terms = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            bail!("label selector {text:?}: unbalanced parentheses");
        }
        cur.push(c);
    }
    if depth != 0 {
        bail!("label selector {text:?}: unbalanced parentheses");
    }
    terms.push(cur);
    let terms: Vec<String> = terms.into_iter().map(|t| t.trim().to_string()).collect();
    if terms.iter().any(|t| t.is_empty()) {
        bail!("label selector {text:?}: an empty term (a stray comma?)");
    }
    Ok(terms)
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn parse_term(term: &str) -> Result<Expression> {
    let bad = |why: &str| SelectorError(format!("label selector term {term:?}: {why}"));
    let key = |k: &str| -> Result<String> {
        let k = k.trim();
        if valid_key(k) {
            Ok(k.to_string())
        } else {
            Err(bad("not a valid label key"))
        }
    };
    let value = |v: &str| -> Result<String> {
        let v = v.trim();
        if valid_value(v) {
            Ok(v.to_string())
        } else {
            Err(bad("not a valid label value"))
        }
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key(k)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Expression::NotEqual(key(k)?, value(v)?));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(Expression::Equal(key(k)?, value(v)?));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(Expression::Equal(key(k)?, value(v)?));
    }
    for (op, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = term.split_once(op) {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("the values must be in parentheses: k in (a,b)"))?;
            let values = inner
                .split(',')
                .map(value)
                .collect::<Result<std::collections::BTreeSet<String>>>()?;
            return Ok(if negate {
                Expression::NotIn(key(k)?, values)
            } else {
                Expression::In(key(k)?, values)
            });
        }
    }
    Ok(Expression::Exists(key(term)?))
}

/// Filters on objects. Empty lists select everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Source namespaces (before any namespace mapping).
    pub namespaces: Vec<String>,
    /// Kind specs: `configmap`, `secrets`, `remediationrequests.kubernaut.ai`.
    pub kinds: Vec<String>,
    pub names: Vec<String>,
    pub labels: Option<LabelSelector>,
}

impl Selection {
    /// Whether a stored record passes every filter. Cluster-scoped records
    /// (CRDs, Namespaces) pass the namespace filter when they belong to it:
    /// a Namespace by its name, a CRD always (it is there for its objects).
    pub fn matches(&self, r: &Record) -> bool {
        if !self.namespaces.is_empty() {
            let ns = match r.namespace() {
                Some(ns) => Some(ns),
                None if r.resource == super::Resource::namespace() => Some(r.name()),
                None => None,
            };
            if let Some(ns) = ns
                && !self.namespaces.iter().any(|n| n == ns)
            {
                return false;
            }
        }
        let structural = matches!(
            r.resource.class(),
            super::Class::CustomResourceDefinition | super::Class::Namespace
        );
        if !self.kinds.is_empty()
            && !structural
            && !self.kinds.iter().any(|k| r.resource.matches_spec(k))
        {
            return false;
        }
        if !self.names.is_empty() && !structural && !self.names.iter().any(|n| n == r.name()) {
            return false;
        }
        if let Some(sel) = &self.labels
            && !structural
        {
            let labels: BTreeMap<String, String> = r
                .object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            if !sel.matches(&labels) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_forms() {
        let l = labels(&[("app", "kubernaut"), ("tier", "api")]);
        for (sel, want) in [
            ("app=kubernaut", true),
            ("app==kubernaut", true),
            ("app!=kubernaut", false),
            ("app", true),
            ("!app", false),
            ("!legacy", true),
            ("tier in (api, db)", true),
            ("tier notin (api,db)", false),
            ("app=kubernaut,tier=db", false),
            ("app.kubernetes.io/part-of", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
        for bad in ["app=", "a b=c", "x in a,b", "app=kubernaut,", "(x"] {
            if bad == "app=" {
                // An empty value is valid: it matches the label with value "".
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
