//! A configuration directory: every `*.yaml` (or `*.yml`) in it is a pipeline — sources,
//! their processors, sinks — as when a ConfigMap with several files is mounted.
//!
//! Owns reading the directory and merging its pipelines into one [`Config`]. Global settings
//! (`data_dir`, `api`, `reader`, `pipeline`, `checkpoints`, `discovery`, `kubernetes`) come
//! from the settings file (`--config`, optional; its own sources and sinks, if any, run too)
//! and are refused in pipeline files. A pipeline's source and sink names become
//! `<file stem>/<name>`, so two files can use the same names. A bad file is reported by its
//! name and does not stop the others; when it was good before (a reload), its last good
//! version keeps running.
//!
//! It may not validate a pipeline's contents itself: each file goes through
//! [`crate::config::parse`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Config, ConfigError, Problem, check_environment, limits, parse, parse_settings};

/// Keys a pipeline file may have.
const PIPELINE_KEYS: [&str; 2] = ["sources", "sinks"];

/// The result of loading a directory.
#[derive(Debug)]
pub struct Loaded {
    /// The settings and every usable pipeline, merged.
    pub config: Config,
    /// The files that could not be used as they are now, each with every problem.
    pub rejected: Vec<ConfigError>,
    /// The text each pipeline in `config` was built from, by file (a rejected file that was
    /// good before keeps its last good text).
    pub used: BTreeMap<PathBuf, String>,
}

/// Everything that makes up the configuration now: the settings file's text and each
/// pipeline file's, for telling whether anything changed.
pub fn snapshot(settings: Option<&Path>, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = settings
        .map(|p| (p.to_path_buf(), std::fs::read(p).unwrap_or_default()))
        .into_iter()
        .collect();
    for file in pipeline_files(dir).unwrap_or_default() {
        let text = std::fs::read(&file).unwrap_or_default();
        out.push((file, text));
    }
    out
}

/// The pipeline files in `dir`, sorted; hidden entries (a ConfigMap's `..data`) are skipped.
fn pipeline_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Loads `settings` (or the defaults) and the pipelines in `dir`. `last_good` holds the
/// text each file had when it was last used (empty at start-up). Fails when the settings
/// are invalid, the directory cannot be read, or no pipeline is usable.
pub fn load(
    settings: Option<&Path>,
    dir: &Path,
    last_good: &BTreeMap<PathBuf, String>,
) -> Result<Loaded, ConfigError> {
    let (settings_text, origin) = match settings {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            path.display().to_string(),
        ),
        None => ("{}".to_string(), "default settings".to_string()),
    };
    let (base, mut problems) = parse_settings(&settings_text);
    if let Some(base) = &base {
        problems.extend(check_environment(base));
    }
    let mut config = match base {
        Some(base) if problems.is_empty() => base,
        _ => return Err(ConfigError::Invalid { origin, problems }),
    };
    let files = pipeline_files(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut rejected = Vec::new();
    let mut used = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(source) => {
                rejected.push(ConfigError::Read {
                    path: file.clone(),
                    source,
                });
                continue;
            }
        };
        let pipeline = match pipeline(&text, &config) {
            Ok(p) => {
                used.insert(file.clone(), text);
                p
            }
            Err(problems) => {
                rejected.push(ConfigError::Invalid {
                    origin: file.display().to_string(),
                    problems,
                });
                // Its last good version, if it had one, keeps running.
                match last_good.get(&file).map(|t| (t, pipeline(t, &config))) {
                    Some((good, Ok(p))) => {
                        used.insert(file.clone(), good.clone());
                        p
                    }
                    _ => continue,
                }
            }
        };
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("pipeline")
            .to_string();
        merge(&mut config, pipeline, &stem);
    }
    if config.sources.is_empty() {
        return Err(ConfigError::Invalid {
            origin: dir.display().to_string(),
            problems: vec![Problem::at(
                None,
                "",
                format!("no usable pipeline ({} file(s) rejected)", rejected.len()),
            )],
        });
    }
    // The settings' limits were applied before any pipeline's sources and sinks were known:
    // the buffers are sized and checked again for all of them.
    let mut problems = Vec::new();
    config.limits = limits::size_buffers(
        config.limits,
        limits::Marks::default(),
        &mut config.reader,
        &mut config.pipeline,
        &config.sources,
        &mut config.sinks,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            origin: format!("{origin} with the pipelines in {}", dir.display()),
            problems,
        });
    }
    Ok(Loaded {
        config,
        rejected,
        used,
    })
}

/// One pipeline file, validated against the settings it will run with.
fn pipeline(text: &str, settings: &Config) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    if let Ok(root) = marked_yaml::parse_yaml(0, text)
        && let Some(map) = root.as_mapping()
    {
        for (key, _) in map.iter() {
            if !PIPELINE_KEYS.contains(&key.as_str()) {
                problems.push(Problem::at(
                    key.span().start(),
                    key.as_str(),
                    "a pipeline file holds `sources` and `sinks` only; this setting belongs in the settings file (--config)",
                ));
            }
        }
    }
    let (config, mut more) = parse(text);
    problems.append(&mut more);
    if let Some(mut config) = config {
        config.data_dir.clone_from(&settings.data_dir);
        problems.extend(check_environment(&config));
        if problems.is_empty() {
            return Ok(config);
        }
    }
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    Err(problems)
}

/// Adds `pipeline`'s sources and sinks to `config`, named `<stem>/<name>`.
fn merge(config: &mut Config, pipeline: Config, stem: &str) {
    let offset = config.sources.len();
    for source in pipeline.sources {
        let mut source = Arc::unwrap_or_clone(source);
        source.index += offset;
        source.name = format!("{stem}/{}", source.name);
        config.sources.push(Arc::new(source));
    }
    for mut sink in pipeline.sinks {
        sink.name = format!("{stem}/{}", sink.name);
        for input in &mut sink.inputs {
            *input += offset;
        }
        config.sinks.push(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::limits::MEMORY_OVERHEAD;

    fn pipeline_text(dir: &Path, name: &str) -> String {
        format!(
            "sources:\n  - name: app\n    paths: [\"{d}/logs/{name}/*.log\"]\nsinks:\n  - name: out\n    type: file\n    path: {d}/out/{name}.ndjson\n",
            d = dir.display()
        )
    }

    #[test]
    fn the_settings_limits_size_the_buffers_of_every_pipeline() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let conf = dir.join("conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        let settings = dir.join("settings.yaml");
        let with = |extra: &str| {
            std::fs::write(
                &settings,
                format!(
                    "data_dir: {}/data\nlimits: {{memory: 128MiB}}\n{extra}",
                    dir.display()
                ),
            )
            .unwrap();
            load(Some(&settings), &conf, &BTreeMap::new())
        };
        std::fs::write(conf.join("a.yaml"), pipeline_text(dir, "a")).unwrap();
        std::fs::write(conf.join("b.yaml"), pipeline_text(dir, "b")).unwrap();
        // Two routes of one part each: a quarter of the 24 MiB left keeps one worker.
        let config = with("").unwrap().config;
        assert_eq!(config.pipeline.workers, 1);
        let held = crate::work::output::held_per_part(config.pipeline.batch_bytes);
        assert!(config.limits.buffered >= 2 * held, "{:?}", config.limits);
        assert!(config.limits.buffered <= (128 << 20) - MEMORY_OVERHEAD);
        // Workers set in the settings that the pipelines' batches do not fit beside: refused,
        // naming the settings.
        let error = with("pipeline: {workers: 4}\n").err().unwrap().to_string();
        assert!(
            error.contains("settings.yaml with the pipelines in"),
            "{error}"
        );
        assert!(error.contains("the buffers add up to"), "{error}");
    }

    #[test]
    fn good_pipelines_run_and_a_bad_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let conf = dir.join("conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        let settings = dir.join("settings.yaml");
        std::fs::write(&settings, format!("data_dir: {}/data\n", dir.display())).unwrap();
        std::fs::write(conf.join("a.yaml"), pipeline_text(dir, "a")).unwrap();
        std::fs::write(conf.join("b.yml"), pipeline_text(dir, "b")).unwrap();
        std::fs::write(
            conf.join("c.yaml"),
            "api: {listen: 0.0.0.0:1}\nsources:\n  - name: x\n    paths: [relative]\nsinks: []\n",
        )
        .unwrap();
        std::fs::write(conf.join("notes.txt"), "not a pipeline").unwrap();
        let loaded = load(Some(&settings), &conf, &BTreeMap::new()).unwrap();
        let names: Vec<&str> = loaded
            .config
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["a/app", "b/app"]);
        let sinks: Vec<(&str, &[usize])> = loaded
            .config
            .sinks
            .iter()
            .map(|s| (s.name.as_str(), s.inputs.as_slice()))
            .collect();
        assert_eq!(sinks, vec![("a/out", &[0][..]), ("b/out", &[1][..])]);
        assert!(
            loaded
                .config
                .sources
                .iter()
                .enumerate()
                .all(|(i, s)| s.index == i)
        );
        assert_eq!(loaded.config.data_dir, dir.join("data"));
        assert_eq!(loaded.rejected.len(), 1);
        let error = loaded.rejected[0].to_string();
        assert!(error.contains("c.yaml"), "{error}");
        assert!(error.contains("belongs in the settings file"), "{error}");
        assert!(error.contains("not an absolute path"), "{error}");

        // b breaks later: its last good version keeps running, and it is still named.
        std::fs::write(conf.join("b.yml"), "sources: [oops").unwrap();
        let again = load(Some(&settings), &conf, &loaded.used).unwrap();
        let names: Vec<&str> = again
            .config
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["a/app", "b/app"]);
        assert!(
            again
                .rejected
                .iter()
                .any(|e| e.to_string().contains("b.yml"))
        );
        // Without a last good version it is left out.
        let fresh = load(Some(&settings), &conf, &BTreeMap::new()).unwrap();
        assert_eq!(fresh.config.sources.len(), 1);

        // Nothing usable at all is an error.
        std::fs::remove_file(conf.join("a.yaml")).unwrap();
        assert!(load(Some(&settings), &conf, &BTreeMap::new()).is_err());
    }
}
