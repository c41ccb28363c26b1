//! Metrics and statistics against sklearn / scipy / statsmodels / numpy values
//! (`tests/fixtures/validation/reference.py` produced the fixture; every value within 1e-10).

use retrain::validation::compare::{self, IcSignificance, Loss};
use retrain::validation::metrics as m;
use retrain::validation::overfit;
use serde_json::Value;

fn fixture() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validation/reference.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn v(x: &Value) -> Vec<f64> {
    x.as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect()
}

fn close(name: &str, ours: f64, reference: &Value) {
    let r = reference.as_f64().unwrap();
    assert!((ours - r).abs() <= 1e-10 * r.abs().max(1.0), "{name}: ours {ours:.17}, reference {r:.17}");
}

#[test]
fn classification_metrics_match_sklearn() {
    let f = &fixture()["classification"];
    let (y, p) = (v(&f["y"]), v(&f["p"]));
    let hard: Vec<f64> = p.iter().map(|&q| f64::from(u8::from(q > 0.5))).collect();
    close("accuracy", m::accuracy(&y, &hard).unwrap(), &f["accuracy"]);
    close("precision", m::precision(&y, &hard).unwrap(), &f["precision"]);
    close("recall", m::recall(&y, &hard).unwrap(), &f["recall"]);
    close("f1", m::f1(&y, &hard).unwrap(), &f["f1"]);
    close("roc_auc", m::roc_auc(&y, &p).unwrap(), &f["roc_auc"]);
    close("log_loss", m::log_loss(&y, &p).unwrap(), &f["log_loss"]);
    close("brier", m::brier(&y, &p).unwrap(), &f["brier"]);
    close("calibration", m::calibration_score(&y, &p).unwrap(), &f["calibration_score"]);
}

#[test]
fn regression_and_ic_match_sklearn_and_scipy() {
    let f = &fixture()["regression"];
    let (a, p) = (v(&f["actual"]), v(&f["pred"]));
    close("rmse", m::rmse(&a, &p).unwrap(), &f["rmse"]);
    close("mae", m::mae(&a, &p).unwrap(), &f["mae"]);
    close("r2", m::r2(&a, &p).unwrap(), &f["r2"]);
    close("directional", m::directional_accuracy(&a, &p).unwrap(), &f["directional_accuracy"]);
    close("pearson", m::pearson(&p, &a).unwrap(), &f["pearson"]);
    close("spearman", m::spearman(&p, &a).unwrap(), &f["spearman"]);
    let p3: Vec<f64> = p.iter().map(|x| (x * 1000.0).round() / 1000.0).collect();
    close("spearman ties", m::spearman(&p3, &v(&f["actual_ties"])).unwrap(), &f["spearman_ties"]);
    assert!(m::pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).unwrap().is_nan());
}

#[test]
fn trading_metrics_match_numpy() {
    let f = &fixture()["trading"];
    let (pos, ret, risk) = (v(&f["position"]), v(&f["ret"]), v(&f["risk"]));
    let pnl: Vec<f64> = pos.iter().zip(&ret).map(|(a, b)| a * b).collect();
    close("win_rate", m::win_rate(&pos, &ret).unwrap(), &f["win_rate"]);
    close("average_r", m::average_r(&pos, &ret, &risk).unwrap(), &f["average_r"]);
    close("sharpe", m::sharpe(&pnl, f["periods_per_year"].as_f64().unwrap()).unwrap(), &f["sharpe"]);
    close("max_drawdown", m::max_drawdown(&pnl), &f["max_drawdown"]);
}

#[test]
fn comparison_statistics_match_scipy_and_statsmodels() {
    let f = &fixture()["compare"];
    let (ic, old) = (v(&f["ic"]), v(&f["ic_old"]));
    let t = compare::mean_ic_test(&ic).unwrap();
    close("t", t.statistic, &f["t_stat"]);
    close("t p", t.p_value, &f["t_p"]);
    assert_eq!(compare::newey_west_lags(ic.len()), f["nw_lags"].as_u64().unwrap() as usize);
    let nw = compare::newey_west_mean_test(&ic, None).unwrap();
    close("nw", nw.statistic, &f["nw_stat"]);
    close("nw p", nw.p_value, &f["nw_p"]);
    let nw5 = compare::newey_west_mean_test(&ic, Some(5)).unwrap();
    close("nw5", nw5.statistic, &f["nw5_stat"]);
    close("nw5 p", nw5.p_value, &f["nw5_p"]);
    let d = compare::ic_difference(&ic, &old, IcSignificance::default()).unwrap();
    close("paired", d.test.statistic, &f["paired_stat"]);
    close("paired p", d.test.p_value, &f["paired_p"]);
    assert_eq!(d.significant, d.test.mean > 0.01 && d.test.p_value < 0.05);
    let (e1, e2) = (v(&f["e1"]), v(&f["e2"]));
    for (loss, name) in [(Loss::Squared, "squared"), (Loss::Absolute, "absolute")] {
        for h in [1, 3] {
            let r = compare::diebold_mariano(&e1, &e2, h, loss).unwrap();
            let want = &f["dm"][format!("{name}_h{h}")];
            close(&format!("dm {name} h{h}"), r.statistic, &want["stat"]);
            close(&format!("dm p {name} h{h}"), r.p_value, &want["p"]);
        }
    }
}

#[test]
fn sharpe_statistics_and_pbo_match_reference() {
    let fx = fixture();
    let f = &fx["sharpe"];
    let r = v(&f["returns"]);
    close("sharpe", overfit::sharpe_ratio(&r).unwrap(), &f["sharpe"]);
    close("psr0", overfit::probabilistic_sharpe(&r, 0.0).unwrap(), &f["psr0"]);
    close("psr 0.05", overfit::probabilistic_sharpe(&r, 0.05).unwrap(), &f["psr_005"]);
    let trials = v(&f["trials"]);
    let (_, sd) = m::mean_std(&trials);
    close("sr0", overfit::expected_max_sharpe(sd * sd, trials.len()), &f["sr0"]);
    close("dsr", overfit::deflated_sharpe(&r, &trials).unwrap(), &f["dsr"]);

    let f = &fx["pbo"];
    let returns: Vec<Vec<f64>> = f["returns"].as_array().unwrap().iter().map(v).collect();
    let p = overfit::pbo(&returns, f["blocks"].as_u64().unwrap() as usize).unwrap();
    let want = v(&f["logits"]);
    assert_eq!(p.logits.len(), want.len());
    for (a, b) in p.logits.iter().zip(&want) {
        assert!((a - b).abs() < 1e-10, "logit {a} vs {b}");
    }
    close("pbo", p.pbo, &f["pbo"]);
}
