//! What is wrong with a configuration: each [`Problem`] with its line, column and place in
//! the document, and the [`ConfigError`] that lists every one of them.
//!
//! Owns how problems are reported; it may not decide what is wrong.

use std::fmt;
use std::path::PathBuf;

use marked_yaml::{Marker, Node, Spanned};

/// One thing wrong with a configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column in the file, when known.
    pub column: Option<usize>,
    /// Where in the document, e.g. `sources[1].multiline.start`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at a position given by a YAML marker.
    pub fn at(mark: Option<&Marker>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line: mark.map(|m| m.line()),
            column: mark.map(|m| m.column()),
            path: path.into(),
            message: message.into(),
        }
    }

    /// A problem at the start of `value`.
    pub fn spanned<T>(
        value: &Spanned<T>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::at(value.span().start(), path, message)
    }

    /// A problem at the start of `node`.
    pub fn node(node: &Node, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::at(node.span().start(), path, message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read and has problems; all of them are listed.
    #[error("{origin}: {} problem{} found:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        /// The file (or `built-in default`).
        origin: String,
        /// Every problem, in document order.
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The problem a YAML syntax error is.
pub fn yaml_syntax_problem(error: &marked_yaml::LoadError) -> Problem {
    use marked_yaml::LoadError as E;
    let mark = match error {
        E::TopLevelMustBeMapping(m)
        | E::TopLevelMustBeSequence(m)
        | E::UnexpectedAnchor(m)
        | E::MappingKeyMustBeScalar(m)
        | E::UnexpectedTag(m)
        | E::ScanError(m, _) => Some(*m),
        E::DuplicateKey(inner) => inner.key.span().start().copied(),
    };
    Problem::at(mark.as_ref(), "", format!("invalid YAML: {error}"))
}
