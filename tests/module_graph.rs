//! No import cycles between sift's top-level modules (`src/<module>.rs` or
//! `src/<module>/`): a module that another imports must not import it back, directly or
//! through others, so each can be read and changed from the bottom up
//! (docs/architecture.md, "Module dependencies"). Test code is left out: a test may reach
//! anywhere. (The evaluation harnesses are a separate crate, `crates/sift-eval/`, on top
//! of the library, so they are not in this graph.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` part.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names `text` imports from the crate root: `crate::x` paths and `use crate::{x, y}`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find(';').unwrap_or(group.len())];
            for part in group.split(',') {
                out.insert(ident(part.trim_start_matches(['{', ' ', '\n'])));
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .filter(|m| !matches!(m.as_str(), "lib" | "main" | "bin"))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let from = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let from = from.trim_end_matches(".rs").to_string();
        let name = rel.file_name().unwrap().to_str().unwrap();
        if !modules.contains(&from) || name.starts_with("tests") {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).unwrap());
        for to in crate_refs(&text) {
            if to != from && modules.contains(&to) {
                let files = g.entry(from.clone()).or_default().entry(to).or_default();
                files.insert(rel.display().to_string());
            }
        }
    }
    g
}

/// A path from `to` back to `from`, if there is one.
fn path_back(g: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![to.to_string()]];
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap().clone();
        if last == from {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in g.get(&last).into_iter().flat_map(|m| m.keys()) {
            let mut p = path.clone();
            p.push(next.clone());
            stack.push(p);
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let g = graph();
    let mut cycles = Vec::new();
    for (from, targets) in &g {
        for (to, files) in targets {
            if let Some(back) = path_back(&g, from, to) {
                cycles.push(format!(
                    "{from} -> {} (the first edge from {})",
                    back.join(" -> "),
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_imports() {
    // The graph this test judges is not empty: the pipeline drives the core.
    let g = graph();
    assert!(g["pipeline"].contains_key("correlate"), "{g:?}");
    assert!(
        !g.get("correlate")
            .is_some_and(|t| t.contains_key("pipeline"))
    );
}
