//! Routes: the distinct sets of sinks that sources deliver to, built from the sinks'
//! settings. A worker keeps one output per route, so a record going to several sinks is
//! encoded once per encoding they use and its batch acknowledged once by all of them.
//!
//! Owns which sinks a record goes to; it may not touch the sinks themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::deliver::batch::Batch;
use crate::encode::Encoding;
use crate::queue::QueueSender;
use crate::sink::SinkSettings;
use crate::source::Source;

/// The sinks a group of sources is delivered to.
#[derive(Debug, Clone)]
pub struct Route {
    /// One queue per sink (named `sink:<name>`), with the position of the sink's encoding in
    /// `encodings`.
    pub sinks: Vec<(QueueSender<Batch>, usize)>,
    /// The encodings the sinks use, each once (each record is encoded once per entry), and
    /// whether a sink using it takes records one by one, so its batches carry a
    /// [`RecordIndex`](crate::deliver::batch::RecordIndex).
    pub encodings: Vec<(Encoding, bool)>,
}

/// The routes of `sources` to `sinks` (whose queues are `queues`, in the same order), and the
/// route of each source, by source index.
pub fn build(
    sources: &[Arc<Source>],
    sinks: &[SinkSettings],
    queues: &[QueueSender<Batch>],
) -> (Vec<Route>, Vec<usize>) {
    let mut route_of_set: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    let mut routes = Vec::new();
    let mut source_routes = Vec::new();
    for source in sources {
        let set = sink_set(source, sinks);
        let route = *route_of_set.entry(set.clone()).or_insert_with(|| {
            let encodings = encodings(&set, sinks);
            let sinks = set
                .iter()
                .map(|&i| {
                    let part = encodings
                        .iter()
                        .position(|(e, _)| *e == sinks[i].encoding)
                        .unwrap_or(0);
                    (queues[i].clone(), part)
                })
                .collect();
            routes.push(Route { sinks, encodings });
            routes.len() - 1
        });
        source_routes.push(route);
    }
    (routes, source_routes)
}

/// How many output parts each worker keeps for `sources` delivering to `sinks`: one per
/// encoding of each route [`build`] makes.
pub fn parts(sources: &[Arc<Source>], sinks: &[SinkSettings]) -> usize {
    let sets: BTreeSet<Vec<usize>> = sources.iter().map(|s| sink_set(s, sinks)).collect();
    sets.iter().map(|set| encodings(set, sinks).len()).sum()
}

/// The sinks that receive `source`, by index.
fn sink_set(source: &Source, sinks: &[SinkSettings]) -> Vec<usize> {
    sinks
        .iter()
        .enumerate()
        .filter(|(_, s)| s.receives(source.index))
        .map(|(i, _)| i)
        .collect()
}

/// Each encoding the sinks of `set` use, once; with an index where a sink takes records one
/// by one.
fn encodings(set: &[usize], sinks: &[SinkSettings]) -> Vec<(Encoding, bool)> {
    let mut encodings: Vec<(Encoding, bool)> = Vec::new();
    for &i in set {
        let sink = &sinks[i];
        let one_by_one = sink.kind.takes_records_one_by_one();
        match encodings.iter_mut().find(|(e, _)| *e == sink.encoding) {
            Some((_, index)) => *index |= one_by_one,
            None => encodings.push((sink.encoding, one_by_one)),
        }
    }
    encodings.sort();
    encodings
}
