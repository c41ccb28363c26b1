//! Loading candles: column spellings, timestamp forms, multi-symbol files, Parquet round
//! trips, and typed errors that name file, row and column for every defect.

use retrain::Error;
use retrain::data::{LoadOptions, bars_to_dataframe, load, read_bars, write_frame};
use std::io::Write;
use std::path::PathBuf;

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p).unwrap().write_all(body.as_bytes()).unwrap();
    p
}

const GOOD: &str = "timestamp,open,high,low,close,volume
2020-01-01T00:00:00Z,10,11,9,10.5,100
2020-01-01T01:00:00Z,10.5,12,10,11,50
2020-01-01T02:00:00Z,11,11.5,10.5,11.2,0
";

fn invalid(path: &PathBuf) -> (String, usize, String, String) {
    match read_bars(path).unwrap_err() {
        Error::InvalidBar { source_name, row, column, reason } => (source_name, row, column, reason),
        e => panic!("expected InvalidBar, got {e}"),
    }
}

#[test]
fn loads_canonical_csv() {
    let d = tempfile::tempdir().unwrap();
    let p = write(&d, "eth.csv", GOOD);
    let bars = read_bars(&p).unwrap();
    assert_eq!(bars.len(), 1);
    assert_eq!(bars[0].symbol(), "eth");
    assert_eq!(bars[0].timestamps()[1] - bars[0].timestamps()[0], 3_600_000);
    assert_eq!(bars[0].close(), &[10.5, 11.0, 11.2]);
}

#[test]
fn accepts_common_spellings_and_epoch_ms() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        &d,
        "x.csv",
        "Date,Open,High,Low,Close,Vol\n1577836800000,10,11,9,10.5,1\n1577840400000,10,11,9,10.5,1\n",
    );
    let b = read_bars(&p).unwrap();
    assert_eq!(b[0].timestamps(), &[1_577_836_800_000, 1_577_840_400_000]);
    let p = write(&d, "y.csv", "time,o,h,l,c,volume\n2020-01-01 00:00:00,10,11,9,10.5,1\n2020-01-02,10,11,9,10.5,1\n");
    let b = read_bars(&p).unwrap();
    assert_eq!(b[0].timestamps()[1] - b[0].timestamps()[0], 86_400_000);
}

#[test]
fn symbol_column_splits_series_and_keeps_file_rows_in_errors() {
    let d = tempfile::tempdir().unwrap();
    let body = "symbol,timestamp,open,high,low,close,volume
A,2020-01-01T00:00:00Z,10,11,9,10,1
B,2020-01-01T00:00:00Z,20,21,19,20,1
A,2020-01-01T01:00:00Z,10,11,9,10,1
B,2020-01-01T01:00:00Z,20,21,19,20,1
";
    let p = write(&d, "multi.csv", body);
    let bars = read_bars(&p).unwrap();
    assert_eq!(bars.iter().map(|b| b.symbol()).collect::<Vec<_>>(), ["A", "B"]);
    assert_eq!(bars[1].close(), &[20.0, 20.0]);
    // Row 4 of the file (B's second bar) repeats B's timestamp.
    let bad = body.replace("B,2020-01-01T01:00:00Z", "B,2020-01-01T00:00:00Z");
    let p = write(&d, "multi_bad.csv", &bad);
    let (src, row, col, reason) = invalid(&p);
    assert!(src.ends_with("multi_bad.csv"));
    assert_eq!((row, col.as_str()), (4, "timestamp"));
    assert!(reason.contains("duplicate"), "{reason}");
}

#[test]
fn every_defect_is_rejected_with_file_row_and_column() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("2020-01-01T01:00:00Z,10.5,12,10,11,50", "2019-12-31T23:00:00Z,10.5,12,10,11,50", 2, "timestamp", "unsorted"),
        ("2020-01-01T01:00:00Z,10.5,12,10,11,50", "2020-01-01T00:00:00Z,10.5,12,10,11,50", 2, "timestamp", "duplicate"),
        ("10.5,12,10,11,50", "10.5,12,10,NaN,50", 2, "close", "non-finite"),
        ("10.5,12,10,11,50", "10.5,inf,10,11,50", 2, "high", "non-finite"),
        ("10.5,12,10,11,50", "-1,12,10,11,50", 2, "open", "non-positive"),
        ("10.5,12,10,11,50", "10.5,10.6,10,11,50", 2, "high", "below"),
        ("10.5,12,10,11,50", "10.5,12,10.7,11,50", 2, "low", "above"),
        ("10.5,12,10,11,50", "10.5,12,10,11,-5", 2, "volume", "negative"),
        ("10.5,12,10,11,50", "10.5,12,10,,50", 2, "close", "missing"),
        ("2020-01-01T01:00:00Z", "not-a-date", 2, "timestamp", "unparsable"),
    ];
    for (i, (from, to, row, col, why)) in cases.into_iter().enumerate() {
        let p = write(&d, &format!("bad{i}.csv"), &GOOD.replacen(from, to, 1));
        let (src, r, c, reason) = invalid(&p);
        assert!(src.contains(&format!("bad{i}.csv")), "case {i}: {src}");
        assert_eq!((r, c.as_str()), (row, col), "case {i}: {reason}");
        assert!(reason.contains(why), "case {i}: {reason}");
    }
}

#[test]
fn structural_errors_are_typed() {
    let d = tempfile::tempdir().unwrap();
    let p = write(&d, "nocol.csv", "timestamp,open,high,low,close\n2020-01-01,1,1,1,1\n");
    assert!(matches!(read_bars(&p), Err(Error::MissingColumn { column, .. }) if column == "volume"));
    let p = write(&d, "empty.csv", "timestamp,open,high,low,close,volume\n");
    assert!(matches!(read_bars(&p), Err(Error::Empty { .. })));
    let p = write(&d, "x.txt", GOOD);
    assert!(matches!(read_bars(&p), Err(Error::UnsupportedFormat { .. })));
    assert!(matches!(read_bars(d.path().join("absent.csv")), Err(Error::Io { .. })));
    let p = write(&d, "text.csv", "timestamp,open,high,low,close,volume\n2020-01-01,abc,1,1,1,1\n");
    let e = read_bars(&p).unwrap_err().to_string();
    assert!(e.contains("row 1") && e.contains("open") && e.contains("abc"), "{e}");
}

#[test]
fn repair_is_explicit_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let body = "timestamp,open,high,low,close,volume
2020-01-01T01:00:00Z,10.5,12,10,11,50
2020-01-01T00:00:00Z,10,11,9,10.5,100
2020-01-01T01:00:00Z,10.5,12,10,11,50
";
    let p = write(&d, "messy.csv", body);
    assert!(read_bars(&p).is_err(), "strict load rejects");
    let loaded = load(&p, &LoadOptions { repair: true, ..Default::default() }).unwrap();
    assert_eq!(loaded.bars[0].len(), 2);
    assert_eq!(loaded.repairs.len(), 1);
    assert_eq!(loaded.repairs[0].1.duplicates_dropped, 1);
}

#[test]
fn parquet_and_csv_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let bars = read_bars(write(&d, "s.csv", GOOD)).unwrap();
    for name in ["out.parquet", "out.csv"] {
        let out = d.path().join(name);
        let mut df = bars_to_dataframe(&bars).unwrap();
        write_frame(&mut df, &out).unwrap();
        let back = read_bars(&out).unwrap();
        assert_eq!(back[0].timestamps(), bars[0].timestamps(), "{name}");
        assert_eq!(back[0].close(), bars[0].close(), "{name}");
        assert_eq!(back[0].volume(), bars[0].volume(), "{name}");
    }
}

#[test]
fn shipped_datasets_load_cleanly() {
    let root = env!("CARGO_MANIFEST_DIR");
    let btc = read_bars(format!("{root}/datasets/btcusd_coinbase_1h.csv")).unwrap();
    assert_eq!(btc[0].len(), 20_111);
    let eur = read_bars(format!("{root}/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    assert_eq!(eur[0].len(), 6_225);
}

#[test]
fn repair_errors_still_name_the_file_row() {
    let d = tempfile::tempdir().unwrap();
    // B's second bar (file row 4) has high below close; repair cannot fix that.
    let body = "symbol,timestamp,open,high,low,close,volume
A,2020-01-01T01:00:00Z,10,11,9,10,1
B,2020-01-01T00:00:00Z,20,21,19,20,1
A,2020-01-01T00:00:00Z,10,11,9,10,1
B,2020-01-01T01:00:00Z,20,19.5,19,20,1
";
    let p = write(&d, "multi.csv", body);
    match load(&p, &LoadOptions { repair: true, ..Default::default() }).unwrap_err() {
        Error::InvalidBar { source_name, row, column, .. } => {
            assert!(source_name.ends_with("multi.csv"));
            assert_eq!((row, column.as_str()), (4, "high"));
        }
        e => panic!("unexpected {e}"),
    }
}
