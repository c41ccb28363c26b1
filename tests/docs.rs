//! The documentation pages that promise to list something completely are checked here, so a
//! new `Policy` key or a changed default cannot leave `docs/policy.md` behind.

use std::collections::BTreeMap;

use retrain::Policy;
use serde_json::Value;

/// `key → default cell` of every table row of `docs/policy.md` that starts with a `key`.
fn policy_page_rows(page: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    let mut in_keys = false;
    for line in page.lines() {
        if line.starts_with("## ") {
            in_keys = line == "## Every key";
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !in_keys || cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let key = cells[1].trim_matches('`').to_string();
        assert!(rows.insert(key.clone(), cells[2].to_string()).is_none(), "docs/policy.md lists `{key}` twice");
    }
    rows
}

/// Whether the page's default cell says `value`.
fn same_default(cell: &str, value: &Value) -> bool {
    match (cell, value) {
        ("unset", Value::Null) => true,
        (_, Value::Number(n)) => cell.parse::<f64>().ok() == n.as_f64(),
        _ => serde_json::from_str::<Value>(cell).ok().as_ref() == Some(value),
    }
}

/// Every key of `value` with its default, a table's keys dotted under its name (`rl.learning.seed`).
fn flatten(prefix: &str, value: Value, out: &mut serde_json::Map<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&if prefix.is_empty() { k } else { format!("{prefix}.{k}") }, v, out);
            }
        }
        v => {
            out.insert(prefix.to_string(), v);
        }
    }
}

/// Problems of `page` against the default policy (empty: the page is complete and right).
fn problems(page: &str) -> Vec<String> {
    let mut defaults = serde_json::Map::new();
    flatten("", serde_json::to_value(Policy::default()).unwrap(), &mut defaults);
    let defaults = &defaults;
    let rows = policy_page_rows(page);
    let mut out = Vec::new();
    for (key, value) in defaults {
        match rows.get(key) {
            None => out.push(format!("`{key}` is missing from docs/policy.md")),
            Some(cell) if !same_default(cell, value) => {
                out.push(format!("`{key}`: the page says {cell}, the default is {value}"))
            }
            Some(_) => {}
        }
    }
    for key in rows.keys().filter(|k| !defaults.contains_key(*k)) {
        out.push(format!("docs/policy.md names `{key}`, which is not a policy key"));
    }
    out
}

#[test]
fn the_policy_page_lists_every_key_with_its_default() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md")).unwrap();
    let p = problems(&page);
    assert!(p.is_empty(), "{}", p.join("\n"));
}

#[test]
fn the_policy_page_check_catches_a_missing_an_unknown_and_a_wrong_key() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md")).unwrap();
    let broken = page
        .lines()
        .filter(|l| !l.starts_with("| `batch_size`"))
        .map(|l| match l {
            l if l.starts_with("| `ks_alert`") => "| `ks_alert` | 0.3 | changed |".to_string(),
            l if l.starts_with("| `psi_bins`") => format!("{l}\n| `no_such_key` | 1 | invented |"),
            l => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = problems(&broken);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p.iter().any(|m| m.contains("`batch_size` is missing")));
    assert!(p.iter().any(|m| m.contains("`ks_alert`: the page says 0.3")));
    assert!(p.iter().any(|m| m.contains("`no_such_key`")));
}
