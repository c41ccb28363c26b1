//! Validated OHLCV candles for one symbol, stored as a struct of arrays.
//!
//! [`Bars`] is the only way candles enter the crate. Construction validates every row and
//! rejects (never repairs) unsorted or duplicate timestamps, NaN/inf, non-positive prices,
//! `high < max(open, close)`, `low > min(open, close)` and negative volume, with an error
//! naming the source, row and column. [`Bars::sort_and_dedup`] is the explicit, reported
//! repair path for users who prefer it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Label used as `source` for bars built in memory.
pub const MEMORY_SOURCE: &str = "<memory>";

/// Candles of one symbol: timestamps in UTC milliseconds, prices and volume as `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bars {
    symbol: String,
    ts: Vec<i64>,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
}

/// The raw columns of one symbol before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarColumns {
    /// Bar open times, UTC epoch milliseconds.
    pub ts: Vec<i64>,
    /// Open prices.
    pub open: Vec<f64>,
    /// High prices.
    pub high: Vec<f64>,
    /// Low prices.
    pub low: Vec<f64>,
    /// Close prices.
    pub close: Vec<f64>,
    /// Traded volume (base units); zero is allowed.
    pub volume: Vec<f64>,
}

/// What [`Bars::sort_and_dedup`] changed, so a repair is never silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// Rows that were not already in ascending timestamp order.
    pub rows_moved: usize,
    /// Rows dropped because an earlier row (in input order) had the same timestamp.
    pub duplicates_dropped: usize,
}

impl BarColumns {
    /// Number of rows (the timestamp column's length).
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The rows at `idx`, in that order (indices must be in range).
    pub fn select(&self, idx: &[usize]) -> BarColumns {
        let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        BarColumns {
            ts: idx.iter().map(|&i| self.ts[i]).collect(),
            open: pick(&self.open),
            high: pick(&self.high),
            low: pick(&self.low),
            close: pick(&self.close),
            volume: pick(&self.volume),
        }
    }

    fn check_lengths(&self) -> Result<()> {
        let n = self.ts.len();
        for (name, len) in [
            ("open", self.open.len()),
            ("high", self.high.len()),
            ("low", self.low.len()),
            ("close", self.close.len()),
            ("volume", self.volume.len()),
        ] {
            if len != n {
                return Err(Error::Shape { what: format!("bar column `{name}`"), expected: n, got: len });
            }
        }
        Ok(())
    }
}

impl Bars {
    /// Validate columns built in memory; errors name the source `<memory>`.
    pub fn new(symbol: impl Into<String>, cols: BarColumns) -> Result<Self> {
        Self::from_columns(symbol, cols, MEMORY_SOURCE, None)
    }

    /// Validate columns, naming `source` in errors. `rows[i]` is the 1-based row number of
    /// element `i` in the source (when the source held several symbols); `None` means `i + 1`.
    pub fn from_columns(
        symbol: impl Into<String>,
        cols: BarColumns,
        source: &str,
        rows: Option<&[usize]>,
    ) -> Result<Self> {
        cols.check_lengths()?;
        if cols.is_empty() {
            return Err(Error::Empty { source_name: source.to_string() });
        }
        validate(&cols, source, rows)?;
        let BarColumns { ts, open, high, low, close, volume } = cols;
        Ok(Bars { symbol: symbol.into(), ts, open, high, low, close, volume })
    }

    /// Explicit repair: sort rows by timestamp (stable) and keep the first row of each
    /// duplicated timestamp, then validate as [`Bars::new`] does. The report says what moved.
    pub fn sort_and_dedup(symbol: impl Into<String>, cols: BarColumns) -> Result<(Self, RepairReport)> {
        cols.check_lengths()?;
        let n = cols.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| cols.ts[i]);
        let rows_moved = order.iter().enumerate().filter(|(pos, i)| *pos != **i).count();
        let mut keep = Vec::with_capacity(n);
        for &i in &order {
            if keep.last().is_none_or(|&j: &usize| cols.ts[j] != cols.ts[i]) {
                keep.push(i);
            }
        }
        let duplicates_dropped = n - keep.len();
        let repaired = cols.select(&keep);
        // Row numbers after repair refer to the original input so errors stay traceable.
        let rows: Vec<usize> = keep.iter().map(|&i| i + 1).collect();
        let bars = Self::from_columns(symbol, repaired, MEMORY_SOURCE, Some(&rows))?;
        Ok((bars, RepairReport { rows_moved, duplicates_dropped }))
    }

    /// The symbol these bars belong to.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.ts.len()
    }
    /// Always false for a constructed value (empty input is rejected); kept for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
    /// Bar open times, UTC epoch milliseconds, strictly increasing.
    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }
    /// Open prices.
    pub fn open(&self) -> &[f64] {
        &self.open
    }
    /// High prices.
    pub fn high(&self) -> &[f64] {
        &self.high
    }
    /// Low prices.
    pub fn low(&self) -> &[f64] {
        &self.low
    }
    /// Close prices.
    pub fn close(&self) -> &[f64] {
        &self.close
    }
    /// Volumes.
    pub fn volume(&self) -> &[f64] {
        &self.volume
    }

    /// The bars in `start..end` as a new value (already valid, so not re-checked).
    pub fn slice(&self, start: usize, end: usize) -> Result<Bars> {
        if start >= end || end > self.len() {
            return Err(Error::param("range", format!("{start}..{end} is empty or exceeds {} bars", self.len())));
        }
        Ok(Bars {
            symbol: self.symbol.clone(),
            ts: self.ts[start..end].to_vec(),
            open: self.open[start..end].to_vec(),
            high: self.high[start..end].to_vec(),
            low: self.low[start..end].to_vec(),
            close: self.close[start..end].to_vec(),
            volume: self.volume[start..end].to_vec(),
        })
    }

    /// Return the same bars under another symbol name.
    pub fn with_symbol(mut self, symbol: impl Into<String>) -> Self {
        self.symbol = symbol.into();
        self
    }
}

fn validate(c: &BarColumns, source: &str, rows: Option<&[usize]>) -> Result<()> {
    let row_of = |i: usize| rows.map_or(i + 1, |r| r[i]);
    let bad = |i: usize, column: &str, reason: String| Error::InvalidBar {
        source_name: source.to_string(),
        row: row_of(i),
        column: column.to_string(),
        reason,
    };
    for i in 0..c.len() {
        if i > 0 && c.ts[i] <= c.ts[i - 1] {
            let what = if c.ts[i] == c.ts[i - 1] { "duplicate" } else { "unsorted" };
            return Err(bad(
                i,
                "timestamp",
                format!(
                    "{what} timestamp {} (previous row {} has {}); use sort_and_dedup / --repair to fix explicitly",
                    fmt_ts(c.ts[i]),
                    row_of(i - 1),
                    fmt_ts(c.ts[i - 1])
                ),
            ));
        }
        for (name, v) in [("open", c.open[i]), ("high", c.high[i]), ("low", c.low[i]), ("close", c.close[i])] {
            if !v.is_finite() {
                return Err(bad(i, name, format!("non-finite price {v}")));
            }
            if v <= 0.0 {
                return Err(bad(i, name, format!("non-positive price {v}")));
            }
        }
        let (o, h, l, cl, v) = (c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i]);
        if !v.is_finite() {
            return Err(bad(i, "volume", format!("non-finite volume {v}")));
        }
        if v < 0.0 {
            return Err(bad(i, "volume", format!("negative volume {v}")));
        }
        if h < o.max(cl) {
            return Err(bad(i, "high", format!("high {h} is below max(open {o}, close {cl})")));
        }
        if l > o.min(cl) {
            return Err(bad(i, "low", format!("low {l} is above min(open {o}, close {cl})")));
        }
    }
    Ok(())
}

/// Format epoch milliseconds as ISO-8601 UTC for messages and output.
pub fn fmt_ts(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| format!("{ms}ms"), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(n: usize) -> BarColumns {
        BarColumns {
            ts: (0..n as i64).map(|i| 1_600_000_000_000 + i * 3_600_000).collect(),
            open: vec![10.0; n],
            high: vec![11.0; n],
            low: vec![9.0; n],
            close: vec![10.5; n],
            volume: vec![1.0; n],
        }
    }

    fn err_of(c: BarColumns) -> (usize, String) {
        match Bars::new("X", c).unwrap_err() {
            Error::InvalidBar { row, column, .. } => (row, column),
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn accepts_valid() {
        let b = Bars::new("X", cols(5)).unwrap();
        assert_eq!(b.len(), 5);
        assert_eq!(b.symbol(), "X");
    }

    #[test]
    fn rejects_each_defect_with_row_and_column() {
        let mut c = cols(5);
        c.ts[3] = c.ts[2];
        assert_eq!(err_of(c), (4, "timestamp".into()));
        let mut c = cols(5);
        c.ts.swap(1, 2);
        assert_eq!(err_of(c), (3, "timestamp".into()));
        let mut c = cols(5);
        c.close[2] = f64::NAN;
        assert_eq!(err_of(c), (3, "close".into()));
        let mut c = cols(5);
        c.open[0] = f64::INFINITY;
        assert_eq!(err_of(c), (1, "open".into()));
        let mut c = cols(5);
        c.low[4] = 0.0;
        assert_eq!(err_of(c), (5, "low".into()));
        let mut c = cols(5);
        c.high[1] = 10.2;
        assert_eq!(err_of(c), (2, "high".into()));
        let mut c = cols(5);
        c.low[1] = 10.1;
        assert_eq!(err_of(c), (2, "low".into()));
        let mut c = cols(5);
        c.volume[1] = -1.0;
        assert_eq!(err_of(c), (2, "volume".into()));
        let mut c = cols(5);
        c.volume[1] = f64::NAN;
        assert_eq!(err_of(c), (2, "volume".into()));
    }

    #[test]
    fn rejects_empty_and_ragged() {
        assert!(matches!(Bars::new("X", BarColumns::default()), Err(Error::Empty { .. })));
        let mut c = cols(3);
        c.volume.pop();
        assert!(matches!(Bars::new("X", c), Err(Error::Shape { .. })));
    }

    #[test]
    fn sort_and_dedup_reports_what_it_changed() {
        let mut c = cols(5);
        c.ts.swap(0, 1);
        c.ts[4] = c.ts[3];
        c.close[4] = 10.9;
        let (b, rep) = Bars::sort_and_dedup("X", c).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(rep.duplicates_dropped, 1);
        assert_eq!(rep.rows_moved, 2);
        assert!(b.timestamps().windows(2).all(|w| w[0] < w[1]));
        // The first of the duplicated rows wins.
        assert_eq!(b.close()[3], 10.5);
    }
}
