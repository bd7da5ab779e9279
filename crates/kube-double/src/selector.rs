//! Label and field selectors, with the grammar of `k8s.io/apimachinery`'s
//! `labels.Parse` and `fields.ParseSelector` (the subset the API server
//! accepts in query strings).

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
    Gt,
    Lt,
}

#[derive(Debug, Clone)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed `labelSelector`: requirements joined by `,` (AND).
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector {
    reqs: Vec<Requirement>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
    /// `k notin (a,b)`, `k>1`, `k<1`, joined by commas.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut p = Parser {
            chars: s.chars().collect(),
            pos: 0,
        };
        let mut reqs = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(LabelSelector { reqs });
        }
        loop {
            reqs.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            if p.peek() == Some(',') {
                p.pos += 1;
                continue;
            }
            return Err(format!(
                "unable to parse requirement: found '{}', expected: ',' or end of string",
                p.rest()
            ));
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether labels (looked up by `get`) satisfy every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|r| {
            let v = get(&r.key);
            match r.op {
                Op::Eq => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotEq | Op::NotIn => v.is_none_or(|v| r.values.iter().all(|x| x != v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt | Op::Lt => {
                    let (Some(v), Some(bound)) = (
                        v.and_then(|v| v.parse::<i64>().ok()),
                        r.values.first().and_then(|b| b.parse::<i64>().ok()),
                    ) else {
                        return false;
                    };
                    if r.op == Op::Gt { v > bound } else { v < bound }
                }
            }
        })
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn rest(&self) -> String {
        self.chars[self.pos..].iter().collect()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || "=!,()<>".contains(c) {
                break;
            }
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }
    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.pos + n <= self.chars.len()
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        if self.eat("!") {
            self.skip_ws();
            let key = self.word();
            validate_key(&key)?;
            return Ok(Requirement {
                key,
                op: Op::NotExists,
                values: vec![],
            });
        }
        let key = self.word();
        validate_key(&key)?;
        self.skip_ws();
        if self.at_end() || self.peek() == Some(',') {
            return Ok(Requirement {
                key,
                op: Op::Exists,
                values: vec![],
            });
        }
        let op = if self.eat("==") || self.eat("=") {
            Op::Eq
        } else if self.eat("!=") {
            Op::NotEq
        } else if self.eat(">") {
            Op::Gt
        } else if self.eat("<") {
            Op::Lt
        } else {
            let w = self.word();
            match w.as_str() {
                "in" => Op::In,
                "notin" => Op::NotIn,
                _ => {
                    return Err(format!(
                        "unable to parse requirement: found '{w}', expected: in, notin, =, ==, !=, gt, lt"
                    ));
                }
            }
        };
        self.skip_ws();
        let values = match op {
            Op::In | Op::NotIn => {
                if !self.eat("(") {
                    return Err(format!(
                        "unable to parse requirement: found '{}', expected: '('",
                        self.rest()
                    ));
                }
                let mut vals = Vec::new();
                loop {
                    self.skip_ws();
                    let v = self.word();
                    validate_value(&v)?;
                    vals.push(v);
                    self.skip_ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat(")") {
                        break;
                    }
                    return Err(format!(
                        "unable to parse requirement: found '{}', expected: ',', ')' or identifier",
                        self.rest()
                    ));
                }
                vals
            }
            Op::Gt | Op::Lt => {
                let v = self.word();
                if v.parse::<i64>().is_err() {
                    return Err(format!(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {v}"
                    ));
                }
                vec![v]
            }
            _ => {
                let v = self.word();
                validate_value(&v)?;
                vec![v]
            }
        };
        Ok(Requirement { key, op, values })
    }
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name part.
pub(crate) fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && crate::validate::dns1123_subdomain_error(p).is_some()
    {
        return Some(format!(
            "prefix part {}",
            crate::validate::DNS1123_SUBDOMAIN_MSG
        ));
    }
    if !is_name_part(name) {
        return Some(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
        );
    }
    None
}

/// A label value: empty, or a name part.
pub(crate) fn label_value_error(v: &str) -> Option<String> {
    if v.is_empty() || is_name_part(v) {
        None
    } else {
        Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string())
    }
}

fn validate_key(k: &str) -> Result<(), String> {
    match label_key_error(k) {
        None => Ok(()),
        Some(e) => Err(format!(
            "unable to parse requirement: invalid label key \"{k}\": {e}"
        )),
    }
}

fn validate_value(v: &str) -> Result<(), String> {
    match label_value_error(v) {
        None => Ok(()),
        Some(e) => Err(format!(
            "unable to parse requirement: invalid label value: \"{v}\": {e}"
        )),
    }
}

/// A parsed `fieldSelector`. Like the server for most kinds, only
/// `metadata.name` and `metadata.namespace` are supported.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    reqs: Vec<(String, bool, String)>, // (field, equals?, value)
}

impl FieldSelector {
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.reqs.iter().all(|(f, eq, v)| {
            let actual = if f == "metadata.name" {
                name
            } else {
                namespace
            };
            (actual == v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn m(sel: &str, labels: &[(&str, &str)]) -> bool {
        let map: BTreeMap<&str, &str> = labels.iter().copied().collect();
        LabelSelector::parse(sel)
            .unwrap()
            .matches(|k| map.get(k).copied())
    }

    #[test]
    fn label_selector_grammar() {
        let l = [("app", "web"), ("tier", "db"), ("n", "5")];
        assert!(m("", &l));
        assert!(m("app=web", &l));
        assert!(m("app==web", &l));
        assert!(!m("app!=web", &l));
        assert!(m("app!=api", &l));
        assert!(m("other!=x", &l));
        assert!(m("app", &l));
        assert!(!m("!app", &l));
        assert!(m("!other", &l));
        assert!(m("app in (api, web)", &l));
        assert!(!m("app notin (api,web)", &l));
        assert!(m("other notin (a)", &l));
        assert!(m("app=web, tier in (db)", &l));
        assert!(!m("app=web,tier=cache", &l));
        assert!(m("n>4,n<6", &l));
        assert!(m("example.com/x notin (a),app", &l));
        for bad in [
            "app=we b",
            "app in web",
            "app in (a",
            "=x",
            "app~x",
            "n>x",
            "bad key=x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selector() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("default", "a"));
        assert!(!f.matches("kube-system", "a"));
        assert!(!f.matches("default", "b"));
        assert!(FieldSelector::parse("spec.x=1").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
