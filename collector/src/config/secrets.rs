//! Secrets and environment in configuration values: `${VAR}`, `${VAR:-default}`,
//! `${env:VAR}` and `${file:/path}` are replaced in every scalar value of the parsed YAML
//! before validation, so Kubernetes Secrets mounted as environment variables or files reach
//! sink settings (passwords, API keys, headers) without being written into the ConfigMap.
//!
//! - `${file:/path}` reads the whole file; one trailing newline is removed (what `echo` and
//!   most editors add; a Secret's file usually has none). The path must be absolute.
//! - `$${` is a literal `${`. A `$` not followed by `{` is kept as it is.
//! - An unset variable without a default, an unreadable file, or an unterminated `${` is a
//!   problem at the value's line; nothing is guessed.
//! - Mapping keys are not expanded (they name settings), only values.
//!
//! Expanded values are never logged: what a reference expanded to is remembered only as a
//! [`Redactions`] list, with which every problem message is scrubbed before it is printed, so
//! neither `validate` nor a failed reload shows a secret. Each load reads the environment and
//! the files again, so a reload picks up a rotated Secret.
//!
//! Owns the expansion syntax; it may not validate the expanded values (each setting's
//! validation does).

use std::borrow::Cow;

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

use crate::config::problem::Problem;

/// Where expansion gets its values (the process environment and the filesystem, or fixed
/// values in tests).
pub trait Lookup {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The file's contents.
    fn file(&self, path: &str) -> std::io::Result<String>;
}

/// The process environment and the real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Lookup for System {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// The values references expanded to, to scrub from anything printed.
#[derive(Debug, Default, Clone)]
pub struct Redactions {
    values: Vec<String>,
}

/// Values shorter than this are not scrubbed: replacing every `1` or `on` in a message would
/// make it unreadable, and such values are not secrets.
const REDACT_MIN_LEN: usize = 4;

impl Redactions {
    /// `text` with every expanded value replaced by `***`.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for value in &self.values {
            if value.len() >= REDACT_MIN_LEN && out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), "***"));
            }
        }
        out
    }

    /// Scrubs every problem's message.
    pub fn scrub_problems(&self, problems: &mut [Problem]) {
        if self.values.is_empty() {
            return;
        }
        for problem in problems {
            if let Cow::Owned(clean) = self.scrub(&problem.message) {
                problem.message = clean;
            }
        }
    }
}

/// Expands every reference in the scalar values under `node`; each problem is recorded with
/// the value's position. Returns what was expanded, for scrubbing.
pub fn expand(node: &mut Node, lookup: &dyn Lookup, problems: &mut Vec<Problem>) -> Redactions {
    let mut redactions = Redactions::default();
    walk(node, "", lookup, &mut redactions, problems);
    redactions
}

/// Expands the scalars under `node`, which is at `path` (`sinks[0].headers`).
fn walk(
    node: &mut Node,
    path: &str,
    lookup: &dyn Lookup,
    redactions: &mut Redactions,
    problems: &mut Vec<Problem>,
) {
    match node {
        Node::Scalar(scalar) => {
            if !scalar.as_str().contains('$') {
                return;
            }
            match expand_str(scalar.as_str(), lookup, &mut redactions.values) {
                Ok(Cow::Borrowed(_)) => {}
                Ok(Cow::Owned(value)) => {
                    let coerce = scalar.may_coerce();
                    let mut new = MarkedScalarNode::new(*scalar.span(), value);
                    new.set_coerce(coerce);
                    *scalar = new;
                }
                Err(message) => problems.push(Problem::at(scalar.span().start(), path, message)),
            }
        }
        Node::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                let path = if path.is_empty() {
                    key.as_str().to_string()
                } else {
                    format!("{path}.{}", key.as_str())
                };
                walk(value, &path, lookup, redactions, problems);
            }
        }
        Node::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{path}[{i}]"), lookup, redactions, problems);
            }
        }
    }
}

/// `text` with its references replaced; each value taken is added to `taken`. The error says
/// which reference failed and why (never a value).
fn expand_str<'a>(
    text: &'a str,
    lookup: &dyn Lookup,
    taken: &mut Vec<String>,
) -> Result<Cow<'a, str>, String> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        // `$${` is a literal `${`.
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let body_start = at + 2;
        let Some(len) = rest[body_start..].find('}') else {
            return Err(format!(
                "`{}` is not closed: a reference is `${{VAR}}`, `${{VAR:-default}}` or `${{file:/path}}` (write `$${{` for a literal `${{`)",
                &rest[at..]
            ));
        };
        let reference = &rest[body_start..body_start + len];
        let value = resolve(reference, lookup)?;
        out.push_str(&value);
        taken.push(value);
        rest = &rest[body_start + len + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The value of one reference (what is between `${` and `}`).
fn resolve(reference: &str, lookup: &dyn Lookup) -> Result<String, String> {
    if let Some(path) = reference.strip_prefix("file:") {
        if !path.starts_with('/') {
            return Err(format!(
                "`${{file:{path}}}`: the path of a secret file must be absolute"
            ));
        }
        let mut text = lookup
            .file(path)
            .map_err(|e| format!("`${{file:{path}}}`: cannot read {path}: {e}"))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(text);
    }
    let spec = reference.strip_prefix("env:").unwrap_or(reference);
    let (name, default) = match spec.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (spec, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`${{{reference}}}` is not a reference: a variable name is letters, digits and `_` (`${{VAR}}`, `${{VAR:-default}}`, `${{file:/path}}`)"
        ));
    }
    match (lookup.var(name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(format!(
            "environment variable `{name}` is not set (referenced as `${{{reference}}}`; give a default with `${{{name}:-…}}`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fixed {
        vars: HashMap<&'static str, &'static str>,
        files: HashMap<&'static str, &'static str>,
    }

    impl Lookup for Fixed {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|v| v.to_string())
        }
        fn file(&self, path: &str) -> std::io::Result<String> {
            self.files
                .get(path)
                .map(|v| v.to_string())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    fn fixed() -> Fixed {
        Fixed {
            vars: HashMap::from([("TOKEN", "s3cr3t-token"), ("EMPTY", "")]),
            files: HashMap::from([
                ("/run/secrets/pw", "hunter22\n"),
                ("/run/secrets/crlf", "abc\r\n"),
            ]),
        }
    }

    fn one(text: &str) -> Result<String, String> {
        expand_str(text, &fixed(), &mut Vec::new()).map(Cow::into_owned)
    }

    #[test]
    fn references_expand_from_the_environment_and_files() {
        assert_eq!(one("Bearer ${TOKEN}").unwrap(), "Bearer s3cr3t-token");
        assert_eq!(one("${env:TOKEN}").unwrap(), "s3cr3t-token");
        assert_eq!(one("${file:/run/secrets/pw}").unwrap(), "hunter22");
        assert_eq!(one("${file:/run/secrets/crlf}").unwrap(), "abc");
        assert_eq!(
            one("${MISSING:-fallback}/${EMPTY:-x}").unwrap(),
            "fallback/"
        );
        assert_eq!(one("a$${TOKEN}b $5 $").unwrap(), "a${TOKEN}b $5 $");
        assert_eq!(one("no references").unwrap(), "no references");
    }

    #[test]
    fn a_bad_reference_is_an_error_that_names_it_and_no_value() {
        let e = one("x ${MISSING} y").unwrap_err();
        assert!(e.contains("`MISSING` is not set"), "{e}");
        let e = one("${file:/run/secrets/none}").unwrap_err();
        assert!(e.contains("cannot read /run/secrets/none"), "{e}");
        let e = one("${file:relative}").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = one("${TOKEN").unwrap_err();
        assert!(e.contains("not closed"), "{e}");
        let e = one("${bad name}").unwrap_err();
        assert!(e.contains("not a reference"), "{e}");
    }

    #[test]
    fn scalars_in_the_tree_expand_and_problems_carry_their_line_and_are_scrubbed() {
        let text = "a: ${TOKEN}\nb:\n  - ${file:/run/secrets/pw}\n  - \"${MISSING}\"\nc: plain\n";
        let mut root = marked_yaml::parse_yaml(0, text).unwrap();
        let mut problems = Vec::new();
        let redactions = expand(&mut root, &fixed(), &mut problems);
        let map = root.as_mapping().unwrap();
        assert_eq!(map.get_scalar("a").unwrap().as_str(), "s3cr3t-token");
        let b = map.get_sequence("b").unwrap();
        assert_eq!(b.get_scalar(0).unwrap().as_str(), "hunter22");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(4));
        assert_eq!(problems[0].path, "b[1]");
        let mut shown = vec![Problem::at(None, "x", "value `s3cr3t-token` and hunter22")];
        redactions.scrub_problems(&mut shown);
        assert_eq!(shown[0].message, "value `***` and ***");
    }
}
