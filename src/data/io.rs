//! Reading and writing tables: CSV and Parquet through polars, and `DataFrame` interop.
//!
//! Column names are matched case-insensitively against common spellings (`Date`, `time`,
//! `Open`, `vol`, …). Timestamps may be ISO-8601 strings (an offset or `Z`, or naive = UTC,
//! or a bare date), integer epoch milliseconds, or polars `Datetime`/`Date` columns. A file
//! with a symbol column yields one [`Bars`] per symbol (in order of first appearance); a
//! file without one yields a single series named after the file stem. Writes are atomic:
//! a temporary file in the target directory is renamed over the destination.

use crate::data::bars::{BarColumns, Bars, RepairReport};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic_with;
use polars::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Accepted spellings per canonical column, in priority order (compared after lower-casing
/// and removing spaces, `_` and `-`).
const ALIASES: [(&str, &[&str]); 7] = [
    ("timestamp", &["timestamp", "time", "datetime", "date", "ts", "opentime", "unix", "gmttime", "localtime"]),
    ("open", &["open", "o", "openprice"]),
    ("high", &["high", "h", "highprice"]),
    ("low", &["low", "l", "lowprice"]),
    ("close", &["close", "c", "closeprice"]),
    ("volume", &["volume", "vol", "v", "basevolume"]),
    ("symbol", &["symbol", "ticker", "asset", "instrument", "pair"]),
];

/// Integer timestamps below this are rejected as "probably epoch seconds" (1973-03-03 in ms).
const MIN_EPOCH_MS: i64 = 100_000_000_000;

/// How to load bars from a table.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Symbol for a table without a symbol column (default: the file stem).
    pub symbol: Option<String>,
    /// Sort and de-duplicate timestamps instead of rejecting them (reported, never silent).
    pub repair: bool,
}

/// Bars loaded from one table, plus what an explicit repair changed per symbol.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// One validated series per symbol, in order of first appearance.
    pub bars: Vec<Bars>,
    /// Non-empty only with [`LoadOptions::repair`]: symbol and what was changed.
    pub repairs: Vec<(String, RepairReport)>,
}

/// File formats we read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Infer the format from the extension (`.csv`, `.parquet`, `.pq`).
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("parquet" | "pq") => Ok(Format::Parquet),
            _ => Err(Error::UnsupportedFormat { path: path.to_path_buf() }),
        }
    }
}

/// Read a CSV or Parquet file into a polars `DataFrame` (no schema inference of dates).
pub fn read_frame(path: impl AsRef<Path>) -> Result<DataFrame> {
    let path = path.as_ref();
    let fmt = Format::from_path(path)?;
    let ctx = || format!("reading {}", path.display());
    if !path.exists() {
        return Err(Error::Io { path: path.to_path_buf(), source: std::io::ErrorKind::NotFound.into() });
    }
    match fmt {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| Error::polars(ctx(), e)),
        Format::Parquet => {
            let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
            ParquetReader::new(file).finish().map_err(|e| Error::polars(ctx(), e))
        }
    }
}

/// Load and validate bars from a CSV or Parquet file, rejecting any defect.
pub fn read_bars(path: impl AsRef<Path>) -> Result<Vec<Bars>> {
    Ok(load(path, &LoadOptions::default())?.bars)
}

/// Load bars from a file with explicit options.
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Loaded> {
    let path = path.as_ref();
    let df = read_frame(path)?;
    let mut opts = opts.clone();
    if opts.symbol.is_none() {
        opts.symbol = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    bars_from_dataframe(&df, &path.display().to_string(), &opts)
}

/// Load several files (one per symbol, or each with a symbol column) into one list.
pub fn load_many(paths: &[PathBuf], opts: &LoadOptions) -> Result<Loaded> {
    let mut all = Loaded { bars: Vec::new(), repairs: Vec::new() };
    for p in paths {
        let one = load(p, opts)?;
        for b in &one.bars {
            if all.bars.iter().any(|x| x.symbol() == b.symbol()) {
                return Err(Error::param(
                    "data",
                    format!("symbol `{}` appears in more than one input ({})", b.symbol(), p.display()),
                ));
            }
        }
        all.bars.extend(one.bars);
        all.repairs.extend(one.repairs);
    }
    Ok(all)
}

fn normalise(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, ' ' | '_' | '-')).flat_map(char::to_lowercase).collect()
}

/// Map canonical column names to the actual names present in `df`.
fn resolve_columns(df: &DataFrame) -> HashMap<&'static str, String> {
    let present: Vec<(String, String)> =
        df.get_column_names().iter().map(|n| (normalise(n.as_str()), n.to_string())).collect();
    let mut out = HashMap::new();
    for (canon, aliases) in ALIASES {
        if let Some(actual) =
            aliases.iter().find_map(|a| present.iter().find(|(norm, _)| norm == a).map(|(_, actual)| actual.clone()))
        {
            out.insert(canon, actual);
        }
    }
    out
}

/// Convert a `DataFrame` of candles to validated bars (see the module docs for columns).
pub fn bars_from_dataframe(df: &DataFrame, source: &str, opts: &LoadOptions) -> Result<Loaded> {
    if df.height() == 0 {
        return Err(Error::Empty { source_name: source.to_string() });
    }
    let cols = resolve_columns(df);
    let found = df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let get = |canon: &str| -> Result<&Column> {
        let name = cols.get(canon).ok_or_else(|| Error::MissingColumn {
            source_name: source.to_string(),
            column: canon.to_string(),
            found: found.clone(),
        })?;
        df.column(name).map_err(|e| Error::polars(source, e))
    };
    let ts = timestamps(get("timestamp")?, source, &cols["timestamp"])?;
    let f64col = |canon: &str| -> Result<Vec<f64>> { floats(get(canon)?, source, &cols[canon]) };
    let all = BarColumns {
        ts,
        open: f64col("open")?,
        high: f64col("high")?,
        low: f64col("low")?,
        close: f64col("close")?,
        volume: f64col("volume")?,
    };

    // Group rows by symbol, keeping file order inside each group and 1-based row numbers.
    let groups: Vec<(String, Vec<usize>)> = match cols.get("symbol") {
        None => vec![(opts.symbol.clone().unwrap_or_else(|| "series".into()), (0..df.height()).collect())],
        Some(name) => {
            let col = df.column(name).map_err(|e| Error::polars(source, e))?;
            let s = col.cast(&DataType::String).map_err(|e| Error::polars(source, e))?;
            let s = s.str().map_err(|e| Error::polars(source, e))?;
            let mut order: Vec<(String, Vec<usize>)> = Vec::new();
            let mut index: HashMap<String, usize> = HashMap::new();
            for (i, v) in s.iter().enumerate() {
                let v = v.ok_or_else(|| invalid(source, name, i + 1, "missing symbol".into()))?;
                let slot = *index.entry(v.to_string()).or_insert_with(|| {
                    order.push((v.to_string(), Vec::new()));
                    order.len() - 1
                });
                order[slot].1.push(i);
            }
            order
        }
    };

    let mut loaded = Loaded { bars: Vec::with_capacity(groups.len()), repairs: Vec::new() };
    let single = groups.len() == 1;
    let mut all = Some(all);
    for (symbol, idx) in groups {
        let part = if single {
            // One series: the columns are already in file order, no need to copy them.
            all.take().unwrap_or_default()
        } else {
            all.as_ref().expect("kept for every group").select(&idx)
        };
        let rows: Vec<usize> = idx.iter().map(|&i| i + 1).collect();
        if opts.repair {
            let (b, rep) = Bars::sort_and_dedup(symbol.clone(), part).map_err(|e| in_file(e, source, &idx))?;
            if rep != RepairReport::default() {
                tracing::warn!(%source, %symbol, moved = rep.rows_moved, dropped = rep.duplicates_dropped, "repaired bars");
                loaded.repairs.push((symbol, rep));
            }
            loaded.bars.push(b);
        } else {
            loaded.bars.push(Bars::from_columns(symbol, part, source, Some(&rows))?);
        }
    }
    Ok(loaded)
}

/// Re-point an error from a symbol's subset (1-based `row` into `idx`) at the file's row.
fn in_file(e: Error, source: &str, idx: &[usize]) -> Error {
    match e {
        Error::InvalidBar { row, column, reason, .. } => Error::InvalidBar {
            source_name: source.to_string(),
            row: idx.get(row.wrapping_sub(1)).map_or(row, |&i| i + 1),
            column,
            reason,
        },
        other => other,
    }
}

/// An [`Error::InvalidBar`] for `row` (1-based) of column `column` in `source`.
pub(crate) fn invalid(source: &str, column: &str, row: usize, reason: String) -> Error {
    Error::InvalidBar { source_name: source.to_string(), row, column: column.to_string(), reason }
}

pub(crate) fn floats(col: &Column, source: &str, name: &str) -> Result<Vec<f64>> {
    let err = |row: usize, reason: String| invalid(source, name, row, reason);
    if let Ok(s) = col.str() {
        // Text columns (e.g. a stray word, or `inf` spelled oddly): parse here so the error
        // names the row; validation then rejects NaN/inf with its own message.
        return s
            .iter()
            .enumerate()
            .map(|(i, v)| match v.map(str::trim) {
                None | Some("") => Err(err(i + 1, "missing value".into())),
                Some(t) => t.parse::<f64>().map_err(|_| err(i + 1, format!("not a number: {t:?}"))),
            })
            .collect();
    }
    if !col.dtype().is_primitive_numeric() {
        return Err(err(1, format!("expected numbers, found column of type {}", col.dtype())));
    }
    let c = col.cast(&DataType::Float64).map_err(|e| Error::polars(source, e))?;
    let ca = c.f64().map_err(|e| Error::polars(source, e))?;
    ca.iter().enumerate().map(|(i, v)| v.ok_or_else(|| err(i + 1, "missing value".into()))).collect()
}

pub(crate) fn timestamps(col: &Column, source: &str, name: &str) -> Result<Vec<i64>> {
    let err = |row: usize, reason: String| invalid(source, name, row, reason);
    match col.dtype() {
        DataType::String => {
            let s = col.str().map_err(|e| Error::polars(source, e))?;
            s.iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = v.ok_or_else(|| err(i + 1, "missing timestamp".into()))?;
                    parse_timestamp(v).ok_or_else(|| err(i + 1, format!("unparsable timestamp {v:?}")))
                })
                .collect()
        }
        DataType::Datetime(_, _) | DataType::Date => {
            let c = col
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .and_then(|c| c.cast(&DataType::Int64))
                .map_err(|e| Error::polars(source, e))?;
            ints_ms(&c, source, name)
        }
        dt if dt.is_integer() => {
            let c = col.cast(&DataType::Int64).map_err(|e| Error::polars(source, e))?;
            let v = ints_ms(&c, source, name)?;
            if let Some(i) = v.iter().position(|&t| t < MIN_EPOCH_MS) {
                return Err(err(
                    i + 1,
                    format!("integer timestamp {} is not epoch milliseconds (seconds? convert to ms)", v[i]),
                ));
            }
            Ok(v)
        }
        other => Err(err(1, format!("timestamp column has unsupported type {other}"))),
    }
}

fn ints_ms(c: &Column, source: &str, name: &str) -> Result<Vec<i64>> {
    let ca = c.i64().map_err(|e| Error::polars(source, e))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| invalid(source, name, i + 1, "missing timestamp".into())))
        .collect()
}

/// Parse an ISO-8601 timestamp: with offset/`Z`, naive (taken as UTC), or a bare date.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp().as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp().as_millisecond());
    }
    None
}

/// A `Datetime(ms, UTC)` column from epoch milliseconds.
pub fn timestamp_column(name: &str, ts: &[i64]) -> Result<Column> {
    Series::new(name.into(), ts)
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, Some(polars::prelude::TimeZone::UTC)))
        .map(Column::from)
        .map_err(|e| Error::polars(format!("building column `{name}`"), e))
}

/// Convert bars to a `DataFrame` (`symbol` first when there are several series).
pub fn bars_to_dataframe(bars: &[Bars]) -> Result<DataFrame> {
    let ts: Vec<i64> = bars.iter().flat_map(|b| b.timestamps().iter().copied()).collect();
    let cat = |f: fn(&Bars) -> &[f64]| bars.iter().flat_map(|b| f(b).iter().copied()).collect::<Vec<f64>>();
    let mut columns = Vec::with_capacity(7);
    if bars.len() > 1 {
        let sym: Vec<&str> = bars.iter().flat_map(|b| std::iter::repeat_n(b.symbol(), b.len())).collect();
        columns.push(Column::new("symbol".into(), sym));
    }
    columns.push(timestamp_column("timestamp", &ts)?);
    columns.push(Column::new("open".into(), cat(Bars::open)));
    columns.push(Column::new("high".into(), cat(Bars::high)));
    columns.push(Column::new("low".into(), cat(Bars::low)));
    columns.push(Column::new("close".into(), cat(Bars::close)));
    columns.push(Column::new("volume".into(), cat(Bars::volume)));
    DataFrame::new_infer_height(columns).map_err(|e| Error::polars("building bars frame", e))
}

/// Write a frame as CSV or Parquet (by extension), atomically.
pub fn write_frame(df: &mut DataFrame, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let fmt = Format::from_path(path)?;
    let ctx = || format!("writing {}", path.display());
    write_atomic_with(path, |file| {
        match fmt {
            Format::Csv => CsvWriter::new(file)
                .include_header(true)
                .with_datetime_format(Some("%Y-%m-%dT%H:%M:%SZ".into()))
                .finish(df)
                .map_err(|e| Error::polars(ctx(), e))?,
            Format::Parquet => {
                ParquetWriter::new(file).finish(df).map_err(|e| Error::polars(ctx(), e))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamp_spellings() {
        let h = 1_498_906_800_000; // 2017-07-01T11:00:00Z
        assert_eq!(parse_timestamp("2017-07-01T11:00:00Z"), Some(h));
        assert_eq!(parse_timestamp("2017-07-01T11:00:00+00:00"), Some(h));
        assert_eq!(parse_timestamp("2017-07-01T13:00:00+02:00"), Some(h));
        assert_eq!(parse_timestamp("2017-07-01 11:00:00"), Some(h));
        assert_eq!(parse_timestamp("2017-07-01T11:00:00.000"), Some(h));
        assert_eq!(parse_timestamp("2017-07-01"), Some(h - 11 * 3_600_000));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn column_aliases_are_case_and_separator_insensitive() {
        let df = df!("Date" => ["2020-01-01"], "Open" => [1.0], "HIGH" => [1.0], "low" => [1.0],
            "Close" => [1.0], "Vol" => [0.0], "Ticker" => ["A"])
        .unwrap();
        let m = resolve_columns(&df);
        assert_eq!(m["timestamp"], "Date");
        assert_eq!(m["volume"], "Vol");
        assert_eq!(m["symbol"], "Ticker");
    }

    #[test]
    fn epoch_seconds_are_rejected_not_guessed() {
        let df = df!("timestamp" => [1_600_000_000i64], "open" => [1.0], "high" => [1.0], "low" => [1.0],
            "close" => [1.0], "volume" => [0.0])
        .unwrap();
        let e = bars_from_dataframe(&df, "t", &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("epoch milliseconds"), "{e}");
    }
}
