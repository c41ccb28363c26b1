//! Supervised targets with their end time `t1` (the purging input of cross-validation).
//!
//! * [`LabelSpec::FutureReturn`]: `close[t+h] / close[t] − 1`, `t1 = ts[t+h]`.
//! * [`LabelSpec::Direction`]: the future return thresholded into 2 classes (`1` up when
//!   `r > threshold`, else `0`) or 3 classes (`0` down `r < −threshold`, `1` flat, `2` up).
//! * [`LabelSpec::TripleBarrier`] (López de Prado): from bar t, barriers at
//!   `close[t]·exp(±m·σ_t·√h)` with σ_t the sample std of the last `vol_window` one-bar log
//!   returns (known at t); the first of bars t+1..t+h whose high reaches the upper barrier
//!   gives class `2`, whose low reaches the lower barrier gives class `0` (a bar touching
//!   both counts as the stop — the pessimistic reading); neither gives `1` (timeout).
//!   `t1` is the touching bar's time, or `ts[t+h]` on timeout.
//!
//! Rows whose horizon runs past the data (or whose σ is still warming up) have no label:
//! value NaN and `t1 = i64::MAX`.

use crate::data::Bars;
use crate::error::{Error, Result};
use crate::features::volatility::close_vol;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

fn default_horizon() -> usize {
    12
}
fn default_classes() -> u8 {
    2
}
fn default_barrier() -> f64 {
    2.0
}
fn default_vol_window() -> usize {
    20
}

/// Which target to compute; serde-tagged by `kind`, with the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LabelSpec {
    /// Simple return over `horizon` bars.
    FutureReturn {
        /// Bars ahead (default 12).
        #[serde(default = "default_horizon")]
        horizon: usize,
    },
    /// Up/down (2 classes) or up/flat/down (3 classes) over `horizon` bars.
    Direction {
        /// Bars ahead (default 12).
        #[serde(default = "default_horizon")]
        horizon: usize,
        /// Return threshold (default 0; must be > 0 for 3 classes).
        #[serde(default)]
        threshold: f64,
        /// 2 or 3.
        #[serde(default = "default_classes")]
        classes: u8,
    },
    /// Take-profit / stop-loss / timeout barriers scaled by rolling volatility.
    TripleBarrier {
        /// Timeout in bars (default 12).
        #[serde(default = "default_horizon")]
        horizon: usize,
        /// Take-profit multiple of σ·√h (default 2).
        #[serde(default = "default_barrier")]
        take_profit: f64,
        /// Stop-loss multiple of σ·√h (default 2).
        #[serde(default = "default_barrier")]
        stop_loss: f64,
        /// Window of the volatility estimate (default 20).
        #[serde(default = "default_vol_window")]
        vol_window: usize,
    },
}

impl Default for LabelSpec {
    fn default() -> Self {
        LabelSpec::FutureReturn { horizon: default_horizon() }
    }
}

/// Label values and end times for each bar of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// Target per bar (NaN where unavailable).
    pub value: Vec<f64>,
    /// End of each label's information window, UTC epoch ms (`i64::MAX` where unavailable).
    pub t1: Vec<i64>,
}

impl LabelSpec {
    /// Column name used in outputs (`future_return_12`, `direction_12`, `triple_barrier_12`).
    pub fn name(&self) -> String {
        match self {
            LabelSpec::FutureReturn { horizon } => format!("future_return_{horizon}"),
            LabelSpec::Direction { horizon, .. } => format!("direction_{horizon}"),
            LabelSpec::TripleBarrier { horizon, .. } => format!("triple_barrier_{horizon}"),
        }
    }

    /// Number of classes for classification labels, `None` for regression.
    pub fn classes(&self) -> Option<u8> {
        match self {
            LabelSpec::FutureReturn { .. } => None,
            LabelSpec::Direction { classes, .. } => Some(*classes),
            LabelSpec::TripleBarrier { .. } => Some(3),
        }
    }

    /// The horizon in bars.
    pub fn horizon(&self) -> usize {
        match self {
            LabelSpec::FutureReturn { horizon }
            | LabelSpec::Direction { horizon, .. }
            | LabelSpec::TripleBarrier { horizon, .. } => *horizon,
        }
    }

    /// Check parameters, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.horizon() == 0 {
            return Err(Error::param("label.horizon", "must be >= 1"));
        }
        match self {
            LabelSpec::FutureReturn { .. } => Ok(()),
            LabelSpec::Direction { threshold, classes, .. } => {
                if !threshold.is_finite() || *threshold < 0.0 {
                    return Err(Error::param("label.threshold", format!("must be finite and >= 0, got {threshold}")));
                }
                match classes {
                    2 => Ok(()),
                    3 if *threshold > 0.0 => Ok(()),
                    3 => Err(Error::param("label.threshold", "must be > 0 for 3 classes (else `flat` is empty)")),
                    c => Err(Error::param("label.classes", format!("must be 2 or 3, got {c}"))),
                }
            }
            LabelSpec::TripleBarrier { take_profit, stop_loss, vol_window, .. } => {
                for (f, v) in [("label.take_profit", take_profit), ("label.stop_loss", stop_loss)] {
                    if !v.is_finite() || *v <= 0.0 {
                        return Err(Error::param(f, format!("must be > 0, got {v}")));
                    }
                }
                if *vol_window < 2 {
                    return Err(Error::param("label.vol_window", format!("must be >= 2, got {vol_window}")));
                }
                Ok(())
            }
        }
    }

    /// Compute labels for every bar.
    pub fn compute(&self, bars: &Bars) -> Result<Labels> {
        self.validate()?;
        let (c, ts) = (bars.close(), bars.timestamps());
        let n = c.len();
        let h = self.horizon();
        let mut value = vec![f64::NAN; n];
        let mut t1 = vec![i64::MAX; n];
        match self {
            LabelSpec::FutureReturn { .. } | LabelSpec::Direction { .. } => {
                for t in 0..n.saturating_sub(h) {
                    let r = c[t + h] / c[t] - 1.0;
                    value[t] = match self {
                        LabelSpec::Direction { threshold, classes: 2, .. } => f64::from(u8::from(r > *threshold)),
                        LabelSpec::Direction { threshold, .. } => {
                            if r > *threshold {
                                2.0
                            } else if r < -threshold {
                                0.0
                            } else {
                                1.0
                            }
                        }
                        _ => r,
                    };
                    t1[t] = ts[t + h];
                }
            }
            LabelSpec::TripleBarrier { take_profit, stop_loss, vol_window, .. } => {
                let sigma = close_vol(c, *vol_window);
                let (hi, lo) = (bars.high(), bars.low());
                let sqrt_h = (h as f64).sqrt();
                for t in 0..n.saturating_sub(h) {
                    let s = sigma[t];
                    if s.is_nan() {
                        continue;
                    }
                    let up = c[t] * (take_profit * s * sqrt_h).exp();
                    let down = c[t] * (-stop_loss * s * sqrt_h).exp();
                    let mut label = (1.0, ts[t + h]);
                    for j in t + 1..=t + h {
                        if lo[j] <= down {
                            label = (0.0, ts[j]);
                            break;
                        }
                        if hi[j] >= up {
                            label = (2.0, ts[j]);
                            break;
                        }
                    }
                    (value[t], t1[t]) = label;
                }
            }
        }
        Ok(Labels { value, t1 })
    }
}

impl FromStr for LabelSpec {
    type Err = Error;

    /// `future_return[:h]`, `direction[:h[:threshold[:classes]]]`,
    /// `triple_barrier[:h[:take_profit[:stop_loss[:vol_window]]]]`.
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let bad = |what: &str, v: &str| Error::param(format!("label.{what}"), format!("cannot parse {v:?} in {s:?}"));
        let usize_at = |i: usize, what: &str, d: usize| -> Result<usize> {
            args.get(i).map_or(Ok(d), |v| v.parse().map_err(|_| bad(what, v)))
        };
        let f64_at = |i: usize, what: &str, d: f64| -> Result<f64> {
            args.get(i).map_or(Ok(d), |v| v.parse().map_err(|_| bad(what, v)))
        };
        let max_args = match kind {
            "future_return" => 1,
            "direction" => 3,
            "triple_barrier" => 4,
            _ => {
                return Err(Error::param(
                    "label",
                    format!("unknown label {kind:?} (expected future_return, direction or triple_barrier)"),
                ));
            }
        };
        if args.len() > max_args {
            return Err(Error::param("label", format!("too many parameters in {s:?}")));
        }
        let horizon = usize_at(0, "horizon", default_horizon())?;
        let spec = match kind {
            "future_return" => LabelSpec::FutureReturn { horizon },
            "direction" => LabelSpec::Direction {
                horizon,
                threshold: f64_at(1, "threshold", 0.0)?,
                classes: usize_at(2, "classes", 2)?.try_into().map_err(|_| bad("classes", args[2]))?,
            },
            _ => LabelSpec::TripleBarrier {
                horizon,
                take_profit: f64_at(1, "take_profit", default_barrier())?,
                stop_loss: f64_at(2, "stop_loss", default_barrier())?,
                vol_window: usize_at(3, "vol_window", default_vol_window())?,
            },
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for LabelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelSpec::FutureReturn { horizon } => write!(f, "future_return:{horizon}"),
            LabelSpec::Direction { horizon, threshold, classes } => {
                write!(f, "direction:{horizon}:{threshold}:{classes}")
            }
            LabelSpec::TripleBarrier { horizon, take_profit, stop_loss, vol_window } => {
                write!(f, "triple_barrier:{horizon}:{take_profit}:{stop_loss}:{vol_window}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::BarColumns;

    fn bars(close: &[f64]) -> Bars {
        let n = close.len();
        Bars::new(
            "T",
            BarColumns {
                ts: (0..n as i64).map(|i| 1_600_000_000_000 + i * 60_000).collect(),
                open: close.to_vec(),
                high: close.iter().map(|c| c * 1.001).collect(),
                low: close.iter().map(|c| c * 0.999).collect(),
                close: close.to_vec(),
                volume: vec![1.0; n],
            },
        )
        .unwrap()
    }

    #[test]
    fn future_return_and_t1() {
        let b = bars(&[100.0, 110.0, 121.0, 100.0]);
        let l = LabelSpec::FutureReturn { horizon: 2 }.compute(&b).unwrap();
        assert!((l.value[0] - 0.21).abs() < 1e-12);
        assert_eq!(l.t1[0], b.timestamps()[2]);
        assert!(l.value[2].is_nan() && l.t1[2] == i64::MAX);
    }

    #[test]
    fn direction_two_and_three_classes() {
        let b = bars(&[100.0, 101.0, 100.0, 100.05, 99.0]);
        let two: LabelSpec = "direction:1".parse().unwrap();
        assert_eq!(&two.compute(&b).unwrap().value[..4], &[1.0, 0.0, 1.0, 0.0]);
        let three: LabelSpec = "direction:1:0.001:3".parse().unwrap();
        assert_eq!(&three.compute(&b).unwrap().value[..4], &[2.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn triple_barrier_hits_and_timeouts() {
        // A quiet window sets sigma, then a jump up, then a crash.
        let mut c: Vec<f64> = (0..30).map(|i| 100.0 * (1.0 + 0.001 * ((i % 2) as f64 - 0.5))).collect();
        c.extend([100.0, 120.0, 120.0, 120.0, 80.0, 80.0, 80.0]);
        let b = bars(&c);
        let spec = LabelSpec::TripleBarrier { horizon: 3, take_profit: 1.0, stop_loss: 1.0, vol_window: 10 };
        let l = spec.compute(&b).unwrap();
        assert_eq!(l.value[30], 2.0);
        assert_eq!(l.t1[30], b.timestamps()[31]);
        assert_eq!(l.value[31], 0.0); // 120 -> 80 within 3 bars
        assert!(l.value[5].is_nan() || l.value[5] == 1.0 || l.value[5] == 0.0 || l.value[5] == 2.0);
        assert!(l.value[..9].iter().all(|v| v.is_nan()), "sigma warm-up has no label");
    }

    #[test]
    fn parse_errors_are_typed() {
        assert!("future_return:x".parse::<LabelSpec>().is_err());
        assert!("direction:12:0:3".parse::<LabelSpec>().is_err());
        assert!("nope".parse::<LabelSpec>().is_err());
        assert!("future_return:1:2".parse::<LabelSpec>().is_err());
        let s: LabelSpec = "triple_barrier:24:2:1:30".parse().unwrap();
        assert_eq!(s.to_string().parse::<LabelSpec>().unwrap(), s);
    }
}
