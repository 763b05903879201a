//! The sources of a path, found through the path's ancestors instead of by asking every
//! source: a glob can only match below its literal root, so the sources to ask about a path
//! are those with a root among the path's few ancestors. Discovery asks this for every file
//! and directory it sees, so with 20,000 sources start-up stays linear in their number.
//!
//! Owns the lookup; which file a glob matches stays with [`glob`](super::glob).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Source;

/// Sources in their order of precedence, indexed by glob root and by name.
#[derive(Debug, Clone, Default)]
pub struct SourceIndex {
    sources: Vec<Arc<Source>>,
    /// Each glob root, with the positions (ascending) of the sources that have a glob there.
    by_root: HashMap<PathBuf, Vec<usize>>,
    /// Every directory strictly above a glob root.
    above_roots: HashSet<PathBuf>,
    /// The position of the first source with each name.
    by_name: HashMap<String, usize>,
}

impl SourceIndex {
    /// Indexes `sources`; the first one that matches a path is its source.
    pub fn new(sources: Vec<Arc<Source>>) -> Self {
        let mut by_root: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        let mut above_roots = HashSet::new();
        let mut by_name = HashMap::new();
        for (position, source) in sources.iter().enumerate() {
            by_name.entry(source.name.clone()).or_insert(position);
            for pattern in &source.paths {
                let at = by_root.entry(pattern.root.clone()).or_default();
                if at.last() != Some(&position) {
                    at.push(position);
                }
                for above in pattern.root.ancestors().skip(1) {
                    if !above_roots.insert(above.to_path_buf()) {
                        break;
                    }
                }
            }
        }
        Self {
            sources,
            by_root,
            above_roots,
            by_name,
        }
    }

    /// All sources, in order.
    pub fn all(&self) -> &[Arc<Source>] {
        &self.sources
    }

    /// The first source named `name`.
    pub fn named(&self, name: &str) -> Option<&Arc<Source>> {
        self.by_name.get(name).map(|&i| &self.sources[i])
    }

    /// The sources whose globs match the file at `path` (and do not exclude it), in order.
    pub fn matching<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a Arc<Source>> + 'a {
        let mut positions: Vec<usize> = path
            .ancestors()
            .skip(1)
            .filter_map(|dir| self.by_root.get(dir))
            .flatten()
            .copied()
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
            .into_iter()
            .map(|i| &self.sources[i])
            .filter(move |s| s.matches(path))
    }

    /// Whether directory `dir` must be watched: files of a source can be in it or below it,
    /// or it is on the way to a glob root.
    pub fn watches(&self, dir: &Path) -> bool {
        if self.above_roots.contains(dir) {
            return true;
        }
        dir.ancestors()
            .filter_map(|root| self.by_root.get(root))
            .flatten()
            .any(|&i| self.sources[i].may_contain(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cut::decode::Format;
    use crate::source::glob::{ExcludePattern, PathPattern};

    fn source(index: usize, name: &str, globs: &[&str], exclude: &[&str]) -> Arc<Source> {
        let mut s = Source::new(index, name, Format::Raw);
        s.paths = globs.iter().map(|g| PathPattern::new(g).unwrap()).collect();
        s.exclude = exclude
            .iter()
            .map(|g| ExcludePattern::new(g).unwrap())
            .collect();
        Arc::new(s)
    }

    fn names<'a>(it: impl Iterator<Item = &'a Arc<Source>>) -> Vec<&'a str> {
        it.map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn sources_of_a_path_are_those_a_linear_scan_finds_in_the_same_order() {
        let sources = vec![
            source(0, "pods", &["/var/log/pods/*/*/*.log"], &["*.gz"]),
            source(1, "all", &["/var/log/**/*.log"], &[]),
            source(
                2,
                "app",
                &["/srv/app/*.log", "/var/log/pods/ns_*/*/*.log"],
                &[],
            ),
            source(3, "none", &["/elsewhere/*.log"], &[]),
        ];
        let index = SourceIndex::new(sources.clone());
        for path in [
            "/var/log/pods/ns_a_1/c/0.log",
            "/var/log/pods/x_a_1/c/0.log",
            "/var/log/pods/x_a_1/c/0.log.gz",
            "/var/log/syslog.log",
            "/srv/app/a.log",
            "/srv/app/deeper/a.log",
            "/elsewhere/x.log",
            "/nowhere.log",
        ] {
            let path = Path::new(path);
            let linear: Vec<&str> = sources
                .iter()
                .filter(|s| s.matches(path))
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(names(index.matching(path)), linear, "{}", path.display());
        }
        assert_eq!(
            names(index.matching(Path::new("/var/log/pods/ns_a_1/c/0.log"))),
            vec!["pods", "all", "app"]
        );
        assert_eq!(index.named("app").unwrap().index, 2);
        assert!(index.named("nope").is_none());
    }

    #[test]
    fn watched_directories_are_those_below_a_root_within_depth_or_on_the_way_to_one() {
        let index = SourceIndex::new(vec![
            source(0, "pods", &["/var/log/pods/*/*/*.log"], &[]),
            source(1, "srv", &["/srv/app/*.log"], &[]),
        ]);
        for (dir, watched) in [
            ("/", true),
            ("/var", true),
            ("/var/log", true),
            ("/var/log/pods", true),
            ("/var/log/pods/ns_a_1", true),
            ("/var/log/pods/ns_a_1/c", true),
            ("/var/log/pods/ns_a_1/c/too-deep", false),
            ("/var/lib", false),
            ("/srv/app", true),
            ("/srv/app/sub", false),
            ("/srv/other", false),
        ] {
            assert_eq!(index.watches(Path::new(dir)), watched, "{dir}");
        }
    }
}
