//! The `retrain` binary end to end: features on the shipped data, JSON summary, output
//! readable by our own loader, and clear failures on bad input.

use std::process::Command;

fn retrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
}

const BTC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv");

#[test]
fn features_with_label_writes_parquet_and_json_summary() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f.parquet");
    let o = retrain()
        .args(["--threads", "2", "features", "--data", BTC, "--label", "direction:12", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["rows_in"], 20_111);
    assert_eq!(s["warmup_dropped"], 99);
    assert_eq!(s["label_dropped"], 12);
    assert_eq!(s["rows_out"], 20_111 - 99 - 12);
    assert_eq!(s["feature_columns"], 61);
    let df = retrain::data::io::read_frame(&out).unwrap();
    assert_eq!(df.height(), 20_111 - 99 - 12);
    assert_eq!(df.width(), 61 + 4); // symbol, timestamp, label, t1
    assert!(df.column("direction_12").is_ok() && df.column("t1").is_ok());
}

#[test]
fn features_without_label_to_csv_with_human_summary() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f.csv");
    let o = retrain().args(["features", "--data", BTC, "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("warm-up dropped  99"), "{text}");
    let df = retrain::data::io::read_frame(&out).unwrap();
    assert_eq!(df.height(), 20_111 - 99);
}

#[test]
fn custom_spec_and_spec_printing() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("spec.toml");
    std::fs::write(&spec, "[[features]]\nkind = \"rsi\"\nperiod = 14\n[[features]]\nkind = \"calendar\"\n").unwrap();
    let out = d.path().join("f.csv");
    let o = retrain()
        .args(["features", "--json", "--data", BTC, "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["feature_columns"], 5);
    assert_eq!(s["warmup_dropped"], 14);
    let o = retrain().arg("spec").output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(retrain::features::FeatureSpec::from_toml_str(&text, "stdout").unwrap(), Default::default());
}

#[test]
fn bad_input_fails_with_row_and_column() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,open,high,low,close,volume\n2020-01-01T00:00:00Z,10,11,9,10,1\n2020-01-01T01:00:00Z,10,9,9,10,1\n",
    )
    .unwrap();
    let o = retrain().args(["features", "--data"]).arg(&bad).arg("--out").arg(d.path().join("o.csv")).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.csv") && err.contains("row 2") && err.contains("`high`"), "{err}");
    assert!(!d.path().join("o.csv").exists(), "nothing written on failure");

    let spec = d.path().join("s.toml");
    std::fs::write(&spec, "[[features]]\nkind = \"rsi\"\nperiod = 14\ncolour = 1\n").unwrap();
    let o = retrain()
        .args(["features", "--data", BTC, "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(d.path().join("o.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("colour"));

    let o = retrain().args(["features", "--data", BTC, "--label", "sideways:3", "--out", "x.csv"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown label"));
}

#[test]
fn one_file_per_symbol_keeps_the_symbol_per_row() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("pooled.csv");
    let eur = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv");
    let o = retrain()
        .args(["features", "--json", "--label", "future_return:6", "--data", BTC, "--data", eur, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["symbols"], serde_json::json!(["btcusd_coinbase_1h", "eurusd_ask_1h_2017"]));
    assert_eq!(s["rows_in"], 20_111 + 6_225);
    assert_eq!(s["warmup_dropped"], 2 * 99);
    let df = retrain::data::io::read_frame(&out).unwrap();
    let sym = df.column("symbol").unwrap().str().unwrap().clone();
    let eur_rows = sym.iter().filter(|v| *v == Some("eurusd_ask_1h_2017")).count();
    assert_eq!(eur_rows, 6_225 - 99 - 6);
}

/// Real-data case: features + direction label from the shipped BTC series, trained with a
/// purged time holdout, saved, and scored; then a bad label column fails clearly.
#[test]
fn gbdt_trains_on_real_features_with_a_purged_holdout() {
    let d = tempfile::tempdir().unwrap();
    let feats = d.path().join("f.parquet");
    let o = retrain()
        .args(["features", "--data", BTC, "--label", "direction:12", "--json", "--out"])
        .arg(&feats)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = d.path().join("m.bin");
    let o = retrain()
        .args(["--threads", "2", "gbdt", "--label", "direction_12", "--holdout", "0.2", "--rounds", "30", "--json"])
        .arg("--train")
        .arg(&feats)
        .arg("--save")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["features"], 61);
    assert_eq!(s["rounds"], 30);
    assert_eq!(s["purged_rows"], 12, "labels 12 bars long overlap the holdout start");
    let auc = s["test"]["auc"].as_f64().unwrap();
    assert!((0.4..0.7).contains(&auc), "AUC {auc}");
    for key in ["load_seconds", "fit_seconds", "predict_seconds"] {
        assert!(s[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    let m = retrain::gbdt::Gbdt::load(&model).unwrap();
    assert_eq!(m.n_features, 61);
    assert_eq!(m.feature_names.len(), 61);

    let o = retrain().args(["gbdt", "--label", "nope"]).arg("--train").arg(&feats).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing column `nope`"), "{err}");
    let o = retrain()
        .args(["gbdt", "--label", "direction_12", "--learning-rate", "0"])
        .arg("--train")
        .arg(&feats)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("learning_rate"));
}

#[test]
fn cv_plan_prints_splits_and_paths() {
    let o = retrain()
        .args(["cv-plan", "--samples", "100", "--groups", "6", "--test-groups", "2", "--purge", "3"])
        .args(["--embargo", "2", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["splits"].as_array().unwrap().len(), 15);
    assert_eq!(v["paths"].as_array().unwrap().len(), 5);
    // Split 0 tests groups 0 and 1 (rows 0..32); rows 32..37 are purged (3) and embargoed (2).
    assert_eq!(v["splits"][0]["train"], serde_json::json!([{"start": 37, "end": 100}]));
    let o = retrain().args(["cv-plan", "--samples", "100", "--groups", "4", "--test-groups", "4"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("test_groups"));
}

#[test]
fn cv_runs_cpcv_on_candles_and_on_a_table() {
    let o = retrain()
        .args(["--threads", "2", "cv", "--data", BTC, "--model", "xgboost", "--rounds", "10", "--json"])
        .args(["--groups", "4", "--test-groups", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["report"];
    assert_eq!(r["splits"].as_array().unwrap().len(), 6);
    assert_eq!(r["paths"].as_array().unwrap().len(), 3);
    assert_eq!(v["embargo"]["bars"], 120); // 5 days of hourly bars > the feature lookback
    let auc = r["summary"].as_array().unwrap().iter().find(|m| m["metric"] == "auc").unwrap();
    assert!(auc["mean"].as_f64().unwrap() > 0.45);
    assert!(r["paths"][0]["scores"]["sharpe"].is_number());

    // Table mode: a features file with its label column and t1.
    let d = tempfile::tempdir().unwrap();
    let table = d.path().join("t.parquet");
    let o =
        retrain().args(["features", "--data", BTC, "--label", "direction:12", "--out"]).arg(&table).output().unwrap();
    assert!(o.status.success());
    let o = retrain()
        .args(["cv", "--label", "direction_12", "--rounds", "5", "--method", "kfold", "--embargo", "12h", "--data"])
        .arg(&table)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("purged 5-fold, embargo 43200000 ms") && text.contains("mean"), "{text}");
}

#[test]
fn nn_trains_a_trading_network_and_cv_takes_network_kinds() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("nn.toml");
    std::fs::write(
        &cfg,
        "lookback = 24\nexog = [{ kind = \"volume_z\", period = 20 }]\n[model]\nhidden = 16\n[train]\nbatch_size = 256\n",
    )
    .unwrap();
    let saved = d.path().join("net");
    let o = retrain()
        .args(["nn", "--data", BTC, "--model", "nhits", "--target", "direction:6", "--epochs", "1", "--json"])
        .arg("--config")
        .arg(&cfg)
        .arg("--save")
        .arg(&saved)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "nhits");
    assert_eq!(v["params"]["lookback"], 24);
    assert_eq!(v["params"]["net"]["config"]["hidden"], 16);
    assert_eq!(v["params"]["net"]["config"]["horizon"], 6);
    assert_eq!(v["params"]["exog"][0]["kind"], "volume_z");
    assert_eq!(v["params"]["net"]["config"]["exog_channels"], 1);
    assert!(v["test"]["auc"].as_f64().unwrap() > 0.4 && v["test_rows"].as_u64().unwrap() > 1000);
    for f in ["net.json", "weights.safetensors", "features.toml"] {
        assert!(saved.join(f).exists(), "{f}");
    }

    // Unknown keys name the file.
    std::fs::write(&cfg, "[train]\nepoch = 3\n").unwrap();
    let o = retrain().args(["nn", "--data", BTC, "--model", "patchtst", "--config"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nn.toml") && err.contains("epoch"), "{err}");

    let o = retrain()
        .args(["cv", "--data", BTC, "--model", "patchtst", "--epochs", "1", "--json"])
        .args(["--method", "kfold", "--folds", "3"])
        .arg("--nn-config")
        .arg({
            std::fs::write(&cfg, "lookback = 16\n[model]\nd_model = 16\nn_heads = 2\nd_ff = 32\nn_layers = 1\n")
                .unwrap();
            &cfg
        })
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "patchtst");
    assert_eq!(v["report"]["splits"].as_array().unwrap().len(), 3);
}

/// Run `retrain` with `args` and the store at `store`; returns (success, stdout, stderr).
fn store_cmd(store: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let o = retrain().args(args).arg("--store").arg(store).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn store_commands_put_promote_rollback_history_verify_gc() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("models");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("README.md"), "a store may live beside its README").unwrap();
    let model = d.path().join("model.json");
    std::fs::write(&model, br#"{"trees":[]}"#).unwrap();
    let meta = d.path().join("meta.json");
    std::fs::write(&meta, br#"{"model_kind":"lightgbm","n_samples":1000,"validation_metrics":{"auc":0.61}}"#).unwrap();
    let m = model.to_str().unwrap();

    let (ok, v1, err) =
        store_cmd(&store, &["store", "put", "btc", m, "--meta", meta.to_str().unwrap(), "--status", "active"]);
    assert!(ok, "{err}");
    let v1 = v1.trim().to_string();
    assert!(retrain::store::is_tag(&v1), "{v1}");
    let (ok, out, err) = store_cmd(&store, &["store", "put", "btc", m, "--json", "--reason", "nightly"]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["status"], "SHADOW");
    let v2 = info["tag"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);

    let (ok, out, err) = store_cmd(&store, &["store", "promote", "btc", &v2]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{v2}: SHADOW -> ACTIVE")) && out.contains(&format!("{v1}: ACTIVE -> RETIRED")),
        "{out}"
    );
    let (ok, out, _) = store_cmd(&store, &["versions", "btc", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["aliases"]["active"], v2.as_str());
    assert_eq!(v["aliases"]["previous_active"], v1.as_str());
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);

    let (ok, _, err) = store_cmd(&store, &["rollback", "btc", &v1, "--reason", "live score fell", "--actor", "ops"]);
    assert!(ok, "{err}");
    let (ok, out, _) = store_cmd(&store, &["history", "btc", "--json"]);
    assert!(ok);
    let h: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let last = h.iter().rev().find(|r| r["event"] == "rolled_back").unwrap();
    assert_eq!((last["actor"].as_str(), last["reason"].as_str()), (Some("ops"), Some("live score fell")));
    let (ok, out, _) = store_cmd(&store, &["store", "show", "btc"]);
    assert!(ok && out.contains(&v1) && out.contains("auc=0.6100"), "{out}");
    let (ok, out, _) = store_cmd(&store, &["store", "list", "--json"]);
    assert!(ok && out.contains("\"btc\""), "{out}");
    let (ok, out, _) = store_cmd(&store, &["store", "verify"]);
    assert!(ok && out.contains("OK"), "{out}");
    let (ok, out, _) = store_cmd(&store, &["store", "gc", "--dry-run", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["dry_run"], true);

    // Illegal moves and bad input fail with a reason; nothing changes.
    let (ok, _, err) = store_cmd(&store, &["store", "promote", "btc", &v2]);
    assert!(!ok && err.contains("promote takes a SHADOW"), "{err}");
    std::fs::write(&meta, br#"{"model_kind":"x","colour":"red"}"#).unwrap();
    let (ok, _, err) = store_cmd(&store, &["store", "put", "btc", m, "--meta", meta.to_str().unwrap()]);
    assert!(!ok && err.contains("meta.json") && err.contains("colour"), "{err}");
    let (ok, _, err) = store_cmd(&store, &["versions", "eth"]);
    assert!(!ok && err.contains("model `eth`"), "{err}");

    // Damage is found, named, and turns the exit code non-zero.
    std::fs::write(store.join("models/btc/versions").join(&v2).join("model.json"), b"{}").unwrap();
    let (ok, out, err) = store_cmd(&store, &["store", "verify"]);
    assert!(!ok && out.contains("PROBLEM") && out.contains(&v2) && err.contains("1 problem"), "{out}\n{err}");
    let (_, out, _) = store_cmd(&store, &["store", "verify", "--json"]);
    let rep: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rep["findings"][0]["tag"], v2.as_str());
}

#[test]
fn policy_prints_its_defaults_and_checks_files() {
    let d = tempfile::tempdir().unwrap();
    let o = retrain().args(["policy", "--print-default"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8(o.stdout).unwrap();
    assert!(printed.contains("schedule_interval_days = 7"), "{printed}");
    // The printed document is a valid policy equal to the default.
    let file = d.path().join("retrain.toml");
    std::fs::write(&file, &printed).unwrap();
    assert_eq!(retrain::config::Policy::from_file(&file).unwrap(), retrain::config::Policy::default());
    // --check fills in the defaults around an edited key; --json prints JSON.
    std::fs::write(&file, "batch_size = 4\n").unwrap();
    let o = retrain().args(["policy", "--json", "--check"]).arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["batch_size"].as_u64(), v["ks_retrain"].as_f64()), (Some(4), Some(0.2)));
    // A misspelt key fails, naming the file and the key.
    std::fs::write(&file, "batch_sise = 4\n").unwrap();
    let o = retrain().args(["policy", "--check"]).arg(&file).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("retrain.toml") && err.contains("batch_sise"), "{err}");
    // A model kind nobody registered fails the check, naming the key and the known kinds.
    std::fs::write(&file, "models = [\"lightgbm\", \"tabnet\"]\n").unwrap();
    let o = retrain().args(["policy", "--check"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("tabnet") && err.contains("models") && err.contains("xgboost"),
        "{err}"
    );
}

#[test]
fn cv_flags_must_fit_the_kind() {
    let o = retrain().args(["cv", "--data", BTC, "--model", "xgboost", "--epochs", "2"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--epochs") && err.contains("xgboost"), "{err}");
    let o = retrain().args(["cv", "--data", BTC, "--model", "nhits", "--rounds", "5"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("GBDT flags") && err.contains("nhits"), "{err}");
    let o = retrain().args(["cv", "--data", BTC, "--model", "tabnet"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("tabnet") && err.contains("lightgbm"), "{err}");
}

#[test]
fn cv_takes_the_baseline_kinds_and_their_hyperparameters() {
    let d = tempfile::tempdir().unwrap();
    let params = d.path().join("logreg.toml");
    std::fs::write(&params, "alpha = 10.0\nmax_iterations = 50\n").unwrap();
    let o = retrain()
        .args(["--threads", "2", "cv", "--data", BTC, "--model", "logreg", "--json", "--baseline-params"])
        .arg(&params)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let auc = v["report"]["summary"].as_array().unwrap().iter().find(|m| m["metric"] == "auc").unwrap();
    assert!(auc["mean"].as_f64().unwrap() > 0.5, "{auc}");
    // An unknown key, a label the kind does not model, and flags of another kind are refused.
    std::fs::write(&params, "alpah = 10.0\n").unwrap();
    let o =
        retrain().args(["cv", "--data", BTC, "--model", "logreg", "--baseline-params"]).arg(&params).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("alpah"), "{err}");
    let o = retrain().args(["cv", "--data", BTC, "--model", "ridge"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ridge") && err.contains("binary label"), "{err}");
    let o = retrain().args(["cv", "--data", BTC, "--model", "forest", "--rounds", "5"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--baseline-params"), "{err}");
    let o = retrain()
        .args(["cv", "--data", BTC, "--model", "lightgbm", "--baseline-params"])
        .arg(&params)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("baseline kinds"), "{err}");
}

/// The first `n` data rows (or the last `n` with `tail`) of the shipped file as a new CSV.
fn csv_slice(dir: &std::path::Path, name: &str, n: usize, tail: bool) -> std::path::PathBuf {
    let text = std::fs::read_to_string(BTC).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let pick = if tail { &rows[rows.len() - n..] } else { &rows[..n] };
    let path = dir.join(name);
    std::fs::write(&path, format!("{header}\n{}\n", pick.join("\n"))).unwrap();
    path
}

#[test]
fn drift_health_and_triggers_commands() {
    let d = tempfile::tempdir().unwrap();
    let reference = csv_slice(d.path(), "ref.csv", 10_000, false);
    let current = csv_slice(d.path(), "cur.csv", 2_000, true);
    let o = retrain()
        .args(["drift", "--days", "20", "--json", "--reference"])
        .arg(&reference)
        .arg("--current")
        .arg(&current)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let features = r["features"].as_array().unwrap();
    assert_eq!(features.len(), 61);
    let gap = features.iter().find(|f| f["name"] == "gap").unwrap();
    // A 24/7 market's gap is almost always 0 on both sides: no drift (a point mass compared
    // with itself once read D = 1 before the two ECDFs were compared at the same points).
    assert!(gap["ks"]["statistic"].as_f64().unwrap() < 0.01, "{gap}");
    assert_eq!(gap["drifted"], false);
    assert!(r["severity"].is_string());
    // Missing inputs are clear errors.
    let o = retrain().args(["drift", "--current"]).arg(&current).output().unwrap();
    assert!(!o.status.success());

    let log = d.path().join("log.jsonl");
    let mut lines = String::new();
    for h in 0..200 {
        let dir = if h % 3 == 0 { -1 } else { 1 };
        lines.push_str(&format!(
            "{{\"ts\":\"{}\",\"model\":\"m\",\"direction\":{dir},\"probability\":0.6,\"outcome\":0.01}}\n",
            jiff::Timestamp::from_second(1_767_225_600 + h * 3_600).unwrap()
        ));
    }
    std::fs::write(&log, lines).unwrap();
    let o = retrain().args(["health", "--json", "--log"]).arg(&log).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h[0]["model"], "m");
    assert!((h[0]["win_rate"].as_f64().unwrap() - 133.0 / 200.0).abs() < 1e-9, "{h}");
    std::fs::write(&log, "{\"ts\":\"2026-01-01T00:00:00Z\",\"model\":\"m\",\"direction\":1,\"pnl\":1}\n").unwrap();
    let o = retrain().args(["health", "--log"]).arg(&log).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pnl"), "{}", String::from_utf8_lossy(&o.stderr));

    // An empty store has nothing to supervise.
    let o = retrain().args(["triggers", "--json", "--store"]).arg(d.path().join("store")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["models"].as_array().unwrap().len(), 0);
    assert_eq!(t["plan"]["jobs"].as_array().unwrap().len(), 0);
}

#[test]
fn replay_refuses_bad_policies_and_dates_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "min_new_sample = 5\n").unwrap();
    let out = retrain()
        .args(["replay", "--to", "2017-10-31", "--out"])
        .arg(dir.path().join("r"))
        .arg("--policy")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("min_new_sample"), "{err}");
    let out =
        retrain().args(["replay", "--from", "yesterday-ish", "--out"]).arg(dir.path().join("r")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("yesterday-ish"));
    let triggers = dir.path().join("t.toml");
    std::fs::write(&triggers, "triggers = [\"weekly\"]\n").unwrap();
    let out =
        retrain().args(["replay", "--policy"]).arg(&triggers).arg("--out").arg(dir.path().join("r")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown trigger kind `weekly`"));
}
