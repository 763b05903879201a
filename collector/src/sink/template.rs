//! Templates that name a destination per record, e.g. a Kafka topic `logs-{k8s.namespace}`
//! or a key `{file}`.
//!
//! Owns the parsing (at configuration time, so an unknown field is a configuration error with
//! its position) and the rendering from what a record's file and stream say. Fields:
//! `source`, `stream` (`stdout`, `stderr`, `unknown`), `file` (its path), `identity` (device
//! and inode: stable across renames), `container`, `k8s.namespace`, `k8s.pod`,
//! `k8s.pod_uid`, `k8s.container`, `k8s.restart`, `container_id`, `image` (the file's
//! container metadata, see [`crate::container`]), `node` and `declared` (the name of the
//! container's `RINGTAIL_LOGS_<NAME>` declaration, lowercased), and `k8s.labels.<key>` /
//! `k8s.annotations.<key>` (the pod's, from the runtime: a team's topic, say). A field a file
//! does not have renders as `unknown`.
//!
//! Owns parsing and rendering templates; it may not decide where a record goes (the sink does).

use crate::container::Container;
use crate::cut::decode::Stream;
use crate::source::FileCtx;

/// A field a template can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The source's name.
    Source,
    /// The record's stream.
    Stream,
    /// The file's path.
    File,
    /// The file's device and inode, `<dev>:<ino>`.
    Identity,
    /// The container (`<namespace>/<pod>/<container>` or an id).
    Container,
    /// The pod's namespace.
    Namespace,
    /// The pod.
    Pod,
    /// The container's name in its pod.
    ContainerName,
    /// The pod's UID.
    PodUid,
    /// The container's restart count.
    Restart,
    /// The container id.
    ContainerId,
    /// The container's image.
    Image,
    /// The node's name.
    Node,
    /// The name of the container's declaration (`RINGTAIL_LOGS_<NAME>`), lowercased.
    Declared,
}

const FIELDS: [(&str, Field); 14] = [
    ("source", Field::Source),
    ("stream", Field::Stream),
    ("file", Field::File),
    ("identity", Field::Identity),
    ("container", Field::Container),
    ("k8s.namespace", Field::Namespace),
    ("k8s.pod", Field::Pod),
    ("k8s.container", Field::ContainerName),
    ("k8s.pod_uid", Field::PodUid),
    ("k8s.restart", Field::Restart),
    ("container_id", Field::ContainerId),
    ("image", Field::Image),
    ("node", Field::Node),
    ("declared", Field::Declared),
];

/// What a field renders as when the file does not have it.
pub const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    /// `k8s.labels.<key>`.
    Label(String),
    /// `k8s.annotations.<key>`.
    Annotation(String),
}

/// Prefixes of the fields named by a key of the pod's labels or annotations.
const LABEL_PREFIX: &str = "k8s.labels.";
const ANNOTATION_PREFIX: &str = "k8s.annotations.";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without `}`.
    #[error("unclosed `{{` at byte {at}")]
    Unclosed {
        /// Where the `{` is.
        at: usize,
    },
    /// A field name that is not known.
    #[error("unknown field `{name}`, expected one of {expected}")]
    UnknownField {
        /// The name.
        name: String,
        /// The known names.
        expected: String,
    },
}

impl Template {
    /// Parses `text`: literal text with `{field}` placeholders (`{{` and `}}` for braces).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let brace = rest.as_bytes()[i];
            let after = &rest[i + 1..];
            if after.as_bytes().first() == Some(&brace) {
                literal.push(brace as char);
                at += i + 2;
                rest = &after[1..];
                continue;
            }
            if brace == b'}' {
                // A lone `}` is text.
                literal.push('}');
                at += i + 1;
                rest = after;
                continue;
            }
            let end = after
                .find('}')
                .ok_or(TemplateError::Unclosed { at: at + i })?;
            let name = after[..end].trim();
            let keyed = |prefix: &str| name.strip_prefix(prefix).filter(|k| !k.is_empty());
            let part = if let Some(key) = keyed(LABEL_PREFIX) {
                Part::Label(key.to_string())
            } else if let Some(key) = keyed(ANNOTATION_PREFIX) {
                Part::Annotation(key.to_string())
            } else {
                FIELDS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, f)| Part::Field(*f))
                    .ok_or_else(|| TemplateError::UnknownField {
                        name: name.to_string(),
                        expected: expected(),
                    })?
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            at += i + 1 + end + 1;
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The literal text, if the template has no fields.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// Renders the template for a record of `file` on `stream`.
    pub fn render(&self, file: &FileCtx, stream: Stream) -> String {
        let container: Option<&Container> = file.meta.container.as_ref();
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Label(key) | Part::Annotation(key) => {
                    let pod = container.and_then(|c| c.pod_labels.as_deref());
                    let map = pod.map(|p| match part {
                        Part::Label(_) => &p.labels,
                        _ => &p.annotations,
                    });
                    out.push_str(map.and_then(|m| m.get(key)).map_or(UNKNOWN, String::as_str));
                }
                Part::Field(field) => {
                    let value: Option<String> = match field {
                        Field::Source => Some(file.source.name.clone()),
                        Field::Stream => Some(stream.name().unwrap_or(UNKNOWN).to_string()),
                        Field::File => Some(
                            crate::escape::bytes_as_text(file.path.as_os_str().as_encoded_bytes())
                                .into_owned(),
                        ),
                        Field::Identity => {
                            Some(format!("{}:{}", file.identity.dev, file.identity.ino))
                        }
                        Field::Container => container.map(Container::label),
                        Field::Namespace => container.and_then(|c| c.namespace.clone()),
                        Field::Pod => container.and_then(|c| c.pod.clone()),
                        Field::ContainerName => container.and_then(|c| c.name.clone()),
                        Field::PodUid => container.and_then(|c| c.pod_uid.clone()),
                        Field::Restart => container.and_then(|c| c.restart.map(|r| r.to_string())),
                        Field::ContainerId => container.and_then(|c| c.id.clone()),
                        Field::Image => container.and_then(|c| c.image.clone()),
                        Field::Node => file.meta.node.clone(),
                        Field::Declared => file
                            .source
                            .origin
                            .as_ref()
                            .map(|o| o.name.to_ascii_lowercase()),
                    };
                    out.push_str(value.as_deref().unwrap_or(UNKNOWN));
                }
            }
        }
        out
    }
}

/// The fields a template may name, for the error that names an unknown one.
fn expected() -> String {
    FIELDS
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .chain([
            format!("`{LABEL_PREFIX}<key>`"),
            format!("`{ANNOTATION_PREFIX}<key>`"),
        ])
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_fields_and_escaped_braces() {
        let t = Template::parse("logs-{k8s.namespace}-{ stream }").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("logs-".into()),
                Part::Field(Field::Namespace),
                Part::Text("-".into()),
                Part::Field(Field::Stream),
            ]
        );
        assert_eq!(
            Template::parse("plain").unwrap().as_literal(),
            Some("plain")
        );
        assert_eq!(
            Template::parse("a{{b}}c").unwrap().as_literal(),
            Some("a{b}c")
        );
        assert_eq!(
            Template::parse("x-{nope}"),
            Err(TemplateError::UnknownField {
                name: "nope".into(),
                expected: expected()
            })
        );
        assert_eq!(
            Template::parse("logs-{k8s.labels.team}-{k8s.annotations.example.com/owner}")
                .unwrap()
                .parts,
            vec![
                Part::Text("logs-".into()),
                Part::Label("team".into()),
                Part::Text("-".into()),
                Part::Annotation("example.com/owner".into()),
            ]
        );
        assert!(Template::parse("{k8s.labels.}").is_err());
        assert_eq!(
            Template::parse("x-{stream"),
            Err(TemplateError::Unclosed { at: 2 })
        );
    }
}
