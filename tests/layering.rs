//! The layering rule, kept true: every `crate::…` path in a library module names its own
//! module or one of a lower layer (`docs/architecture.md`, "Layers"). Core modules may use
//! each other; two modules of one layer (the learners `gbdt` and `nn`) may not.

use std::collections::BTreeMap;
use std::path::Path;

/// Layer of each top-level module, lowest first.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("config", 0),
    ("clock", 0),
    ("rng", 0),
    ("fsutil", 0),
    ("sortkey", 0),
    ("simd", 0),
    ("data", 1),
    ("features", 2),
    ("gbdt", 3),
    ("nn", 3),
    ("model", 4),
    ("validation", 5),
    ("store", 6),
    ("rl", 7),
    ("lifecycle", 8),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

/// Every `crate::NAME` (and every name in `crate::{A, B::…}`) on the code lines of `text`,
/// with its 1-based line number. Comment lines are skipped: doc links may point anywhere.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(pos) = rest.find("crate::") {
            let after = &rest[pos + "crate::".len()..];
            // `$crate::` inside macros and `retrain::crate::` cannot occur; `foo_crate::` can.
            let preceded = rest[..pos].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            if !preceded {
                if let Some(group) = after.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    for item in inner.split(',') {
                        let name: String =
                            item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if !name.is_empty() {
                            out.push((i + 1, name));
                        }
                    }
                } else {
                    let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    out.push((i + 1, name));
                }
            }
            rest = after;
        }
    }
    out
}

/// The top-level module a source file belongs to (`src/lifecycle/job.rs` → `lifecycle`).
fn module_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = parts.next()?;
    Some(first.trim_end_matches(".rs").to_string())
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
}

/// The offending references under `src/`: (file:line, from-module, to-module).
fn violations(src: &Path) -> Vec<(String, String, String)> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let Some(from) = module_of(rel) else { continue };
        // The binary (main.rs, cli/) sits on top and uses the library through `retrain::`.
        if from == "main" || from == "cli" || from == "lib" {
            continue;
        }
        let from_layer = layer(&from).unwrap_or_else(|| panic!("{}: module `{from}` has no layer", rel.display()));
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, to) in crate_paths(&text) {
            if to == from || to == "Error" || to == "Result" {
                continue;
            }
            let Some(to_layer) = layer(&to) else { continue };
            let ok = to_layer < from_layer || (to_layer == 0 && from_layer == 0);
            if !ok {
                bad.push((format!("src/{}:{line}", rel.display()), from.clone(), to));
            }
        }
    }
    bad
}

#[test]
fn every_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    let mut by_pair: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (at, from, to) in bad {
        by_pair.entry((from, to)).or_default().push(at);
    }
    let report: Vec<String> =
        by_pair.iter().map(|((from, to), at)| format!("{from} → {to} at {}", at.join(", "))).collect();
    assert!(report.is_empty(), "imports that point up or sideways:\n{}", report.join("\n"));
}

#[test]
fn the_checker_sees_upward_and_grouped_imports() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::write(src.join("data/mod.rs"), "use crate::error::Result;\nuse crate::{features, rng};\n").unwrap();
    std::fs::write(
        src.join("gbdt.rs"),
        "/// [`crate::lifecycle::Retrainer`] may be linked.\nfn f() { crate::nn::x(); crate::data::y(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("config.rs"), "use crate::clock::Clock;\nuse crate::model::ModelKind;\n").unwrap();
    let mut got: Vec<(String, String)> = violations(src).into_iter().map(|(_, f, t)| (f, t)).collect();
    got.sort();
    assert_eq!(
        got,
        [("config".into(), "model".into()), ("data".into(), "features".into()), ("gbdt".into(), "nn".into())]
    );
}
