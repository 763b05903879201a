//! The sources containers declare: which running containers declared what, and the list of
//! sources discovery matches files against (declared ones first, then the configured ones).
//!
//! With a `declared: true` source, each container whose bundle appears is read once: its
//! `RINGTAIL_LOGS_*` environment becomes sources ([`crate::source::declare`]) with the
//! declaring source's settings. A container that is removed takes its sources with it (files
//! already open are still read to their end). Owns that bookkeeping; it may not open files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::container::FileMeta;
use crate::container::bundles::{Bundle, Bundles};
use crate::container::cri::{Cri, PodLabels};
use crate::metrics::Metrics;
use crate::source::Source;
use crate::source::declare::{self, Target};

/// The declared sources, by container.
pub struct Declarations {
    /// The configured sources that have globs.
    configured: Vec<Arc<Source>>,
    /// The configured sources with `declared: true`.
    declaring: Vec<Arc<Source>>,
    /// Sources made from containers' declarations, by container id (empty: it declares
    /// nothing this node reads).
    declared: HashMap<String, Vec<Arc<Source>>>,
    active: Gauge,
    refused: Counter,
}

impl std::fmt::Debug for Declarations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declarations")
            .field("containers", &self.declared.len())
            .finish_non_exhaustive()
    }
}

/// The sources after a change: all of them, and the ones that are new.
#[derive(Debug)]
pub struct Changed {
    /// Every source, declared ones first.
    pub sources: Vec<Arc<Source>>,
    /// The sources added by this change (their roots must be scanned).
    pub added: Vec<Arc<Source>>,
}

impl Declarations {
    /// The configured `sources`, split into those with globs and those that read
    /// declarations.
    pub fn new(sources: &[Arc<Source>], metrics: &Metrics) -> Self {
        let (declaring, configured): (Vec<_>, Vec<_>) =
            sources.iter().cloned().partition(|s| s.declared);
        Self {
            configured,
            declaring,
            declared: HashMap::new(),
            active: metrics.declarations_active.clone(),
            refused: metrics.declarations_refused.clone(),
        }
    }

    /// Whether any source reads declarations (then the runtime's bundles are watched).
    pub fn wanted(&self) -> bool {
        !self.declaring.is_empty()
    }

    /// The configured sources with globs.
    pub fn configured(&self) -> &[Arc<Source>] {
        &self.configured
    }

    /// Brings the declared sources up to date with the containers whose bundles are present
    /// (the bundles listed again first). `None`: nothing changed.
    pub fn sync(
        &mut self,
        bundles: &mut Bundles,
        node: Option<&str>,
        mut cri: Option<&mut Cri>,
    ) -> Option<Changed> {
        bundles.scan();
        let present: Vec<Arc<Bundle>> = bundles.present().cloned().collect();
        let mut present_ids = HashSet::new();
        let mut added = Vec::new();
        for bundle in present {
            let Some(id) = bundle.container.id.clone() else {
                continue;
            };
            present_ids.insert(id.clone());
            if self.declared.contains_key(&id) {
                continue;
            }
            let pod = bundle
                .container
                .pod_uid
                .as_deref()
                .zip(cri.as_deref_mut())
                .and_then(|(uid, cri)| cri.pod(uid));
            match self.declare(&bundle, node, pod) {
                Some(sources) => {
                    added.extend(sources.iter().cloned());
                    self.declared.insert(id, sources);
                }
                // Created, not started: its init.pid brings it back here.
                None => continue,
            }
        }
        let before = self.declared.len();
        self.declared.retain(|id, _| present_ids.contains(id));
        if added.is_empty() && before == self.declared.len() {
            return None;
        }
        self.active
            .set(self.declared.values().map(|v| v.len() as i64).sum());
        let sources = self
            .declared
            .values()
            .flatten()
            .cloned()
            .chain(self.configured.iter().cloned())
            .collect();
        Some(Changed { sources, added })
    }

    /// The sources the container in `bundle` declares, itself or through its `pod`'s
    /// annotations (empty when no declaring source admits it, or the pod opted out); `None`
    /// when it must be looked at again once its process runs.
    fn declare(
        &self,
        bundle: &Bundle,
        node: Option<&str>,
        pod: Option<Arc<PodLabels>>,
    ) -> Option<Vec<Arc<Source>>> {
        let mut container = bundle.container.clone();
        container.pod_labels = pod;
        let container = &container;
        let id = container.id.as_deref().unwrap_or_default();
        if crate::container::opted_out(Some(container))
            || !self
                .declaring
                .iter()
                .any(|base| base.containers.admits(Some(container)))
        {
            return Some(Vec::new());
        }
        // The container's own variables, and its pod's declaring annotations where the
        // container does not set the same variable.
        let mut env = container.env.clone();
        let (from_pod, origins, mut problems) = match container.pod_labels.as_deref() {
            Some(pod) => declare::from_annotations(&pod.annotations, container.name.as_deref()),
            None => Default::default(),
        };
        for (var, value) in from_pod {
            env.entry(var).or_insert(value);
        }
        let (declarations, refused) = declare::parse(&env);
        problems.extend(refused.into_iter().map(|e| e.named(&origins)));
        let pid = bundle.pid();
        if pid.is_none()
            && declarations
                .iter()
                .any(|d| matches!(d.target, Target::Files(_)))
        {
            return None;
        }
        let meta = Arc::new(FileMeta {
            container: Some(container.clone()),
            node: node.map(str::to_string),
        });
        let mut sources = Vec::new();
        for base in &self.declaring {
            if !base.containers.admits(Some(container)) {
                continue;
            }
            for declaration in &declarations {
                match declare::source(base, declaration, bundle, pid, Arc::clone(&meta)) {
                    Ok(source) => sources.push(Arc::new(source)),
                    Err(e) => problems.push(e),
                }
            }
        }
        for problem in &problems {
            self.refused.inc();
            tracing::warn!(container = %container.label(), id = %id, %problem, "declared log not collected");
        }
        if !sources.is_empty() {
            let names: Vec<String> = sources
                .iter()
                .filter_map(|s| s.origin.as_ref())
                .map(|o| o.name.clone())
                .collect();
            tracing::info!(container = %container.label(), id = %id, declarations = ?names, "collecting the logs a container declares");
        }
        Some(sources)
    }
}
