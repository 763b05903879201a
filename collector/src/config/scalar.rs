//! The scalar parsers every part of the configuration uses: choices, whole numbers, sizes,
//! durations, lists, unique names — each reporting a [`Problem`] with its position and
//! falling back to its default, so that one run reports everything.
//!
//! Owns how a scalar is read; it may not know which section asks.

use std::collections::HashMap;
use std::time::Duration;

use marked_yaml::{Node, Spanned};

use crate::config::problem::Problem;
use crate::config::raw::deserialize_collecting;
use crate::source::ReadFrom;

/// Each item of the list at `node`, deserialized (`None` for an item with problems).
pub(super) fn list<T: serde::de::DeserializeOwned>(
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Option<T>> {
    match node.as_sequence() {
        Some(seq) => seq
            .iter()
            .enumerate()
            .map(|(i, item)| deserialize_collecting(item, &format!("{path}[{i}]"), problems))
            .collect(),
        None => {
            problems.push(Problem::node(node, path, "must be a list"));
            Vec::new()
        }
    }
}

/// One of `options` by name; `default` when not given.
pub(super) fn choice<T: Copy>(
    value: Option<&Spanned<String>>,
    path: &str,
    options: &[(&str, T)],
    default: T,
    problems: &mut Vec<Problem>,
) -> T {
    let Some(value) = value else { return default };
    match options.iter().find(|(name, _)| *name == value.as_str()) {
        Some((_, v)) => *v,
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "unknown value `{}`, expected one of {}",
                    **value,
                    quoted(&names)
                ),
            ));
            default
        }
    }
}

/// `beginning` or `end`.
pub(super) fn read_from(
    value: Option<&Spanned<String>>,
    path: &str,
    default: ReadFrom,
    problems: &mut Vec<Problem>,
) -> ReadFrom {
    choice(
        value,
        path,
        &[("beginning", ReadFrom::Beginning), ("end", ReadFrom::End)],
        default,
        problems,
    )
}

/// A whole number within `range`.
pub(super) fn count(
    value: Option<&Spanned<String>>,
    path: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    problems: &mut Vec<Problem>,
) -> usize {
    let Some(value) = value else { return default };
    match value.trim().parse::<usize>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "`{}` is not a whole number from {} to {}",
                    **value,
                    range.start(),
                    range.end()
                ),
            ));
            default
        }
    }
}

/// A size (`4096`, `256KiB`, `1MiB`) within `range`.
pub(super) fn size(
    value: Option<&Spanned<String>>,
    path: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    problems: &mut Vec<Problem>,
) -> usize {
    let Some(value) = value else { return default };
    let parsed = value
        .trim()
        .parse::<bytesize::ByteSize>()
        .ok()
        .and_then(|b| usize::try_from(b.as_u64()).ok());
    match parsed {
        Some(n) if range.contains(&n) => n,
        Some(_) => {
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "`{}` is out of range: from {} to {}",
                    **value,
                    bytesize::ByteSize(*range.start() as u64).display().iec(),
                    bytesize::ByteSize(*range.end() as u64).display().iec()
                ),
            ));
            default
        }
        None => {
            problems.push(Problem::spanned(
                value,
                path,
                format!("`{}` is not a size (e.g. 4096, 256KiB, 1MiB)", **value),
            ));
            default
        }
    }
}

/// A duration longer than zero (`500ms`, `2s`, `1m`).
pub(super) fn duration(
    value: Option<&Spanned<String>>,
    path: &str,
    default: Duration,
    problems: &mut Vec<Problem>,
) -> Duration {
    let Some(value) = value else { return default };
    match humantime::parse_duration(value.trim()) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.push(Problem::spanned(value, path, "must be longer than zero"));
            default
        }
        Err(e) => {
            problems.push(Problem::spanned(
                value,
                path,
                format!("`{}` is not a duration (e.g. 500ms, 2s, 1m): {e}", **value),
            ));
            default
        }
    }
}

/// A duration within `range` (zero allowed when the range starts at zero).
pub(super) fn duration_within(
    value: Option<&Spanned<String>>,
    path: &str,
    default: Duration,
    range: std::ops::RangeInclusive<Duration>,
    problems: &mut Vec<Problem>,
) -> Duration {
    let Some(value) = value else { return default };
    let text = value.trim();
    // humantime wants a unit; a bare 0 is clear enough.
    let parsed = if text == "0" {
        Ok(Duration::ZERO)
    } else {
        humantime::parse_duration(text)
    };
    match parsed {
        Ok(d) if range.contains(&d) => d,
        Ok(_) => {
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "must be from {} to {}",
                    humantime::format_duration(*range.start()),
                    humantime::format_duration(*range.end())
                ),
            ));
            default
        }
        Err(e) => {
            problems.push(Problem::spanned(
                value,
                path,
                format!("`{}` is not a duration (e.g. 5ms, 500ms, 2s): {e}", **value),
            ));
            default
        }
    }
}

/// `` `a`, `b` `` for a message.
pub(super) fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` on one line (regex errors span several).
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `name` of a source or sink (`kind`) at `path`: given, not empty and not taken yet in
/// `names`, where it is entered with `index`.
pub(super) fn unique_name(
    name: Option<&Spanned<String>>,
    node: &Node,
    path: &str,
    kind: &str,
    index: usize,
    names: &mut HashMap<String, usize>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match name {
        Some(name) if name.is_empty() => {
            problems.push(Problem::spanned(
                name,
                format!("{path}.name"),
                "must not be empty",
            ));
            None
        }
        Some(name) => {
            if names.insert(name.to_string(), index).is_some() {
                problems.push(Problem::spanned(
                    name,
                    format!("{path}.name"),
                    format!("duplicate {kind} name `{}`", **name),
                ));
            }
            Some(name.to_string())
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.name"),
                "missing field `name`",
            ));
            None
        }
    }
}
