//! Logs of closed trades, the input the agents learn from offline: CSV with a header, or JSONL
//! with one object per line, one trade per row. Columns (JSON keys):
//!
//! | column | value |
//! |---|---|
//! | `entry_time` | RFC 3339 (`2024-01-31T10:00:00Z`) |
//! | `symbol` | the instrument |
//! | `regime` | `TRENDING`, `RANGING`, `CHOPPY` or `VOLATILE` |
//! | `strategy` | `trend_follow`, `mean_reversion`, `breakout`, `range_bound` or `defensive` |
//! | `confidence` | the signal's confidence, in [0, 1] |
//! | `exposure` | share of capital already in positions when the trade opened, in [0, 1] |
//! | `size_multiplier` | 0.3, 0.5, 0.7, 1.0 or 1.5 |
//! | `leverage` | 1, 2, 3, 5, 7 or 10 |
//! | `take_profit` | `conservative`, `balanced` or `aggressive` |
//! | `stop_loss` | `tight`, `medium` or `wide` |
//! | `pnl_pct` | the trade's result, % of the margin committed (3 for +3 %) |
//! | `hours` | time in the trade (≥ 0) |
//! | `max_drawdown_pct` | the worst excursion against the trade, % (its sign is ignored) |
//! | `hit_tp`, `hit_sl` | whether it closed at its take-profit / stop-loss (`true`/`false`, `1`/`0`) |
//! | `volatility` | optional: `LOW`, `MEDIUM`, `HIGH` or `EXTREME` |
//! | `liquidity` | optional: `LOW`, `MEDIUM` or `HIGH` |
//!
//! Names are matched without regard to case. A missing optional level is empty (CSV) or
//! absent / `null` (JSONL); the replay then derives it from candles. Every bad value is an
//! [`Error::InvalidRecord`] naming the file, the row and the column.

use std::path::Path;

use crate::rl::meta_strategy::{Liquidity, Regime, Strategy, VolLevel, upper};
use crate::rl::qtable::Action;
use crate::rl::sizing::{LEVERAGES, SIZES, SizingAction, StopLoss, TakeProfit};
use crate::{Error, Result};
use jiff::Timestamp;

/// Every column, in the order [`write_csv`] writes them.
pub const COLUMNS: [&str; 17] = [
    "entry_time",
    "symbol",
    "regime",
    "strategy",
    "confidence",
    "exposure",
    "size_multiplier",
    "leverage",
    "take_profit",
    "stop_loss",
    "pnl_pct",
    "hours",
    "max_drawdown_pct",
    "hit_tp",
    "hit_sl",
    "volatility",
    "liquidity",
];

/// One closed trade.
#[derive(Clone, Debug, PartialEq)]
pub struct Trade {
    /// The 1-based data row (CSV) or line (JSONL) it was read from; 0 for a trade made in memory.
    pub row: usize,
    /// When it opened.
    pub entry_time: Timestamp,
    /// The instrument.
    pub symbol: String,
    /// The market regime when it opened.
    pub regime: Regime,
    /// The style that took it.
    pub strategy: Strategy,
    /// The signal's confidence.
    pub confidence: f64,
    /// Share of capital already in positions.
    pub exposure: f64,
    /// The sizing action taken.
    pub sizing: SizingAction,
    /// Result, % of the margin committed.
    pub pnl_pct: f64,
    /// Hours in the trade.
    pub hours: f64,
    /// Worst excursion against it, %.
    pub max_drawdown_pct: f64,
    /// Closed at its take-profit.
    pub hit_tp: bool,
    /// Closed at its stop-loss.
    pub hit_sl: bool,
    /// Volatility level, when the log gives it.
    pub volatility: Option<VolLevel>,
    /// Liquidity level, when the log gives it.
    pub liquidity: Option<Liquidity>,
}

impl Trade {
    /// When it closed (entry time plus its hours).
    pub fn exit_time(&self) -> Timestamp {
        let ms = (self.hours * 3_600_000.0).round() as i64;
        self.entry_time.checked_add(jiff::SignedDuration::from_millis(ms)).unwrap_or(self.entry_time)
    }
}

/// Read a trade log: JSONL when the name ends in `.jsonl` or `.json`, CSV otherwise.
pub fn read(path: &Path) -> Result<Vec<Trade>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let name = path.display().to_string();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext == "jsonl" || ext == "json" { parse_jsonl(&text, &name) } else { parse_csv(&text, &name) }
}

/// Parse CSV text with a header row (`source` names it in errors).
pub fn parse_csv(text: &str, source: &str) -> Result<Vec<Trade>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| record_err(source, 0, "header", e.to_string()))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    check_columns(&header, source)?;
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let row = i + 1;
        let rec = rec.map_err(|e| record_err(source, row, "row", e.to_string()))?;
        let get = |col: &str| {
            header.iter().position(|h| h == col).and_then(|j| rec.get(j)).filter(|v| !v.is_empty()).map(str::to_string)
        };
        out.push(parse_row(&get, source, row)?);
    }
    finish(out, source)
}

/// Parse JSONL text, one object per non-empty line (`source` names it in errors).
pub fn parse_jsonl(text: &str, source: &str) -> Result<Vec<Trade>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let row = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| record_err(source, row, "line", format!("not a JSON object: {e}")))?;
        let obj: serde_json::Map<String, serde_json::Value> =
            obj.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let keys: Vec<String> = obj.keys().cloned().collect();
        if let Some(k) = keys.iter().find(|k| !COLUMNS.contains(&k.as_str())) {
            return Err(record_err(source, row, k, "unknown column".into()));
        }
        let get = |col: &str| match obj.get(col) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(v) => Some(v.to_string()),
        };
        out.push(parse_row(&get, source, row)?);
    }
    finish(out, source)
}

/// Write `trades` as CSV with the [`COLUMNS`] header.
pub fn write_csv(path: &Path, trades: &[Trade]) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: path.to_path_buf(), source: e };
    let mut w = csv::Writer::from_path(path).map_err(|e| io(e.into()))?;
    w.write_record(COLUMNS).map_err(|e| io(e.into()))?;
    for t in trades {
        let lower = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
        w.write_record([
            t.entry_time.to_string(),
            t.symbol.clone(),
            upper(&t.regime),
            t.strategy.key(),
            format!("{}", t.confidence),
            format!("{}", t.exposure),
            format!("{}", t.sizing.size_multiplier()),
            format!("{}", t.sizing.leverage()),
            lower(&t.sizing.take_profit),
            lower(&t.sizing.stop_loss),
            format!("{}", t.pnl_pct),
            format!("{}", t.hours),
            format!("{}", t.max_drawdown_pct),
            t.hit_tp.to_string(),
            t.hit_sl.to_string(),
            t.volatility.map(|v| upper(&v)).unwrap_or_default(),
            t.liquidity.map(|v| upper(&v)).unwrap_or_default(),
        ])
        .map_err(|e| io(e.into()))?;
    }
    w.flush().map_err(io)
}

fn record_err(source: &str, row: usize, column: &str, reason: String) -> Error {
    Error::InvalidRecord { source_name: source.to_string(), row, column: column.to_string(), reason }
}

fn check_columns(header: &[String], source: &str) -> Result<()> {
    if let Some(h) = header.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(record_err(source, 0, h, "unknown column".into()));
    }
    for col in &COLUMNS[..15] {
        if !header.iter().any(|h| h == col) {
            return Err(Error::MissingColumn {
                source_name: source.to_string(),
                column: col.to_string(),
                found: header.join(", "),
            });
        }
    }
    Ok(())
}

/// The trades in time order (a log need not be sorted; equal times keep the file's order).
fn finish(mut out: Vec<Trade>, source: &str) -> Result<Vec<Trade>> {
    if out.is_empty() {
        return Err(Error::Empty { source_name: source.to_string() });
    }
    out.sort_by_key(|t| t.entry_time);
    Ok(out)
}

/// The variant of `all` whose name (as `name_of` writes it) is `s`, ignoring case.
fn one_of<T: Copy>(s: &str, all: &[T], name_of: impl Fn(&T) -> String) -> std::result::Result<T, String> {
    all.iter()
        .copied()
        .find(|v| name_of(v).eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("`{s}` is not one of {}", all.iter().map(name_of).collect::<Vec<_>>().join(", ")))
}

fn parse_row(get: &dyn Fn(&str) -> Option<String>, source: &str, row: usize) -> Result<Trade> {
    let err = |col: &str, reason: String| record_err(source, row, col, reason);
    let need = |col: &str| get(col).ok_or_else(|| err(col, "missing value".into()));
    let number = |col: &str| -> Result<f64> {
        let s = need(col)?;
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(err(col, format!("`{s}` is not a finite number"))),
        }
    };
    let unit = |col: &str| -> Result<f64> {
        let v = number(col)?;
        if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(err(col, format!("{v} is outside [0, 1]"))) }
    };
    let flag = |col: &str| -> Result<bool> {
        match need(col)?.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            s => Err(err(col, format!("`{s}` is not true/false"))),
        }
    };
    let lower = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    let entry = need("entry_time")?;
    let entry_time: Timestamp =
        entry.parse().map_err(|e| err("entry_time", format!("`{entry}` is not an RFC 3339 time: {e}")))?;
    let symbol = need("symbol")?;
    let regime = one_of(&need("regime")?, &Regime::ALL, upper).map_err(|r| err("regime", r))?;
    let strategy = one_of(&need("strategy")?, &Strategy::all(), Action::key).map_err(|r| err("strategy", r))?;
    let size = number("size_multiplier")?;
    let size = SIZES
        .iter()
        .position(|&s| s == size)
        .ok_or_else(|| err("size_multiplier", format!("{size} is not one of {SIZES:?}")))?;
    let lev = number("leverage")?;
    let leverage = LEVERAGES
        .iter()
        .position(|&l| l as f64 == lev)
        .ok_or_else(|| err("leverage", format!("{lev} is not one of {LEVERAGES:?}")))?;
    let take_profit =
        one_of(&need("take_profit")?, &TakeProfit::ALL, |v| lower(v)).map_err(|r| err("take_profit", r))?;
    let stop_loss = one_of(&need("stop_loss")?, &StopLoss::ALL, |v| lower(v)).map_err(|r| err("stop_loss", r))?;
    let hours = number("hours")?;
    if hours < 0.0 {
        return Err(err("hours", format!("{hours} is negative")));
    }
    let volatility =
        get("volatility").map(|s| one_of(&s, &VolLevel::ALL, upper)).transpose().map_err(|r| err("volatility", r))?;
    let liquidity =
        get("liquidity").map(|s| one_of(&s, &Liquidity::ALL, upper)).transpose().map_err(|r| err("liquidity", r))?;
    Ok(Trade {
        row,
        entry_time,
        symbol,
        regime,
        strategy,
        confidence: unit("confidence")?,
        exposure: unit("exposure")?,
        sizing: SizingAction { size: size as u8, leverage: leverage as u8, take_profit, stop_loss },
        pnl_pct: number("pnl_pct")?,
        hours,
        max_drawdown_pct: number("max_drawdown_pct")?,
        hit_tp: flag("hit_tp")?,
        hit_sl: flag("hit_sl")?,
        volatility,
        liquidity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "entry_time,symbol,regime,strategy,confidence,exposure,size_multiplier,leverage,take_profit,stop_loss,pnl_pct,hours,max_drawdown_pct,hit_tp,hit_sl,volatility,liquidity";
    const ROW: &str =
        "2024-01-31T10:00:00Z,BTC-USD,trending,breakout,0.8,0.2,1.0,3,balanced,tight,2.5,4,-1.2,true,false,HIGH,";

    #[test]
    fn a_csv_row_parses_and_round_trips_through_the_writer_and_jsonl() {
        let later = ROW.replace("2024-01-31T10", "2024-02-01T10").replace(",HIGH,", ",,LOW");
        let text = format!("{HEADER}\n{later}\n{ROW}\n");
        let trades = parse_csv(&text, "log.csv").unwrap();
        assert_eq!(trades.len(), 2);
        assert_eq!((trades[0].row, trades[1].row), (2, 1), "rows are the file's");
        let t = &trades[0];
        assert_eq!(t.entry_time.to_string(), "2024-01-31T10:00:00Z", "sorted by entry time");
        assert_eq!((t.regime, t.strategy), (Regime::Trending, Strategy::Breakout));
        assert_eq!((t.sizing.size_multiplier(), t.sizing.leverage()), (1.0, 3));
        assert_eq!((t.sizing.take_profit, t.sizing.stop_loss), (TakeProfit::Balanced, StopLoss::Tight));
        assert_eq!((t.pnl_pct, t.hours, t.max_drawdown_pct, t.hit_tp, t.hit_sl), (2.5, 4.0, -1.2, true, false));
        assert_eq!((t.volatility, t.liquidity), (Some(VolLevel::High), None));
        assert_eq!((trades[1].volatility, trades[1].liquidity), (None, Some(Liquidity::Low)));
        assert_eq!(t.exit_time().to_string(), "2024-01-31T14:00:00Z");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_csv(&path, &trades).unwrap();
        let rows = |ts: Vec<Trade>| ts.into_iter().map(|t| Trade { row: 0, ..t }).collect::<Vec<_>>();
        assert_eq!(rows(read(&path).unwrap()), rows(trades.clone()));

        let jsonl = trades.iter().map(|t| {
            let mut o = serde_json::json!({
                "entry_time": t.entry_time.to_string(), "symbol": t.symbol, "regime": upper(&t.regime),
                "strategy": t.strategy.key(), "confidence": t.confidence, "exposure": t.exposure,
                "size_multiplier": t.sizing.size_multiplier(), "leverage": t.sizing.leverage(),
                "take_profit": "balanced", "stop_loss": "tight", "pnl_pct": t.pnl_pct, "hours": t.hours,
                "max_drawdown_pct": t.max_drawdown_pct, "hit_tp": t.hit_tp, "hit_sl": t.hit_sl,
                "volatility": t.volatility.map(|v| upper(&v)), "liquidity": null,
            });
            if let Some(l) = t.liquidity {
                o["liquidity"] = upper(&l).into();
            }
            o.to_string()
        });
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, jsonl.collect::<Vec<_>>().join("\n")).unwrap();
        assert_eq!(rows(read(&path).unwrap()), rows(trades.clone()));
    }

    #[test]
    fn bad_values_name_the_file_the_row_and_the_column() {
        let cases = [
            ("regime", "trending", "sideways", "`sideways` is not one of"),
            ("strategy", "breakout", "scalp", "`scalp`"),
            ("confidence", "0.8", "1.5", "outside [0, 1]"),
            ("size_multiplier", "1.0", "2.0", "is not one of"),
            ("leverage", ",3,", ",4,", "is not one of"),
            ("pnl_pct", "2.5", "NaN", "not a finite number"),
            ("hours", ",4,", ",-4,", "negative"),
            ("hit_tp", "true", "maybe", "not true/false"),
            ("entry_time", "2024-01-31T10:00:00Z", "yesterday", "RFC 3339"),
            ("volatility", "HIGH", "WILD", "`WILD`"),
        ];
        for (column, from, to, says) in cases {
            let bad = ROW.replacen(from, to, 1);
            assert_ne!(bad, ROW, "{column}");
            let e = parse_csv(&format!("{HEADER}\n{ROW}\n{bad}\n"), "log.csv").unwrap_err().to_string();
            let want = format!("log.csv: row 2, column `{column}`");
            assert!(e.starts_with(&want) && e.contains(says), "{column}: {e}");
        }
        let e = parse_csv(&format!("{HEADER}\n{}\n", ROW.replacen("BTC-USD", "", 1)), "l.csv").unwrap_err();
        assert!(e.to_string().contains("row 1, column `symbol`: missing value"), "{e}");
        let e = parse_csv(&format!("{},extra\n{ROW},1\n", HEADER), "l.csv").unwrap_err();
        assert!(e.to_string().contains("column `extra`: unknown column"), "{e}");
        let e = parse_csv(&HEADER.replace(",hit_sl", ""), "l.csv").unwrap_err();
        assert!(e.to_string().contains("missing column `hit_sl`"), "{e}");
        let e = parse_csv(&format!("{HEADER}\n"), "l.csv").unwrap_err();
        assert!(e.to_string().contains("no data rows"), "{e}");
        let e = parse_jsonl("{\"entry_time\": 3}\n[1]\n", "l.jsonl").unwrap_err().to_string();
        assert!(e.starts_with("l.jsonl: row 1, column `entry_time`"), "{e}");
        let e = parse_jsonl("\n[1]\n", "l.jsonl").unwrap_err().to_string();
        assert!(e.starts_with("l.jsonl: row 2, column `line`: not a JSON object"), "{e}");
        let e = parse_jsonl("{\"bogus\": 1}\n", "l.jsonl").unwrap_err().to_string();
        assert!(e.contains("column `bogus`: unknown column"), "{e}");
    }
}
