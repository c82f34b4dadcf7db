//! Line and stacked-area charts over virtual time, drawn with `plotters`
//! once as SVG and once as PNG.
//!
//! The PNG is rasterized in-process with DejaVu Sans from the `dejavu`
//! crate, registered as plotters' `sans-serif` through its `ab_glyph`
//! font back-end, so no system font (nor fontconfig) is needed; the SVG
//! measures its text with the same font and names `sans-serif` for the
//! viewer. Both outputs depend only on the data: the same chart gives the
//! same bytes.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Width of a chart in pixels (SVG and PNG alike).
pub const WIDTH: u32 = 1100;
/// Height of a chart in pixels.
pub const HEIGHT: u32 = 520;
/// Width of the legend column on the right.
const LEGEND_WIDTH: u32 = 280;
/// The font family every text uses.
const FONT: &str = "sans-serif";

/// Series colors, in order (colorblind-safe first, then more).
const PALETTE: &[RGBColor] = &[
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(148, 103, 189),
];

/// One named series of a chart, one value per x.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Values, one per x of the chart.
    pub values: Vec<f64>,
}

/// A chart over virtual time.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// File names without extension (`memory` gives `memory.svg` and `memory.png`).
    pub stem: String,
    /// Caption.
    pub title: String,
    /// Y-axis description, with its unit.
    pub y_label: String,
    /// X values: virtual milliseconds, increasing; the axis spans them
    /// (from 0 when the first is 0).
    pub x: Vec<f64>,
    /// The series, drawn in order (bottom first when stacked).
    pub series: Vec<Series>,
    /// Stack the series as filled areas instead of drawing lines.
    pub stacked: bool,
    /// Values above this are drawn at it (the title should say so), so
    /// one burst does not flatten the rest of a line chart.
    pub y_cap: Option<f64>,
}

/// Registers the embedded font once; an error if the font does not parse.
fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font does not parse".to_string())
    })
    .clone()
}

/// Writes `<stem>.svg` and `<stem>.png` into `dir`.
pub fn render(dir: &Path, chart: &Chart) -> Result<(), String> {
    font()?;
    let svg_path = dir.join(format!("{}.svg", chart.stem));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|e| format!("{}: drawing the chart: {e}", svg_path.display()))?;
    }
    std::fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    let png_path = dir.join(format!("{}.png", chart.stem));
    let root = BitMapBackend::new(&png_path, (WIDTH, HEIGHT)).into_drawing_area();
    draw(&root, chart).map_err(|e| format!("cannot write {}: {e}", png_path.display()))?;
    Ok(())
}

/// The y range: the largest value (of the sums when stacked), with room
/// above, never empty.
fn y_max(chart: &Chart) -> f64 {
    let max = if chart.stacked {
        (0..chart.x.len())
            .map(|i| chart.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum())
            .fold(0.0f64, f64::max)
    } else {
        chart.series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0f64, f64::max)
    };
    let max = chart.y_cap.map_or(max, |cap| max.min(cap));
    if max.is_finite() && max > 0.0 {
        max * 1.08
    } else {
        1.0
    }
}

/// Y tick labels: integers as such, small values with up to three decimals.
fn y_tick(v: &f64) -> String {
    if v.abs() >= 100.0 || *v == v.trunc() {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draws the chart on any plotters back-end and presents it.
fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    // From the first sample (0 unless the chart is cropped) to the last.
    let x_min = chart.x.first().copied().filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0);
    let x_max = chart.x.last().copied().filter(|v| v.is_finite() && *v > x_min).unwrap_or(x_min + 1.0);
    let mut c = ChartBuilder::on(&plot)
        .caption(&chart.title, (FONT, 22))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(84)
        .build_cartesian_2d(x_min..x_max, 0f64..y_max(chart))
        .map_err(e)?;
    c.configure_mesh()
        .x_desc("virtual time (ms)")
        .y_desc(chart.y_label.as_str())
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .y_label_formatter(&y_tick)
        .x_label_formatter(&|v: &f64| y_tick(v))
        .light_line_style(RGBColor(236, 236, 236))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(e)?;
    let color = |i: usize| PALETTE[i % PALETTE.len()];
    if chart.stacked {
        // Running sums, drawn from the top band down so each lower band
        // covers the part of the one above that is not its own.
        let mut sums: Vec<Vec<f64>> = Vec::with_capacity(chart.series.len());
        let mut acc = vec![0.0f64; chart.x.len()];
        for s in &chart.series {
            for (a, v) in acc.iter_mut().zip(&s.values) {
                *a += v;
            }
            sums.push(acc.clone());
        }
        for (i, top) in sums.iter().enumerate().rev() {
            let pts: Vec<(f64, f64)> = chart.x.iter().copied().zip(top.iter().copied()).collect();
            c.draw_series(AreaSeries::new(pts, 0.0, color(i).mix(0.85)).border_style(color(i).stroke_width(1)))
                .map_err(e)?;
        }
    } else {
        let cap = chart.y_cap.unwrap_or(f64::INFINITY);
        for (i, s) in chart.series.iter().enumerate() {
            let pts: Vec<(f64, f64)> = chart.x.iter().copied().zip(s.values.iter().map(|v| v.min(cap))).collect();
            // The first line is wider, so a later one on top of it (numa_hit
            // and numa_local are often equal) leaves it visible.
            let width = if i == 0 && chart.series.len() > 1 { 5 } else { 2 };
            c.draw_series(LineSeries::new(pts, color(i).stroke_width(width))).map_err(e)?;
        }
    }
    // The legend, in its own column: top to bottom as the stack reads.
    let order: Vec<usize> =
        if chart.stacked { (0..chart.series.len()).rev().collect() } else { (0..chart.series.len()).collect() };
    for (row, &i) in order.iter().enumerate() {
        let y = 60 + 26 * row as i32;
        legend.draw(&Rectangle::new([(8, y), (30, y + 14)], color(i).filled())).map_err(e)?;
        legend.draw(&Text::new(chart.series[i].name.clone(), (38, y), (FONT, 14).into_font())).map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}
