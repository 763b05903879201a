//! Path globs of a source, and the directories that must be watched to see their files.
//!
//! A glob such as `/var/log/pods/**/*.log` has a literal root (`/var/log/pods`) under which all
//! its matches live, and a depth limit (none when the glob has `**`). Discovery watches the root
//! and the directories below it up to that depth, and nothing else.
//!
//! Owns glob matching and roots; it may not watch or list directories.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};

/// One `paths` glob of a source, compiled.
#[derive(Debug, Clone)]
pub struct PathPattern {
    /// The glob as written in the configuration.
    pub glob: String,
    /// The compiled matcher (`*` does not cross `/`; `**` does).
    pub matcher: GlobMatcher,
    /// The longest directory prefix without glob characters.
    pub root: PathBuf,
    /// How many path components below `root` a match has; `None` when the glob has `**`.
    pub depth: Option<usize>,
}

/// An `exclude` glob: matched against the full path, or the file name when it has no `/`.
#[derive(Debug, Clone)]
pub struct ExcludePattern {
    matcher: GlobMatcher,
    file_name_only: bool,
}

/// Why a glob was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// The glob syntax is wrong.
    #[error("invalid glob `{glob}`: {source}")]
    Syntax {
        /// The glob as written.
        glob: String,
        /// What globset said.
        #[source]
        source: globset::Error,
    },
    /// `paths` globs must be absolute so that discovery knows where to watch.
    #[error("glob `{glob}` is not an absolute path")]
    NotAbsolute {
        /// The glob as written.
        glob: String,
    },
    /// `..` would let a glob escape its own root.
    #[error("glob `{glob}` contains `..`")]
    ParentDir {
        /// The glob as written.
        glob: String,
    },
}

fn build(glob: &str) -> Result<Glob, PatternError> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|source| PatternError::Syntax {
            glob: glob.to_string(),
            source,
        })
}

fn has_glob_chars(component: &str) -> bool {
    component.contains(['*', '?', '[', '{', '\\'])
}

impl PathPattern {
    /// Compiles a `paths` glob.
    pub fn new(glob: &str) -> Result<Self, PatternError> {
        let path = Path::new(glob);
        if !path.is_absolute() {
            return Err(PatternError::NotAbsolute {
                glob: glob.to_string(),
            });
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(PatternError::ParentDir {
                glob: glob.to_string(),
            });
        }
        let matcher = build(glob)?.compile_matcher();
        let components: Vec<&str> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        // The file-name component never belongs to the root, even when it is literal: the root
        // is the directory to watch.
        let literal = components
            .iter()
            .take(components.len().saturating_sub(1))
            .take_while(|c| !has_glob_chars(c))
            .count();
        let mut root = PathBuf::from("/");
        root.extend(&components[..literal]);
        let rest = &components[literal..];
        let depth = if rest.iter().any(|c| c.contains("**")) {
            None
        } else {
            Some(rest.len())
        };
        Ok(Self {
            glob: glob.to_string(),
            matcher,
            root,
            depth,
        })
    }

    /// Whether `path` is matched by this glob.
    pub fn is_match(&self, path: &Path) -> bool {
        self.matcher.is_match(path)
    }

    /// Whether files under directory `dir` can match: `dir` is the root or below it, within
    /// the depth limit.
    pub fn may_contain(&self, dir: &Path) -> bool {
        let Ok(rel) = dir.strip_prefix(&self.root) else {
            return false;
        };
        match self.depth {
            None => true,
            Some(depth) => rel.components().count() < depth,
        }
    }
}

impl ExcludePattern {
    /// Compiles an `exclude` glob.
    pub fn new(glob: &str) -> Result<Self, PatternError> {
        Ok(Self {
            matcher: build(glob)?.compile_matcher(),
            file_name_only: !glob.contains('/'),
        })
    }

    /// Whether `path` is excluded by this glob.
    pub fn is_match(&self, path: &Path) -> bool {
        if self.file_name_only {
            path.file_name()
                .is_some_and(|name| self.matcher.is_match(Path::new(name)))
        } else {
            self.matcher.is_match(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_depth_of_common_globs() {
        let p = PathPattern::new("/var/log/pods/**/*.log").unwrap();
        assert_eq!(p.root, Path::new("/var/log/pods"));
        assert_eq!(p.depth, None);
        assert!(p.is_match(Path::new("/var/log/pods/ns_pod_uid/c/0.log")));
        assert!(!p.is_match(Path::new("/var/log/pods/ns_pod_uid/c/0.log.gz")));
        assert!(p.may_contain(Path::new("/var/log/pods/a/b/c")));

        let p = PathPattern::new("/var/log/*.log").unwrap();
        assert_eq!(p.root, Path::new("/var/log"));
        assert_eq!(p.depth, Some(1));
        assert!(p.is_match(Path::new("/var/log/syslog.log")));
        assert!(
            !p.is_match(Path::new("/var/log/pods/x.log")),
            "`*` must not cross `/`"
        );
        assert!(p.may_contain(Path::new("/var/log")));
        assert!(!p.may_contain(Path::new("/var/log/pods")));

        let p = PathPattern::new("/srv/app.log").unwrap();
        assert_eq!(p.root, Path::new("/srv"));
        assert_eq!(p.depth, Some(1));
        assert!(p.is_match(Path::new("/srv/app.log")));

        let p = PathPattern::new("/srv/*/logs/*.txt").unwrap();
        assert_eq!(p.root, Path::new("/srv"));
        assert_eq!(p.depth, Some(3));
        assert!(p.may_contain(Path::new("/srv/a/logs")));
        assert!(!p.may_contain(Path::new("/srv/a/logs/deeper")));
    }

    #[test]
    fn refuses_relative_and_parent_globs() {
        assert!(matches!(
            PathPattern::new("var/*.log"),
            Err(PatternError::NotAbsolute { .. })
        ));
        assert!(matches!(
            PathPattern::new("/var/../etc/*.log"),
            Err(PatternError::ParentDir { .. })
        ));
        let err = PathPattern::new("/var/[.log").unwrap_err();
        assert!(
            err.to_string().contains("invalid glob `/var/[.log`"),
            "{err}"
        );
    }

    #[test]
    fn exclude_without_slash_matches_file_name() {
        let e = ExcludePattern::new("*.gz").unwrap();
        assert!(e.is_match(Path::new("/var/log/pods/a/0.log.gz")));
        assert!(!e.is_match(Path::new("/var/log/pods/a/0.log")));
        let e = ExcludePattern::new("/var/log/pods/kube-system_*/**").unwrap();
        assert!(e.is_match(Path::new("/var/log/pods/kube-system_x_1/c/0.log")));
    }
}
