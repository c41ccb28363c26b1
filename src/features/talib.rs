//! The TA-Lib-compatible outputs under their TA-Lib names (`RSI_14`, `MACDHIST_12_26_9`, …).
//!
//! One list shared by the reference test (which compares each output to values TA-Lib
//! computed) and the benchmarks (which time exactly these computations against TA-Lib), so
//! the two can never drift apart. The default [`super::FeatureSpec`] uses these kernels.

use super::{momentum as m, trend as t, volatility as v, volume as vo};
use crate::data::Bars;

/// Every TA-Lib-covered indicator output used by the default spec, named as TA-Lib's
/// function plus parameters, in a fixed order.
pub fn outputs(bars: &Bars) -> Vec<(String, Vec<f64>)> {
    let (h, l, c, vol) = (bars.high(), bars.low(), bars.close(), bars.volume());
    let mut out: Vec<(String, Vec<f64>)> = Vec::with_capacity(38);
    for p in [10, 20, 50, 100] {
        out.push((format!("SMA_{p}"), t::sma(c, p)));
    }
    for p in [12, 26, 50] {
        out.push((format!("EMA_{p}"), t::ema(c, p)));
    }
    let [line, sig, hist] = t::macd(c, 12, 26, 9);
    out.push(("MACD_12_26_9".into(), line));
    out.push(("MACDSIGNAL_12_26_9".into(), sig));
    out.push(("MACDHIST_12_26_9".into(), hist));
    let [adx, pdi, mdi] = t::adx_di(h, l, c, 14);
    out.push(("ADX_14".into(), adx));
    out.push(("PLUS_DI_14".into(), pdi));
    out.push(("MINUS_DI_14".into(), mdi));
    out.push(("LINEARREG_SLOPE_20".into(), t::linreg_slope(c, 20)));
    for p in [7, 14, 21] {
        out.push((format!("RSI_{p}"), m::rsi(c, p)));
    }
    let [k, d] = m::stoch(h, l, c, 14, 3, 3);
    out.push(("STOCH_K_14_3_3".into(), k));
    out.push(("STOCH_D_14_3_3".into(), d));
    out.push(("WILLR_14".into(), m::willr(h, l, c, 14)));
    out.push(("CCI_20".into(), m::cci(h, l, c, 20)));
    for p in [10, 20] {
        out.push((format!("ROC_{p}"), m::roc(c, p)));
    }
    for p in [1, 3, 6, 12, 24] {
        out.push((format!("ROCP_{p}"), m::rocp(c, p)));
    }
    out.push(("MOM_10".into(), m::mom(c, 10)));
    out.push(("CMO_14".into(), m::cmo(c, 14)));
    out.push(("ATR_14".into(), v::atr(h, l, c, 14)));
    for p in [14, 28] {
        out.push((format!("NATR_{p}"), v::natr(h, l, c, p)));
    }
    let [up, mid, lo] = v::bbands(c, 20, 2.0);
    out.push(("BBANDS_UPPER_20_2".into(), up));
    out.push(("BBANDS_MIDDLE_20_2".into(), mid));
    out.push(("BBANDS_LOWER_20_2".into(), lo));
    out.push(("MFI_14".into(), vo::mfi(h, l, c, vol, 14)));
    out.push(("OBV".into(), vo::obv(c, vol)));
    out
}
