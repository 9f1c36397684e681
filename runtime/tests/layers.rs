//! The runtime's core reads bottom up: no file imports one above it.
//!
//! Walks every file of `runtime/src`, collects the crate paths it names
//! (`use crate::…`, `use super::…` and inline `crate::…` paths, outside
//! comments and test modules), resolves each to the file that defines it
//! (following the `pub use` re-exports of `lib.rs` and of directory
//! modules), and fails on any cycle between files, naming it. A method
//! called on a value is not an import (its type's file is, where named).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A file's module path: `lane/queue` for `lane/queue.rs`, `lane` for
/// `lane/mod.rs`, `` for `lib.rs`.
fn module_of(rel: &Path) -> String {
    let s = rel.with_extension("").to_string_lossy().replace('\\', "/");
    let s = s.strip_suffix("/mod").unwrap_or(&s).to_string();
    if s == "lib" {
        String::new()
    } else {
        s
    }
}

fn files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            out.push((module_of(&rel), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The code of a file: no inline test module (`#[cfg(test)] mod tests`,
/// last in a file), no comment lines.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses a use tree (`a::b::{C, d::{E, F}}` or `a::B`) from `s` at `*i`,
/// pushing every leaf path under `prefix`.
fn use_tree(s: &[u8], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
        if *i < s.len() && s[*i] == b'{' {
            *i += 1;
            loop {
                use_tree(s, i, path.clone(), out);
                while *i < s.len() && s[*i].is_ascii_whitespace() {
                    *i += 1;
                }
                match s.get(*i) {
                    Some(b',') => {
                        *i += 1;
                        while *i < s.len() && s[*i].is_ascii_whitespace() {
                            *i += 1;
                        }
                        if s.get(*i) == Some(&b'}') {
                            *i += 1;
                            return;
                        }
                    }
                    Some(b'}') => {
                        *i += 1;
                        return;
                    }
                    _ => return,
                }
            }
        }
        let start = *i;
        while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
            *i += 1;
        }
        if start == *i {
            out.push(path);
            return;
        }
        path.push(String::from_utf8_lossy(&s[start..*i]).into_owned());
        if s[*i..].starts_with(b"::") {
            *i += 2;
            continue;
        }
        out.push(path);
        return;
    }
}

/// Every crate path `code` names, relative to the crate root.
fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let s = code.as_bytes();
    let mut out = Vec::new();
    let parent: Vec<String> = match module.rsplit_once('/') {
        Some((p, _)) => p.split('/').map(String::from).collect(),
        None => Vec::new(),
    };
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let boundary = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_');
        if boundary && rest.starts_with(b"crate::") {
            i += 7;
            use_tree(s, &mut i, Vec::new(), &mut out);
        } else if boundary && rest.starts_with(b"use super::") {
            i += 11;
            use_tree(s, &mut i, parent.clone(), &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// `pub use` / `pub(crate) use` re-exports: (module, name) → source module.
fn reexports(modules: &[(String, String)]) -> HashMap<(String, String), String> {
    let mut map = HashMap::new();
    for (module, text) in modules {
        for line in code(text).split(';') {
            let line = line.trim();
            let Some(tree) = line
                .strip_prefix("pub use ")
                .or_else(|| line.strip_prefix("pub(crate) use "))
            else {
                continue;
            };
            let mut leaves = Vec::new();
            use_tree(tree.as_bytes(), &mut 0, Vec::new(), &mut leaves);
            for leaf in leaves {
                if leaf.len() >= 2 {
                    let source = if module.is_empty() {
                        leaf[..leaf.len() - 1].join("/")
                    } else {
                        format!("{module}/{}", leaf[..leaf.len() - 1].join("/"))
                    };
                    map.insert((module.clone(), leaf[leaf.len() - 1].clone()), source);
                }
            }
        }
    }
    map
}

/// The file that defines `path` (a crate path), as far as it can be told.
fn resolve(
    path: &[String],
    modules: &BTreeSet<String>,
    reexp: &HashMap<(String, String), String>,
) -> Option<String> {
    let mut current = String::new();
    for segment in path {
        let candidate = if current.is_empty() {
            segment.clone()
        } else {
            format!("{current}/{segment}")
        };
        if modules.contains(&candidate) {
            current = candidate;
            continue;
        }
        if let Some(source) = reexp.get(&(current.clone(), segment.clone())) {
            let mut source = source.clone();
            while let Some(next) = reexp.get(&(source.clone(), segment.clone())) {
                if *next == source {
                    break;
                }
                source = next.clone();
            }
            return Some(source);
        }
        break;
    }
    (!current.is_empty()).then_some(current)
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut component = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                t.found.push(component);
            }
        }
    }
    let mut t = T {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = Vec::new();
    files(&root, &root, &mut modules);
    // Files declared `#[cfg(test)] mod x;` are tests, not the runtime.
    let tests: BTreeSet<String> = modules
        .iter()
        .flat_map(|(module, text)| {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            let module = module.clone();
            lines
                .windows(2)
                .filter(|w| {
                    w[0] == "#[cfg(test)]" && w[1].starts_with("mod ") && w[1].ends_with(';')
                })
                .map(move |w| {
                    let name = w[1].trim_start_matches("mod ").trim_end_matches(';');
                    if module.is_empty() {
                        name.to_string()
                    } else {
                        format!("{module}/{name}")
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    modules.retain(|(module, _)| !tests.contains(module));
    let names: BTreeSet<String> = modules.iter().map(|(m, _)| m.clone()).collect();
    let reexp = reexports(&modules);
    let mut graph = BTreeMap::new();
    for (module, text) in &modules {
        if module.is_empty() {
            continue; // lib.rs declares and re-exports: it is above all.
        }
        let deps: BTreeSet<String> = paths(module, &code(text))
            .iter()
            .filter_map(|p| resolve(p, &names, &reexp))
            .filter(|d| d != module && !d.is_empty())
            .collect();
        graph.insert(module.clone(), deps);
    }
    graph
}

#[test]
fn no_file_of_the_runtime_imports_one_above_it() {
    let graph = graph();
    assert!(graph.len() > 40, "walked {} files", graph.len());
    // The walk sees imports: these are known edges, so a broken parser
    // (seeing none) fails here rather than passing the cycle check.
    for (from, to) in [
        ("lane/queue", "lane/letter"),
        ("run/serve", "particle"),
        ("machine", "handle"),
        ("ctx", "particle_ref"),
        ("supervision/child", "run/decide"),
    ] {
        assert!(
            graph[from].contains(to),
            "{from} should import {to}: {:?}",
            graph[from]
        );
    }
    let found = cycles(&graph);
    assert!(found.is_empty(), "files importing each other: {found:?}");
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut graph = graph();
    graph
        .get_mut("lane/letter")
        .unwrap()
        .insert("machine".to_string());
    let found = cycles(&graph);
    assert!(
        found
            .iter()
            .any(|c| c.contains(&"lane/letter".to_string()) && c.contains(&"machine".to_string())),
        "{found:?}"
    );
}
