//! The replay's output files: `summary.json`, `timeline.jsonl`, a self-contained
//! `report.html` (charts as inline SVG, no script, nothing fetched) and the same charts as
//! PNG (`equity.png`, `rolling_ic.png`, `drift.png`, `cpcv_paths.png`), drawn with plotters.
//! PNG text uses the DejaVu Sans font bundled with the crate, so no system font is needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::lifecycle::replay::ReplayResult;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (960, 420);

/// The chart files `write` produces, by stem.
pub const CHARTS: [&str; 4] = ["equity", "rolling_ic", "drift", "cpcv_paths"];

/// Write the report files into `dir` (created if needed); returns their paths.
pub fn write(result: &ReplayResult, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    let mut written = Vec::new();
    let summary = dir.join("summary.json");
    let json = serde_json::to_vec_pretty(result).expect("replay results serialise");
    crate::fsutil::write_atomic(&summary, &json)?;
    written.push(summary);
    let timeline = dir.join("timeline.jsonl");
    let mut lines = String::new();
    for e in &result.timeline {
        lines.push_str(&serde_json::to_string(e).expect("audit records serialise"));
        lines.push('\n');
    }
    crate::fsutil::write_atomic(&timeline, lines.as_bytes())?;
    written.push(timeline);
    register_font();
    let mut svgs = Vec::new();
    for name in CHARTS {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            draw(name, result, &root)?;
            root.present().map_err(|e| chart_error(name, e))?;
        }
        svgs.push((name, svg));
        // Drawn beside the target and renamed over it: a reader never sees half an image.
        let png = dir.join(format!("{name}.png"));
        let tmp = dir.join(format!(".{name}.png.tmp.png"));
        {
            let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            draw(name, result, &root)?;
            root.present().map_err(|e| chart_error(name, e))?;
        }
        std::fs::rename(&tmp, &png).map_err(|source| Error::Io { path: png.clone(), source })?;
        written.push(png);
    }
    let html = dir.join("report.html");
    crate::fsutil::write_atomic(&html, page(result, &svgs).as_bytes())?;
    written.push(html);
    Ok(written)
}

/// Make the bundled font the charts' `sans-serif` (registering twice is harmless: the first
/// font stays).
pub(crate) fn register_font() {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
}

fn chart_error(name: &str, e: impl std::fmt::Display) -> Error {
    Error::param("report", format!("drawing the {name} chart: {e}"))
}

/// Colour of the `i`-th policy.
fn colour(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(120, 120, 120),
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
    ];
    P[i % P.len()]
}

/// Days since the epoch of a `YYYY-MM-DD` date (or of a timestamp).
fn day_of(date: &str) -> f64 {
    date.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or(f64::NAN, |z| z.timestamp().as_second() as f64 / 86_400.0)
}

fn day_label(d: &f64) -> String {
    jiff::Timestamp::from_second((*d * 86_400.0) as i64).map(|t| t.strftime("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// A named line: its label, colour and points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

fn draw<DB: DrawingBackend>(name: &str, r: &ReplayResult, root: &DrawingArea<DB, Shift>) -> Result<()> {
    root.fill(&WHITE).map_err(|e| chart_error(name, e))?;
    let x0 = r.start.as_second() as f64 / 86_400.0;
    let x1 = (r.end.as_second() as f64 / 86_400.0).max(x0 + 1.0);
    // (label, colour, points) per series; markers drawn as circles.
    let mut lines: Vec<Series> = Vec::new();
    let mut marks: Vec<(RGBColor, Vec<(f64, f64)>)> = Vec::new();
    let (title, y_label) = match name {
        "equity" => {
            for (i, p) in r.policies.iter().enumerate() {
                lines.push((p.name.clone(), colour(i), p.daily.iter().map(|d| (day_of(&d.date), d.equity)).collect()));
            }
            (format!("Cumulative PnL after {} bp costs", r.cost_bps), "return")
        }
        "rolling_ic" => {
            for (i, p) in r.policies.iter().enumerate() {
                // Mean over models per day.
                let mut by_day: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
                for pt in &p.rolling_ic {
                    let e = by_day.entry(pt.date.clone()).or_default();
                    e.0 += pt.ic;
                    e.1 += 1;
                }
                let pts: Vec<(f64, f64)> = by_day.iter().map(|(d, (s, n))| (day_of(d), s / *n as f64)).collect();
                // A deployment sits on the curve where the curve has a point within a day.
                let at = |x: f64| {
                    pts.iter()
                        .min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs()))
                        .filter(|p| (p.0 - x).abs() <= 1.0)
                        .map(|p| p.1)
                };
                let m: Vec<(f64, f64)> = p
                    .deployed
                    .iter()
                    .map(|d| d.at.as_second() as f64 / 86_400.0)
                    .filter(|&x| x >= x0)
                    .filter_map(|x| at(x).map(|y| (x, y)))
                    .collect();
                marks.push((colour(i), m));
                lines.push((p.name.clone(), colour(i), pts));
            }
            ("Rolling 30-day IC of the active calls (dots: deployments)".to_string(), "Spearman IC")
        }
        "drift" => {
            let mut k = 0;
            for p in &r.policies {
                let mut models: Vec<&str> = p.drift.iter().map(|d| d.model.as_str()).collect();
                models.sort();
                models.dedup();
                for m in models {
                    let pts = p
                        .drift
                        .iter()
                        .filter(|d| d.model == m)
                        .map(|d| (d.ts.as_second() as f64 / 86_400.0, d.max_ks))
                        .collect();
                    lines.push((format!("{} · {m}", p.name), colour(k + 1), pts));
                    k += 1;
                }
            }
            ("Largest feature KS statistic at each supervisor cycle".to_string(), "max KS")
        }
        _ => {
            for (i, p) in r.policies.iter().enumerate() {
                let pts: Vec<(f64, f64)> = p
                    .deployed
                    .iter()
                    .flat_map(|d| {
                        let x = (d.at.as_second() as f64 / 86_400.0).max(x0);
                        d.path_ic.iter().map(move |&y| (x, y))
                    })
                    .collect();
                marks.push((colour(i), pts));
                // The mean over every version (of every model) deployed that day, in time order.
                let mut by_day: std::collections::BTreeMap<i64, (f64, usize)> = Default::default();
                for d in p.deployed.iter().filter(|d| !d.path_ic.is_empty()) {
                    let e = by_day.entry(d.at.as_second().div_euclid(86_400)).or_default();
                    e.0 += d.path_ic.iter().sum::<f64>() / d.path_ic.len() as f64;
                    e.1 += 1;
                }
                let means = by_day.iter().map(|(d, (s, n))| ((*d as f64).max(x0), s / *n as f64)).collect();
                lines.push((p.name.clone(), colour(i), means));
            }
            ("CPCV test-path IC of each deployed version (line: mean)".to_string(), "path IC")
        }
    };
    let ys =
        lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)).chain(marks.iter().flat_map(|m| m.1.iter().map(|p| p.1)));
    let (mut lo, mut hi) =
        ys.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| (a.0.min(v), a.1.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(x0 - 1.0..x1 + 1.0, lo - pad..hi + pad)
        .map_err(|e| chart_error(name, e))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&day_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| chart_error(name, e))?;
    let empty = lines.iter().all(|l| l.2.is_empty()) && marks.iter().all(|m| m.1.is_empty());
    for (label, c, pts) in &lines {
        let c = *c;
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()),
                c.stroke_width(2),
            ))
            .map_err(|e| chart_error(name, e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    for (c, pts) in &marks {
        let c = *c;
        chart
            .draw_series(
                pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).map(|&p| Circle::new(p, 3, c.filled())),
            )
            .map_err(|e| chart_error(name, e))?;
    }
    if empty {
        let style = TextStyle::from(("sans-serif", 16).into_font()).color(&BLACK);
        root.draw_text("no data for this chart in this replay", &style, (SIZE.0 as i32 / 3, SIZE.1 as i32 / 2))
            .map_err(|e| chart_error(name, e))?;
    } else if lines.iter().any(|l| !l.2.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| chart_error(name, e))?;
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Rows of the timeline table shown in the page (the JSONL file holds every one).
const TIMELINE_ROWS: usize = 3000;

fn page(r: &ReplayResult, svgs: &[(&str, String)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>retrain replay</title>\n<style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td.l,th.l{{text-align:left}}\
         figure{{margin:16px 0}}</style></head><body>\n<h1>Lifecycle replay</h1>\n<p>{} → {} · {} bars per model · \
         models {} · costs {} bp per unit of position change · {:.0} s (training reused {} times, trained {} times)</p>\n",
        r.start,
        r.end,
        r.bars,
        esc(&r.models.join(", ")),
        r.cost_bps,
        r.seconds,
        r.cache_hits,
        r.cache_misses
    );
    h.push_str(
        "<h2>Policies</h2>\n<table><tr><th class=\"l\">policy</th><th>cycle</th><th>return</th><th>Sharpe</th>\
         <th>max DD</th><th>win</th><th>hit</th><th>turnover/day</th><th>retrains</th><th>deferred</th>\
         <th>deploys</th><th>canaries</th><th>promoted</th><th>rollbacks</th><th>retired</th><th>reused</th>\
         <th>CPU s</th><th>vs never (ann.)</th><th>p</th></tr>\n",
    );
    for p in &r.policies {
        let m = &p.metrics;
        let c = &p.counts;
        let (vs, pv) = match &p.vs_never {
            Some(v) => (format!("{:+.4}", v.annualised), format!("{:.3}", v.p_value)),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{:+.4}</td><td>{:.2}</td><td>{:.4}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.name),
            p.cycle_days.map_or("none".into(), |d| format!("{d} d")),
            m.total_return,
            m.sharpe,
            m.max_drawdown,
            m.win_rate,
            m.hit_rate,
            m.turnover,
            c.retrains,
            c.deferred,
            c.deploys,
            c.canaries,
            c.promotions,
            c.rollbacks,
            c.retirements,
            c.reused,
            p.cpu_seconds,
            vs,
            pv
        );
    }
    h.push_str("</table>\n<p>vs never: mean daily PnL difference against the never-retrain policy, annualised, with a Newey–West two-sided p-value.</p>\n");
    for (name, svg) in svgs {
        let _ = writeln!(h, "<figure id=\"{name}\">{svg}</figure>");
    }
    let _ = writeln!(
        h,
        "<h2>Timeline</h2>\n<p>{} audit records of every policy's store{}.</p>\n<table><tr><th class=\"l\">time</th>\
         <th class=\"l\">policy</th><th class=\"l\">model</th><th class=\"l\">event</th><th class=\"l\">version</th>\
         <th class=\"l\">reason</th></tr>",
        r.timeline.len(),
        if r.timeline.len() > TIMELINE_ROWS {
            format!(" (the first {TIMELINE_ROWS} shown; timeline.jsonl holds all)")
        } else {
            String::new()
        }
    );
    for e in r.timeline.iter().take(TIMELINE_ROWS) {
        let event =
            serde_json::to_value(e.record.event).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            e.record.ts,
            esc(&e.policy),
            esc(e.record.model.as_deref().unwrap_or("")),
            esc(&event),
            esc(e.record.version.as_deref().unwrap_or("")),
            esc(&e.record.reason)
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
