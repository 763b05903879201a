//! A source's `containers` filter: which containers' files the source reads, by namespace,
//! pod, container name, environment, annotations and pod labels.
//!
//! Owns the matching rules; it may not look a container up (it comes resolved).

use std::collections::BTreeMap;

use crate::container::Container;

/// One rule of a source's `containers` filter: every field it sets must match.
#[derive(Debug, Clone, Default)]
pub struct ContainerMatcher {
    /// The pod's namespace.
    pub namespace: Option<regex::Regex>,
    /// The pod's name.
    pub pod: Option<regex::Regex>,
    /// The container's name.
    pub container: Option<regex::Regex>,
    /// Environment variables of the container's process, by name.
    pub env: BTreeMap<String, regex::Regex>,
    /// Annotations, by name: the container's OCI annotation, else the pod's (from the
    /// runtime's CRI socket).
    pub annotations: BTreeMap<String, regex::Regex>,
    /// The pod's labels, by key (from the runtime's CRI socket).
    pub labels: BTreeMap<String, regex::Regex>,
}

impl ContainerMatcher {
    /// Whether `container` matches every field this rule sets. A value the container does
    /// not have (no namespace, no such variable) does not match.
    pub fn matches(&self, container: &Container) -> bool {
        let field = |re: &Option<regex::Regex>, value: &Option<String>| match re {
            None => true,
            Some(re) => value.as_deref().is_some_and(|v| re.is_match(v)),
        };
        let map = |res: &BTreeMap<String, regex::Regex>, values: &BTreeMap<String, String>| {
            res.iter()
                .all(|(k, re)| values.get(k).is_some_and(|v| re.is_match(v)))
        };
        let pod = container.pod_labels.as_deref();
        let annotations = self.annotations.iter().all(|(k, re)| {
            container
                .annotations
                .get(k)
                .or_else(|| pod.and_then(|p| p.annotations.get(k)))
                .is_some_and(|v| re.is_match(v))
        });
        let labels = self.labels.is_empty() || pod.is_some_and(|p| map(&self.labels, &p.labels));
        field(&self.namespace, &container.namespace)
            && field(&self.pod, &container.pod)
            && field(&self.container, &container.name)
            && map(&self.env, &container.env)
            && annotations
            && labels
    }

    /// Whether this rule needs the runtime's bundle (env or annotations; labels, for the pod
    /// UID of a file whose path does not name it).
    pub fn needs_bundle(&self) -> bool {
        !self.env.is_empty() || !self.annotations.is_empty() || !self.labels.is_empty()
    }
}

/// A source's `containers` filter: which containers' files the source reads.
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    /// A file is read only if its container matches one of these (when there are any).
    pub include: Vec<ContainerMatcher>,
    /// A file is not read if its container matches one of these.
    pub exclude: Vec<ContainerMatcher>,
}

impl ContainerFilter {
    /// Whether the filter has any rule.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether a file of `container` (`None`: the file belongs to no container) is read.
    /// With `include` rules, a file of no container is not read; `exclude` rules never
    /// exclude it.
    pub fn admits(&self, container: Option<&Container>) -> bool {
        let included = self.include.is_empty()
            || container.is_some_and(|c| self.include.iter().any(|m| m.matches(c)));
        let excluded = container.is_some_and(|c| self.exclude.iter().any(|m| m.matches(c)));
        included && !excluded
    }
}

/// Which keys of a pod's labels (or annotations) go into records: with `include` globs, only
/// those matching one; never those matching an `exclude` glob.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Keep only keys matching one of these (all, when `None`).
    pub include: Option<globset::GlobSet>,
    /// Drop keys matching one of these.
    pub exclude: Option<globset::GlobSet>,
}

impl KeyFilter {
    /// Whether `key` goes into records.
    pub fn admits(&self, key: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(key))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(key))
    }
}

/// A source's choice of the pod's labels and annotations its records carry
/// (`sources[].kubernetes.labels` / `.annotations`).
#[derive(Debug, Clone, Default)]
pub struct PodKeys {
    /// Labels.
    pub labels: KeyFilter,
    /// Annotations.
    pub annotations: KeyFilter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_labels_and_pod_annotations_match_like_the_rest() {
        let re = |s: &str| regex::Regex::new(s).unwrap();
        let labelled = |team: &str| Container {
            namespace: Some("shop".into()),
            annotations: [("oci".to_string(), "1".to_string())].into(),
            pod_labels: Some(std::sync::Arc::new(crate::container::cri::PodLabels {
                labels: [("team".to_string(), team.to_string())].into(),
                annotations: [("owner".to_string(), "ops".to_string())].into(),
            })),
            ..Container::default()
        };
        let payments = ContainerFilter {
            include: vec![ContainerMatcher {
                labels: [("team".to_string(), re("^payments$"))].into(),
                ..ContainerMatcher::default()
            }],
            exclude: vec![ContainerMatcher {
                annotations: [("owner".to_string(), re("^nobody$"))].into(),
                ..ContainerMatcher::default()
            }],
        };
        assert!(payments.admits(Some(&labelled("payments"))));
        assert!(!payments.admits(Some(&labelled("search"))));
        let unlabelled = Container {
            pod_labels: None,
            ..labelled("payments")
        };
        assert!(!payments.admits(Some(&unlabelled)), "labels not known");
        let both = ContainerMatcher {
            annotations: [
                ("oci".to_string(), re("^1$")),
                ("owner".to_string(), re("^ops$")),
            ]
            .into(),
            ..ContainerMatcher::default()
        };
        assert!(
            both.matches(&labelled("x")),
            "the container's OCI annotation, else the pod's"
        );
    }

    #[test]
    fn filters_include_then_exclude() {
        let re = |s: &str| Some(regex::Regex::new(s).unwrap());
        let web = Container {
            namespace: Some("shop".into()),
            pod: Some("web-1".into()),
            name: Some("nginx".into()),
            env: [("TEAM".to_string(), "payments".to_string())].into(),
            ..Container::default()
        };
        let system = Container {
            namespace: Some("kube-system".into()),
            pod: Some("coredns".into()),
            name: Some("coredns".into()),
            ..Container::default()
        };
        let everything = ContainerFilter::default();
        assert!(everything.admits(Some(&web)) && everything.admits(None));
        let no_system = ContainerFilter {
            exclude: vec![ContainerMatcher {
                namespace: re("^kube-"),
                ..ContainerMatcher::default()
            }],
            ..ContainerFilter::default()
        };
        assert!(no_system.admits(Some(&web)));
        assert!(!no_system.admits(Some(&system)));
        assert!(
            no_system.admits(None),
            "exclude rules never exclude non-container files"
        );
        let payments = ContainerFilter {
            include: vec![ContainerMatcher {
                env: [("TEAM".to_string(), regex::Regex::new("^payments$").unwrap())].into(),
                ..ContainerMatcher::default()
            }],
            exclude: vec![ContainerMatcher {
                namespace: re("^shop$"),
                container: re("^sidecar$"),
                ..ContainerMatcher::default()
            }],
        };
        assert!(payments.admits(Some(&web)));
        assert!(!payments.admits(Some(&system)), "no TEAM variable");
        assert!(!payments.admits(None), "include rules need a container");
        let sidecar = Container {
            name: Some("sidecar".into()),
            ..web.clone()
        };
        assert!(!payments.admits(Some(&sidecar)));
    }
}
