//! No import cycles between the top-level modules of any crate (issue 17): a module that
//! names another through `crate::` depends on it, and the dependencies must form a DAG,
//! so a change to a flag rule never has to reach into the store, the bus or the API.
//!
//! Read from the source, not from the compiler: every `crate::x` path in a file (in `use`
//! lines and inline), `super::` inside a module staying within it. A name the crate root
//! re-exports (`crate::Bus`) counts as the module it comes from. Test code is left out
//! (a file's `#[cfg(test)] mod tests` and on, `tests.rs`, the `testing` fixtures): a test
//! may build its input with any module's help.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source trees checked: every library and the binary.
const CRATES: [&str; 7] = [
    "record/src",
    "domain/src",
    "src",
    "config/src",
    "connectors/src",
    "models/src",
    "pipeline/src",
];

fn main_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`flags.rs` → `flags`, `api/metrics.rs` → `api`);
/// `None` for the crate root.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// Whether `file` is test code as a whole.
fn is_test_file(file: &Path) -> bool {
    matches!(
        file.file_name().and_then(|n| n.to_str()),
        Some("tests.rs" | "testing.rs")
    )
}

/// Identifiers following `crate::` in `source`, comments and the test module left out.
fn crate_paths(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous = "";
    for line in source.lines() {
        if previous.trim() == "#[cfg(test)]" && line.trim_start().starts_with("mod tests") {
            break;
        }
        previous = line;
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `rapport_pipeline::` or `$crate::` are other crates' paths.
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::C}`: every first segment of the group.
                let inner = group.split('}').next().unwrap_or("");
                found.extend(
                    inner
                        .split(',')
                        .map(|p| first_segment(p.trim()))
                        .filter(|s| !s.is_empty()),
                );
            } else {
                found.push(first_segment(rest));
            }
        }
    }
    found
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The crate root's re-exports: `pub use bus::{Bus, BusError}` maps both names to `bus`.
fn root_reexports(root_file: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in root_file.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = first_segment(rest);
        let items = rest[module.len()..]
            .trim_start_matches("::")
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}');
        for item in items.split(',') {
            let item = item.trim();
            let name = item.rsplit(" as ").next().unwrap_or(item).trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

/// Module → the modules it names.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let root_file = ["lib.rs", "main.rs", "mod.rs"]
        .iter()
        .find_map(|f| std::fs::read_to_string(root.join(f)).ok())
        .unwrap_or_default();
    let reexports = root_reexports(&root_file);
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(root, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(root, file) else {
            continue;
        };
        if is_test_file(file) {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        for name in crate_paths(&source) {
            let target = if modules.contains(&name) {
                name
            } else if let Some(module) = reexports.get(&name) {
                module.clone()
            } else {
                continue;
            };
            if target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// One cycle, if there is any: depth-first search, a back edge closes it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_checker_sees_a_cycle_and_a_reexport() {
    let mut edges = BTreeMap::new();
    edges.insert("flags".to_string(), BTreeSet::from(["profile".to_string()]));
    edges.insert("profile".to_string(), BTreeSet::from(["store".to_string()]));
    assert_eq!(find_cycle(&edges), None);
    edges.insert("store".to_string(), BTreeSet::from(["flags".to_string()]));
    assert_eq!(
        find_cycle(&edges).unwrap(),
        ["flags", "profile", "store", "flags"]
    );
    let paths = crate_paths(
        "use crate::{flags::Flag, store};\nlet x = crate::Bus::new(); // crate::api\nrapport_pipeline::dlq\n#[cfg(test)]\nmod tests {\n    use crate::testing;\n}",
    );
    assert_eq!(paths, ["flags", "store", "Bus"]);
    let names = root_reexports("pub use bus::{Bus, BusError as Error};\npub use dlq::DeadLetter;");
    assert_eq!(names["Bus"], "bus");
    assert_eq!(names["Error"], "bus");
    assert_eq!(names["DeadLetter"], "dlq");
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut cycles = Vec::new();
    for tree in CRATES {
        let root = main_dir().join(tree);
        let edges = graph(&root);
        if let Some(cycle) = find_cycle(&edges) {
            cycles.push(format!("{tree}: {}", cycle.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The pipeline's layers point one way: the wiring (`daemon`, `api`) may use the adapters
/// (bus, sources, worker, store, queries…), and no adapter reaches back up into the wiring.
#[test]
fn the_pipeline_adapters_never_import_the_wiring_above_them() {
    const WIRING: [&str; 2] = ["daemon", "api"];
    let edges = graph(&main_dir().join("pipeline/src"));
    let upward: Vec<String> = edges
        .iter()
        .filter(|(from, _)| !WIRING.contains(&from.as_str()))
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| WIRING.contains(&t.as_str()))
                .map(move |t| format!("{from} → {t}"))
        })
        .collect();
    assert!(
        upward.is_empty(),
        "adapters importing the wiring: {upward:?}"
    );
    assert!(
        edges["daemon"].contains("sources") && edges["daemon"].contains("worker"),
        "the checker reads the daemon's imports: {:?}",
        edges["daemon"]
    );
}
