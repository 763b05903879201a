//! Validating one source: globs, format, line limits, multiline rules, processors and its
//! container filter, into a [`Source`].
//!
//! Owns a source's configuration rules; what its settings do belongs to the stages that use
//! them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use marked_yaml::{Node, Spanned};
use regex::bytes::Regex;

use crate::config::problem::Problem;
use crate::config::processor;
use crate::config::raw::{
    RawContainerMatcher, RawContainers, RawKeys, RawMultiline, RawSource, RawSourceKubernetes,
};
use crate::config::scalar::{
    choice, count, duration, one_line, quoted, read_from, size, unique_name,
};
use crate::container::filter::{ContainerFilter, ContainerMatcher, KeyFilter, PodKeys};
use crate::cut::decode::Format;
use crate::cut::multiline::{
    self, DEFAULT_MULTILINE_MAX_BYTES, DEFAULT_MULTILINE_MAX_LINES, DEFAULT_MULTILINE_TIMEOUT,
    MultilineMode, MultilineRules,
};
use crate::cut::{CutSettings, DEFAULT_MAX_LINE_BYTES, DEFAULT_PARTIAL_TIMEOUT};
use crate::process::Processor;
use crate::source::glob::{ExcludePattern, PathPattern};
use crate::source::{ReadFrom, Source};

/// The source `raw` (item `i` of `sources`, at `node`), the `index`-th valid one: every
/// field checked. Its name goes into `names`; `read_from` is the `reader` section's default.
pub(super) fn source(
    raw: RawSource,
    node: &Node,
    i: usize,
    index: usize,
    default_read_from: ReadFrom,
    names: &mut HashMap<String, usize>,
    problems: &mut Vec<Problem>,
) -> Option<Source> {
    let path = format!("sources[{i}]");
    let before = problems.len();
    let name = unique_name(
        raw.name.as_ref(),
        node,
        &path,
        "source",
        index,
        names,
        problems,
    );
    let declared = match &raw.declared {
        Some(flag) => match flag.as_str() {
            "true" => true,
            "false" => false,
            other => {
                problems.push(Problem::spanned(
                    flag,
                    format!("{path}.declared"),
                    format!("expected `true` or `false`, got `{other}`"),
                ));
                false
            }
        },
        None => false,
    };
    if declared && !raw.paths.is_empty() {
        problems.push(Problem::spanned(
            &raw.paths[0],
            format!("{path}.paths"),
            "a `declared: true` source reads the files containers declare; it takes no paths",
        ));
    } else if !declared && raw.paths.is_empty() {
        problems.push(Problem::node(
            node,
            format!("{path}.paths"),
            "at least one path glob is required (or `declared: true`)",
        ));
    }
    let mut paths = Vec::new();
    for (j, glob) in raw.paths.iter().enumerate() {
        match PathPattern::new(glob) {
            Ok(p) => paths.push(p),
            Err(e) => problems.push(Problem::spanned(
                glob,
                format!("{path}.paths[{j}]"),
                e.to_string(),
            )),
        }
    }
    let mut exclude = Vec::new();
    for (j, glob) in raw.exclude.iter().enumerate() {
        match ExcludePattern::new(glob) {
            Ok(p) => exclude.push(p),
            Err(e) => problems.push(Problem::spanned(
                glob,
                format!("{path}.exclude[{j}]"),
                e.to_string(),
            )),
        }
    }
    let format = choice(
        raw.format.as_ref(),
        &format!("{path}.format"),
        &[
            ("raw", Format::Raw),
            ("cri", Format::Cri),
            ("docker", Format::Docker),
        ],
        Format::Raw,
        problems,
    );
    let max_line_bytes = size(
        raw.max_line_bytes.as_ref(),
        &format!("{path}.max_line_bytes"),
        DEFAULT_MAX_LINE_BYTES,
        16..=1 << 30,
        problems,
    );
    let multiline = raw
        .multiline
        .and_then(|m| multiline_rules(m, node, &format!("{path}.multiline"), problems))
        .map(Arc::new);
    let read_from = read_from(
        raw.read_from.as_ref(),
        &format!("{path}.read_from"),
        default_read_from,
        problems,
    );
    let partial_timeout = duration(
        raw.partial_timeout.as_ref(),
        &format!("{path}.partial_timeout"),
        DEFAULT_PARTIAL_TIMEOUT,
        problems,
    );
    let processors: Arc<[Processor]> = raw
        .processors
        .into_iter()
        .enumerate()
        .filter_map(|(j, p)| {
            let own = node
                .as_mapping()
                .and_then(|m| m.get_node("processors"))
                .and_then(|n| n.as_sequence())
                .and_then(|s| s.get(j))
                .unwrap_or(node);
            processor::processor(p, own, &format!("{path}.processors[{j}]"), problems)
        })
        .collect();
    let containers = raw
        .containers
        .map(|c| container_filter(c, &format!("{path}.containers"), problems))
        .unwrap_or_default();
    let pod_keys = raw
        .kubernetes
        .map(|k| pod_keys(k, &format!("{path}.kubernetes"), problems))
        .unwrap_or_default();
    if problems.len() != before {
        return None;
    }
    Some(Source {
        index,
        name: name?,
        paths,
        exclude,
        cut: CutSettings {
            format,
            max_line_bytes,
            partial_timeout,
            multiline,
        },
        tags: raw.tags,
        read_from,
        containers,
        declared,
        origin: None,
        processors,
        pod_keys,
    })
}

/// A source's choice of pod labels and annotations, every glob checked.
fn pod_keys(raw: RawSourceKubernetes, path: &str, problems: &mut Vec<Problem>) -> PodKeys {
    let mut globs = |globs: Vec<Spanned<String>>, field: String| {
        if globs.is_empty() {
            return None;
        }
        let mut set = globset::GlobSetBuilder::new();
        for (i, glob) in globs.iter().enumerate() {
            match globset::Glob::new(glob) {
                Ok(g) => {
                    set.add(g);
                }
                Err(e) => problems.push(Problem::spanned(
                    glob,
                    format!("{field}[{i}]"),
                    format!("invalid glob `{}`: {}", **glob, one_line(&e.to_string())),
                )),
            }
        }
        set.build().ok()
    };
    let mut keys = |raw: Option<RawKeys>, field: &str| {
        let raw = raw.unwrap_or_default();
        KeyFilter {
            include: globs(raw.include, format!("{path}.{field}.include")),
            exclude: globs(raw.exclude, format!("{path}.{field}.exclude")),
        }
    };
    PodKeys {
        labels: keys(raw.labels, "labels"),
        annotations: keys(raw.annotations, "annotations"),
    }
}

/// A source's `containers` filter, every regex checked.
fn container_filter(
    raw: RawContainers,
    path: &str,
    problems: &mut Vec<Problem>,
) -> ContainerFilter {
    let matcher = |raw: RawContainerMatcher, path: String, problems: &mut Vec<Problem>| {
        let mut regex = |value: &Spanned<String>, field: String| match regex::Regex::new(value) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    field,
                    format!("invalid regex `{}`: {}", **value, one_line(&e.to_string())),
                ));
                None
            }
        };
        let mut one = |value: Option<Spanned<String>>, field: &str| {
            value.and_then(|v| regex(&v, format!("{path}.{field}")))
        };
        let namespace = one(raw.namespace, "namespace");
        let pod = one(raw.pod, "pod");
        let container = one(raw.container, "container");
        let mut map = |values: BTreeMap<String, Spanned<String>>, field: &str| {
            values
                .into_iter()
                .filter_map(|(k, v)| {
                    let re = regex(&v, format!("{path}.{field}.{k}"))?;
                    Some((k, re))
                })
                .collect()
        };
        let env = map(raw.env, "env");
        let annotations = map(raw.annotations, "annotations");
        let labels = map(raw.labels, "labels");
        ContainerMatcher {
            namespace,
            pod,
            container,
            env,
            annotations,
            labels,
        }
    };
    let include = raw
        .include
        .into_iter()
        .enumerate()
        .map(|(i, m)| matcher(m, format!("{path}.include[{i}]"), problems))
        .collect();
    let exclude = raw
        .exclude
        .into_iter()
        .enumerate()
        .map(|(i, m)| matcher(m, format!("{path}.exclude[{i}]"), problems))
        .collect();
    ContainerFilter { include, exclude }
}

/// A source's `multiline` rules, every regex checked.
fn multiline_rules(
    raw: RawMultiline,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<MultilineRules> {
    let before = problems.len();
    let regex = |value: &Option<Spanned<String>>,
                 field: &str,
                 problems: &mut Vec<Problem>|
     -> Option<Regex> {
        let value = value.as_ref()?;
        match Regex::new(value) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    format!("{path}.{field}"),
                    format!("invalid regex `{}`: {}", **value, one_line(&e.to_string())),
                ));
                None
            }
        }
    };
    let start = regex(&raw.start, "start", problems);
    let continue_ = regex(&raw.continue_, "continue", problems);
    let end = regex(&raw.end, "end", problems);
    let given = [
        raw.preset.is_some(),
        raw.mode.is_some(),
        raw.start.is_some(),
        raw.continue_.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    let mode = match (&raw.preset, start, continue_) {
        _ if given > 1 => {
            problems.push(Problem::node(
                node,
                path,
                "give exactly one of `preset`, `mode`, `start` or `continue`",
            ));
            None
        }
        _ if raw.mode.is_some() => auto_mode(&raw, path, problems),
        (Some(preset), _, _) => {
            if raw.end.is_some() {
                problems.push(Problem::spanned(
                    preset,
                    format!("{path}.end"),
                    "`end` cannot be combined with a preset",
                ));
            }
            match multiline::preset(preset) {
                Some(mode) => Some(mode),
                None => {
                    problems.push(Problem::spanned(
                        preset,
                        format!("{path}.preset"),
                        format!(
                            "unknown preset `{}`, expected one of {}",
                            **preset,
                            quoted(multiline::PRESETS)
                        ),
                    ));
                    None
                }
            }
        }
        (None, Some(start), None) => Some(MultilineMode::Start(start)),
        (None, None, Some(continue_)) => Some(MultilineMode::Continue(continue_)),
        (None, None, None) if given == 0 => {
            problems.push(Problem::node(
                node,
                path,
                "give one of `preset`, `mode`, `start` or `continue`",
            ));
            None
        }
        _ => None,
    };
    let max_lines = count(
        raw.max_lines.as_ref(),
        &format!("{path}.max_lines"),
        DEFAULT_MULTILINE_MAX_LINES,
        1..=1_000_000,
        problems,
    );
    let max_bytes = size(
        raw.max_bytes.as_ref(),
        &format!("{path}.max_bytes"),
        DEFAULT_MULTILINE_MAX_BYTES,
        16..=1 << 30,
        problems,
    );
    let timeout = duration(
        raw.timeout.as_ref(),
        &format!("{path}.timeout"),
        DEFAULT_MULTILINE_TIMEOUT,
        problems,
    );
    if problems.len() != before {
        return None;
    }
    Some(MultilineRules {
        mode: mode?,
        end,
        max_lines,
        max_bytes,
        timeout,
    })
}

/// `mode: auto` (the only mode named by `mode`; `end` does not go with it).
fn auto_mode(raw: &RawMultiline, path: &str, problems: &mut Vec<Problem>) -> Option<MultilineMode> {
    let mode = raw.mode.as_ref()?;
    if **mode != "auto" {
        problems.push(Problem::spanned(
            mode,
            format!("{path}.mode"),
            format!("unknown mode `{}`, expected `auto`", **mode),
        ));
        return None;
    }
    if raw.end.is_some() {
        problems.push(Problem::spanned(
            mode,
            format!("{path}.end"),
            "`end` cannot be combined with `mode: auto`",
        ));
    }
    Some(MultilineMode::Auto)
}
