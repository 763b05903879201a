//! Per-container log declarations: a container asks for its own logs to be collected.
//!
//! Owns reading declarations from a container's environment and turning each into a source
//! for discovery. The container declares, in its OCI process environment (no Docker socket,
//! no API server):
//!
//! - `RINGTAIL_LOGS_<NAME>=stdout` — its stdout/stderr log files (as the runtime writes them,
//!   CRI format unless `_FORMAT` says otherwise), or
//! - `RINGTAIL_LOGS_<NAME>=<glob>` — files inside the container, an absolute glob in the
//!   container's own file system (read through `/proc/<pid>/root`, symlinks resolved inside
//!   the container's root, never outside it);
//!
//! and optionally `RINGTAIL_LOGS_<NAME>_FORMAT=raw|cri|docker`,
//! `RINGTAIL_LOGS_<NAME>_TAGS=k=v,k=v` (added to the records' tags) and
//! `RINGTAIL_LOGS_<NAME>_TOPIC=<kafka topic>` (replaces the Kafka sink's topic for these
//! records). Declarations are honoured by a source with `declared: true`; its settings
//! (multiline, line limit, tags, container filter, sinks) apply to every declared file.
//!
//! A pod declares the same with annotations (the Log-pilot model, with no access to the
//! node's configuration), for every application container of the pod or, with `.container`,
//! one: `ringtail.io/logs.<name>: stdout | <glob>`, `ringtail.io/logs.<name>.format`,
//! `.tags`, `.target` (the Kafka topic) and `.container` ([`from_annotations`]). A container's
//! own variable wins over its pod's annotation of the same name.
//!
//! Owns reading declarations; it may not watch containers (discovery does) or open files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::container::bundles::Bundle;
use crate::container::{Container, FileMeta};
use crate::cut::CutSettings;
use crate::cut::decode::Format;
// The one import from a lower stage up to a higher one: a declaration may name its own Kafka
// topic, and only the Kafka sink knows what a legal topic is. Refusing a bad one here, with
// the variable that set it, is the user's error message; the sink alone would only mangle it.
use crate::sink::kafka::valid_topic;
use crate::source::glob::PathPattern;
use crate::source::{Origin, Source};

/// The environment variable prefix of declarations.
pub const PREFIX: &str = "RINGTAIL_LOGS_";

/// A declaration that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclareError {
    /// `_FORMAT` names no known format.
    #[error("{var}: unknown format `{value}`, expected raw, cri or docker")]
    Format {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// `_TAGS` is not `k=v,k=v`.
    #[error("{var}: `{value}` is not a list of key=value tags")]
    Tags {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// The value is neither `stdout` nor an absolute glob.
    #[error("{var}: `{value}` is neither `stdout` nor an absolute path glob: {reason}")]
    Target {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// An option (`_FORMAT`, `_TAGS`, `_TOPIC`) without the declaration it belongs to.
    #[error("{var} has no `{PREFIX}{name}` declaration to apply to")]
    Orphan {
        /// The variable.
        var: String,
        /// The declaration's name.
        name: String,
    },
    /// `_TOPIC` is not a legal Kafka topic name.
    #[error("{var}: `{value}` is not a valid Kafka topic name")]
    Topic {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// A `ringtail.io/logs.*` annotation that is not a declaration or one of its options.
    #[error("annotation {key}: {reason}")]
    Annotation {
        /// The annotation.
        key: String,
        /// Why.
        reason: String,
    },
    /// The container's files or log directory cannot be located.
    #[error("{name}: {reason}")]
    Unlocated {
        /// The declaration's name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What the declaration collects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The container's stdout/stderr log files.
    Stdout,
    /// Files inside the container matching an absolute glob.
    Files(String),
}

/// One declaration of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// `<NAME>` of `RINGTAIL_LOGS_<NAME>`.
    pub name: String,
    /// What it collects.
    pub target: Target,
    /// Format override.
    pub format: Option<Format>,
    /// Tags added to its records.
    pub tags: BTreeMap<String, String>,
    /// Kafka topic of its records.
    pub topic: Option<String>,
}

/// The declarations in `env`, and the problems of those that cannot be honoured.
pub fn parse(env: &BTreeMap<String, String>) -> (Vec<Declaration>, Vec<DeclareError>) {
    const OPTIONS: [&str; 3] = ["_FORMAT", "_TAGS", "_TOPIC"];
    let mut problems = Vec::new();
    let mut declarations: BTreeMap<String, Declaration> = BTreeMap::new();
    let declared = |name: &str| env.contains_key(&format!("{PREFIX}{name}"));
    for (var, value) in env {
        let Some(name) = var.strip_prefix(PREFIX) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        // `<NAME>_FORMAT` is an option when `<NAME>` is declared; otherwise it is a
        // declaration of its own, or (when its value is not one) an option without its
        // declaration.
        if let Some(base) = OPTIONS
            .iter()
            .find_map(|o| name.strip_suffix(o).filter(|b| !b.is_empty()))
        {
            if declared(base) {
                continue;
            }
            let value = value.trim();
            if !value.eq_ignore_ascii_case("stdout") && !value.starts_with('/') {
                problems.push(DeclareError::Orphan {
                    var: var.clone(),
                    name: base.to_string(),
                });
                continue;
            }
        }
        let value = value.trim();
        let target = if value.eq_ignore_ascii_case("stdout") {
            Target::Stdout
        } else if !value.starts_with('/') {
            problems.push(DeclareError::Target {
                var: var.clone(),
                value: value.to_string(),
                reason: "not absolute".to_string(),
            });
            continue;
        } else if let Err(e) = PathPattern::new(value) {
            problems.push(DeclareError::Target {
                var: var.clone(),
                value: value.to_string(),
                reason: e.to_string(),
            });
            continue;
        } else {
            Target::Files(value.to_string())
        };
        declarations.insert(
            name.to_string(),
            Declaration {
                name: name.to_string(),
                target,
                format: None,
                tags: BTreeMap::new(),
                topic: None,
            },
        );
    }
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        for option in OPTIONS {
            let Some(name) = rest.strip_suffix(option).filter(|n| !n.is_empty()) else {
                continue;
            };
            if !declared(name) {
                continue;
            }
            // A declaration whose value was refused has no options to take.
            let Some(declaration) = declarations.get_mut(name) else {
                continue;
            };
            let value = value.trim();
            match option {
                "_FORMAT" => match value {
                    "raw" => declaration.format = Some(Format::Raw),
                    "cri" => declaration.format = Some(Format::Cri),
                    "docker" => declaration.format = Some(Format::Docker),
                    _ => problems.push(DeclareError::Format {
                        var: var.clone(),
                        value: value.to_string(),
                    }),
                },
                "_TAGS" => match parse_tags(value) {
                    Some(tags) => declaration.tags = tags,
                    None => problems.push(DeclareError::Tags {
                        var: var.clone(),
                        value: value.to_string(),
                    }),
                },
                _ => {
                    if valid_topic(value) {
                        declaration.topic = Some(value.to_string());
                    } else {
                        problems.push(DeclareError::Topic {
                            var: var.clone(),
                            value: value.to_string(),
                        });
                    }
                }
            }
        }
    }
    (declarations.into_values().collect(), problems)
}

/// The prefix of the pod annotations that declare logs.
pub const ANNOTATION_PREFIX: &str = "ringtail.io/logs.";

/// The declarations a pod's `annotations` make for its container named `container`, as the
/// variables [`parse`] reads (`ringtail.io/logs.access` → `RINGTAIL_LOGS_ACCESS`, `.format`
/// → `_FORMAT`, `.tags` → `_TAGS`, `.target` → `_TOPIC`), with the annotation each variable
/// came from (for [`DeclareError::named`]); and the annotations that are not declarations.
/// A declaration whose `.container` names another container is left out.
pub fn from_annotations(
    annotations: &BTreeMap<String, String>,
    container: Option<&str>,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<DeclareError>,
) {
    let mut vars = BTreeMap::new();
    let mut origins = BTreeMap::new();
    let mut problems = Vec::new();
    let declared = |name: &str| annotations.contains_key(&format!("{ANNOTATION_PREFIX}{name}"));
    for (key, value) in annotations {
        let Some(rest) = key.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        let (name, option) = match rest.rsplit_once('.') {
            Some((name, option))
                if ["format", "tags", "target", "container"].contains(&option)
                    && declared(name) =>
            {
                (name, Some(option))
            }
            _ => (rest, None),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            problems.push(DeclareError::Annotation {
                key: key.clone(),
                reason: "expected ringtail.io/logs.<name> (letters, digits, - and _) or one of its options .format, .tags, .target, .container".to_string(),
            });
            continue;
        }
        let wanted = annotations
            .get(&format!("{ANNOTATION_PREFIX}{name}.container"))
            .is_none_or(|c| Some(c.trim()) == container);
        if !wanted {
            continue;
        }
        let var = format!(
            "{PREFIX}{}{}",
            name.to_ascii_uppercase().replace('-', "_"),
            match option {
                None => "",
                Some("format") => "_FORMAT",
                Some("tags") => "_TAGS",
                Some("target") => "_TOPIC",
                _ => continue,
            }
        );
        origins.insert(var.clone(), key.clone());
        vars.insert(var, value.clone());
    }
    (vars, origins, problems)
}

impl DeclareError {
    /// The error with the variable named as where it came from (`origins`: variable →
    /// annotation).
    pub fn named(self, origins: &BTreeMap<String, String>) -> Self {
        let rename = |var: String| match origins.get(&var) {
            Some(key) => format!("annotation {key}"),
            None => var,
        };
        match self {
            DeclareError::Format { var, value } => DeclareError::Format {
                var: rename(var),
                value,
            },
            DeclareError::Tags { var, value } => DeclareError::Tags {
                var: rename(var),
                value,
            },
            DeclareError::Target { var, value, reason } => DeclareError::Target {
                var: rename(var),
                value,
                reason,
            },
            DeclareError::Orphan { var, name } => DeclareError::Orphan {
                var: rename(var),
                name,
            },
            DeclareError::Topic { var, value } => DeclareError::Topic {
                var: rename(var),
                value,
            },
            other => other,
        }
    }
}

fn parse_tags(value: &str) -> Option<BTreeMap<String, String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The source that reads `declaration` of the container in `bundle` (running as `pid`), with
/// the settings of `base` (the `declared: true` source). `meta` is the container's metadata.
pub fn source(
    base: &Source,
    declaration: &Declaration,
    bundle: &Bundle,
    pid: Option<u32>,
    meta: Arc<FileMeta>,
) -> Result<Source, DeclareError> {
    let container: &Container = &bundle.container;
    let unlocated = |reason: &str| DeclareError::Unlocated {
        name: declaration.name.clone(),
        reason: reason.to_string(),
    };
    let (glob, root, format) = match &declaration.target {
        Target::Stdout => {
            let dir = log_dir(bundle).ok_or_else(|| {
                unlocated("the container's log directory is not known (no pod log directory)")
            })?;
            (
                format!("{}/*.log*", glob_escape(&dir)),
                None,
                declaration.format.unwrap_or(Format::Cri),
            )
        }
        Target::Files(glob) => {
            let pid = pid.ok_or_else(|| unlocated("the container's process is not known"))?;
            let root = PathBuf::from(format!("/proc/{pid}/root"));
            (
                format!("{}{glob}", root.display()),
                Some(root),
                declaration.format.unwrap_or(base.cut.format),
            )
        }
    };
    let pattern = PathPattern::new(&glob).map_err(|e| DeclareError::Target {
        var: format!("{PREFIX}{}", declaration.name),
        value: glob.clone(),
        reason: e.to_string(),
    })?;
    let mut tags = base.tags.clone();
    tags.extend(declaration.tags.clone());
    Ok(Source {
        paths: vec![pattern],
        exclude: base.exclude.clone(),
        cut: CutSettings {
            format,
            ..base.cut.clone()
        },
        tags,
        declared: false,
        containers: Default::default(),
        origin: Some(Arc::new(Origin {
            name: declaration.name.clone(),
            container_id: container.id.clone().unwrap_or_default(),
            topic: declaration.topic.clone(),
            root,
            meta,
        })),
        ..base.clone()
    })
}

/// The directory of the container's stdout/stderr log files.
fn log_dir(bundle: &Bundle) -> Option<PathBuf> {
    if let Some(path) = &bundle.log_path {
        return path.parent().map(Path::to_path_buf);
    }
    let name = bundle.container.name.as_ref()?;
    if let Some(dir) = &bundle.log_directory {
        return Some(dir.join(name));
    }
    let c = &bundle.container;
    Some(PathBuf::from(format!(
        "/var/log/pods/{}_{}_{}/{name}",
        c.namespace.as_ref()?,
        c.pod.as_ref()?,
        c.pod_uid.as_ref()?
    )))
}

/// `path` with glob metacharacters escaped.
fn glob_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn declarations_with_options() {
        let (declared, problems) = parse(&env(&[
            ("PATH", "/bin"),
            ("RINGTAIL_LOGS_ACCESS", "/var/log/nginx/access*.log"),
            ("RINGTAIL_LOGS_ACCESS_FORMAT", "raw"),
            ("RINGTAIL_LOGS_ACCESS_TAGS", "team=web, tier = edge"),
            ("RINGTAIL_LOGS_ACCESS_TOPIC", "nginx-access"),
            ("RINGTAIL_LOGS_CONSOLE", "stdout"),
        ]));
        assert_eq!(problems, vec![]);
        assert_eq!(
            declared,
            vec![
                Declaration {
                    name: "ACCESS".into(),
                    target: Target::Files("/var/log/nginx/access*.log".into()),
                    format: Some(Format::Raw),
                    tags: [("team", "web"), ("tier", "edge")]
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .into(),
                    topic: Some("nginx-access".into()),
                },
                Declaration {
                    name: "CONSOLE".into(),
                    target: Target::Stdout,
                    format: None,
                    tags: BTreeMap::new(),
                    topic: None,
                },
            ]
        );
    }

    #[test]
    fn bad_declarations_are_reported_and_skipped() {
        let (declared, problems) = parse(&env(&[
            ("RINGTAIL_LOGS_A", "relative/*.log"),
            ("RINGTAIL_LOGS_B", "/ok/*.log"),
            ("RINGTAIL_LOGS_B_FORMAT", "xml"),
            ("RINGTAIL_LOGS_B_TAGS", "novalue"),
            ("RINGTAIL_LOGS_B_TOPIC", "bad topic!"),
            ("RINGTAIL_LOGS_C_TOPIC", "t"),
            ("RINGTAIL_LOGS_D", "/[unclosed"),
        ]));
        assert_eq!(declared.len(), 1);
        assert_eq!(declared[0].name, "B");
        assert_eq!(declared[0].format, None);
        let kinds: Vec<&str> = problems
            .iter()
            .map(|p| match p {
                DeclareError::Format { .. } => "format",
                DeclareError::Tags { .. } => "tags",
                DeclareError::Target { .. } => "target",
                DeclareError::Orphan { .. } => "orphan",
                DeclareError::Topic { .. } => "topic",
                DeclareError::Unlocated { .. } => "unlocated",
                DeclareError::Annotation { .. } => "annotation",
            })
            .collect();
        assert_eq!(
            kinds,
            vec!["target", "orphan", "target", "format", "tags", "topic"],
            "{problems:#?}"
        );
    }

    #[test]
    fn pod_annotations_declare_like_variables_for_the_containers_they_name() {
        let annotations = env(&[
            ("ringtail.io/logs.access", "/var/log/app/*.log"),
            ("ringtail.io/logs.access.format", "raw"),
            ("ringtail.io/logs.access.tags", "kind=access"),
            ("ringtail.io/logs.access.target", "access-logs"),
            ("ringtail.io/logs.access.container", "app"),
            ("ringtail.io/logs.console", "stdout"),
            ("ringtail.io/logs.console.format", "xml"),
            ("ringtail.io/logs.bad name", "stdout"),
            ("ringtail.io/logs.orphan.tags", "a=b"),
            ("example.com/other", "x"),
        ]);
        let (vars, origins, problems) = from_annotations(&annotations, Some("app"));
        assert_eq!(
            vars.keys().collect::<Vec<_>>(),
            [
                "RINGTAIL_LOGS_ACCESS",
                "RINGTAIL_LOGS_ACCESS_FORMAT",
                "RINGTAIL_LOGS_ACCESS_TAGS",
                "RINGTAIL_LOGS_ACCESS_TOPIC",
                "RINGTAIL_LOGS_CONSOLE",
                "RINGTAIL_LOGS_CONSOLE_FORMAT",
            ]
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
        let (declared, refused) = parse(&vars);
        assert_eq!(declared.len(), 2);
        assert_eq!(declared[0].topic.as_deref(), Some("access-logs"));
        assert_eq!(declared[0].format, Some(Format::Raw));
        let named: Vec<String> = refused
            .into_iter()
            .map(|e| e.named(&origins).to_string())
            .collect();
        assert_eq!(named.len(), 1);
        assert!(
            named[0].starts_with("annotation ringtail.io/logs.console.format"),
            "{named:?}"
        );
        // Another container of the pod: `access` is not its declaration.
        let (vars, _, _) = from_annotations(&annotations, Some("sidecar"));
        assert!(vars.keys().all(|k| !k.starts_with("RINGTAIL_LOGS_ACCESS")));
    }

    #[test]
    fn a_name_that_ends_like_an_option_is_a_declaration_of_its_own() {
        let (declared, problems) = parse(&env(&[("RINGTAIL_LOGS_APP_TOPIC", "/logs/*.log")]));
        assert_eq!(problems, vec![]);
        assert_eq!(declared[0].name, "APP_TOPIC");
    }

    #[test]
    fn log_directories_are_escaped_in_globs() {
        assert_eq!(glob_escape(Path::new("/a/b[1]/c*")), "/a/b[[]1[]]/c[*]");
    }
}
