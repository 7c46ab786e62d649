//! `curves.png` of `pillar train`: loss, accuracy, out-of-range ratio and the largest
//! activation input per layer, epoch by epoch across all phases.

use std::path::Path;

use anyhow::{Result, bail};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::{FONT, draw_error, legend, register_font};
use pillar_train::metrics::RunMetrics;

/// A distinct colour for series `i`.
fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

struct Panel<'a> {
    title: &'a str,
    y_desc: &'a str,
    log: bool,
    series: Vec<(String, Vec<(f64, f64)>)>,
    /// A point marked by a cross (the escape: where and how far), with its label.
    mark: Option<(String, (f64, f64))>,
}

/// Draws the four panels of a run into `path`.
/// The file is replaced atomically: a killed run never leaves half a PNG.
pub(crate) fn training(metrics: &RunMetrics, path: &Path) -> Result<()> {
    pillar_nn::write_atomic_with(path, |tmp| draw_training(metrics, tmp))
}

fn draw_training(metrics: &RunMetrics, path: &Path) -> Result<()> {
    register_font();
    let history = &metrics.history;
    if history.is_empty() {
        bail!("no epoch to plot");
    }
    let x = |i: usize| (i + 1) as f64;
    let loss = history
        .iter()
        .enumerate()
        .map(|(i, m)| (x(i), m.train_loss))
        .collect();
    let train_acc = history
        .iter()
        .enumerate()
        .map(|(i, m)| (x(i), 100.0 * m.train_accuracy))
        .collect();
    let val_acc = history
        .iter()
        .enumerate()
        .map(|(i, m)| (x(i), 100.0 * m.val_accuracy))
        .collect();
    let oor = history
        .iter()
        .enumerate()
        .map(|(i, m)| (x(i), m.oor_ratio.max(1e-7)))
        .collect();
    let layers = history
        .iter()
        .map(|m| m.max_abs_per_layer.len())
        .max()
        .unwrap_or(0);
    let max_abs = (0..layers)
        .map(|l| {
            let points = history
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.max_abs_per_layer.get(l).map(|&v| (x(i), v)))
                // An escape shows as a point off the top of the chart rather than a gap.
                .map(|(e, v)| (e, if v.is_finite() { v.max(1e-3) } else { 1e12 }))
                .collect();
            (format!("act {}", l + 1), points)
        })
        .collect();
    // The escape happens inside an epoch that never finishes: its batch is not in the
    // history, so it is drawn on its own, at the epoch it happened in.
    let escape = metrics.escape.as_ref().map(|e| {
        let v = if e.max_abs.is_finite() {
            e.max_abs
        } else {
            1e12
        };
        (format!("escape ({})", e.layer), (x(e.epoch), v))
    });
    let epochs = history
        .len()
        .max(metrics.escape.as_ref().map_or(0, |e| e.epoch + 1));
    let panels = [
        Panel {
            title: "training loss",
            y_desc: "loss",
            log: true,
            series: vec![("loss".into(), loss)],
            mark: None,
        },
        Panel {
            title: "accuracy",
            y_desc: "%",
            log: false,
            series: vec![("train".into(), train_acc), ("validation".into(), val_acc)],
            mark: None,
        },
        Panel {
            title: "out-of-range ratio",
            y_desc: "share of inputs",
            log: true,
            series: vec![("oor".into(), oor)],
            mark: None,
        },
        Panel {
            title: "largest activation input per layer",
            y_desc: "max |x|",
            log: true,
            series: max_abs,
            mark: escape,
        },
    ];
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let title = format!(
        "{} / {} / {}{}",
        metrics.model,
        metrics.dataset,
        metrics.activation,
        metrics
            .escape
            .as_ref()
            .map(|e| format!(" (escaped: {} epoch {}, {})", e.phase, e.epoch + 1, e.layer))
            .unwrap_or_default()
    );
    let root = root.titled(&title, (FONT, 26)).map_err(draw_error)?;
    for (area, panel) in root.split_evenly((2, 2)).iter().zip(panels) {
        draw_panel(area, &panel, epochs)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel<'_>,
    epochs: usize,
) -> Result<()> {
    let values = panel
        .series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, v)| v))
        .chain(panel.mark.iter().map(|(_, (_, v))| *v))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let x_range = 0.5..(epochs as f64 + 0.5);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title, (FONT, 20))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(65);
    if panel.log {
        let lo = lo.max(1e-9);
        let mut chart = builder
            .build_cartesian_2d(x_range, (lo / 2.0..hi * 2.0).log_scale())
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(panel.y_desc)
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .label_style((FONT, 14))
            .draw()
            .map_err(draw_error)?;
        lines(&mut chart, panel)?;
    } else {
        let pad = ((hi - lo) * 0.05).max(0.5);
        let mut chart = builder
            .build_cartesian_2d(x_range, (lo - pad)..(hi + pad))
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(panel.y_desc)
            .label_style((FONT, 14))
            .draw()
            .map_err(draw_error)?;
        lines(&mut chart, panel)?;
    }
    Ok(())
}

/// One line per series, coloured by position, with a dot on every epoch (a run that stopped
/// after one epoch still shows), the mark if any, and the legend.
fn lines<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, panel: &Panel<'_>) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    for (i, (name, points)) in panel.series.iter().enumerate() {
        let style = palette(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(draw_error)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 3, palette(i).filled())),
            )
            .map_err(draw_error)?;
    }
    if let Some((name, point)) = &panel.mark {
        let style = RED.stroke_width(3);
        chart
            .draw_series(std::iter::once(Cross::new(*point, 9, style)))
            .map_err(draw_error)?
            .label(name.as_str())
            .legend(move |(x, y)| Cross::new((x + 10, y), 6, style));
    }
    legend(chart)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A run that escaped in its second epoch, one epoch of history.
    fn escaped_run(escape: bool) -> RunMetrics {
        let epoch = serde_json::json!({
            "phase": "train", "epoch": 0, "lr": 0.1, "train_loss": 1.5, "penalty": 0.0,
            "train_accuracy": 0.6, "val_accuracy": 0.3, "oor_ratio": 2e-4,
            "oor_per_layer": [1e-4, 3e-4], "max_abs_per_layer": [7.8, 10.4],
            "images_per_second": 100.0, "seconds": 25.0
        });
        let escape = escape.then(|| {
            serde_json::json!({
                "phase": "train", "epoch": 1, "batch": 10, "layer": "poly1",
                "max_abs": 1.4e5, "what": "inputs reached |x| = 1.4e5"
            })
        });
        serde_json::from_value(serde_json::json!({
            "model": "minionn", "dataset": "mnist", "activation": "naive-poly", "epochs": 1,
            "test_accuracy": 0.26, "val_accuracy": 0.3, "oor_ratio": 1e-7,
            "test_max_abs_per_layer": [], "best_epoch": 0, "escape": escape,
            "parameters": 10, "history": [epoch]
        }))
        .unwrap()
    }

    fn red_pixels(path: &Path) -> usize {
        let img = image::open(path).unwrap().to_rgb8();
        img.pixels().filter(|p| p.0 == [255, 0, 0]).count()
    }

    /// The escape is drawn (a red cross) even though its epoch never finished, and a run with
    /// one epoch still shows its points.
    #[test]
    fn the_escape_is_marked_on_the_activation_panel() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("escaped.png");
        let without = dir.path().join("clean.png");
        training(&escaped_run(true), &with).unwrap();
        training(&escaped_run(false), &without).unwrap();
        assert_eq!(red_pixels(&without), 0);
        assert!(red_pixels(&with) > 30, "{}", red_pixels(&with));
    }
}
