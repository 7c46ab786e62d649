//! The speed figures of `pillar bench activations --plot` and `pillar bench model --plot`:
//! time against round-trip time, one line per protocol.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use plotters::prelude::*;

use super::{FONT, draw_error, legend, register_font};
use crate::bench::activations::Row;

/// Colours per protocol, as in the paper's figures.
fn color(protocol: &str) -> RGBColor {
    match protocol {
        "relu" => RGBColor(214, 39, 40),
        "crypten" => RGBColor(255, 127, 14),
        "espn" => RGBColor(31, 119, 180),
        "honeybadger" => RGBColor(44, 160, 44),
        _ => RGBColor(100, 100, 100),
    }
}

/// A measured row that a speed figure can place: `(protocol, RTT in ms, median in s)`.
pub(crate) trait Timed {
    /// Its line, its round-trip time and its median time.
    fn point(&self) -> (&str, f64, f64);
}

impl Timed for Row {
    fn point(&self) -> (&str, f64, f64) {
        (&self.protocol, self.rtt_ms, self.median_s)
    }
}

/// One line per protocol: median time of a layer (log scale) against the emulated RTT.
pub(crate) fn activations(rows: &[Row], path: &Path) -> Result<()> {
    let Some(first) = rows.first() else {
        bail!("nothing was measured");
    };
    time_against_rtt(
        rows,
        &format!("one activation layer of {} elements", first.elements),
        "time per layer (s)",
        path,
    )
}

/// One line per protocol: median time (log scale) against the emulated RTT. The file is
/// replaced atomically.
pub(crate) fn time_against_rtt<R: Timed>(
    rows: &[R],
    title: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    pillar_nn::write_atomic_with(path, |tmp| draw_time_against_rtt(rows, title, y_desc, tmp))
}

fn draw_time_against_rtt<R: Timed>(
    rows: &[R],
    title: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    if rows.is_empty() {
        bail!("nothing was measured");
    }
    let mut lines: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let rows: Vec<(&str, f64, f64)> = rows.iter().map(Timed::point).collect();
    for &(protocol, rtt_ms, median_s) in &rows {
        lines
            .entry(protocol)
            .or_default()
            .push((rtt_ms, median_s.max(1e-6)));
    }
    for points in lines.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let x_max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0) * 1.05;
    let (lo, hi) = rows
        .iter()
        .map(|r| r.2.max(1e-6))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });

    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (lo / 2.0..hi * 2.0).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("round-trip time (ms)")
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style((FONT, 16))
        .draw()
        .map_err(draw_error)?;
    for (protocol, points) in lines {
        let style = color(protocol).stroke_width(3);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(draw_error)?
            .label(protocol)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 5, color(protocol).filled())),
            )
            .map_err(draw_error)?;
    }
    legend(&mut chart)?;
    root.present().map_err(draw_error)?;
    Ok(())
}
