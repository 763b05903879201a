//! The layout rules of `collector/src`, checked on the source itself (ARCHITECTURE.md,
//! "The layout"):
//!
//! - no module below `config` imports it: stages take their own settings types, and only the
//!   wiring (`pipeline`) reads a whole configuration;
//! - no import circles between files;
//! - a module imports only from the modules below it in [`LAYERS`], with at most two
//!   exceptions, each explained by a comment right above the import;
//! - no source file over 900 lines (test modules aside).
//!
//! Imports are every `use` item (re-exports too) and every `crate::`/`super::` path in code,
//! outside `#[cfg(test)]` items; each is resolved to the file that defines the module it
//! names.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The top-level modules, top to bottom: each may import from those after it.
const LAYERS: &[&str] = &[
    "pipeline",
    "config",
    "fuzzing",
    "api",
    "discover",
    "read",
    "work",
    "sink",
    "deliver",
    "encode",
    "source",
    "process",
    "cut",
    "container",
    "ebpf",
    "metrics",
    "readiness",
    "liveness",
    "queue",
    "file",
    "compressed",
    "timestamp",
    "escape",
    "memory",
];

/// Imports from a lower layer up to a higher one that the layout allows, at most.
const MAX_UPWARD: usize = 2;

/// Longest source file, in lines.
const MAX_LINES: usize = 900;

/// One source file of the library: its module path and syntax tree.
struct Module {
    path: Vec<String>,
    text: String,
    ast: syn::File,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The library's files: every module reachable from `lib.rs` through `mod x;` declarations,
/// and the files of the test modules among them (`#[cfg(test)] mod x;`), walked apart.
struct Tree {
    modules: Vec<Module>,
    test_files: BTreeSet<PathBuf>,
}

fn tree() -> Tree {
    let mut modules = Vec::new();
    let mut test_files = BTreeSet::new();
    let mut stack = vec![(Vec::<String>::new(), src().join("lib.rs"))];
    while let Some((path, file)) = stack.pop() {
        let text = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&text).unwrap();
        let dir = if file.ends_with("lib.rs") || file.ends_with("mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for item in &ast.items {
            if let syn::Item::Mod(m) = item
                && m.content.is_none()
            {
                let name = m.ident.to_string();
                let flat = dir.join(format!("{name}.rs"));
                let child = if flat.exists() {
                    flat
                } else {
                    dir.join(&name).join("mod.rs")
                };
                if is_cfg_test(&m.attrs) {
                    test_files.insert(child);
                } else {
                    let mut child_path = path.clone();
                    child_path.push(name);
                    stack.push((child_path, child));
                }
            }
        }
        modules.push(Module { path, text, ast });
    }
    Tree {
        modules,
        test_files,
    }
}

/// Every module of the library, test modules left out.
fn modules() -> Vec<Module> {
    tree().modules
}

/// The paths a file's code names: `use` trees and `crate::`/`super::`/child-module paths,
/// outside test items. Each comes with the line it is on.
#[derive(Default)]
struct Paths {
    found: Vec<(Vec<String>, usize)>,
}

impl Paths {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, line: usize) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, line);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.found.push((full, line));
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.found.push((full, line));
            }
            syn::UseTree::Glob(_) => self.found.push((prefix.clone(), line)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t, line);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    /// `pub(super)` and `pub(in …)` name a module, but import nothing.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let line = u.use_token.span.start().line;
        self.use_tree(&mut Vec::new(), &u.tree, line);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        // A one-segment path is a local name (a variable `dir` is not the module `dir`).
        let qualified = segments.len() > 1
            || matches!(
                segments.first().map(String::as_str),
                Some("crate" | "super" | "self")
            );
        if let Some(first) = path.segments.first().filter(|_| qualified) {
            self.found.push((segments, first.ident.span().start().line));
        }
        syn::visit::visit_path(self, path);
    }
}

/// The module a path names, resolved from module `from`: the longest prefix that is a
/// module of the library. `None` for paths outside the crate.
fn resolve(from: &[String], path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let (mut base, rest): (Vec<String>, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super") => {
            let mut base = from.to_vec();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        Some("self") => (from.to_vec(), &path[1..]),
        Some(first) => {
            // A child module named without `self::` (2018 paths).
            let mut child = from.to_vec();
            child.push(first.to_string());
            if !known.contains(&child) {
                return None;
            }
            (from.to_vec(), path)
        }
        None => return None,
    };
    let mut resolved = base.clone();
    for segment in rest {
        base.push(segment.clone());
        if known.contains(&base) {
            resolved = base.clone();
        } else {
            break;
        }
    }
    Some(resolved)
}

/// Every import between two different files: (from, to, line in `from`).
fn imports(modules: &[Module]) -> Vec<(Vec<String>, Vec<String>, usize)> {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut edges = BTreeSet::new();
    for m in modules {
        let mut paths = Paths::default();
        paths.visit_file(&m.ast);
        for (path, line) in paths.found {
            if let Some(to) = resolve(&m.path, &path, &known)
                && to != m.path
                // A parent naming its own child module (`pub mod x;` then `x::Item`) is the
                // parent's own vocabulary only through that child: an edge all the same.
                && !to.is_empty()
            {
                edges.insert((m.path.clone(), to, line));
            }
        }
    }
    edges.into_iter().collect()
}

fn name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

fn layer(path: &[String]) -> Option<usize> {
    let top = path.first()?;
    LAYERS.iter().position(|l| l == top)
}

#[test]
fn imports_are_found_where_the_code_has_them() {
    // The checks below are only as good as this: known imports of each kind are seen.
    let edges: BTreeSet<(String, String)> = imports(&modules())
        .into_iter()
        .map(|(from, to, _)| (name(&from), name(&to)))
        .collect();
    for (from, to) in [
        ("work", "deliver::batch"),         // `use crate::deliver::batch::Batch;`
        ("work", "work::output"),           // `use output::{…}` (a child, 2018 paths)
        ("config::dir", "config"),          // `use super::{…}`
        ("source::declare", "sink::kafka"), // the one upward import
        ("cut::decode::cri", "escape"),     // a path in code: `crate::escape::…(…)`
        ("pipeline", "config"),             // the wiring reads the configuration
    ] {
        assert!(
            edges.contains(&(from.to_string(), to.to_string())),
            "{from} -> {to} not found"
        );
    }
}

#[test]
fn every_top_level_module_has_a_layer() {
    for m in modules() {
        if m.path.len() == 1 {
            assert!(
                layer(&m.path).is_some(),
                "module `{}` is not in LAYERS: say where it sits",
                name(&m.path)
            );
        }
    }
}

#[test]
fn no_stage_imports_the_configuration() {
    let bad: Vec<String> = imports(&modules())
        .into_iter()
        .filter(|(from, to, _)| {
            to.first().map(String::as_str) == Some("config")
                && !matches!(
                    from.first().map(String::as_str),
                    Some("config") | Some("pipeline")
                )
        })
        .map(|(from, to, line)| format!("{}:{line} imports {}", name(&from), name(&to)))
        .collect();
    assert!(bad.is_empty(), "stages take their own settings: {bad:#?}");
}

#[test]
fn no_import_circles_between_files() {
    let modules = modules();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for m in &modules {
        graph.entry(m.path.clone()).or_default();
    }
    for (from, to, _) in imports(&modules) {
        graph.entry(from).or_default().insert(to);
    }
    // Tarjan's strongly connected components.
    struct State<'g> {
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on_stack: BTreeSet<&'g Vec<String>>,
        next: usize,
        circles: Vec<Vec<String>>,
    }
    fn connect<'g>(s: &mut State<'g>, v: &'g Vec<String>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                connect(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(name(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.circles.push(component);
            }
        }
    }
    let mut state = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        circles: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            connect(&mut state, v);
        }
    }
    assert!(
        state.circles.is_empty(),
        "files that import each other: {:#?}",
        state.circles
    );
}

#[test]
fn imports_go_down_the_layers_but_for_explained_exceptions() {
    let modules = modules();
    let text: BTreeMap<&Vec<String>, &str> =
        modules.iter().map(|m| (&m.path, m.text.as_str())).collect();
    let upward: Vec<(Vec<String>, Vec<String>, usize)> = imports(&modules)
        .into_iter()
        .filter(|(from, to, _)| match (layer(from), layer(to)) {
            (Some(a), Some(b)) => a > b,
            _ => false,
        })
        .collect();
    let mut by_module: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for (from, to, line) in &upward {
        by_module.insert((from.clone(), to.clone()));
        let lines: Vec<&str> = text[from].lines().collect();
        let above = lines
            .get(line.saturating_sub(2))
            .map_or("", |l| l.trim_start());
        assert!(
            above.starts_with("//"),
            "{}:{line} imports {} from a higher layer without a comment right above saying why",
            name(from),
            name(to)
        );
    }
    assert!(
        by_module.len() <= MAX_UPWARD,
        "more than {MAX_UPWARD} imports run up the layers: {:#?}",
        by_module
            .iter()
            .map(|(f, t)| format!("{} -> {}", name(f), name(t)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn no_source_file_is_over_900_lines() {
    let test_files = tree().test_files;
    let mut long = Vec::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !test_files.contains(&path) {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > MAX_LINES {
                    long.push(format!("{} ({lines} lines)", path.display()));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "split by the state each part owns: {long:#?}"
    );
}
