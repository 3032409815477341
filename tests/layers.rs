//! No import circle anywhere in `src/`, not even inside a folder (issue 9).
//!
//! The module graph is read from the source text: a module is a file (a
//! folder's `mod.rs` is the folder's module); it depends on every module
//! named by a `crate::...` or `super::...` path outside its `#[cfg(test)]
//! mod tests` (in `use` lines, `use` groups and inline paths alike), and a
//! folder's module on each child it names (`child::...`, `pub use child`).
//! A path resolves to the deepest module file it names. Then any cycle
//! fails the test, listing the modules in it and the edges between them.
//!
//! Reading text rather than compiler output keeps it dependency-free and fast;
//! it over-approximates (a path in a string or doc comment counts, comments
//! are stripped line by line), which can only make it stricter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/hub/mod.rs` → `["hub"]`, `src/hub/adc.rs` → `["hub", "adc"]`.
fn module_of(src: &Path, file: &Path) -> (Module, bool) {
    let rel = file.strip_prefix(src).expect("a file below src/").with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let folder = matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main"));
    if folder {
        parts.pop();
    }
    (parts, folder)
}

/// The source a module's imports are read from: test modules and comments out.
fn code(text: &str) -> String {
    let text = text.find("#[cfg(test)]\nmod tests").map_or(text, |i| &text[..i]);
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The `::`-separated identifiers starting at `s`, and where a `{` group
/// starts if the path ends in one.
fn path_at(s: &str) -> (Vec<String>, Option<usize>) {
    let mut parts = Vec::new();
    let mut rest = s;
    let mut used = 0;
    while let Some(r) = rest.strip_prefix("::") {
        used += 2;
        if r.starts_with('{') {
            return (parts, Some(used));
        }
        let n = r.find(|c: char| !is_ident(c)).unwrap_or(r.len());
        if n == 0 {
            break;
        }
        parts.push(r[..n].to_string());
        used += n;
        rest = &r[n..];
    }
    (parts, None)
}

/// The items of a `{...}` group starting at `s` (after the `{`), as paths.
fn group_items(s: &str) -> Vec<Vec<String>> {
    let mut depth = 1;
    let mut end = s.len();
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    s[..end]
        .split([',', '{', '}'])
        .map(|item| item.split_whitespace().next().unwrap_or(""))
        .filter(|item| !item.is_empty() && *item != "self")
        .map(|item| item.split("::").map(str::to_string).collect())
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Module, (PathBuf, bool)> = files
        .iter()
        .map(|f| {
            let (m, folder) = module_of(&src, f);
            (m, (f.clone(), folder))
        })
        .collect();
    let resolve = |path: &[String]| -> Option<Module> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, (file, folder)) in &modules {
        let text = code(&std::fs::read_to_string(file).expect("reading a source file"));
        let mut targets = BTreeSet::new();
        for (kw, base) in
            [("crate", Vec::new()), ("super", module[..module.len().saturating_sub(1)].to_vec())]
        {
            let mut at = 0;
            while let Some(i) = text[at..].find(kw) {
                let start = at + i;
                at = start + kw.len();
                if text[..start].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
                    continue;
                }
                let (parts, group) = path_at(&text[at..]);
                let mut paths = Vec::new();
                match group {
                    Some(g) => {
                        let prefix: Vec<String> = base.iter().cloned().chain(parts).collect();
                        paths.push(prefix.clone());
                        for item in group_items(&text[at + g + 1..]) {
                            paths.push(prefix.iter().cloned().chain(item).collect());
                        }
                    }
                    None if !parts.is_empty() => {
                        paths.push(base.iter().cloned().chain(parts).collect());
                    }
                    None => {}
                }
                for p in paths {
                    if let Some(t) = resolve(&p) {
                        targets.insert(t);
                    }
                }
            }
        }
        if *folder {
            for child in
                modules.keys().filter(|k| k.len() == module.len() + 1 && k.starts_with(module))
            {
                let name = child.last().expect("a child has a name");
                let named = text.match_indices(&format!("{name}::")).any(|(i, _)| {
                    !text[..i].chars().next_back().is_some_and(|c| is_ident(c) || c == ':')
                });
                if named || text.contains(&format!("pub use {name}")) {
                    targets.insert(child.clone());
                }
            }
        }
        targets.remove(module);
        edges.insert(module.clone(), targets);
    }
    // Tarjan's strongly connected components.
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        cycles: Vec<Vec<&'a Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in &self.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut cycle = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    cycle.push(w);
                    if w == v {
                        break;
                    }
                }
                if cycle.len() > 1 {
                    self.cycles.push(cycle);
                }
            }
        }
    }
    let mut walk = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        cycles: Vec::new(),
    };
    for m in edges.keys() {
        if !walk.index.contains_key(m) {
            walk.visit(m);
        }
    }
    let name = |m: &Module| if m.is_empty() { "crate".to_string() } else { m.join("::") };
    let mut report = String::new();
    for cycle in &walk.cycles {
        let names: Vec<String> = cycle.iter().map(|m| name(m)).collect();
        report.push_str(&format!("cycle: {}\n", names.join(", ")));
        for a in cycle {
            for b in &edges[*a] {
                if cycle.contains(&b) {
                    report.push_str(&format!("    {} -> {}\n", name(a), name(b)));
                }
            }
        }
    }
    assert!(walk.cycles.is_empty(), "import circles in src/:\n{report}");
    // The reading works: known edges are seen.
    let hub_session = vec!["hub".to_string(), "session".to_string()];
    assert!(
        edges[&hub_session].contains(&vec!["hub".to_string(), "driver".to_string()]),
        "the graph misses hub::session -> hub::driver"
    );
}
