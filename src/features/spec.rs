//! [`FeatureSpec`]: the serde description of which feature columns to compute.
//!
//! A spec is a list of [`Feature`] items (an indicator kind and its parameters); each item
//! yields one or more named columns. The spec travels with every stored model version so
//! inference recomputes exactly the training columns. Unknown keys are rejected.
//!
//! ```toml
//! [[features]]
//! kind = "rsi"
//! period = 14
//!
//! [[features]]
//! kind = "macd"
//! fast = 12
//! slow = 26
//! signal = 9
//! ```

use super::{calendar as cal, momentum as mom, trend, volatility as vol, volume as vlm};
use crate::data::Bars;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One indicator and its parameters. Column names are listed per variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Feature {
    /// `ret_{lag}` = close / close[t-lag] − 1 for each lag (TA-Lib ROCP).
    Returns {
        /// Lags in bars.
        lags: Vec<usize>,
    },
    /// `logret_{lag}` = ln(close / close[t-lag]) for each lag.
    LogReturns {
        /// Lags in bars.
        lags: Vec<usize>,
    },
    /// `sma_ratio_{period}` = close / SMA − 1 (TA-Lib SMA).
    SmaRatio {
        /// Window length.
        period: usize,
    },
    /// `ema_ratio_{period}` = close / EMA − 1 (TA-Lib EMA).
    EmaRatio {
        /// Window length.
        period: usize,
    },
    /// `macd_norm`, `macd_signal_norm`, `macd_hist_norm`: TA-Lib MACD divided by close.
    Macd {
        /// Fast EMA period.
        fast: usize,
        /// Slow EMA period.
        slow: usize,
        /// Signal EMA period.
        signal: usize,
    },
    /// `adx_{p}`, `plus_di_{p}`, `minus_di_{p}` (TA-Lib ADX, PLUS_DI, MINUS_DI).
    Adx {
        /// Wilder period.
        period: usize,
    },
    /// `linreg_slope_{period}`: TA-Lib LINEARREG_SLOPE of close divided by close.
    LinregSlope {
        /// Window length.
        period: usize,
    },
    /// `rsi_{period}` (TA-Lib RSI).
    Rsi {
        /// Wilder period.
        period: usize,
    },
    /// `stoch_k_{k}`, `stoch_d_{k}`: TA-Lib STOCH slow %K/%D with SMA smoothing.
    Stoch {
        /// Fast %K window.
        k: usize,
        /// Slow %K smoothing.
        slow_k: usize,
        /// %D smoothing.
        slow_d: usize,
    },
    /// `willr_{period}` (TA-Lib WILLR).
    Willr {
        /// Window length.
        period: usize,
    },
    /// `cci_{period}` (TA-Lib CCI).
    Cci {
        /// Window length.
        period: usize,
    },
    /// `roc_{period}` in percent (TA-Lib ROC).
    Roc {
        /// Lag in bars.
        period: usize,
    },
    /// `mom_{period}`: TA-Lib MOM divided by close.
    Mom {
        /// Lag in bars.
        period: usize,
    },
    /// `cmo_{period}` (TA-Lib CMO).
    Cmo {
        /// Wilder period.
        period: usize,
    },
    /// `natr_{period}` (TA-Lib NATR).
    Natr {
        /// Wilder period.
        period: usize,
    },
    /// `bb_pctb_{period}`, `bb_width_{period}` from TA-Lib BBANDS.
    Bollinger {
        /// Window length.
        period: usize,
        /// Band width in standard deviations.
        nbdev: f64,
    },
    /// `vol_cc_{period}`: sample std of one-bar log returns.
    CloseVol {
        /// Window length (returns).
        period: usize,
    },
    /// `vol_parkinson_{period}`.
    Parkinson {
        /// Window length.
        period: usize,
    },
    /// `vol_gk_{period}` (Garman–Klass).
    GarmanKlass {
        /// Window length.
        period: usize,
    },
    /// `vol_rs_{period}` (Rogers–Satchell).
    RogersSatchell {
        /// Window length.
        period: usize,
    },
    /// `vol_ratio_{short}_{long}` = vol_cc(short) / vol_cc(long) (1 when both are 0).
    VolRatio {
        /// Short window.
        short: usize,
        /// Long window.
        long: usize,
    },
    /// `skew_{period}`, `kurt_{period}` of one-bar log returns.
    Moments {
        /// Window length (returns).
        period: usize,
    },
    /// `obv_slope_{period}`: OBV regression slope over mean volume.
    ObvSlope {
        /// Window length.
        period: usize,
    },
    /// `mfi_{period}` (TA-Lib MFI).
    Mfi {
        /// Window length.
        period: usize,
    },
    /// `vwap_dist_{period}` = close / rolling VWAP − 1.
    VwapDist {
        /// Window length.
        period: usize,
    },
    /// `volume_z_{period}`: volume z-score.
    VolumeZ {
        /// Window length.
        period: usize,
    },
    /// `body`, `upper_shadow`, `lower_shadow`, `range_pct`, `gap`.
    Candle,
    /// `hour_sin`, `hour_cos`, `dow_sin`, `dow_cos` (UTC).
    Calendar,
    /// The last `length` values of every column of `of`, as `{column}_lag{k}` for `k` in
    /// `0..length` (lag 0 = the current bar): the lookback window a sequence network reads
    /// from a row. Causal like its inputs; its lookback adds `length − 1` bars.
    Window {
        /// The channels (any non-window items).
        of: Vec<Feature>,
        /// Window length in bars.
        length: usize,
    },
}

/// The list of features to compute; [`FeatureSpec::default`] is the full built-in set (61 columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Indicators in output order.
    pub features: Vec<Feature>,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        use Feature::*;
        let mut f = vec![Returns { lags: vec![1, 3, 6, 12, 24] }, LogReturns { lags: vec![1, 3, 6, 12, 24] }];
        f.extend([10, 20, 50, 100].map(|period| SmaRatio { period }));
        f.extend([12, 26, 50].map(|period| EmaRatio { period }));
        f.extend([Macd { fast: 12, slow: 26, signal: 9 }, Adx { period: 14 }, LinregSlope { period: 20 }]);
        f.extend([7, 14, 21].map(|period| Rsi { period }));
        f.extend([
            Stoch { k: 14, slow_k: 3, slow_d: 3 },
            Willr { period: 14 },
            Cci { period: 20 },
            Roc { period: 10 },
            Roc { period: 20 },
            Mom { period: 10 },
            Cmo { period: 14 },
            Natr { period: 14 },
            Natr { period: 28 },
            Bollinger { period: 20, nbdev: 2.0 },
            CloseVol { period: 20 },
            CloseVol { period: 60 },
            Parkinson { period: 20 },
            GarmanKlass { period: 20 },
            RogersSatchell { period: 20 },
            VolRatio { short: 20, long: 60 },
            Moments { period: 60 },
            ObvSlope { period: 20 },
            Mfi { period: 14 },
            VwapDist { period: 24 },
            VolumeZ { period: 20 },
            VolumeZ { period: 60 },
            Candle,
            Calendar,
        ]);
        FeatureSpec { features: f }
    }
}

impl Feature {
    /// Names of the columns this item produces, in order.
    pub fn columns(&self) -> Vec<String> {
        use Feature::*;
        match self {
            Returns { lags } => lags.iter().map(|l| format!("ret_{l}")).collect(),
            LogReturns { lags } => lags.iter().map(|l| format!("logret_{l}")).collect(),
            SmaRatio { period } => vec![format!("sma_ratio_{period}")],
            EmaRatio { period } => vec![format!("ema_ratio_{period}")],
            Macd { fast, slow, signal } => {
                let sfx = if (*fast, *slow, *signal) == (12, 26, 9) {
                    String::new()
                } else {
                    format!("_{fast}_{slow}_{signal}")
                };
                vec![format!("macd_norm{sfx}"), format!("macd_signal_norm{sfx}"), format!("macd_hist_norm{sfx}")]
            }
            Adx { period: p } => vec![format!("adx_{p}"), format!("plus_di_{p}"), format!("minus_di_{p}")],
            LinregSlope { period } => vec![format!("linreg_slope_{period}")],
            Rsi { period } => vec![format!("rsi_{period}")],
            Stoch { k, .. } => vec![format!("stoch_k_{k}"), format!("stoch_d_{k}")],
            Willr { period } => vec![format!("willr_{period}")],
            Cci { period } => vec![format!("cci_{period}")],
            Roc { period } => vec![format!("roc_{period}")],
            Mom { period } => vec![format!("mom_{period}")],
            Cmo { period } => vec![format!("cmo_{period}")],
            Natr { period } => vec![format!("natr_{period}")],
            Bollinger { period, .. } => vec![format!("bb_pctb_{period}"), format!("bb_width_{period}")],
            CloseVol { period } => vec![format!("vol_cc_{period}")],
            Parkinson { period } => vec![format!("vol_parkinson_{period}")],
            GarmanKlass { period } => vec![format!("vol_gk_{period}")],
            RogersSatchell { period } => vec![format!("vol_rs_{period}")],
            VolRatio { short, long } => vec![format!("vol_ratio_{short}_{long}")],
            Moments { period } => vec![format!("skew_{period}"), format!("kurt_{period}")],
            ObvSlope { period } => vec![format!("obv_slope_{period}")],
            Mfi { period } => vec![format!("mfi_{period}")],
            VwapDist { period } => vec![format!("vwap_dist_{period}")],
            VolumeZ { period } => vec![format!("volume_z_{period}")],
            Candle => ["body", "upper_shadow", "lower_shadow", "range_pct", "gap"].map(String::from).to_vec(),
            Calendar => ["hour_sin", "hour_cos", "dow_sin", "dow_cos"].map(String::from).to_vec(),
            Window { of, length } => of
                .iter()
                .flat_map(Feature::columns)
                .flat_map(|c| (0..*length).map(move |k| format!("{c}_lag{k}")))
                .collect(),
        }
    }

    /// Bars of history needed before the first valid value (the TA-Lib lookback).
    pub fn lookback(&self) -> usize {
        use Feature::*;
        match self {
            Returns { lags } | LogReturns { lags } => lags.iter().copied().max().unwrap_or(0),
            SmaRatio { period } | EmaRatio { period } | LinregSlope { period } | Willr { period } => period - 1,
            Cci { period } | Bollinger { period, .. } | Parkinson { period } | GarmanKlass { period } => period - 1,
            RogersSatchell { period } | ObvSlope { period } | VwapDist { period } | VolumeZ { period } => period - 1,
            Macd { fast, slow, signal } => (*fast).max(*slow) - 1 + signal - 1,
            Adx { period } => 2 * period - 1,
            Rsi { period } | Roc { period } | Mom { period } | Cmo { period } | Natr { period } => *period,
            Mfi { period } | CloseVol { period } | Moments { period } => *period,
            Stoch { k, slow_k, slow_d } => k - 1 + slow_k - 1 + slow_d - 1,
            VolRatio { short, long } => (*short).max(*long),
            Candle => 1,
            Calendar => 0,
            Window { of, length } => of.iter().map(Feature::lookback).max().unwrap_or(0) + length.saturating_sub(1),
        }
    }

    /// Check parameters; `at` is the item's position for error messages.
    pub fn validate(&self, at: usize) -> Result<()> {
        use Feature::*;
        let need = |name: &str, v: usize, min: usize| {
            if v < min {
                Err(Error::param(format!("features[{at}].{name}"), format!("must be >= {min}, got {v}")))
            } else {
                Ok(())
            }
        };
        match self {
            Returns { lags } | LogReturns { lags } => {
                if lags.is_empty() {
                    return Err(Error::param(format!("features[{at}].lags"), "must not be empty"));
                }
                lags.iter().try_for_each(|&l| need("lags", l, 1))
            }
            SmaRatio { period } | EmaRatio { period } | Roc { period } | Mom { period } => need("period", *period, 1),
            Macd { fast, slow, signal } => {
                need("fast", *fast, 2)?;
                need("slow", *slow, 2)?;
                need("signal", *signal, 1)
            }
            Stoch { k, slow_k, slow_d } => {
                need("k", *k, 1)?;
                need("slow_k", *slow_k, 1)?;
                need("slow_d", *slow_d, 1)
            }
            Bollinger { period, nbdev } => {
                need("period", *period, 2)?;
                if !nbdev.is_finite() || *nbdev <= 0.0 {
                    return Err(Error::param(format!("features[{at}].nbdev"), format!("must be > 0, got {nbdev}")));
                }
                Ok(())
            }
            VolRatio { short, long } => {
                need("short", *short, 2)?;
                need("long", *long, 2)
            }
            Moments { period } => need("period", *period, 3),
            Adx { period } | LinregSlope { period } | Rsi { period } | Willr { period } | Cci { period } => {
                need("period", *period, 2)
            }
            Cmo { period } | Natr { period } | CloseVol { period } | Parkinson { period } => need("period", *period, 2),
            GarmanKlass { period } | RogersSatchell { period } | ObvSlope { period } | Mfi { period } => {
                need("period", *period, 2)
            }
            VwapDist { period } | VolumeZ { period } => need("period", *period, 2),
            Candle | Calendar => Ok(()),
            Window { of, length } => {
                need("length", *length, 1)?;
                if of.is_empty() {
                    return Err(Error::param(format!("features[{at}].of"), "must list at least one channel"));
                }
                for f in of {
                    if matches!(f, Window { .. }) {
                        return Err(Error::param(format!("features[{at}].of"), "a window cannot hold a window"));
                    }
                    f.validate(at)?;
                }
                Ok(())
            }
        }
    }

    /// Compute this item's columns over `bars` (NaN during warm-up).
    pub fn compute(&self, bars: &Bars) -> Vec<Vec<f64>> {
        use Feature::*;
        let (o, h, l, c, v) = (bars.open(), bars.high(), bars.low(), bars.close(), bars.volume());
        // Derived columns are computed in place in the kernel's output: no second allocation.
        let per_close = |mut x: Vec<f64>| {
            x.iter_mut().zip(c).for_each(|(a, b)| *a /= b);
            x
        };
        match self {
            Returns { lags } => lags.iter().map(|&p| mom::rocp(c, p)).collect(),
            LogReturns { lags } => lags.iter().map(|&p| mom::log_return(c, p)).collect(),
            SmaRatio { period } => vec![trend::price_over(c, trend::sma(c, *period))],
            EmaRatio { period } => vec![trend::price_over(c, trend::ema(c, *period))],
            Macd { fast, slow, signal } => trend::macd(c, *fast, *slow, *signal).into_iter().map(per_close).collect(),
            Adx { period } => trend::adx_di(h, l, c, *period).into(),
            LinregSlope { period } => vec![per_close(trend::linreg_slope(c, *period))],
            Rsi { period } => vec![mom::rsi(c, *period)],
            Stoch { k, slow_k, slow_d } => mom::stoch(h, l, c, *k, *slow_k, *slow_d).into(),
            Willr { period } => vec![mom::willr(h, l, c, *period)],
            Cci { period } => vec![mom::cci(h, l, c, *period)],
            Roc { period } => vec![mom::roc(c, *period)],
            Mom { period } => vec![per_close(mom::mom(c, *period))],
            Cmo { period } => vec![mom::cmo(c, *period)],
            Natr { period } => vec![vol::natr(h, l, c, *period)],
            Bollinger { period, nbdev } => {
                // %B overwrites the upper band and width the lower one, after both are read.
                let [mut up, mid, mut lo] = vol::bbands(c, *period, *nbdev);
                for i in 0..c.len() {
                    let w = up[i] - lo[i];
                    let pctb = if w > 0.0 {
                        (c[i] - lo[i]) / w
                    } else if w.is_nan() {
                        f64::NAN
                    } else {
                        0.5
                    };
                    (up[i], lo[i]) = (pctb, w / mid[i]);
                }
                vec![up, lo]
            }
            CloseVol { period } => vec![vol::close_vol(c, *period)],
            Parkinson { period } => vec![vol::parkinson(h, l, *period)],
            GarmanKlass { period } => vec![vol::garman_klass(o, h, l, c, *period)],
            RogersSatchell { period } => vec![vol::rogers_satchell(o, h, l, c, *period)],
            VolRatio { short, long } => {
                let (mut a, b) = (vol::close_vol(c, *short), vol::close_vol(c, *long));
                for (x, &y) in a.iter_mut().zip(&b) {
                    *x = if x.is_nan() || y.is_nan() {
                        f64::NAN
                    } else if y > 0.0 {
                        *x / y
                    } else {
                        1.0
                    };
                }
                vec![a]
            }
            Moments { period } => vol::skew_kurt(c, *period).into(),
            ObvSlope { period } => vec![vlm::obv_slope(c, v, *period)],
            Mfi { period } => vec![vlm::mfi(h, l, c, v, *period)],
            VwapDist { period } => vec![vlm::vwap_distance(h, l, c, v, *period)],
            VolumeZ { period } => vec![vlm::volume_z(v, *period)],
            Candle => {
                let [b, u, lw] = cal::candle_shape(o, h, l, c);
                vec![b, u, lw, cal::range_pct(h, l, c), cal::gap(o, c)]
            }
            Calendar => cal::calendar(bars.timestamps()).into(),
            Window { of, length } => {
                let shift = |col: &Vec<f64>, k: usize| -> Vec<f64> {
                    (0..col.len()).map(|t| if t >= k { col[t - k] } else { f64::NAN }).collect()
                };
                of.iter()
                    .flat_map(|f| f.compute(bars))
                    .flat_map(|col| (0..*length).map(|k| shift(&col, k)).collect::<Vec<_>>())
                    .collect()
            }
        }
    }
}

impl FeatureSpec {
    /// Parse a TOML spec (unknown keys are errors); `source` names it in messages.
    pub fn from_toml_str(s: &str, source: &str) -> Result<Self> {
        let spec: FeatureSpec = crate::config::parse_toml(s, source)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Read a spec from a `.toml` or `.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let spec: FeatureSpec = crate::config::read_document(path.as_ref())?;
        spec.validate()?;
        Ok(spec)
    }

    /// Serialise to TOML (the form stored with model versions).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a FeatureSpec always serialises")
    }

    /// Check every item and that column names are unique.
    pub fn validate(&self) -> Result<()> {
        if self.features.is_empty() {
            return Err(Error::param("features", "must list at least one feature"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.features.iter().enumerate() {
            f.validate(i)?;
            for c in f.columns() {
                if !seen.insert(c.clone()) {
                    return Err(Error::param(format!("features[{i}]"), format!("duplicate column `{c}`")));
                }
            }
        }
        Ok(())
    }

    /// All column names, in output order.
    pub fn columns(&self) -> Vec<String> {
        self.features.iter().flat_map(Feature::columns).collect()
    }

    /// The longest lookback of any item: rows before it are warm-up, and it is the
    /// minimum embargo after a test block.
    pub fn max_lookback(&self) -> usize {
        self.features.iter().map(Feature::lookback).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_has_at_least_fifty_unique_columns() {
        let s = FeatureSpec::default();
        s.validate().unwrap();
        assert!(s.columns().len() >= 50, "{}", s.columns().len());
        assert_eq!(s.max_lookback(), 99);
    }

    #[test]
    fn window_lags_its_channels() {
        let close: Vec<f64> = (0..50).map(|i| 100.0 + (i as f64 * 0.7).sin() * 3.0 + i as f64 * 0.1).collect();
        let bars = crate::data::Bars::new(
            "X",
            crate::data::BarColumns {
                ts: (0..50).map(|i| 1_600_000_000_000 + i * 60_000).collect(),
                open: close.clone(),
                high: close.iter().map(|c| c * 1.001).collect(),
                low: close.iter().map(|c| c * 0.999).collect(),
                close,
                volume: vec![1.0; 50],
            },
        )
        .unwrap();
        let f =
            Feature::Window { of: vec![Feature::LogReturns { lags: vec![1] }, Feature::Rsi { period: 5 }], length: 4 };
        f.validate(0).unwrap();
        assert_eq!(f.columns()[..2], ["logret_1_lag0".to_string(), "logret_1_lag1".to_string()]);
        assert_eq!(f.columns().len(), 8);
        assert_eq!(f.lookback(), 5 + 3);
        let cols = f.compute(&bars);
        let base = Feature::LogReturns { lags: vec![1] }.compute(&bars).remove(0);
        for k in 0..4 {
            for t in 10..50 {
                assert_eq!(cols[k][t].to_bits(), base[t - k].to_bits());
            }
        }
        let nested = Feature::Window { of: vec![f.clone()], length: 2 };
        assert!(nested.validate(3).unwrap_err().to_string().contains("features[3].of"));
        assert!(Feature::Window { of: vec![], length: 2 }.validate(0).is_err());
        assert!(Feature::Window { of: vec![Feature::Candle], length: 0 }.validate(0).is_err());
    }

    #[test]
    fn toml_round_trip_and_unknown_keys_rejected() {
        let s = FeatureSpec::default();
        let back = FeatureSpec::from_toml_str(&s.to_toml(), "t").unwrap();
        assert_eq!(s, back);
        let bad = "[[features]]\nkind = \"rsi\"\nperiod = 14\nsmoothing = 2\n";
        let e = FeatureSpec::from_toml_str(bad, "bad.toml").unwrap_err();
        assert!(e.to_string().contains("smoothing"), "{e}");
        let bad = "[[features]]\nkind = \"rsi\"\nperiod = 14\n[extra]\n";
        assert!(FeatureSpec::from_toml_str(bad, "bad.toml").is_err());
        let bad = "[[features]]\nkind = \"nope\"\n";
        assert!(FeatureSpec::from_toml_str(bad, "bad.toml").is_err());
    }

    #[test]
    fn invalid_parameters_name_the_field() {
        let e = FeatureSpec::from_toml_str("[[features]]\nkind = \"rsi\"\nperiod = 1\n", "t").unwrap_err();
        assert!(e.to_string().contains("features[0].period"), "{e}");
        let dup = "[[features]]\nkind = \"rsi\"\nperiod = 14\n[[features]]\nkind = \"rsi\"\nperiod = 14\n";
        assert!(FeatureSpec::from_toml_str(dup, "t").unwrap_err().to_string().contains("duplicate"));
    }
}
