//! Validating one processor: its type, the fields that type takes, its regexes.
//!
//! Owns the processors' configuration rules; what a processor does is [`crate::process`]'s.

use marked_yaml::{Node, Spanned};
use regex::bytes::Regex;

use crate::config::problem::Problem;
use crate::config::raw::RawProcessor;
use crate::config::scalar::one_line;
use crate::process::Processor;
use crate::process::time::{self, TimeFrom, TimeRule};

/// One processor, every field checked against its type.
pub(super) fn processor(
    raw: RawProcessor,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Processor> {
    let Some(kind) = raw.kind.as_ref() else {
        problems.push(Problem::node(
            node,
            format!("{path}.type"),
            "missing field `type` (json, regex, nginx, apache, csv, timestamp, add_fields, drop, keep)",
        ));
        return None;
    };
    let before = problems.len();
    let given: [(&str, bool); 13] = [
        ("from", raw.from.is_some()),
        ("format", raw.format.is_some()),
        ("utc_offset", raw.utc_offset.is_some()),
        ("level", raw.level.is_some()),
        ("depth", raw.depth.is_some()),
        ("keep_source", raw.keep_source.is_some()),
        ("pattern", raw.pattern.is_some()),
        ("keys", raw.keys.is_some()),
        ("columns", raw.columns.is_some()),
        ("delimiter", raw.delimiter.is_some()),
        ("fields", raw.fields.is_some()),
        ("field", raw.field.is_some()),
        ("type", true),
    ];
    let allowed: &[&str] = match kind.as_str() {
        "json" => &["depth", "keep_source"],
        "regex" => &["pattern", "keys"],
        "nginx" | "apache" => &[],
        "csv" => &["columns", "delimiter"],
        "add_fields" => &["fields"],
        "drop" | "keep" => &["field", "pattern"],
        "timestamp" => &["from", "format", "utc_offset", "level"],
        other => {
            problems.push(Problem::spanned(
                kind,
                format!("{path}.type"),
                format!("unknown processor `{other}`, expected one of json, regex, nginx, apache, csv, timestamp, add_fields, drop, keep"),
            ));
            return None;
        }
    };
    for (name, set) in given {
        if set && name != "type" && !allowed.contains(&name) {
            problems.push(Problem::spanned(
                kind,
                format!("{path}.{name}"),
                format!("`{name}` does not apply to a `{}` processor", kind.as_str()),
            ));
        }
    }
    let regex = |value: Option<&Spanned<String>>, problems: &mut Vec<Problem>| {
        let Some(value) = value else {
            problems.push(Problem::spanned(
                kind,
                format!("{path}.pattern"),
                format!("a `{}` processor needs a `pattern`", kind.as_str()),
            ));
            return None;
        };
        match Regex::new(value) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    format!("{path}.pattern"),
                    format!("invalid regex `{}`: {}", **value, one_line(&e.to_string())),
                ));
                None
            }
        }
    };
    let names = |list: &Option<Vec<Spanned<String>>>| -> Vec<String> {
        list.iter().flatten().map(|s| s.to_string()).collect()
    };
    let processor = match kind.as_str() {
        "json" => {
            let depth = match &raw.depth {
                Some(d) => match d.parse::<usize>() {
                    Ok(n) if (1..=16).contains(&n) => n,
                    _ => {
                        problems.push(Problem::spanned(
                            d,
                            format!("{path}.depth"),
                            "must be a whole number from 1 to 16",
                        ));
                        1
                    }
                },
                None => 1,
            };
            let keep_source = flag(
                raw.keep_source.as_ref(),
                &format!("{path}.keep_source"),
                problems,
            );
            Processor::Json { depth, keep_source }
        }
        "regex" => {
            let pattern = regex(raw.pattern.as_ref(), problems)?;
            let groups = pattern.captures_len() - 1;
            let keys = if raw.keys.is_some() {
                names(&raw.keys)
            } else {
                pattern
                    .capture_names()
                    .skip(1)
                    .map(|n| n.unwrap_or_default().to_string())
                    .collect()
            };
            if groups == 0 || keys.len() != groups || keys.iter().any(String::is_empty) {
                problems.push(Problem::spanned(
                    raw.pattern.as_ref().unwrap_or(kind),
                    format!("{path}.keys"),
                    format!("the pattern has {groups} capture group(s): name each one (`(?P<name>…)`) or list as many `keys`"),
                ));
            }
            Processor::Regex { pattern, keys }
        }
        "nginx" => Processor::Nginx,
        "apache" => Processor::Apache,
        "csv" => {
            let columns = names(&raw.columns);
            if columns.is_empty() {
                problems.push(Problem::spanned(
                    kind,
                    format!("{path}.columns"),
                    "a `csv` processor needs `columns`",
                ));
            }
            let delimiter = match &raw.delimiter {
                None => b',',
                Some(d) if d.len() == 1 && d.as_bytes()[0] != b'"' => d.as_bytes()[0],
                Some(d) => {
                    problems.push(Problem::spanned(
                        d,
                        format!("{path}.delimiter"),
                        "must be one ASCII character other than `\"`",
                    ));
                    b','
                }
            };
            Processor::Csv { columns, delimiter }
        }
        "timestamp" => Processor::Timestamp(time_rule(&raw, path, problems)),
        "add_fields" => {
            let fields: Vec<(String, String)> = raw
                .fields
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            if fields.is_empty() {
                problems.push(Problem::spanned(
                    kind,
                    format!("{path}.fields"),
                    "an `add_fields` processor needs `fields`",
                ));
            }
            Processor::AddFields { fields }
        }
        _ => {
            let pattern = regex(raw.pattern.as_ref(), problems)?;
            let field = raw
                .field
                .as_ref()
                .map_or_else(|| "message".to_string(), |f| f.to_string());
            if kind.as_str() == "drop" {
                Processor::Drop { field, pattern }
            } else {
                Processor::Keep { field, pattern }
            }
        }
    };
    (problems.len() == before).then_some(processor)
}

/// A `timestamp` processor's settings (problems pushed; defaults stand in for bad values).
fn time_rule(raw: &RawProcessor, path: &str, problems: &mut Vec<Problem>) -> TimeRule {
    let from = match raw.from.as_ref().map(|f| (f, f.as_str())) {
        None | Some((_, "leading")) => TimeFrom::Leading,
        Some((_, f)) if f.strip_prefix("field:").is_some_and(|n| !n.is_empty()) => {
            TimeFrom::Field(f["field:".len()..].to_string())
        }
        Some((f, other)) => {
            problems.push(Problem::spanned(
                f,
                format!("{path}.from"),
                format!("expected `leading` or `field:<name>`, got `{other}`"),
            ));
            TimeFrom::Leading
        }
    };
    let format = match raw.format.as_ref() {
        None => None,
        Some(f) if f.as_str() == "auto" => None,
        Some(f) => {
            if let Some(unknown) = time::unknown_directive(f) {
                problems.push(Problem::spanned(
                    f,
                    format!("{path}.format"),
                    format!("unknown directive `{unknown}`: the format takes %Y %m %d %e %b %H %M %S %f %z %%"),
                ));
            }
            Some(f.to_string())
        }
    };
    let utc_offset = match raw.utc_offset.as_ref() {
        None => 0,
        Some(o) => time::parse_offset(o).unwrap_or_else(|| {
            problems.push(Problem::spanned(
                o,
                format!("{path}.utc_offset"),
                format!("expected `Z` or `+hh:mm` / `-hh:mm`, got `{}`", o.as_str()),
            ));
            0
        }),
    };
    let level = flag(raw.level.as_ref(), &format!("{path}.level"), problems);
    TimeRule {
        from,
        format,
        utc_offset,
        level,
    }
}

/// A `true`/`false` setting, `true` when unset (a problem pushed, `true` kept, otherwise).
fn flag(value: Option<&Spanned<String>>, path: &str, problems: &mut Vec<Problem>) -> bool {
    match value {
        None => true,
        Some(v) if v.as_str() == "true" => true,
        Some(v) if v.as_str() == "false" => false,
        Some(v) => {
            problems.push(Problem::spanned(
                v,
                path.to_string(),
                format!("expected `true` or `false`, got `{}`", v.as_str()),
            ));
            true
        }
    }
}
